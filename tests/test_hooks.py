"""The hooks a project implements in its conftest.py to extend perfguard without forking."""

from __future__ import annotations

import json

import pytest

CONFTEST = """
import os


def pytest_perfguard_environment(config):
    return {"driver": os.environ.get("FAKE_DRIVER", "550.54")}


def pytest_perfguard_update_json(config, results):
    results["ci"] = {"job": "cpu-tests"}
"""


def test_environment_and_results_hooks(pytester: pytest.Pytester,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_x="import torch\n\ndef test_x(perfguard):\n"
                               "    perfguard(torch.sin, torch.ones(8))\n")
    pytester.runpytest("--perfguard", "--perfguard-update").assert_outcomes(passed=1)
    baseline = json.loads((pytester.path / ".perfguard" / "baseline.json").read_text())
    (block,) = baseline["environments"]
    assert block["environment"]["extra"] == {"driver": "550.54"}
    results = json.loads((pytester.path / ".perfguard" / "report" / "results.json").read_text())
    assert results["ci"] == {"job": "cpu-tests"}
    # The same driver gates; another driver is another environment, never compared.
    result = pytester.runpytest("--perfguard")
    result.stdout.fnmatch_lines(["*0 new, 0 other-environment, 1 unchanged*"])
    monkeypatch.setenv("FAKE_DRIVER", "560.01")
    result = pytester.runpytest("--perfguard", "--perfguard-require-baseline")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*1 other-environment*"])
