"""The metric catalogue: every number perfguard reports, described once. No torch, no I/O.

A :class:`Metric` says how a value is read from a :class:`~.record.Measurement`, its unit,
which direction is better, which rule gates it (if any), whether it is deterministic, and
every name it goes by. The judge (``compare``), the reports' unit formatting, the history,
the exporters, the junit properties and every CLI that takes a metric name read this table;
:func:`lookup` accepts each spelling any of them prints.

Canonical names are ``<mode>.<field>`` (``compiled.kernel_launches``); ratios of the two
modes have no mode (``fusion_ratio``). The reports take every word they print about a metric
from here (headers, titles, chart titles, export units), and the layouts several reports
share: :data:`SUMMARY` (a test's row), :data:`DETAILS` (a test's metric table), :data:`CHARTS`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from .record import Measurement, Timing

Unit = Literal["count", "bytes", "flops", "flop_per_byte", "seconds", "ratio", "fraction",
               "percent"]
#: The rule that gates a metric: ``exact`` (any increase regresses, any decrease improves), a
#: :class:`~.settings.Rules` tolerance field, ``time`` (the Mann-Whitney rule of
#: ``Rules.time``), or ``None`` (context only: shown, never a verdict).
Gate = Literal["exact", "bytes_tolerance", "memory_tolerance", "utilisation_tolerance",
               "nvml", "time"]

MODES = ("eager", "compiled")


@dataclass(frozen=True)
class Metric:
    """One metric of a measurement."""

    #: Canonical name: ``compiled.kernel_launches``; the history stores it under this name.
    name: str
    read: Callable[[Measurement], float | None]
    unit: Unit
    #: How a person reads it, without the mode: ``kernel launches``.
    words: str
    better: Literal["lower", "higher"] = "lower"
    gate: Gate | None = None
    #: The same code gives the same value on every run (counts, bytes, FLOPs, peak memory);
    #: False for what a clock or a sampler measures.
    deterministic: bool = True
    #: Kept in the history database (ratios are derived from stored metrics, so not kept).
    history: bool = True
    #: The name a verdict's change carries, as the gate prints it (``graph_breaks``).
    printed: str = ""
    #: Bencher measure slug / github-action-benchmark name suffix, where exported.
    bencher: str = ""
    benchmark: str = ""
    #: A few words without the mode, for narrow tables and one-line summaries (``launches``);
    #: empty: the label without its mode.
    short: str = ""
    #: Its header in the terminal table, which shows the :data:`SUMMARY` metrics that have one.
    column: str = ""
    #: For a ratio of the two modes (eager ÷ compiled): the field it divides.
    ratio_of: str = ""
    #: The id of the chart (:data:`CHARTS`) it is drawn in.
    chart: str = ""
    #: The metric holding this one's spread (the IQR band around a median time).
    spread: str = ""
    #: The metrics an export's tooltip tells beside this one.
    context: tuple[str, ...] = ()

    @property
    def mode(self) -> str:
        return self.name.split(".", 1)[0] if "." in self.name else ""

    @property
    def field(self) -> str:
        return self.name.split(".", 1)[-1]

    @property
    def label(self) -> str:
        """How a person reads it: ``compiled kernel launches``."""
        return f"{self.mode} {self.words}" if self.mode else self.words

    @property
    def brief(self) -> str:
        """:attr:`short`, or the label without the mode."""
        return self.short or self.words

    @property
    def title(self) -> str:
        """A table's header or row name: ``Kernel launches``; a ratio by what it says:
        ``Fusion``."""
        text = self.brief if self.ratio_of else self.words
        return text[:1].upper() + text[1:]

    @property
    def export_unit(self) -> str:
        """Its unit as an export names it: ``bytes``, ``s``, or what it counts (``launches``)."""
        return {"bytes": "bytes", "seconds": "s"}.get(self.unit, self.brief)

    @property
    def verdict_name(self) -> str:
        """The name a change of this metric is printed with."""
        return self.printed or self.name.replace(".", " ")


def _reader(mode: str, path: str) -> Callable[[Measurement], float | None]:
    """Reads ``<mode>.<path>`` of a measurement (``compiled.time.median``): None where a step
    is missing, the value is no finite number, or a timing has no samples."""
    def read(m: Measurement) -> float | None:
        value: object = getattr(m, mode)
        for part in path.split("."):
            if value is None or (isinstance(value, Timing) and not value.samples):
                return None
            value = getattr(value, part)
        return _number(value)
    return read


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _modes(field: str, unit: Unit, words: str, *, path: str = "", compiled_only: bool = False,
           eager: dict[str, Any] | None = None, compiled: dict[str, Any] | None = None,
           **shared: Any) -> list[Metric]:
    """``field`` in each mode (``compiled_only``: the compiled mode), read from ``path``
    (default: the field), with the attributes ``shared`` and each mode's own (``compiled``:
    its gate and export names)."""
    own = {"eager": eager or {}, "compiled": compiled or {}}
    return [Metric(f"{mode}.{field}", _reader(mode, path or field), unit, words,
                   **shared, **own[mode])
            for mode in MODES if mode == "compiled" or not compiled_only]


def _ratio(name: str, of_field: str, short: str, **shared: Any) -> Metric:
    """Eager ÷ compiled of ``of_field``, read from the measurement's property ``name``."""
    return Metric(name, lambda m: _number(getattr(m, name)), "ratio", name.replace("_", " "),
                  better="higher", history=False, printed=name, short=short, column=short,
                  ratio_of=of_field, **shared)


def _catalogue() -> tuple[Metric, ...]:
    timing: dict[str, Any] = {"deterministic": False}
    gpu: dict[str, Any] = {"better": "higher", "deterministic": False}
    metrics = [
        *_modes("kernel_launches", "count", "kernel launches", short="launches",
                column="launches", chart="launches", compiled={
                    "gate": "exact", "bencher": "compiled-kernel-launches",
                    "benchmark": "compiled kernel launches",
                    "context": ("eager.kernel_launches", "fusion_ratio")}),
        *_modes("bytes_moved", "bytes", "bytes moved", short="bytes", column="bytes",
                chart="bytes", compiled={
                    "gate": "bytes_tolerance", "bencher": "compiled-bytes-moved",
                    "benchmark": "compiled bytes moved",
                    "context": ("eager.bytes_moved", "traffic_ratio")}),
        *_modes("flops", "flops", "FLOPs"),
        *_modes("arithmetic_intensity", "flop_per_byte", "arithmetic intensity",
                better="higher", history=False),
        *_modes("peak_memory", "bytes", "peak memory", column="peak mem", chart="memory",
                compiled={"gate": "memory_tolerance", "bencher": "compiled-peak-memory",
                          "benchmark": "compiled peak memory",
                          "context": ("eager.peak_memory", "memory_ratio")}),
        # What dynamo compiles exists in the compiled mode only.
        *_modes("graphs", "count", "graphs", compiled_only=True),
        *_modes("graph_breaks", "count", "graph breaks", compiled_only=True, gate="exact",
                printed="graph_breaks", bencher="graph-breaks", benchmark="graph breaks",
                column="breaks", chart="breaks",
                context=("compiled.graphs", "compiled.recompiles")),
        *_modes("recompiles", "count", "recompiles", compiled_only=True, gate="exact",
                printed="recompiles", column="recompiles", chart="breaks"),
        *_modes("compile_seconds", "seconds", "compile time", compiled_only=True, **timing),
        *_modes("device_seconds", "seconds", "device time", **timing),
        *_modes("time_median", "seconds", "median time", path="time.median", chart="time",
                eager={"printed": "eager time_median_s", "spread": "eager.time_iqr"},
                compiled={"gate": "time", "printed": "compiled time_median_s",
                          "spread": "compiled.time_iqr", "bencher": "latency",
                          "benchmark": "compiled median time"}, **timing),
        *_modes("time_iqr", "seconds", "time IQR", path="time.iqr", **timing),
        *_modes("bandwidth_utilisation", "fraction", "bandwidth utilisation",
                path="utilisation.bandwidth_utilisation",
                compiled={"gate": "utilisation_tolerance"}, **gpu),
        *_modes("flop_utilisation", "fraction", "FLOP utilisation",
                path="utilisation.flop_utilisation",
                compiled={"gate": "utilisation_tolerance"}, **gpu),
        *_modes("nvml_gpu_util_percent", "percent", "NVML GPU utilisation",
                path="nvml.gpu_util_percent", history=False, compiled={"gate": "nvml"}, **gpu),
        _ratio("fusion_ratio", "kernel_launches", "fusion"),
        _ratio("traffic_ratio", "bytes_moved", "traffic"),
        _ratio("speedup", "time_median", "speedup", deterministic=False),
        _ratio("memory_ratio", "peak_memory", "memory"),
    ]
    # Eager metrics first, then compiled, then the ratios (a stable sort keeps field order).
    return tuple(sorted(metrics, key=lambda m: (MODES + ("",)).index(m.mode)))


#: Every metric, in the order reports and failures list them within a mode.
CATALOGUE: tuple[Metric, ...] = _catalogue()
BY_NAME: dict[str, Metric] = {metric.name: metric for metric in CATALOGUE}
#: The gated metrics, in the order a failure lists them.
GATED: tuple[Metric, ...] = tuple(
    sorted((m for m in CATALOGUE if m.gate is not None and m.mode == "compiled"),
           key=lambda m: ("kernel_launches", "graph_breaks", "recompiles", "bytes_moved",
                          "peak_memory", "bandwidth_utilisation", "flop_utilisation",
                          "nvml_gpu_util_percent", "time_median").index(m.field)))


def metrics_of(entry: str) -> tuple[Metric, ...]:
    """The metrics a layout entry names: ``compiled.flops`` that one; a field
    (``kernel_launches``) each mode's, eager first; a ratio (``fusion_ratio``) itself."""
    if entry in BY_NAME:
        return (BY_NAME[entry],)
    return tuple(BY_NAME[f"{mode}.{entry}"] for mode in MODES if f"{mode}.{entry}" in BY_NAME)


# --- layouts several reports share --------------------------------------------------------

#: A test's summary row, in order: the markdown and HTML summary tables show every entry
#: (both modes of a field as eager → compiled), the terminal table those with a ``column``.
SUMMARY = ("kernel_launches", "bytes_moved", "peak_memory", "compiled.flops", "fusion_ratio",
           "traffic_ratio", "memory_ratio", "graph_breaks", "recompiles", "speedup")
#: A test's metric table (markdown and HTML): one row per field, eager and compiled, with the
#: ratio of the two beside (:attr:`Metric.ratio_of`).
DETAILS = ("kernel_launches", "bytes_moved", "peak_memory", "flops", "arithmetic_intensity",
           "time_median", "graphs", "graph_breaks", "recompiles", "compile_seconds",
           "device_seconds")
#: ``perfguard show``'s columns for each baseline entry (a field: each mode's).
SHOW = ("kernel_launches", "bytes_moved", "graph_breaks", "recompiles")
#: The history report's table of each test's latest values.
HISTORY_SUMMARY = ("compiled.kernel_launches", "eager.kernel_launches", "compiled.bytes_moved",
                   "compiled.graph_breaks", "compiled.recompiles", "compiled.peak_memory",
                   "compiled.time_median")
#: The junit XML properties of each measurement (``perfguard.<name>``), in this order.
JUNIT = (*(f"{mode}.{field}" for mode in MODES
           for field in ("kernel_launches", "bytes_moved", "flops", "peak_memory")),
         "compiled.graph_breaks", "compiled.recompiles", "fusion_ratio")


class Chart(NamedTuple):
    """A chart of the run report and the history report."""

    title: str
    #: What a lower value means, said in the run report's caption of its bars.
    lower: str = ""


#: Chart id -> chart. The run report draws eager-vs-compiled bars of each chart that holds one
#: deterministic field; the history report draws each over its runs. A metric's
#: :attr:`Metric.chart` puts it in one.
CHARTS = {
    "launches": Chart("Kernel launches per call", "fewer is better: fusion"),
    "bytes": Chart("Bytes moved per call", "fewer is better: less memory traffic"),
    "memory": Chart("Peak memory per call", "lower is better: the most bytes alive at once"),
    "breaks": Chart("Graph breaks and recompiles (compiled)"),
    "time": Chart("Median time per call (band: IQR)"),
}


def _words(text: str) -> list[str]:
    words = [word for word in re.split(r"[\s.\-]+", text.strip().lower()) if word]
    return words[1:] if words[:1] == ["perfguard"] else words


#: Every spelling an output prints (labels, verdict names, export names), as words joined by
#: "_", -> the canonical name.
_SPELLINGS: dict[str, str] = {
    "_".join(_words(spelling)): metric.name
    for metric in CATALOGUE
    for spelling in (metric.name, metric.verdict_name, metric.label, metric.bencher,
                     metric.benchmark)
    if spelling
}


def canonical(text: str) -> str:
    """The canonical name (``compiled.graph_breaks``) for a metric as any perfguard output
    spells it, so that a name copied from one works in every command.

    Understood: ``compiled.kernel_launches``; the gate's ``compiled kernel_launches``,
    ``graph_breaks`` and ``compiled time_median_s``; the reports' labels (``compiled kernel
    launches``); junit properties (``perfguard.compiled.bytes_moved``,
    ``perfguard.NAME.compiled.flops``); github-action-benchmark's names and Bencher's slugs
    (``compiled-kernel-launches``, ``latency``). A name without a mode is the compiled one, as
    the gate means it. Anything else comes back as ``compiled.<text>`` (or as it was, with a
    mode), for the caller to report as not recorded.
    """
    words = _words(text)
    modes = [i for i, word in enumerate(words) if word in MODES]
    if modes:  # junit's perfguard.NAME.compiled.flops: what precedes the mode is the name
        words = words[modes[-1]:]
    joined = "_".join(words)
    if joined in _SPELLINGS:
        return _SPELLINGS[joined]
    if not modes and f"compiled_{joined}" in _SPELLINGS:
        return _SPELLINGS[f"compiled_{joined}"]
    return f"{words[0]}.{'_'.join(words[1:])}" if modes else f"compiled.{joined}"


def lookup(text: str) -> Metric | None:
    """The metric ``text`` names in any spelling perfguard prints, or None."""
    return BY_NAME.get(canonical(text))


def values(measurement: Measurement, *, history_only: bool = False) -> dict[str, float]:
    """Every metric of ``measurement`` that has a value, by canonical name."""
    found: dict[str, float] = {}
    for metric in CATALOGUE:
        if history_only and not metric.history:
            continue
        value = metric.read(measurement)
        if value is not None:
            found[metric.name] = value
    return found


__all__ = ["BY_NAME", "CATALOGUE", "CHARTS", "Chart", "DETAILS", "GATED", "MODES", "SUMMARY", "Gate",
           "Metric", "Unit", "canonical", "lookup", "metrics_of", "values"]
