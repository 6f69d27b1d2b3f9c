"""What NVML (the GPU's management library) reports while the timed runs run.

:class:`NvmlSampler` reads utilisation, memory, clocks, power, temperature and clock-event
(throttle) reasons in a background thread and condenses them into an
:class:`~pytest_perfguard.record.NvmlSummary`. It never raises: a missing ``pynvml``, a driver
that is not loaded or a GPU it cannot find make it unavailable, with the reason in
:attr:`NvmlSampler.unavailable_reason`; a counter the GPU refuses (no permission, not
supported) is ``None`` in the summary and named in its ``note``. ``pynvml`` is the only
boundary: tests hand in a fake module that implements the same functions.
"""

from __future__ import annotations

import importlib
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ..record import NvmlSummary

__all__ = [
    "INSTALL_HINT",
    "MIN_WINDOW_S",
    "NvmlSampler",
    "decode_clock_event_reasons",
    "nvml_device_for_cuda_index",
    "window_long_enough",
]

#: NVML averages utilisation over a sample period between 1/6 s and 1 s, depending on the
#: product (``nvmlDeviceGetUtilizationRates`` in the NVML reference). A window shorter than
#: the longest period gives percentages that include time before the timed runs began.
MIN_WINDOW_S = 1.0

INSTALL_HINT = "pip install 'pytest-torch-perfguard[gpu]'"

#: Bits of ``nvmlClocksEventReasons`` (called ``nvmlClocksThrottleReasons`` before NVML 12;
#: the values are the same). Names follow nvml.h, in snake case.
_CLOCK_EVENT_REASONS: tuple[tuple[int, str], ...] = (
    (0x001, "gpu_idle"),
    (0x002, "applications_clocks_setting"),
    (0x004, "sw_power_cap"),
    (0x008, "hw_slowdown"),
    (0x010, "sync_boost"),
    (0x020, "sw_thermal_slowdown"),
    (0x040, "hw_thermal_slowdown"),
    (0x080, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
    # Only in pynvml's nvmlClocksThrottleReason* constants (nvidia-ml-py 12 and 13).
    (0x200, "board_limit"),
    (0x400, "reliability"),
)

#: NVML calls -> the NvmlSummary fields they feed (for the note when one is refused).
_COUNTER_FIELDS: dict[str, tuple[str, ...]] = {
    "utilisation": ("gpu_util_percent", "memory_util_percent"),
    "memory": ("memory_used_bytes",),
    "sm_clock": ("sm_clock_mhz",),
    "memory_clock": ("memory_clock_mhz",),
    "power": ("power_watts",),
    "temperature": ("temperature_c",),
    "clock_event_reasons": ("throttle_reasons",),
}

#: How long ``stop`` waits for the sampling thread (an NVML call can hang on a lost GPU).
_JOIN_TIMEOUT_S = 5.0


def window_long_enough(seconds: float) -> bool:
    """Whether a sampled window covers NVML's longest utilisation averaging period."""
    return seconds >= MIN_WINDOW_S


def decode_clock_event_reasons(mask: int) -> list[str]:
    """The names of the bits set in an NVML clock-event (throttle) reason mask."""
    names = [name for bit, name in _CLOCK_EVENT_REASONS if mask & bit]
    known = 0
    for bit, _ in _CLOCK_EVENT_REASONS:
        known |= bit
    unknown = mask & ~known
    if unknown:
        names.append(f"unknown({unknown:#x})")
    return names


def nvml_device_for_cuda_index(cuda_index: int, cuda_visible_devices: str | None) -> int | str:
    """The NVML device behind CUDA device ``cuda_index``: an NVML index, or a UUID (prefix).

    Follows CUDA's reading of ``CUDA_VISIBLE_DEVICES``: comma-separated indices or ``GPU-``/
    ``MIG-`` UUIDs (possibly abbreviated); parsing stops at the first invalid entry, and an
    empty value hides every GPU. Raises ``ValueError`` with the reason when the device is not
    visible.
    """
    if cuda_index < 0:
        raise ValueError(f"CUDA device index {cuda_index} is negative")
    if cuda_visible_devices is None:
        return cuda_index
    visible: list[int | str] = []
    for raw in cuda_visible_devices.split(","):
        entry = raw.strip()
        if entry.isdigit():
            visible.append(int(entry))
        elif entry.startswith(("GPU-", "MIG-")):
            visible.append(entry)
        else:
            break  # CUDA ignores this entry and every one after it
    if cuda_index >= len(visible):
        raise ValueError(
            f"CUDA device {cuda_index} is not visible: CUDA_VISIBLE_DEVICES="
            f"{cuda_visible_devices!r} makes {len(visible)} GPU(s) visible"
        )
    return visible[cuda_index]


@dataclass
class _Reading:
    """One pass over the counters; ``None`` where a counter failed."""

    gpu_util: float | None = None
    memory_util: float | None = None
    memory_used: int | None = None
    sm_clock: float | None = None
    memory_clock: float | None = None
    power_watts: float | None = None
    temperature: float | None = None
    clock_event_reasons: int | None = None


class _DeviceNotFound(Exception):
    """The GPU to sample could not be found; the message is the reason."""


class NvmlSampler:
    """Samples one GPU through NVML in a daemon thread while used as a context manager.

    ``device_index`` is the torch CUDA index; it is mapped to NVML's through
    ``CUDA_VISIBLE_DEVICES``. Pass ``device_uuid`` (``torch.cuda.get_device_properties(i).uuid``)
    to skip that mapping, which is exact even when CUDA and NVML order GPUs differently.
    ``nvml`` is the ``pynvml`` module, imported when left out. A sampler is used once.
    """

    def __init__(
        self,
        device_index: int,
        interval_s: float = 0.02,
        nvml: Any = None,
        *,
        device_uuid: str | None = None,
    ) -> None:
        self.device_index = device_index
        self.interval_s = interval_s
        self.device_uuid = device_uuid
        #: Why nothing was sampled, or ``None`` when sampling worked.
        self.unavailable_reason: str | None = None
        self._nvml = nvml
        self._handle: Any = None
        self._initialised = False
        self._readings: list[_Reading] = []
        self._failed: dict[str, str] = {}  # counter -> NVML's error text
        self._notes: list[str] = []
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at: float | None = None
        self._stopped_at: float | None = None

    def __enter__(self) -> NvmlSampler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Open NVML and start sampling; on any failure record why and sample nothing."""
        self.unavailable_reason = self._open()
        if self.unavailable_reason is not None:
            self._close()
            return
        self._started_at = time.perf_counter()
        self._thread = threading.Thread(
            target=self._run, name="perfguard-nvml-sampler", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Take a last reading, stop the thread and close NVML."""
        if self._thread is None:
            return
        self._stop_event.set()
        self._thread.join(_JOIN_TIMEOUT_S)
        self._stopped_at = time.perf_counter()
        if self._thread.is_alive():
            # Leave NVML open: the daemon thread is still inside an NVML call.
            self._notes.append(f"the sampling thread did not stop within {_JOIN_TIMEOUT_S} s")
        else:
            self._close()
        self._thread = None

    def summary(self) -> NvmlSummary | None:
        """Means (maxima for memory used and temperature) over the readings, or ``None``."""
        with self._lock:
            readings = list(self._readings)
            failed = dict(self._failed)
        if self.unavailable_reason is not None or not readings or self._started_at is None:
            return None
        end = self._stopped_at if self._stopped_at is not None else time.perf_counter()
        window = end - self._started_at
        notes = list(self._notes)
        for counter, error in failed.items():
            notes.append(f"{', '.join(_COUNTER_FIELDS[counter])}: {error}")
        if not window_long_enough(window):
            notes.append(
                f"sampled window {window:.3f} s is shorter than NVML's utilisation averaging "
                f"period (up to {MIN_WINDOW_S:g} s): utilisation includes time outside the "
                "timed runs; time more iterations"
            )
        reasons = 0
        for reading in readings:
            reasons |= reading.clock_event_reasons or 0
        memory_used = [r.memory_used for r in readings if r.memory_used is not None]
        return NvmlSummary(
            samples=len(readings),
            window_seconds=window,
            gpu_util_percent=_mean([r.gpu_util for r in readings]),
            memory_util_percent=_mean([r.memory_util for r in readings]),
            memory_used_bytes=max(memory_used) if memory_used else None,
            sm_clock_mhz=_mean([r.sm_clock for r in readings]),
            memory_clock_mhz=_mean([r.memory_clock for r in readings]),
            power_watts=_mean([r.power_watts for r in readings]),
            temperature_c=_max([r.temperature for r in readings]),
            throttle_reasons=decode_clock_event_reasons(reasons),
            note="; ".join(notes),
        )

    # -- opening and closing NVML ------------------------------------------------------

    def _open(self) -> str | None:
        """Import and initialise NVML and find the GPU; the reason when that fails."""
        if self._nvml is None:
            try:
                self._nvml = importlib.import_module("pynvml")
            except ImportError:
                return f"pynvml is not installed; {INSTALL_HINT}"
        nvml = self._nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as error:
            return f"NVML could not start: {error}"
        self._initialised = True
        try:
            self._handle = self._find_device(nvml)
        except _DeviceNotFound as reason:
            return str(reason)
        except nvml.NVMLError as error:
            return f"NVML could not open CUDA device {self.device_index}: {error}"
        return None

    def _find_device(self, nvml: Any) -> Any:
        count = int(nvml.nvmlDeviceGetCount())
        if self.device_uuid is not None:
            uuid = self.device_uuid
            if not uuid.startswith(("GPU-", "MIG-")):
                uuid = f"GPU-{uuid}"  # torch prints the bare UUID
            return self._device_by_uuid(nvml, uuid, count)
        try:
            target = nvml_device_for_cuda_index(
                self.device_index, os.environ.get("CUDA_VISIBLE_DEVICES")
            )
        except ValueError as reason:
            raise _DeviceNotFound(str(reason)) from None
        if isinstance(target, str):
            return self._device_by_uuid(nvml, target, count)
        if target >= count:
            raise _DeviceNotFound(
                f"CUDA device {self.device_index} is NVML device {target}, "
                f"but NVML sees {count} GPU(s)"
            )
        if count > 1 and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
            self._notes.append(
                f"NVML sees {count} GPUs and CUDA_DEVICE_ORDER is not PCI_BUS_ID: assumed "
                f"CUDA device {self.device_index} is NVML device {target} "
                "(pass device_uuid to be exact)"
            )
        return nvml.nvmlDeviceGetHandleByIndex(target)

    def _device_by_uuid(self, nvml: Any, uuid: str, count: int) -> Any:
        try:
            return nvml.nvmlDeviceGetHandleByUUID(uuid)
        except nvml.NVMLError:
            pass
        # CUDA accepts an abbreviated UUID; NVML wants the whole one.
        matches = []
        for index in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            if str(nvml.nvmlDeviceGetUUID(handle)).startswith(uuid):
                matches.append(handle)
        if len(matches) != 1:
            found = "no GPU" if not matches else f"{len(matches)} GPUs"
            raise _DeviceNotFound(f"NVML finds {found} with UUID {uuid}")
        return matches[0]

    def _close(self) -> None:
        if not self._initialised:
            return
        self._initialised = False
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            pass  # nothing left to do with NVML

    # -- sampling -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._sample()
            if self._stop_event.wait(self.interval_s):
                break
        self._sample()  # one reading at the end of the window

    def _sample(self) -> None:
        nvml, handle = self._nvml, self._handle
        reading = _Reading()
        rates = self._read("utilisation", nvml.nvmlDeviceGetUtilizationRates, handle)
        if rates is not None:
            reading.gpu_util = float(rates.gpu)
            reading.memory_util = float(rates.memory)
        memory = self._read("memory", nvml.nvmlDeviceGetMemoryInfo, handle)
        if memory is not None:
            reading.memory_used = int(memory.used)
        reading.sm_clock = _float(
            self._read("sm_clock", nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM)
        )
        reading.memory_clock = _float(
            self._read("memory_clock", nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_MEM)
        )
        milliwatts = self._read("power", nvml.nvmlDeviceGetPowerUsage, handle)
        reading.power_watts = None if milliwatts is None else float(milliwatts) / 1000.0
        reading.temperature = _float(
            self._read(
                "temperature", nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU
            )
        )
        reasons = self._read("clock_event_reasons", self._clock_event_reasons, handle)
        reading.clock_event_reasons = None if reasons is None else int(reasons)
        with self._lock:
            self._readings.append(reading)

    def _read(self, counter: str, call: Callable[..., Any], *args: Any) -> Any:
        """One NVML call; after its first error the counter is not asked again."""
        if counter in self._failed:
            return None
        try:
            return call(*args)
        except self._nvml.NVMLError as error:
            with self._lock:
                self._failed[counter] = str(error) or f"NVML error {error.value}"
            return None

    def _clock_event_reasons(self, handle: Any) -> int:
        nvml = self._nvml
        # nvidia-ml-py 12.535+ names it ClocksEventReasons; older bindings, and drivers
        # without the new symbol (FUNCTION_NOT_FOUND), only have ClocksThrottleReasons.
        event_reasons = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        if event_reasons is not None:
            try:
                return int(event_reasons(handle))
            except nvml.NVMLError as error:
                if error.value != nvml.NVML_ERROR_FUNCTION_NOT_FOUND:
                    raise
        return int(nvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _max(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None
