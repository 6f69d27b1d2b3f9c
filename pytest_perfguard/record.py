"""The measurement record: plain dataclasses, no torch inside.

Collectors fill these; the baseline store, the comparison and the reporters only read them.
Every metric that a torch version or a device cannot provide is ``None`` with its reason in
``unavailable`` (never a silent 0). ``to_dict``/``from_dict`` give the JSON form used by
``results.json`` and the baseline file.

The annotations are the declared schema of those files: ``schema.py`` validates what is read
and written against these dataclasses (types, finite numbers, and the bounds of
:data:`Count` and :data:`Seconds`), so a field added here is validated with no more code.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import Annotated, Any, Literal

from annotated_types import Ge, MinLen

#: Version of the JSON form of a :class:`Measurement` (results.json and baseline entries).
RECORD_SCHEMA = 1

Mode = Literal["eager", "compiled"]

#: A count or a size in bytes: never negative.
Count = Annotated[int, Ge(0)]
#: A duration in seconds: never negative.
Seconds = Annotated[float, Ge(0)]


@dataclass
class Kernel:
    """One distinct kernel and how often it ran in one call of the model."""

    name: str
    #: "generated" (inductor C++/Triton), "aten" (an aten op with a real kernel, eager or
    #: extern), "cuda" (a device kernel), "memcpy" or "memset".
    kind: str
    count: Count = 1
    #: Total device time of this kernel's launches in one call (CUDA only), in seconds.
    device_seconds: Seconds | None = None


@dataclass
class GraphBreak:
    """A graph break dynamo took, with the user's source location."""

    reason: str
    #: ``path/to/file.py:LINE`` of the user's code where the break happened.
    location: str
    function: str = ""

    @property
    def short_reason(self) -> str:
        return self.reason.strip().splitlines()[0] if self.reason.strip() else "(no reason)"


@dataclass
class Timing:
    """Per-call wall time after warm-up (eager and compiled samples are interleaved)."""

    samples: Annotated[list[Seconds], MinLen(1)]
    #: How the samples were taken: "perf_counter", "cuda-synchronize", "cuda-events".
    clock: str = "perf_counter"

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def iqr(self) -> float:
        if len(self.samples) < 4:
            return max(self.samples) - min(self.samples)
        q = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q[2] - q[0]

    @property
    def noisy(self) -> bool:
        """IQR above 10% of the median: the timing should not be trusted."""
        med = self.median
        return med <= 0 or self.iqr / med > 0.10


@dataclass
class NvmlSummary:
    """What NVML said while the timed runs ran (GPU only)."""

    samples: Count
    window_seconds: Seconds
    gpu_util_percent: float | None = None
    memory_util_percent: float | None = None
    memory_used_bytes: Count | None = None
    sm_clock_mhz: float | None = None
    memory_clock_mhz: float | None = None
    power_watts: float | None = None
    temperature_c: float | None = None
    throttle_reasons: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class Allocation:
    """A tensor alive at the peak: its size and the op that allocated it."""

    #: The op that allocated it: an aten kernel (``aten::mm``), an inductor kernel
    #: (``cpp_fused_add_mul_0``) or the compiled graph whose wrapper allocated it
    #: (``## Call CompiledFxGraph ... ##``); ``(outside any op)`` for Python-level wrapping.
    op: str
    bytes: Count
    #: ``"[32, 128] float32"`` when perfguard saw the tensor (an output, or an op input
    #: with recorded shapes) and its size matches the allocation; else ``""``.
    shape: str = ""


@dataclass
class Utilisation:
    """Achieved throughput against the device's peaks (GPU only)."""

    device_seconds: Seconds
    achieved_bytes_per_second: float | None
    achieved_flops_per_second: float | None
    peak_bytes_per_second: float | None
    peak_flops_per_second: float | None
    #: Where the peaks came from: "calibrated", "datasheet:<card>", ...
    peak_source: str = ""

    @property
    def bandwidth_utilisation(self) -> float | None:
        if self.achieved_bytes_per_second is None or not self.peak_bytes_per_second:
            return None
        return self.achieved_bytes_per_second / self.peak_bytes_per_second

    @property
    def flop_utilisation(self) -> float | None:
        if self.achieved_flops_per_second is None or not self.peak_flops_per_second:
            return None
        return self.achieved_flops_per_second / self.peak_flops_per_second


@dataclass
class ModeRecord:
    """Everything measured for one mode (eager or compiled) of one model call."""

    mode: str
    kernel_launches: Count | None = None
    kernels: list[Kernel] = field(default_factory=list)
    bytes_moved: Count | None = None
    flops: Count | None = None
    time: Timing | None = None
    # Compiled only.
    graphs: Count | None = None
    graph_breaks: Count | None = None
    graph_break_details: list[GraphBreak] = field(default_factory=list)
    recompiles: Count | None = None
    compile_seconds: Seconds | None = None
    # GPU only.
    device_seconds: Seconds | None = None
    utilisation: Utilisation | None = None
    nvml: NvmlSummary | None = None
    #: The most bytes the call allocated that were alive at the same moment (outputs and,
    #: with ``train=True``, gradients included; inputs and parameters not).
    peak_memory: Count | None = None
    #: What was alive at that peak: the largest allocations first, at most 5.
    peak_allocations: list[Allocation] = field(default_factory=list)
    #: metric name -> why it is not available here.
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def arithmetic_intensity(self) -> float | None:
        """FLOPs per byte moved."""
        if self.flops is None or not self.bytes_moved:
            return None
        return self.flops / self.bytes_moved

    def describe(self, metric: str) -> str:
        """A metric's value as text, or ``unavailable (reason)``."""
        value = getattr(self, metric, None)
        if value is None:
            reason = self.unavailable.get(metric, "not measured")
            return f"unavailable ({reason})"
        return str(value)


@dataclass
class Numerics:
    """Compiled output against eager output."""

    checked: bool
    ok: bool = True
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    #: Which output (and element index) had the largest error.
    where: str = ""
    atol: float | None = None
    rtol: float | None = None
    message: str = ""


@dataclass
class Environment:
    """What a measurement depends on. Baselines are keyed by :meth:`key`."""

    python: str
    torch: str
    triton: str
    device: str  # "cpu", "cuda"
    device_name: str  # "cpu (AVX2)", "NVIDIA H100 80GB HBM3"
    backend: str
    mode: str
    dynamic: str
    fullgraph: bool
    #: Inductor settings that change code generation, as text.
    inductor: dict[str, str] = field(default_factory=dict)

    def key(self) -> str:
        """A short stable hash of everything above."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def label(self) -> str:
        return (
            f"{self.device_name} · torch {self.torch} · py{self.python} · "
            f"{self.backend}/{self.mode}"
        )


@dataclass
class Measurement:
    """One profiled thing: a test's ``perfguard(...)`` call with a given name."""

    test_id: str
    name: str
    train: bool
    environment: Environment
    eager: ModeRecord
    compiled: ModeRecord
    numerics: Numerics
    #: Files written for this measurement (``--perfguard-traces``): kind -> path.
    traces: dict[str, str] = field(default_factory=dict)

    @property
    def identity(self) -> tuple[str, str]:
        """What a baseline entry is keyed by: the test node id and the name, kept apart (a
        node id may itself contain ``::``, so no joined string can be unambiguous)."""
        return (self.test_id, self.name)

    @property
    def key(self) -> str:
        """The measurement as people read it: the node id, plus ``::name`` unless "default".
        For display only: ``test_c[x]`` named ``y[z]`` and ``test_c[x]::y[z]`` read the same."""
        return self.test_id if self.name == "default" else f"{self.test_id}::{self.name}"

    @property
    def fusion_ratio(self) -> float | None:
        """Eager kernel launches / compiled kernel launches."""
        return _ratio(self.eager.kernel_launches, self.compiled.kernel_launches)

    @property
    def traffic_ratio(self) -> float | None:
        """Eager bytes moved / compiled bytes moved."""
        return _ratio(self.eager.bytes_moved, self.compiled.bytes_moved)

    @property
    def memory_ratio(self) -> float | None:
        """Eager peak memory / compiled peak memory."""
        return _ratio(self.eager.peak_memory, self.compiled.peak_memory)

    @property
    def speedup(self) -> float | None:
        """Eager median time / compiled median time."""
        if self.eager.time is None or self.compiled.time is None:
            return None
        return _ratio(self.eager.time.median, self.compiled.time.median)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema"] = RECORD_SCHEMA
        data["key"] = self.key
        data["environment_key"] = self.environment.key()
        data["derived"] = {
            "fusion_ratio": self.fusion_ratio,
            "traffic_ratio": self.traffic_ratio,
            "speedup": self.speedup,
            "memory_ratio": self.memory_ratio,
            "eager_arithmetic_intensity": self.eager.arithmetic_intensity,
            "compiled_arithmetic_intensity": self.compiled.arithmetic_intensity,
        }
        for mode in ("eager", "compiled"):
            timing = getattr(self, mode).time
            if timing is not None:
                data[mode]["time"].update(
                    median=timing.median, iqr=timing.iqr, noisy=timing.noisy
                )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        schema = data.get("schema", RECORD_SCHEMA)
        if not isinstance(schema, int) or schema > RECORD_SCHEMA:
            raise ValueError(
                f"measurement schema {schema!r} is newer than this perfguard understands "
                f"({RECORD_SCHEMA}); upgrade pytest-torch-perfguard"
            )
        return cls(
            test_id=str(data["test_id"]),
            name=str(data["name"]),
            train=bool(data["train"]),
            environment=_build(Environment, data["environment"]),
            eager=_mode_from_dict(data["eager"]),
            compiled=_mode_from_dict(data["compiled"]),
            numerics=_build(Numerics, data["numerics"]),
            traces={str(k): str(v) for k, v in (data.get("traces") or {}).items()},
        )


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def _build(cls: Any, data: dict[str, Any]) -> Any:
    """Build a flat dataclass, ignoring keys this version does not know (derived values)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def _mode_from_dict(data: dict[str, Any]) -> ModeRecord:
    record = _build(ModeRecord, data)
    record.kernels = [_build(Kernel, k) for k in data.get("kernels", [])]
    record.graph_break_details = [_build(GraphBreak, g) for g in data.get("graph_break_details", [])]
    record.peak_allocations = [_build(Allocation, a) for a in data.get("peak_allocations", [])]
    if data.get("time") is not None:
        record.time = _build(Timing, data["time"])
    if data.get("utilisation") is not None:
        record.utilisation = _build(Utilisation, data["utilisation"])
    if data.get("nvml") is not None:
        record.nvml = _build(NvmlSummary, data["nvml"])
    return record
