"""The measurement record: plain dataclasses, no torch inside.

Collectors fill these; the baseline store, the comparison and the reporters only read them.
Every metric that a torch version or a device cannot provide is ``None`` with its reason in
``unavailable`` (never a silent 0). ``codec.py`` writes and reads them as JSON (results.json,
worker messages); a baseline entry is :meth:`Measurement.for_baseline` (what is gated and
what explains it, with nothing that varies between runs of unchanged code).

The annotations are the declared schema of those files: ``schema.py`` validates what is read
and written against these dataclasses (types, finite numbers, and the bounds of
:data:`Count` and :data:`Seconds`), so a field added here is validated with no more code.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Annotated, Any

from annotated_types import Ge, MinLen

#: Version of the environment fingerprint's definition (:meth:`Environment.key`). Bump it
#: when a change would re-key existing environments: their baseline entries are then
#: reported as recorded under an older definition, not silently as "new".
FINGERPRINT_VERSION = 2
_FINGERPRINT_V1_FIELDS = ("python", "torch", "triton", "device", "device_name", "backend",
                          "mode", "dynamic", "fullgraph", "inductor")

#: Version of the JSON form of a :class:`Measurement` (results.json and baseline entries).
RECORD_SCHEMA = 1

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
    #: How often the first call broke there: the graphs that ended at this site, else
    #: (no graph ended here: a frame run eagerly) the times dynamo broke here.
    count: Count = 1
    #: What is called here under ``torch.compiler.disable`` (``function gelu``,
    #: ``module self.layers.1``), or "".
    disabled: str = ""

    @property
    def short_reason(self) -> str:
        return self.reason.strip().splitlines()[0] if self.reason.strip() else "(no reason)"

    @property
    def summary(self) -> str:
        """The short reason, what it calls under ``torch.compiler.disable`` and how often
        it broke: ``Skip calling ... function (calls function gelu under
        torch.compiler.disable), 2 times``."""
        text = self.short_reason
        if self.disabled:
            text += f" (calls {self.disabled} under torch.compiler.disable)"
        return text + (f", {self.count} times" if self.count != 1 else "")


@dataclass
class Recompile:
    """A recompile after the first call: the guard that failed and the user's line."""

    #: dynamo's guard failure reason, e.g. ``tensor 'x' size mismatch at index 0. expected 8,
    #: actual 16``.
    reason: str
    #: ``path/to/file.py:LINE`` of the compiled frame, or "".
    location: str = ""
    count: Count = 1


@dataclass
class KernelBytes:
    """One kernel of a compiled graph and the bytes inductor's scheduler counts for it
    (``GraphLowering.count_bytes``): where a compiled graph's bytes go."""

    #: The extern kernel it calls (``extern_kernels.convolution``), else "generated".
    kernel: str
    bytes: Count
    #: The aten ops it was lowered from.
    ops: list[str] = field(default_factory=list)
    #: Buffers it reads and writes (inductor's names: ``arg0_1`` is a graph input).
    reads: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    #: The compile id of its graph (``0/0``); forward and backward share one.
    graph: str = ""

    def describe(self) -> str:
        origin = f" from {', '.join(self.ops)}" if self.ops else ""
        reads = f"; reads {', '.join(self.reads)}" if self.reads else ""
        writes = f"; writes {', '.join(self.writes)}" if self.writes else ""
        return f"{self.kernel}{origin}: {self.bytes:,} bytes{reads}{writes}"


#: A timing with fewer samples than this is ``noisy``: the ungated budget takes 5 per mode
#: on an idle machine, and fewer means load cut it short (then 1-2 stalled calls of 75 ms
#: stood for a 0.15 ms model).
MIN_TRUSTED_SAMPLES = 5
#: A timing whose IQR exceeds this share of its median is ``noisy``.
NOISY_SPREAD = 0.10


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
        """The timing should not be trusted: fewer than :data:`MIN_TRUSTED_SAMPLES` samples
        (a loaded machine left the time budget one or two calls, whose spread says nothing),
        or an IQR above :data:`NOISY_SPREAD` of the median."""
        med = self.median
        return (len(self.samples) < MIN_TRUSTED_SAMPLES or med <= 0
                or self.iqr / med > NOISY_SPREAD)


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
    #: (``cpp_fused_add_mul_0``) or the compiled graph whose wrapper allocated it, by
    #: dynamo's compile id (``compiled graph 0/0``; ``compiled graph #1`` for a graph run
    #: outside a compiled region, such as a backward); ``(outside any op)`` for
    #: Python-level wrapping. The same code gives the same names, cold or warm caches.
    op: str
    bytes: Count
    #: ``"[32, 128] float32"`` when perfguard saw the tensor (an output, or an op input
    #: with recorded shapes) and its size matches the allocation; else ``""``.
    shape: str = ""
    #: ``path/to/file.py:LINE`` of the user's code that allocated it, where known (today:
    #: where the compiled function that allocated it starts); else "".
    location: str = ""


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
    #: Why each recompile happened (dynamo's guard failure reasons), in a stable order.
    recompile_details: list[Recompile] = field(default_factory=list)
    compile_seconds: Seconds | None = None
    #: The compiled kernels that move the most bytes, largest first (inductor's count).
    bytes_breakdown: list[KernelBytes] = field(default_factory=list)
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
    #: Parts of the output that were not compared: "path: why" (excluded by
    #: ``numerics_exclude``, not walkable, nested too deep, ...).
    skipped: list[str] = field(default_factory=list)


@dataclass
class ShapeRecord:
    """One input set of a measurement over several (``perfguard(model, inputs=[...])``).

    The measurement's own eager/compiled records hold the sums over all sets (one "call"
    is then the model called once on each set, in order); this is each set's share.
    """

    #: The input set's tensors: ``input[0]: (2, 12) int64``.
    inputs: str
    eager_kernel_launches: Count | None = None
    compiled_kernel_launches: Count | None = None
    eager_bytes_moved: Count | None = None
    compiled_bytes_moved: Count | None = None
    #: This set's own peak; the measurement's ``peak_memory`` is the largest over the sets.
    eager_peak_memory: Count | None = None
    compiled_peak_memory: Count | None = None
    flops: Count | None = None
    #: Graphs compiled by this set's first compiled call (0: the set reused a graph).
    compiles: Count = 0
    #: metric name -> why it is not available for this set.
    unavailable: dict[str, str] = field(default_factory=dict)


@dataclass
class Environment:
    """What a measurement depends on. Baselines are keyed by :meth:`key`."""

    python: str
    torch: str
    triton: str
    device: str  # "cpu", "cuda"
    device_name: str  # "cpu", "NVIDIA H100 80GB HBM3"
    backend: str
    mode: str
    dynamic: str
    fullgraph: bool
    #: Inductor settings that change code generation, as text.
    inductor: dict[str, str] = field(default_factory=dict)
    #: ``torch.compile(options=...)`` of the measurement, as text.
    compile_options: dict[str, str] = field(default_factory=dict)
    #: The CPU ISA level aten and inductor's C++ code target ("AVX2"). Shown, but not part
    #: of :meth:`key`: the example suite's launches and bytes were identical at
    #: ``ATEN_CPU_CAPABILITY`` default, avx2 and avx512, so a baseline travels between
    #: runners of different ISA.
    cpu_isa: str = ""
    #: Facts a project adds through the ``pytest_perfguard_environment`` hook (keyed).
    extra: dict[str, str] = field(default_factory=dict)
    #: Which definition of the fingerprint made :meth:`key` (``FINGERPRINT_VERSION``). Files
    #: written before the field existed hold version 1 (the CPU ISA was keyed then).
    fingerprint: int = 1
    #: Versions of libraries that shape the graphs (``transformers``, those a project names
    #: through ``pytest_perfguard_libraries``): shown, not keyed.
    libraries: dict[str, str] = field(default_factory=dict)
    #: The GPU a measurement ran on (``cuda:0 NVIDIA H100 ... GPU-<uuid>``), "" on CPU: not
    #: keyed (cards of one model are interchangeable).
    card: str = ""

    #: Fields recorded and shown but not part of the key.
    NOT_KEYED = ("cpu_isa", "fingerprint", "libraries", "card")

    def key(self) -> str:
        """A short stable hash of the fields that decide what a measurement may be compared
        with. Version 2 leaves out :attr:`NOT_KEYED` and every field still at its default,
        so a field added later with a default does not change any existing key; version 1
        (perfguard 0.1) hashed its ten fields as they were."""
        data = asdict(self)
        if self.fingerprint < 2:
            data = {k: data[k] for k in _FINGERPRINT_V1_FIELDS}
        else:
            defaults = {f.name: (f.default_factory() if f.default_factory is not MISSING
                                 else f.default) for f in fields(self)}
            data = {k: v for k, v in data.items()
                    if k not in self.NOT_KEYED and not (k in defaults and v == defaults[k])}
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def label(self) -> str:
        """What a reader needs to tell environments apart: device (with the CPU ISA),
        versions, backend/mode, and ``dynamic``, ``fullgraph`` and compile options where
        set. Inductor settings changed globally (``torch._inductor.config``) are in the
        key, not the label: reports show the key next to the label."""
        device = f"{self.device_name} ({self.cpu_isa})" if self.cpu_isa else self.device_name
        parts = [device, f"torch {self.torch}", f"py{self.python}", f"{self.backend}/{self.mode}"]
        if self.dynamic not in ("None", "auto", ""):
            parts.append(f"dynamic={self.dynamic}")
        if self.fullgraph:
            parts.append("fullgraph")
        if self.compile_options:
            parts.append("options " + ", ".join(f"{k}={v}" for k, v in
                                                 sorted(self.compile_options.items())))
        return " · ".join(parts)


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
    #: Per input set, when the measurement ran several (``inputs=[...]``); else empty.
    shapes: list[ShapeRecord] = field(default_factory=list)

    @property
    def identity(self) -> tuple[str, str]:
        """What a baseline entry is keyed by: the test node id and the name, kept apart (a
        node id may itself contain ``::``, so no joined string can be unambiguous)."""
        return (self.test_id, self.name)

    @property
    def profiled(self) -> bool:
        """Launches, bytes and FLOPs were measured (``pytest --perfguard``); without the
        flag only numerics, graphs and graph breaks are."""
        return self.eager.kernel_launches is not None

    def traffic_note(self, largest: int = 3) -> str | None:
        """Where compiled code moves more bytes than eager: the largest compiled kernels
        by bytes, from inductor's count. None when compiled moves no more than eager."""
        eager_bytes, compiled_bytes = self.eager.bytes_moved, self.compiled.bytes_moved
        if eager_bytes is None or compiled_bytes is None or compiled_bytes <= eager_bytes:
            return None
        ratio = f"{compiled_bytes / eager_bytes:.2f}x" if eager_bytes else "more than"
        note = f"compiled code moves {ratio} eager's bytes ({compiled_bytes:,} vs {eager_bytes:,})"
        if self.compiled.bytes_breakdown:
            note += "; largest compiled kernels: " + "; ".join(
                k.describe() for k in self.compiled.bytes_breakdown[:largest])
        return note

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
        """Eager median time / compiled median time (see :attr:`timing_trusted`)."""
        if self.eager.time is None or self.compiled.time is None:
            return None
        return _ratio(self.eager.time.median, self.compiled.time.median)

    @property
    def timing_trusted(self) -> bool:
        """Both modes were timed and neither timing is ``noisy``: only then does a speedup
        mean something."""
        return all(t is not None and not t.noisy for t in (self.eager.time, self.compiled.time))

    def for_baseline(self, *, keep_time: bool = True) -> Measurement:
        """The measurement as a baseline entry holds it: a copy that reads the same each time
        unchanged code is re-recorded, cold or warm caches, so a baseline diff shows only
        real changes. Left out: compile time, trace paths, and numerics' error figures and
        where they were (they vary in the last bits between runs; the gate reads a
        baseline's numerics for nothing, and results.json keeps them). ``unavailable`` is
        sorted by metric, and lists that explain a number are in a fixed order.
        ``keep_time=False`` also leaves out the timings and their "unavailable" reason.
        The measurement itself is not changed."""
        stored = _shallow_copy(self)
        stored.eager = _mode_for_baseline(self.eager, keep_time)
        stored.compiled = _mode_for_baseline(self.compiled, keep_time)
        stored.numerics = _shallow_copy(self.numerics)
        stored.numerics.max_abs_error = stored.numerics.max_rel_error = None
        stored.numerics.where = ""
        stored.traces = {}
        stored.shapes = [_shallow_copy(s) for s in self.shapes]
        for shape in stored.shapes:
            shape.unavailable = dict(sorted(shape.unavailable.items()))
        return stored


def _shallow_copy(record: Any) -> Any:
    """A shallow copy of a dataclass instance without running ``__init__``
    (``dataclasses.replace`` costs seconds over 50,000 measurements)."""
    clone = object.__new__(type(record))
    clone.__dict__.update(record.__dict__)
    return clone


def _mode_for_baseline(record: ModeRecord, keep_time: bool) -> ModeRecord:
    stored: ModeRecord = _shallow_copy(record)
    stored.compile_seconds = None
    unavailable = sorted(record.unavailable.items())
    if not keep_time:
        stored.time = None
        unavailable = [(metric, why) for metric, why in unavailable if metric != "time"]
    stored.unavailable = dict(unavailable)
    stored.peak_allocations = sorted(
        record.peak_allocations, key=lambda a: (-a.bytes, a.op, a.shape, a.location))
    stored.bytes_breakdown = sorted(
        record.bytes_breakdown, key=lambda k: (-k.bytes, k.graph, k.kernel, k.ops, k.reads,
                                               k.writes))
    return stored


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator
