"""Regressions planted inside a real transformers model are caught (issue 18).

``tests/zoo/zoo_planted.py`` measures a tiny GPT-2 (random weights, no download) once per
kind of regression. A baseline is recorded from the unmodified model (``ZOO_PLANT=0``); the
gating run (``ZOO_PLANT=1``) patches GPT-2's modeling code with one planted change per test.
Each regression must fail naming the metric that moved and its likely cause; the changes
inductor absorbs (the compiled program is the same) must read ``unchanged``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import pytest

ZOO = Path(__file__).resolve().parent / "zoo"

#: kind -> (the metric that must regress, what its likely cause must mention; "LINE" stands
#: for ``zoo_planted.py:<the planted line>``).
CAUGHT: dict[str, tuple[str, str]] = {
    "item": ("graph_breaks", "new graph break at LINE"),
    "print": ("graph_breaks", "new graph break at LINE"),
    "tensor_if": ("graph_breaks", "new graph break at LINE"),
    "disable": ("graph_breaks", "new graph break at LINE"),
    "opaque": ("compiled kernel_launches", "tanh"),      # tanh left GELU's fused kernel
    "attention": ("compiled kernel_launches", "bmm"),    # eager attention's matmuls
    "eval": ("compiled kernel_launches", "dropout"),     # dropout fused into the kernels
    "kept": ("compiled peak_memory", "[24, 128] float32"),  # the activation kept alive
    "shape": ("recompiles", "<= 16"),   # dynamo's guard: the length the planted branch tests
}
#: Changes inductor removes: a defensive clone, and a float64 upcast inside the fused GELU
#: (computed in registers, never stored).
ABSORBED = ["clone", "upcast"]


def planted_line(kind: str) -> str:
    """``zoo_planted.py:<line>`` of the line marked ``# PLANT <kind>``."""
    lines = (ZOO / "zoo_planted.py").read_text().splitlines()
    (number,) = [i for i, line in enumerate(lines, 1) if line.endswith(f"# PLANT {kind}")]
    return f"zoo_planted.py:{number}"


@pytest.mark.zoo
def test_planted_regressions_are_caught_and_absorbed_ones_read_unchanged(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("transformers is not installed (pip install -e '.[dev]')")
    shutil.copytree(ZOO, pytester.path, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".perfguard"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()

    monkeypatch.setenv("ZOO_PLANT", "0")
    update = pytester.runpytest("zoo_planted.py", "--perfguard-update", "-p", "no:cacheprovider")
    update.assert_outcomes(passed=len(CAUGHT) + len(ABSORBED))

    monkeypatch.setenv("ZOO_PLANT", "1")
    gate = pytester.runpytest("zoo_planted.py", "--perfguard", "--perfguard-require-baseline",
                              "-p", "no:cacheprovider")
    gate.assert_outcomes(passed=len(ABSORBED), failed=len(CAUGHT))
    results = json.loads((pytester.path / ".perfguard/report/results.json").read_text())
    verdicts = {r["verdict"]["key"]: r["verdict"] for r in results["results"]}

    for kind, (metric, cause) in CAUGHT.items():
        verdict = verdicts[f"zoo_planted.py::test_planted[{kind}]"]
        regressed = {c["metric"]: c["hints"] for c in verdict["changes"]
                     if c["direction"] == "regressed"}
        assert verdict["status"] == "regressed" and metric in regressed, (kind, verdict)
        if "LINE" in cause:
            cause = cause.replace("LINE", planted_line(kind))
        assert any(cause in hint for hint in regressed[metric]), (kind, cause, regressed[metric])
    for kind in ABSORBED:
        verdict = verdicts[f"zoo_planted.py::test_planted[{kind}]"]
        assert verdict["status"] == "unchanged", (kind, verdict)
    sys.stderr.write(f"planted zoo: baseline + gate in {time.perf_counter() - start:.0f} s\n")
