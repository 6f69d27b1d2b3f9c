"""What a measurement records is stable and names its causes (issue 18, items 11 and 13).

End to end with pytester and real torch on CPU: a recompile names dynamo's guard failure and
the user's line; allocations at the compiled peak are named by the compiled graph and its
line, not by inductor's cache hash; re-recording the baseline of unchanged code, with a cold
and a warm inductor cache, leaves the file byte-identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

MODELS = '''
import torch


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(64, 64)

    def forward(self, x):
        y = self.lin(x)
        return torch.softmax(y * 2 + 1, dim=-1).sum(dim=-1) + y.sum(dim=-1)


def scale(x):
    return torch.relu(x * 2) + 1
'''

# No seed, as in many test suites: each run draws other inputs and weights, so numerics'
# error figures (and where the largest error is) differ from run to run.
TESTS = '''
import torch
import models


def test_block(perfguard):
    perfguard(models.Block(), torch.randn(256, 64))


def test_shapes(perfguard):
    perfguard(models.scale, inputs=[(torch.randn(8, 4),), (torch.randn(16, 4),)],
              dynamic=False)
'''


def _line(pytester: pytest.Pytester, text: str) -> int:
    return (pytester.path / "models.py").read_text().splitlines().index(text) + 1


def _entries(baseline: Path) -> dict[str, dict]:
    blocks = json.loads(baseline.read_text())["environments"]  # dynamic=False: its own
    return {entry["test_id"]: entry for block in blocks for entry in block["entries"]}


def test_recompile_names_guard_failure_and_line(pytester: pytest.Pytester, results_of) -> None:
    """Input sets of shape [8, 4] then [16, 4] with dynamic=False: one recompile, whose
    reason is dynamo's size-mismatch guard failure at the line where ``scale`` starts."""
    pytester.makepyfile(models=MODELS, test_models=TESTS)
    pytester.runpytest("--perfguard", "-p", "no:cacheprovider",
                       "-k", "test_shapes").assert_outcomes(passed=1)
    compiled = results_of(pytester)["test_models.py::test_shapes"]["measurement"]["compiled"]
    assert compiled["recompiles"] == 1
    assert compiled["recompile_details"] == [{
        "reason": "tensor 'x' size mismatch at index 0. expected 8, actual 16",
        "location": f"models.py:{_line(pytester, 'def scale(x):')}",
        "count": 1,
    }]


def test_rerecorded_baseline_is_byte_identical_cold_and_warm(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--perfguard-update`` three times on unchanged code (cold inductor cache, warm, then
    another cold one) writes the same bytes each time. The entries hold an allocation made
    inside a compiled graph, named by graph and line; a recompile with its reason; metrics
    unavailable on CPU, in sorted order; and no numerics error figures (they varied)."""
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    pytester.makepyfile(models=MODELS, test_models=TESTS)
    baseline = pytester.path / ".perfguard" / "baseline.json"
    written = []
    for cache in ("cache-a", "cache-a", "cache-b"):
        monkeypatch.setenv("PERFGUARD_CACHE_DIR", str(pytester.path / cache))
        result = pytester.runpytest("--perfguard", "--perfguard-update", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=2)
        written.append(baseline.read_bytes())
    assert written[0] == written[1] == written[2]

    entries = _entries(baseline)
    block = entries["test_models.py::test_block"]
    forward = f"models.py:{_line(pytester, '    def forward(self, x):')}"
    compiled_allocations = block["compiled"]["peak_allocations"]
    assert compiled_allocations
    assert {(a["op"], a["location"]) for a in compiled_allocations} == {
        ("compiled graph 0/0", forward)}
    for mode in ("eager", "compiled"):
        unavailable = list(block[mode]["unavailable"])
        assert "nvml" in unavailable and unavailable == sorted(unavailable)
    numerics = block["numerics"]
    assert numerics["checked"] and numerics["ok"]
    assert (numerics["max_abs_error"], numerics["max_rel_error"], numerics["where"]) == (
        None, None, "")
    assert [r["reason"] for r in entries["test_models.py::test_shapes"]["compiled"][
        "recompile_details"]] == ["tensor 'x' size mismatch at index 0. expected 8, actual 16"]
