"""The metric catalogue: every number perfguard reports, described once. No torch, no I/O.

A :class:`Metric` says how a value is read from a :class:`~.record.Measurement`, its unit,
which direction is better, which rule gates it (if any), whether it is deterministic, and
every name it goes by. The judge (``compare``), the reports' unit formatting, the history,
the exporters, the junit properties and every CLI that takes a metric name read this table;
:func:`lookup` accepts each spelling any of them prints.

Canonical names are ``<mode>.<field>`` (``compiled.kernel_launches``); ratios of the two
modes have no mode (``fusion_ratio``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .record import Measurement

Unit = Literal["count", "bytes", "flops", "seconds", "ratio", "fraction", "percent"]
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
    #: How a person reads it: ``compiled kernel launches``.
    label: str
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

    @property
    def mode(self) -> str:
        return self.name.split(".", 1)[0] if "." in self.name else ""

    @property
    def field(self) -> str:
        return self.name.split(".", 1)[-1]

    @property
    def verdict_name(self) -> str:
        """The name a change of this metric is printed with."""
        return self.printed or self.name.replace(".", " ")


def _mode_field(mode: str, name: str) -> Callable[[Measurement], float | None]:
    def read(m: Measurement) -> float | None:
        return _number(getattr(getattr(m, mode), name))
    return read


def _timing(mode: str, statistic: str) -> Callable[[Measurement], float | None]:
    def read(m: Measurement) -> float | None:
        timing = getattr(m, mode).time
        return None if timing is None or not timing.samples else getattr(timing, statistic)
    return read


def _utilisation(mode: str, name: str) -> Callable[[Measurement], float | None]:
    def read(m: Measurement) -> float | None:
        utilisation = getattr(m, mode).utilisation
        return None if utilisation is None else _number(getattr(utilisation, name))
    return read


def _nvml(mode: str) -> Callable[[Measurement], float | None]:
    def read(m: Measurement) -> float | None:
        nvml = getattr(m, mode).nvml
        return None if nvml is None else _number(nvml.gpu_util_percent)
    return read


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _catalogue() -> tuple[Metric, ...]:
    metrics: list[Metric] = []
    for mode in MODES:
        compiled = mode == "compiled"

        def field_metric(name: str, unit: Unit, words: str, *, gate: Gate | None = None,
                         deterministic: bool = True, printed: str = "", bencher: str = "",
                         benchmark: str = "", mode: str = mode) -> Metric:
            return Metric(f"{mode}.{name}", _mode_field(mode, name), unit, f"{mode} {words}",
                          gate=gate, deterministic=deterministic, printed=printed,
                          bencher=bencher, benchmark=benchmark)

        metrics += [
            field_metric("kernel_launches", "count", "kernel launches",
                         gate="exact" if compiled else None,
                         bencher="compiled-kernel-launches" if compiled else "",
                         benchmark="compiled kernel launches" if compiled else ""),
            field_metric("bytes_moved", "bytes", "bytes moved",
                         gate="bytes_tolerance" if compiled else None,
                         bencher="compiled-bytes-moved" if compiled else "",
                         benchmark="compiled bytes moved" if compiled else ""),
            field_metric("flops", "flops", "FLOPs"),
            field_metric("peak_memory", "bytes", "peak memory",
                         gate="memory_tolerance" if compiled else None,
                         bencher="compiled-peak-memory" if compiled else "",
                         benchmark="compiled peak memory" if compiled else ""),
            field_metric("graphs", "count", "graphs"),
            field_metric("graph_breaks", "count", "graph breaks",
                         gate="exact" if compiled else None,
                         printed="graph_breaks" if compiled else "",
                         bencher="graph-breaks" if compiled else "",
                         benchmark="graph breaks" if compiled else ""),
            field_metric("recompiles", "count", "recompiles", gate="exact" if compiled else None,
                         printed="recompiles" if compiled else ""),
            field_metric("compile_seconds", "seconds", "compile time", deterministic=False),
            field_metric("device_seconds", "seconds", "device time", deterministic=False),
            Metric(f"{mode}.time_median", _timing(mode, "median"), "seconds",
                   f"{mode} median time", gate="time" if compiled else None,
                   deterministic=False, printed=f"{mode} time_median_s",
                   bencher="latency" if compiled else "",
                   benchmark="compiled median time" if compiled else ""),
            Metric(f"{mode}.time_iqr", _timing(mode, "iqr"), "seconds", f"{mode} time IQR",
                   deterministic=False),
            Metric(f"{mode}.bandwidth_utilisation",
                   _utilisation(mode, "bandwidth_utilisation"), "fraction",
                   f"{mode} bandwidth utilisation", better="higher",
                   gate="utilisation_tolerance" if compiled else None, deterministic=False),
            Metric(f"{mode}.flop_utilisation", _utilisation(mode, "flop_utilisation"),
                   "fraction", f"{mode} FLOP utilisation", better="higher",
                   gate="utilisation_tolerance" if compiled else None, deterministic=False),
            Metric(f"{mode}.nvml_gpu_util_percent", _nvml(mode), "percent",
                   f"{mode} NVML GPU utilisation", better="higher",
                   gate="nvml" if compiled else None, deterministic=False, history=False),
        ]
    metrics += [
        Metric("fusion_ratio", lambda m: m.fusion_ratio, "ratio", "fusion ratio",
               better="higher", history=False, printed="fusion_ratio"),
        Metric("traffic_ratio", lambda m: m.traffic_ratio, "ratio", "traffic ratio",
               better="higher", history=False, printed="traffic_ratio"),
        Metric("memory_ratio", lambda m: m.memory_ratio, "ratio", "memory ratio",
               better="higher", history=False, printed="memory_ratio"),
        Metric("speedup", lambda m: m.speedup, "ratio", "speedup", better="higher",
               deterministic=False, history=False, printed="speedup"),
    ]
    return tuple(metrics)


#: Every metric, in the order reports and failures list them within a mode.
CATALOGUE: tuple[Metric, ...] = _catalogue()
BY_NAME: dict[str, Metric] = {metric.name: metric for metric in CATALOGUE}
#: The gated metrics, in the order a failure lists them.
GATED: tuple[Metric, ...] = tuple(
    sorted((m for m in CATALOGUE if m.gate is not None and m.mode == "compiled"),
           key=lambda m: ("kernel_launches", "graph_breaks", "recompiles", "bytes_moved",
                          "peak_memory", "bandwidth_utilisation", "flop_utilisation",
                          "nvml_gpu_util_percent", "time_median").index(m.field)))

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


__all__ = ["BY_NAME", "CATALOGUE", "GATED", "MODES", "Gate", "Metric", "Unit", "canonical",
           "lookup", "values"]
