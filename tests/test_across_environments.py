"""A measurement without a baseline in its own environment (an upgrade) is compared with the
same test in the nearest recorded environment: reported, and gated on request (issue 20.1);
the versions of graph-shaping libraries and the GPU card are recorded, not keyed (20.1, 20.7).

The environment changes the honest way, without another torch: a keyed fact from the
``pytest_perfguard_environment`` hook, as a project's driver or library version would.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_perfguard.baseline import Baseline
from pytest_perfguard.codec import load_measurement
from pytest_perfguard.record import Environment

CONFTEST = """
import os


def pytest_perfguard_environment(config):
    return {"stack": os.environ.get("PG_STACK", "1")}


def pytest_perfguard_libraries(config):
    return ["pytest", "no-such-distribution-here"]
"""

PLAIN = """
import torch


def test_block(perfguard):
    perfguard(lambda x: torch.relu(x * 2.0) + 1.0, torch.ones(64))
"""

#: The same test after an "upgrade" that breaks the graph: a real change to find.
BROKEN = """
import torch


def model(x):
    y = torch.relu(x * 2.0)
    torch._dynamo.graph_break()
    return y + 1.0


def test_block(perfguard):
    perfguard(model, torch.ones(64))
"""


def _results(pytester: pytest.Pytester) -> dict[str, Any]:
    return json.loads((pytester.path / ".perfguard" / "report" / "results.json").read_text())


def _cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_perfguard.cli", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_upgrade_is_compared_with_the_nearest_environment(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_block=PLAIN)
    pytester.runpytest("--perfguard", "--perfguard-update").assert_outcomes(passed=1)

    # The stack is upgraded (another keyed environment) and the graph now breaks.
    monkeypatch.setenv("PG_STACK", "2")
    pytester.makepyfile(test_block=BROKEN)
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(passed=1)  # report only by default
    result.stdout.fnmatch_lines([
        "*regressed test_block.py::test_block: graph_breaks*",
        "*other-environment test_block.py::test_block: no baseline in this environment; "
        "compared with cpu*: extra.stack 1 -> 2*",
        "*0 regressed*1 other-environment*",
    ])
    (entry,) = _results(pytester)["results"]
    verdict = entry["verdict"]
    assert verdict["status"] == "other-environment" and not verdict["fails"]
    assert "extra.stack 1 -> 2" in verdict["note"]
    assert "graph_breaks" in [c["metric"] for c in verdict["changes"]]
    results = pytester.path / "report-only.json"
    results.write_text(json.dumps(_results(pytester)))
    baseline = pytester.path / ".perfguard" / "baseline.json"

    # The switch makes the comparison gate, naming the metric and the environment.
    result = pytester.runpytest("--perfguard", "--perfguard-across-environments")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*test_block.py::test_block regressed against the baseline*",
        "*compared with cpu*: extra.stack 1 -> 2*",
        "*graph_breaks: baseline 0, current 1*",
    ])

    # perfguard compare: report only as judged, gating with --across-environments.
    report_only = _cli("compare", baseline, results, cwd=pytester.path)
    assert report_only.returncode == 0, report_only.stdout + report_only.stderr
    assert "extra.stack 1 -> 2" in report_only.stdout
    gated = _cli("compare", "--across-environments", baseline, results, cwd=pytester.path)
    assert gated.returncode == 1, gated.stdout + gated.stderr
    (failed,) = [line for line in gated.stdout.splitlines() if line.startswith("FAILED")]
    assert failed.startswith("FAILED test_block.py::test_block: ")
    assert "graph_breaks: baseline 0, current 1" in failed

    # A baseline in the run's own environment is compared as before, with no note.
    monkeypatch.setenv("PG_STACK", "1")
    result = pytester.runpytest("--perfguard", "--perfguard-across-environments")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*graph_breaks: baseline 0, current 1*"])
    result.stdout.no_fnmatch_line("*compared with*")
    (entry,) = _results(pytester)["results"]
    assert entry["verdict"]["status"] == "regressed" and entry["verdict"]["note"] == ""

    # Libraries are recorded (transformers when installed, and what the project names) and
    # shown, not keyed; on CPU no card is recorded.
    environment = entry["measurement"]["environment"]
    assert environment["libraries"]["pytest"] == pytest.__version__
    assert "no-such-distribution-here" not in environment["libraries"]
    assert "card" not in environment  # empty: not written
    show = _cli("show", baseline, cwd=pytester.path)
    assert f"libraries: pytest {pytest.__version__}" in show.stdout, show.stdout


def test_nearest_is_the_closest_torch_of_the_same_device(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Among several recorded environments the nearest is chosen: same device kind, fewest
    differences, then the closest torch; another device kind is never compared."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_block=PLAIN)
    monkeypatch.setenv("PG_STACK", "2")
    pytester.runpytest("--perfguard").assert_outcomes(passed=1)
    results = pytester.path / ".perfguard" / "report" / "results.json"
    (entry,) = _results(pytester)["results"]
    measured = load_measurement(entry["measurement"])
    current = measured.environment
    major, minor = (int(part) for part in current.torch.split(".")[:2])
    near, far = f"{major}.{minor + 1}.0", f"{major}.{max(minor - 5, 0)}.0"
    path = pytester.path / ".perfguard" / "baseline.json"

    def record(*changes: dict[str, Any]) -> None:
        baseline = Baseline.load(path)
        baseline.environments = {}
        baseline.update(dataclasses.replace(
            measured, environment=dataclasses.replace(current, **change)) for change in changes)
        baseline.save()

    record({"torch": far}, {"torch": near}, {"device": "mps", "extra": {"stack": "2"}},
           {"extra": {"stack": "1"}})
    compared = _cli("compare", path, results, cwd=pytester.path)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "]: extra.stack 1 -> 2" in compared.stdout, compared.stdout

    record({"torch": far}, {"torch": near}, {"device": "mps"})
    compared = _cli("compare", path, results, cwd=pytester.path)
    assert f"]: torch {near} -> {current.torch}" in compared.stdout, compared.stdout

    record({"device": "mps"})
    compared = _cli("compare", "--across-environments", path, results, cwd=pytester.path)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "baseline holds only other environments" in compared.stdout, compared.stdout


def test_libraries_and_card_are_not_keyed() -> None:
    environment = Environment(python="3.11", torch="2.13.0", triton="n/a (cpu)", device="cuda",
                              device_name="NVIDIA H200", backend="inductor", mode="default",
                              dynamic="None", fullgraph=False, fingerprint=2)
    upgraded = dataclasses.replace(environment, libraries={"transformers": "5.0.0"},
                                   card="cuda:1 NVIDIA H200 GPU-1234")
    assert upgraded.key() == environment.key()
    assert dataclasses.replace(environment, extra={"transformers": "5.0.0"}).key() != (
        environment.key())
