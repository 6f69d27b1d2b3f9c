"""Replay what an H100 recorded (tests/data/h100_*.json, see docs/gpu-validation.md).

The traces are the torch profiler events of each profiled call, recorded by
scripts/gpu_check.py on an NVIDIA H100 80GB HBM3 (torch 2.11.0+cu130, triton 3.6.0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_perfguard.codec import load_measurement
from pytest_perfguard.collectors.events import EventRow, rows_from_json
from pytest_perfguard.collectors.kernels import count_device_kernels
from pytest_perfguard.compare import Rules, compare

DATA = Path(__file__).parent / "data"


def load_events(rows: list[dict[str, Any]]) -> list[EventRow]:
    """The recorded rows, read by the same parser a live run's table goes through."""
    return rows_from_json(rows)


TRACES = json.loads((DATA / "h100_gpu_traces.json").read_text())
MEASUREMENTS = {m["name"]: m for m in json.loads((DATA / "h100_measurements.json").read_text())}
NCU = {(r["model"], r["mode"]): r for r in json.loads((DATA / "h100_ncu.json").read_text())}


@pytest.mark.parametrize("model", sorted(TRACES))
@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_replayed_trace_gives_the_recorded_counts(model: str, mode: str) -> None:
    counted = count_device_kernels(load_events(TRACES[model][mode]))
    recorded = MEASUREMENTS[model][mode]
    assert counted.launches == recorded["kernel_launches"]
    assert [k.name for k in counted.kernels] == [k["name"] for k in recorded["kernels"]]
    # The profiler mirrors inductor's "## Call CompiledFxGraph ##" range on the GPU
    # timeline; it is no launch.
    assert not any(k.name.startswith("##") for k in counted.kernels)


@pytest.mark.parametrize("key", sorted(NCU))
def test_kernel_count_matches_nsight_compute(key: tuple[str, str]) -> None:
    """ncu profiles kernels only; perfguard also counts memset/memcpy activity."""
    model, mode = key
    counted = count_device_kernels(load_events(TRACES[model][mode]))
    copies = sum(k.count for k in counted.kernels if k.kind in ("memset", "memcpy"))
    assert counted.launches - copies == NCU[key]["ncu_kernels"]


def test_compiled_chain_is_one_triton_kernel() -> None:
    counted = count_device_kernels(load_events(TRACES["chain"]["compiled"]))
    assert [(k.name, k.kind, k.count) for k in counted.kernels] == [
        ("triton_poi_fused_add_mul_0", "generated", 1)]


def test_bytes_estimate_against_dram_counters_on_a_tensor_larger_than_l2() -> None:
    """x*2+1 on 2**26 floats (256 MiB, far above the H100's 50 MB L2): the estimate is the
    logical traffic; DRAM counters saw 3-4% less (lines still in L2)."""
    for mode in ("eager", "compiled"):
        ours = NCU[("chain_large", mode)]["perfguard_bytes"]
        dram = NCU[("chain_large", mode)]["ncu_dram_bytes"]
        assert ours == {"eager": 1_073_741_824, "compiled": 536_870_912}[mode]
        assert 0.0 < (ours - dram) / ours < 0.05


def test_gate_fails_a_planted_utilisation_drop_on_recorded_data() -> None:
    baseline = load_measurement(MEASUREMENTS["chain_large"])
    assert baseline.compiled.utilisation is not None
    assert baseline.compiled.utilisation.peak_source.startswith("datasheet:H100")
    current = load_measurement(MEASUREMENTS["chain_large"])
    assert compare(baseline, current, Rules()).status == "unchanged"

    achieved = current.compiled.utilisation.achieved_bytes_per_second  # type: ignore[union-attr]
    current.compiled.utilisation.achieved_bytes_per_second = achieved * 0.85  # type: ignore[union-attr]
    verdict = compare(baseline, current, Rules())
    assert verdict.status == "regressed"
    (change,) = verdict.regressions
    assert change.metric == "compiled bandwidth_utilisation"
    assert change.relative == pytest.approx(-0.15)

    # Within the 10% default tolerance it is reported, not failed.
    current.compiled.utilisation.achieved_bytes_per_second = achieved * 0.95  # type: ignore[union-attr]
    assert compare(baseline, current, Rules()).status == "unchanged"


def test_recorded_nvml_readings_summarise() -> None:
    recorded = MEASUREMENTS["chain_large"]["compiled"]["nvml"]
    assert recorded["samples"] >= 2
    assert recorded["window_seconds"] > 0
    assert 0 <= recorded["gpu_util_percent"] <= 100
    assert recorded["sm_clock_mhz"] > 0
