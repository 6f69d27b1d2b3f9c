"""A fake ``pynvml`` module: the subset of the real interface that the NVML sampler uses.

Same function names, arguments, constants (the real NVML values) and return shapes as
nvidia-ml-py; ``test_fake_matches_pynvml`` checks that against the installed package.
Readings are sequences consumed one per call (the last one repeats); errors are NVML error
codes raised per function, for the whole fake or one device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Error codes (nvml.h, as pynvml exports them).
NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

_ERROR_TEXT = {  # pynvml's NVMLError._errcode_to_string
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}

# nvmlClockType_t and nvmlTemperatureSensors_t.
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_CLOCK_VIDEO = 3
NVML_TEMPERATURE_GPU = 0

# Clock-event (throttle) reason bits.
nvmlClocksEventReasonGpuIdle = 0x001
nvmlClocksEventReasonApplicationsClocksSetting = 0x002
nvmlClocksEventReasonSwPowerCap = 0x004
nvmlClocksEventReasonHwSlowdown = 0x008
nvmlClocksEventReasonSyncBoost = 0x010
nvmlClocksEventReasonSwThermalSlowdown = 0x020
nvmlClocksEventReasonHwThermalSlowdown = 0x040
nvmlClocksEventReasonHwPowerBrakeSlowdown = 0x080
nvmlClocksEventReasonDisplayClockSetting = 0x100


class NVMLError(Exception):
    """Like pynvml's: built from an error code, which it keeps in ``.value``."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _ERROR_TEXT.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = Exception.__hash__


@dataclass
class Utilization:
    """pynvml's c_nvmlUtilization_t: percentages over NVML's last sample period."""

    gpu: int
    memory: int


@dataclass
class Memory:
    """pynvml's c_nvmlMemory_t, in bytes."""

    total: int
    free: int
    used: int


@dataclass(frozen=True)
class Handle:
    """Stands in for pynvml's opaque c_nvmlDevice_t."""

    index: int


@dataclass
class FakeDevice:
    """One GPU's readings: each sequence is read one value per call, the last repeating."""

    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-1111-2222-3333-444444444444"
    memory_total: int = 80 * 2**30
    utilization: Sequence[tuple[int, int]] = ((0, 0),)  # (gpu %, memory %)
    memory_used: Sequence[int] = (0,)
    sm_clock_mhz: Sequence[int] = (1980,)
    memory_clock_mhz: Sequence[int] = (2619,)
    power_mw: Sequence[int] = (100_000,)
    temperature_c: Sequence[int] = (40,)
    clock_event_reasons: Sequence[int] = (0,)
    #: function name -> NVML error code raised by every call for this device.
    errors: dict[str, int] = field(default_factory=dict)


class FakeNvml:
    """A stand-in for the ``pynvml`` module, configured per test."""

    NVMLError = NVMLError

    def __init__(
        self,
        devices: Sequence[FakeDevice] | int = 1,
        *,
        init_error: int | None = None,
        errors: dict[str, int] | None = None,
        missing: Sequence[str] = (),
    ) -> None:
        if isinstance(devices, int):
            devices = [
                FakeDevice(uuid=f"GPU-{i}{i}{i}{i}0000-1111-2222-3333-444444444444")
                for i in range(devices)
            ]
        self.devices = list(devices)
        self.init_error = init_error
        #: function name -> NVML error code raised by every call.
        self.errors = dict(errors or {})
        #: functions this "pynvml" lacks (an older nvidia-ml-py).
        self.missing = frozenset(missing)
        #: nvmlInit calls not yet matched by nvmlShutdown (NVML counts them the same way).
        self.init_count = 0
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._positions: dict[tuple[int, str], int] = {}

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("nvml") and name in object.__getattribute__(self, "missing"):
            raise AttributeError(f"module 'pynvml' has no attribute {name!r}")
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Any:
        # Module-level constants (NVML_*, nvmlClocksEventReason*) read off the instance.
        try:
            return globals()[name]
        except KeyError:
            raise AttributeError(f"module 'pynvml' has no attribute {name!r}") from None

    # -- helpers -------------------------------------------------------------------------

    def _enter(self, function: str, *args: Any) -> None:
        self.calls.append((function, args))
        if function not in ("nvmlInit", "nvmlShutdown") and self.init_count == 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        if function in self.errors:
            raise NVMLError(self.errors[function])

    def _device(self, function: str, handle: Handle, *args: Any) -> FakeDevice:
        self._enter(function, handle, *args)
        if not isinstance(handle, Handle) or not 0 <= handle.index < len(self.devices):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        device = self.devices[handle.index]
        if function in device.errors:
            raise NVMLError(device.errors[function])
        return device

    def _next(self, handle: Handle, key: str, values: Sequence[Any]) -> Any:
        position = self._positions.get((handle.index, key), 0)
        self._positions[(handle.index, key)] = position + 1
        return values[min(position, len(values) - 1)]

    # -- the pynvml interface ------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.init_count += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        if self.init_count == 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        self.init_count -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Handle:
        self._enter("nvmlDeviceGetHandleByIndex", index)
        if not 0 <= index < len(self.devices):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return Handle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> Handle:
        self._enter("nvmlDeviceGetHandleByUUID", uuid)
        for index, device in enumerate(self.devices):
            if device.uuid == uuid:
                return Handle(index)
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetName(self, handle: Handle) -> str:
        return self._device("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetUUID(self, handle: Handle) -> str:
        return self._device("nvmlDeviceGetUUID", handle).uuid

    def nvmlDeviceGetUtilizationRates(self, handle: Handle) -> Utilization:
        device = self._device("nvmlDeviceGetUtilizationRates", handle)
        gpu, memory = self._next(handle, "utilization", device.utilization)
        return Utilization(gpu=gpu, memory=memory)

    def nvmlDeviceGetMemoryInfo(self, handle: Handle, version: int | None = None) -> Memory:
        device = self._device("nvmlDeviceGetMemoryInfo", handle, version)
        used = self._next(handle, "memory_used", device.memory_used)
        return Memory(total=device.memory_total, free=device.memory_total - used, used=used)

    def nvmlDeviceGetClockInfo(self, handle: Handle, type: int) -> int:  # pynvml names it type
        device = self._device("nvmlDeviceGetClockInfo", handle, type)
        if type == NVML_CLOCK_SM:
            return int(self._next(handle, "sm_clock", device.sm_clock_mhz))
        if type == NVML_CLOCK_MEM:
            return int(self._next(handle, "memory_clock", device.memory_clock_mhz))
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetPowerUsage(self, handle: Handle) -> int:
        device = self._device("nvmlDeviceGetPowerUsage", handle)
        return int(self._next(handle, "power", device.power_mw))

    def nvmlDeviceGetTemperature(self, handle: Handle, sensor: int) -> int:
        device = self._device("nvmlDeviceGetTemperature", handle, sensor)
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return int(self._next(handle, "temperature", device.temperature_c))

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Handle) -> int:
        device = self._device("nvmlDeviceGetCurrentClocksEventReasons", handle)
        return int(self._next(handle, "reasons", device.clock_event_reasons))

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: Handle) -> int:
        device = self._device("nvmlDeviceGetCurrentClocksThrottleReasons", handle)
        return int(self._next(handle, "reasons", device.clock_event_reasons))
