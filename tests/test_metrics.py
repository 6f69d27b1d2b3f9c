"""The metric catalogue: one description per metric, every printed spelling read back."""

from __future__ import annotations

import pytest

from pytest_perfguard import metrics
from pytest_perfguard.compare import CHECKS
from pytest_perfguard.metrics import BY_NAME, CATALOGUE, GATED, canonical, lookup


@pytest.mark.parametrize("metric", CATALOGUE, ids=lambda m: m.name)
def test_every_spelling_perfguard_prints_names_the_metric(metric: metrics.Metric) -> None:
    spellings = {metric.name, metric.verdict_name, metric.label, f"perfguard.{metric.name}",
                 f"perfguard.NAME.{metric.name}" if metric.mode else metric.name}
    spellings |= {s for s in (metric.bencher, metric.benchmark) if s}
    for spelling in spellings:
        assert canonical(spelling) == metric.name, spelling
        assert lookup(spelling) is metric


def test_names_the_gate_and_exports_print_today() -> None:
    # Spelt exactly as a gate failure, junit, github-action-benchmark and Bencher print them.
    assert canonical("graph_breaks") == "compiled.graph_breaks"
    assert canonical("compiled kernel_launches") == "compiled.kernel_launches"
    assert canonical("perfguard.compiled.bytes_moved") == "compiled.bytes_moved"
    assert canonical("compiled-peak-memory") == "compiled.peak_memory"
    assert canonical("compiled median time") == "compiled.time_median"
    assert canonical("compiled time_median_s") == "compiled.time_median"
    assert canonical("latency") == "compiled.time_median"
    assert canonical("fusion_ratio") == "fusion_ratio"
    assert canonical("eager.flops") == "eager.flops"
    assert lookup("no_such_metric") is None
    assert canonical("no_such_metric") == "compiled.no_such_metric"


def test_the_judge_checks_exactly_the_gated_metrics_in_catalogue_order() -> None:
    assert [check.metric for check in CHECKS] == [m.verdict_name for m in GATED]
    assert [m.verdict_name for m in GATED] == [
        "compiled kernel_launches", "graph_breaks", "recompiles", "compiled bytes_moved",
        "compiled peak_memory", "compiled bandwidth_utilisation", "compiled flop_utilisation",
        "compiled nvml_gpu_util_percent", "compiled time_median_s"]


def test_ratios_and_eager_metrics_never_gate() -> None:
    assert all(m.gate is None for m in CATALOGUE if m.mode != "compiled")
    assert {m.name for m in CATALOGUE if m.gate is None and m.mode == "compiled"} == {
        "compiled.flops", "compiled.graphs", "compiled.compile_seconds",
        "compiled.device_seconds", "compiled.time_iqr"}
    assert all(BY_NAME[name].deterministic for name in (
        "compiled.kernel_launches", "compiled.bytes_moved", "compiled.peak_memory",
        "compiled.graph_breaks", "compiled.flops"))
    assert not BY_NAME["compiled.time_median"].deterministic
