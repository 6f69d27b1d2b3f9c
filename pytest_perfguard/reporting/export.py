"""Export a run's numbers to continuous-benchmarking services, as JSON text.

Formats:

``github-action-benchmark``
    The ``customSmallerIsBetter`` tool of github-action-benchmark: a JSON array of objects
    with ``name`` (string), ``unit`` (string) and ``value`` (number), optionally ``range``
    and ``extra`` (strings, shown in the chart tooltip). Per test: compiled kernel
    launches, bytes moved, peak memory, graph breaks and median time, where measured.
    Documented in the action's README, "Examples" / custom benchmarks
    (https://github.com/benchmark-action/github-action-benchmark#examples) and parsed by its
    ``src/extract.ts``. Every metric exported here is better when smaller.

``bencher``
    Bencher Metric Format (BMF): a JSON object mapping a benchmark name to an object that
    maps a measure slug to ``{"value": number, "lower_value"?: number, "upper_value"?:
    number}`` (https://bencher.dev/docs/reference/bencher-metric-format/). Measures that do
    not exist yet are created by Bencher from their slug; ``latency`` is Bencher's built-in
    measure, in nanoseconds.

A ``noisy`` median time (too few samples, or an IQR above 10% of the median: see
``Timing.noisy``) is left out of both: neither format can mark a point as untrustworthy,
and a chart or an alert would read it as the model's speed.

Benchmark names are the measurement keys (test node id, plus ``::name`` for a named
measurement). Only where one results file holds the same key in several environments
(a merged CI matrix) is the device name appended (and the environment key, if the device
names are the same too), so that names stay stable for a single-environment job.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from typing import Any

from ..metrics import BY_NAME, CATALOGUE, Metric
from ..record import Measurement, Timing
from ..results import RunResults
from ._format import count, ratio

#: The export formats :func:`export` understands.
FORMATS = ("github-action-benchmark", "bencher")


def export(results: RunResults, fmt: str) -> str:
    """Render ``results`` in export format ``fmt`` (one of :data:`FORMATS`) as JSON text."""
    if fmt == "github-action-benchmark":
        data: Any = _github_action_benchmark(results)
    elif fmt == "bencher":
        data = _bencher(results)
    else:
        raise ValueError(
            f"unknown perfguard export format {fmt!r}; valid formats: {', '.join(FORMATS)}"
        )
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _benchmark_names(results: RunResults) -> list[tuple[str, Measurement]]:
    measurements = [entry.measurement for entry in results.sorted_entries()]
    keys = Counter(m.key for m in measurements)
    with_device = Counter(
        (m.key, m.environment.device_name) for m in measurements if keys[m.key] > 1
    )
    named = []
    for m in measurements:
        name = m.key
        if keys[m.key] > 1:
            env = m.environment
            name = f"{m.key} [{env.device_name}]"
            if with_device[(m.key, env.device_name)] > 1:
                name = f"{m.key} [{env.device_name}, {env.key()}]"
        named.append((name, m))
    return named


def _extra(metric: Metric, m: Measurement) -> str:
    """github-action-benchmark's tooltip: the values of the metric's context (``eager 5
    launches; fusion ratio 3.00x``), or how a median time was measured."""
    if metric.spread:
        timing = getattr(m, metric.mode).time
        assert timing is not None
        return (f"median of {len(timing.samples)} samples ({timing.clock}), "
                f"IQR {timing.iqr:.3g} s")
    parts = []
    for other in map(BY_NAME.__getitem__, metric.context):
        value = other.read(m)
        if other.unit == "ratio":
            parts.append(f"{other.label} {ratio(value)}")
        else:  # the mode is said where it is not the exported metric's
            mode = f"{other.mode} " if other.mode != metric.mode else ""
            parts.append(f"{mode}{count(value)} {other.export_unit}")
    return "; ".join(parts)


def _exported(m: Measurement, service: str) -> list[tuple[Metric, float]]:
    """The catalogue's metrics ``service`` ("benchmark" or "bencher") takes, with values; a
    noisy median time is left out."""
    found = []
    for metric in CATALOGUE:
        value = metric.read(m) if getattr(metric, service) else None
        if value is None:
            continue
        if metric.field == "time_median" and (m.compiled.time is None or m.compiled.time.noisy):
            continue
        found.append((metric, value))
    return found


def _github_action_benchmark(results: RunResults) -> list[dict[str, Any]]:
    benches: list[dict[str, Any]] = []
    for name, m in _benchmark_names(results):
        env = m.environment.label()
        for metric, value in _exported(m, "benchmark"):
            benches.append({"name": f"{name} - {metric.benchmark}",
                            "unit": metric.export_unit, "value": value,
                            "extra": f"{_extra(metric, m)}\n{env}"})
    return benches


def _bencher(results: RunResults) -> dict[str, dict[str, dict[str, float]]]:
    report: dict[str, dict[str, dict[str, float]]] = {}
    for name, m in _benchmark_names(results):
        measures: dict[str, dict[str, float]] = {}
        for metric, value in _exported(m, "bencher"):
            measures[metric.bencher] = (_latency_ns(m.compiled.time)
                                        if metric.bencher == "latency" and m.compiled.time
                                        else {"value": value})
        if measures:
            report[name] = measures
    return report


def _latency_ns(timing: Timing) -> dict[str, float]:
    """Median with the interquartile range as the bounds, in nanoseconds (Bencher latency)."""
    samples = timing.samples
    if len(samples) >= 4:
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    else:
        q1, q3 = min(samples), max(samples)
    return {
        "value": _ns(timing.median),
        "lower_value": _ns(q1),
        "upper_value": _ns(q3),
    }


def _ns(seconds: float) -> float:
    # Rounded to a tenth of a nanosecond: keeps the JSON free of float noise like 1.2e-3*1e9.
    return round(seconds * 1e9, 1)
