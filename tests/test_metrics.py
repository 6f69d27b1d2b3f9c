"""The metric catalogue: one description per metric, every printed spelling read back."""

from __future__ import annotations

from typing import Any

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
        "compiled.flops", "compiled.arithmetic_intensity", "compiled.graphs",
        "compiled.compile_seconds", "compiled.device_seconds", "compiled.time_iqr"}
    assert all(BY_NAME[name].deterministic for name in (
        "compiled.kernel_launches", "compiled.bytes_moved", "compiled.peak_memory",
        "compiled.graph_breaks", "compiled.flops"))
    assert not BY_NAME["compiled.time_median"].deterministic


TIMED = '''
import pytest
import torch


def model(x):
    return x * 2 + 1


def test_budget(perfguard):
    perfguard(model, torch.randn(64), repeats=40, full_timing=False)


@pytest.mark.perfguard(full_timing=True, repeats=12)
def test_full(perfguard):
    perfguard(model, torch.randn(64))


def test_default(perfguard):
    perfguard(model, torch.randn(64), repeats=40)
'''


def test_how_long_to_time_is_a_measurement_option(pytester: pytest.Pytester,
                                                  results_of: Any) -> None:
    """The timing budget is the measurement's own option (``full_timing``), not the time
    rule reaching into the runner: without it at most 5 calls per mode are timed (the
    budget's cap), with it ``repeats`` clean calls are wanted; by default full timing
    follows whether wall time is gated."""
    pytester.makepyfile(test_timed=TIMED)
    result = pytester.runpytest("--perfguard", "-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=3)

    def samples(test: str) -> int:
        results = results_of(pytester)
        return len(results[f"test_timed.py::{test}"]["measurement"]["compiled"]["time"]
                   ["samples"])

    assert 1 <= samples("test_budget") <= 5
    assert 1 <= samples("test_default") <= 5
    assert 5 < samples("test_full") <= 12
    pytester.path.joinpath(".perfguard").rename(pytester.path / "first")
    result = pytester.runpytest("--perfguard", "--perfguard-time", "-p", "no:cacheprovider",
                                "-p", "no:randomly", "-k", "default")
    result.assert_outcomes(passed=1, deselected=2)
    assert 5 < samples("test_default") <= 40
