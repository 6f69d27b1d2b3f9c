"""The NVML sampler against a fake pynvml: every unavailable path, and sums done by hand."""

from __future__ import annotations

import inspect
import sys
import time

import pytest
from fake_nvml import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_FUNCTION_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_SUPPORTED,
    FakeDevice,
    FakeNvml,
    Handle,
)

from pytest_perfguard.collectors import nvml as nvml_collector
from pytest_perfguard.collectors.nvml import (
    INSTALL_HINT,
    MIN_WINDOW_S,
    NvmlSampler,
    decode_clock_event_reasons,
    nvml_device_for_cuda_index,
    window_long_enough,
)

GIB = 2**30
#: Longer than any test: the thread takes one reading at start and one at stop, no more.
TWO_READINGS = 600.0


@pytest.fixture(autouse=True)
def _no_cuda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)


def sample(fake: FakeNvml, device_index: int = 0, device_uuid: str | None = None) -> NvmlSampler:
    """Run a sampler over an empty window: exactly two readings."""
    with NvmlSampler(
        device_index, interval_s=TWO_READINGS, nvml=fake, device_uuid=device_uuid
    ) as sampler:
        pass
    assert fake.init_count == 0, "nvmlInit and nvmlShutdown must pair up"
    return sampler


# -- a normal run ---------------------------------------------------------------------


def test_summary_means_and_maxima_from_two_readings() -> None:
    device = FakeDevice(
        utilization=[(40, 10), (80, 30)],
        memory_used=[1 * GIB, 3 * GIB],
        sm_clock_mhz=[1500, 1980],
        memory_clock_mhz=[2619, 2619],
        power_mw=[200_000, 300_500],
        temperature_c=[50, 62],
        clock_event_reasons=[0x004, 0x001],
    )
    summary = sample(FakeNvml([device])).summary()

    assert summary is not None
    assert summary.samples == 2
    assert summary.gpu_util_percent == 60.0  # (40 + 80) / 2
    assert summary.memory_util_percent == 20.0  # (10 + 30) / 2
    assert summary.memory_used_bytes == 3 * GIB  # the peak, not the mean
    assert summary.sm_clock_mhz == 1740.0  # (1500 + 1980) / 2
    assert summary.memory_clock_mhz == 2619.0
    assert summary.power_watts == 250.25  # (200.0 W + 300.5 W) / 2
    assert summary.temperature_c == 62.0  # the hottest reading
    assert summary.throttle_reasons == ["gpu_idle", "sw_power_cap"]  # union, in bit order
    assert 0 < summary.window_seconds < MIN_WINDOW_S


def test_fast_sampling_mean_follows_the_readings() -> None:
    # 10% once, then 50% for every later reading: mean = (10 + 50 * (n - 1)) / n.
    fake = FakeNvml([FakeDevice(utilization=[(10, 0), (50, 0)])])
    reads = ("nvmlDeviceGetUtilizationRates", (Handle(0),))
    with NvmlSampler(0, interval_s=0.001, nvml=fake) as sampler:
        deadline = time.monotonic() + 10
        while fake.calls.count(reads) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
    summary = sampler.summary()

    assert summary is not None
    n = summary.samples
    assert n >= 3
    assert summary.gpu_util_percent == pytest.approx((10 + 50 * (n - 1)) / n)
    assert fake.calls.count(reads) == n


def test_default_import_uses_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with NvmlSampler(0, interval_s=TWO_READINGS) as sampler:
        pass
    assert sampler.unavailable_reason is None
    assert sampler.summary() is not None
    assert fake.init_count == 0


# -- the short-window note -------------------------------------------------------------


def test_window_long_enough() -> None:
    assert MIN_WINDOW_S == 1.0  # NVML's longest utilisation averaging period
    assert window_long_enough(MIN_WINDOW_S)
    assert window_long_enough(2.5)
    assert not window_long_enough(1 / 6)
    assert not window_long_enough(0.0)


def test_short_window_is_noted() -> None:
    summary = sample(FakeNvml()).summary()
    assert summary is not None
    assert "shorter than NVML's utilisation averaging period" in summary.note


def test_long_enough_window_has_no_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nvml_collector, "MIN_WINDOW_S", 0.0)
    summary = sample(FakeNvml()).summary()
    assert summary is not None
    assert summary.note == ""


# -- clock-event (throttle) reasons ----------------------------------------------------


def test_decode_clock_event_reasons() -> None:
    assert decode_clock_event_reasons(0) == []
    assert decode_clock_event_reasons(0x004 | 0x040) == ["sw_power_cap", "hw_thermal_slowdown"]
    assert decode_clock_event_reasons(0x001 | 0x008 | 0x080) == [
        "gpu_idle",
        "hw_slowdown",
        "hw_power_brake_slowdown",
    ]
    assert decode_clock_event_reasons(0x010 | 0x8000) == ["sync_boost", "unknown(0x8000)"]


def test_decoding_matches_pynvml_constants() -> None:
    pynvml = pytest.importorskip("pynvml")
    for name in dir(pynvml):
        if name.startswith("nvmlClocksEventReason") and name not in (
            "nvmlClocksEventReasonAll",
            "nvmlClocksEventReasonNone",
            "nvmlClocksEventReasonUserDefinedClocks",  # deprecated alias of Applications...
        ):
            bit = getattr(pynvml, name)
            assert not decode_clock_event_reasons(bit)[0].startswith("unknown"), name


def test_older_pynvml_falls_back_to_throttle_reasons() -> None:
    device = FakeDevice(clock_event_reasons=[0x020])
    fake = FakeNvml([device], missing=["nvmlDeviceGetCurrentClocksEventReasons"])
    summary = sample(fake).summary()
    assert summary is not None
    assert summary.throttle_reasons == ["sw_thermal_slowdown"]
    assert any(name == "nvmlDeviceGetCurrentClocksThrottleReasons" for name, _ in fake.calls)


def test_older_driver_falls_back_to_throttle_reasons() -> None:
    device = FakeDevice(
        clock_event_reasons=[0x004],
        errors={"nvmlDeviceGetCurrentClocksEventReasons": NVML_ERROR_FUNCTION_NOT_FOUND},
    )
    summary = sample(FakeNvml([device])).summary()
    assert summary is not None
    assert summary.throttle_reasons == ["sw_power_cap"]
    assert summary.note.count("throttle") == 0


# -- unavailable: the whole sampler ----------------------------------------------------


def test_pynvml_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    with NvmlSampler(0) as sampler:
        pass
    assert sampler.summary() is None
    assert sampler.unavailable_reason == f"pynvml is not installed; {INSTALL_HINT}"
    assert "pip install 'pytest-torch-perfguard[gpu]'" in sampler.unavailable_reason


def test_nvml_init_error() -> None:
    fake = FakeNvml(init_error=NVML_ERROR_DRIVER_NOT_LOADED)
    sampler = sample(fake)
    assert sampler.summary() is None
    assert sampler.unavailable_reason == "NVML could not start: Driver Not Loaded"
    assert [name for name, _ in fake.calls] == ["nvmlInit"]  # no shutdown without init


def test_device_index_out_of_range() -> None:
    fake = FakeNvml(1)
    sampler = sample(fake, device_index=1)
    assert sampler.summary() is None
    assert sampler.unavailable_reason == "CUDA device 1 is NVML device 1, but NVML sees 1 GPU(s)"


def test_negative_device_index() -> None:
    sampler = sample(FakeNvml(1), device_index=-1)
    assert sampler.unavailable_reason == "CUDA device index -1 is negative"


def test_stop_without_start_and_summary_before_start() -> None:
    sampler = NvmlSampler(0, nvml=FakeNvml())
    assert sampler.summary() is None
    sampler.stop()  # nothing to stop
    assert sampler.unavailable_reason is None


# -- unavailable: one counter -------------------------------------------------------------


def test_no_permission_for_power_only() -> None:
    device = FakeDevice(errors={"nvmlDeviceGetPowerUsage": NVML_ERROR_NO_PERMISSION})
    fake = FakeNvml([device])
    summary = sample(fake).summary()

    assert summary is not None
    assert summary.power_watts is None
    assert "power_watts: Insufficient Permissions" in summary.note
    assert summary.gpu_util_percent == 0.0
    assert summary.sm_clock_mhz == 1980.0
    assert summary.temperature_c == 40.0
    # A refused counter is asked once, not on every reading.
    assert sum(name == "nvmlDeviceGetPowerUsage" for name, _ in fake.calls) == 1


def test_utilisation_not_supported() -> None:
    # MIG instances and some vGPUs refuse utilisation; both percentages go.
    device = FakeDevice(errors={"nvmlDeviceGetUtilizationRates": NVML_ERROR_NOT_SUPPORTED})
    summary = sample(FakeNvml([device])).summary()

    assert summary is not None
    assert summary.gpu_util_percent is None
    assert summary.memory_util_percent is None
    assert "gpu_util_percent, memory_util_percent: Not Supported" in summary.note
    assert summary.power_watts == 100.0


def test_every_counter_refused_still_gives_a_summary() -> None:
    refused = {
        name: NVML_ERROR_NO_PERMISSION
        for name in (
            "nvmlDeviceGetUtilizationRates",
            "nvmlDeviceGetMemoryInfo",
            "nvmlDeviceGetClockInfo",
            "nvmlDeviceGetPowerUsage",
            "nvmlDeviceGetTemperature",
            "nvmlDeviceGetCurrentClocksEventReasons",
        )
    }
    summary = sample(FakeNvml([FakeDevice(errors=refused)])).summary()
    assert summary is not None
    assert summary.samples == 2
    assert summary.gpu_util_percent is None
    assert summary.memory_used_bytes is None
    assert summary.sm_clock_mhz is None
    assert summary.memory_clock_mhz is None
    assert summary.temperature_c is None
    assert summary.throttle_reasons == []
    for field_name in ("memory_used_bytes", "sm_clock_mhz", "memory_clock_mhz", "throttle_reasons"):
        assert f"{field_name}: Insufficient Permissions" in summary.note


# -- CUDA_VISIBLE_DEVICES and several GPUs ---------------------------------------------------


def four_gpus() -> FakeNvml:
    """Four GPUs told apart by temperature: NVML device i reads 50 + i degrees."""
    return FakeNvml(
        [
            FakeDevice(
                uuid=f"GPU-{i}{i}{i}{i}abcd-0000-0000-0000-000000000000", temperature_c=[50 + i]
            )
            for i in range(4)
        ]
    )


def test_visible_devices_remap_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    summary = sample(four_gpus(), device_index=1).summary()
    assert summary is not None
    assert summary.temperature_c == 53.0  # CUDA device 1 is NVML device 3


def test_visible_devices_by_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-2222abcd-0000-0000-0000-000000000000")
    fake = four_gpus()
    summary = sample(fake, device_index=0).summary()
    assert summary is not None
    assert summary.temperature_c == 52.0
    assert ("nvmlDeviceGetHandleByUUID", ("GPU-2222abcd-0000-0000-0000-000000000000",)) in (
        fake.calls
    )
    assert summary.note.count("CUDA_DEVICE_ORDER") == 0  # a UUID is exact


def test_visible_devices_by_abbreviated_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,GPU-1111")
    summary = sample(four_gpus(), device_index=1).summary()
    assert summary is not None
    assert summary.temperature_c == 51.0


def test_visible_devices_unknown_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-ffff")
    sampler = sample(four_gpus())
    assert sampler.summary() is None
    assert sampler.unavailable_reason == "NVML finds no GPU with UUID GPU-ffff"


def test_visible_devices_hide_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    sampler = sample(four_gpus())
    assert sampler.unavailable_reason == (
        "CUDA device 0 is not visible: CUDA_VISIBLE_DEVICES='' makes 0 GPU(s) visible"
    )


def test_visible_devices_point_past_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    sampler = sample(four_gpus())
    assert sampler.unavailable_reason == "CUDA device 0 is NVML device 7, but NVML sees 4 GPU(s)"


def test_device_uuid_argument_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    # torch's device properties print the UUID without the "GPU-" prefix.
    summary = sample(
        four_gpus(), device_index=0, device_uuid="3333abcd-0000-0000-0000-000000000000"
    ).summary()
    assert summary is not None
    assert summary.temperature_c == 53.0


def test_several_gpus_without_pci_order_are_noted(monkeypatch: pytest.MonkeyPatch) -> None:
    summary = sample(four_gpus(), device_index=2).summary()
    assert summary is not None
    assert summary.temperature_c == 52.0
    assert "NVML sees 4 GPUs and CUDA_DEVICE_ORDER is not PCI_BUS_ID" in summary.note

    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    summary = sample(four_gpus(), device_index=2).summary()
    assert summary is not None
    assert "CUDA_DEVICE_ORDER" not in summary.note


@pytest.mark.parametrize(
    ("visible", "cuda_index", "expected"),
    [
        (None, 0, 0),
        (None, 3, 3),
        ("1", 0, 1),
        ("3, 1", 1, 1),
        ("GPU-abc,2", 0, "GPU-abc"),
        ("MIG-0f0e", 0, "MIG-0f0e"),
    ],
)
def test_nvml_device_for_cuda_index(visible: str | None, cuda_index: int, expected: object) -> None:
    assert nvml_device_for_cuda_index(cuda_index, visible) == expected


@pytest.mark.parametrize(
    ("visible", "cuda_index"),
    [("", 0), ("0,1", 2), ("0,-1,1", 1), ("0,bogus,2", 1)],  # CUDA stops at an invalid entry
)
def test_nvml_device_for_cuda_index_not_visible(visible: str, cuda_index: int) -> None:
    with pytest.raises(ValueError, match="is not visible"):
        nvml_device_for_cuda_index(cuda_index, visible)


# -- the fake keeps to pynvml's interface ----------------------------------------------------


def test_fake_matches_pynvml() -> None:
    pynvml = pytest.importorskip("pynvml")
    fake = FakeNvml()
    for name in dir(FakeNvml):
        if name.startswith("nvml"):
            real = inspect.signature(getattr(pynvml, name))
            ours = inspect.signature(getattr(fake, name))
            assert list(ours.parameters) == list(real.parameters), name
    import fake_nvml

    for name in dir(fake_nvml):
        if name.startswith(("NVML_", "nvmlClocksEventReason")):
            assert getattr(fake_nvml, name) == getattr(pynvml, name), name
    assert [f for f, _ in pynvml.c_nvmlUtilization_t._fields_] == ["gpu", "memory"]
    assert [f for f, _ in pynvml.c_nvmlMemory_t._fields_] == ["total", "free", "used"]
    real_error = pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION)
    fake_error = fake.NVMLError(fake_nvml.NVML_ERROR_NO_PERMISSION)
    assert (real_error.value, str(real_error)) == (fake_error.value, str(fake_error))
