"""Peak memory and bytes with ``inputs=[...]`` (issue 18.2), and training with dropout
(issue 18.8), end to end through pytester with real torch on CPU."""

from __future__ import annotations

from typing import Any

import pytest

# ---- 18.2: peak memory and bytes per input set ------------------------------------------

MODELS = '''
import torch


class Model(torch.nn.Module):
    def forward(self, x):
        return x * 2 + 1
'''

#: An activation kept on the module: it outlives the call, so the peak grows by its size.
KEEP = ("        return x * 2 + 1", "        self.kept = x * 2\n        return x * 2 + 1")

TESTS = '''
import torch
import models

SETS = [(torch.randn(1024),), (torch.randn(4096),)]


def test_static(perfguard):
    perfguard(models.Model(), inputs=SETS, dynamic=False)


def test_default(perfguard):
    perfguard(models.Model(), inputs=SETS)
'''


def test_peak_memory_and_bytes_per_input_set_gate(pytester: pytest.Pytester,
                                                  results_of: Any) -> None:
    """``y = x*2+1`` on float32 [N] fuses into one kernel that reads N*4 and writes N*4
    bytes: 8,192 for N=1,024 and 32,768 for N=4,096, 40,960 in all. Its peak is the
    output, N*4 bytes: 4,096 and 16,384, and the measurement's peak is the larger.
    Keeping ``x*2`` on the module adds N*4 alive after the call: peaks 8,192 and 32,768.

    With the default ``dynamic`` the second set recompiles with dynamic shapes and the
    first set then runs that graph, whose bytes inductor counted at the second set's
    shape: its bytes are unavailable with that reason, and peak memory alone catches the
    kept activation."""
    pytester.makepyfile(models=MODELS, test_models=TESTS)
    result = pytester.runpytest("--perfguard", "--perfguard-update", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    results = results_of(pytester)
    static = results["test_models.py::test_static"]["measurement"]
    assert [s["compiled_bytes_moved"] for s in static["shapes"]] == [8_192, 32_768]
    assert static["compiled"]["bytes_moved"] == 40_960
    assert [s["compiled_peak_memory"] for s in static["shapes"]] == [4_096, 16_384]
    assert static["compiled"]["peak_memory"] == 16_384
    assert all(s["eager_peak_memory"] for s in static["shapes"])
    assert static["eager"]["peak_memory"] == max(s["eager_peak_memory"]
                                                for s in static["shapes"])

    default = results["test_models.py::test_default"]["measurement"]
    assert default["compiled"]["peak_memory"] == 16_384
    assert default["compiled"]["bytes_moved"] is None
    assert default["compiled"]["unavailable"]["bytes_moved"] == (
        "input set 0: runs a graph compiled with dynamic shapes for input set 1; inductor "
        "counts a graph's bytes at the shapes it was compiled for (dynamic=False compiles "
        "and counts each shape on its own)")

    path = pytester.path / "models.py"
    path.write_text(path.read_text().replace(*KEEP))
    result = pytester.runpytest("--perfguard", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines_random([
        "*test_models.py::test_static regressed*",
        "*test_models.py::test_default regressed*",
        "*compiled peak_memory: baseline 16,384, current 32,768 (+100.0%)*",
        "*compiled bytes_moved: baseline 40,960, current 61,440 (+50.0%)*",
    ])
    results = results_of(pytester)
    kept = results["test_models.py::test_static"]["measurement"]
    assert [s["compiled_peak_memory"] for s in kept["shapes"]] == [8_192, 32_768]
    assert results["test_models.py::test_default"]["verdict"]["status"] == "regressed"


# ---- 18.8: training with dropout ---------------------------------------------------------

DROPOUT = '''
import torch
import torch.nn.functional as F


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(),
                               torch.nn.Dropout(0.1), torch.nn.Linear(32, 4))  # training mode


class FunctionalDropout(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(16, 16)

    def forward(self, x):
        return F.dropout(self.fc(x), p=0.1, training=self.training)


class WrongWhenCompiled(torch.nn.Module):
    """A real numerics bug: compiled code adds 1."""

    def __init__(self):
        super().__init__()
        self.net = mlp()

    def forward(self, x):
        y = self.net(x)
        return y + 1 if torch.compiler.is_compiling() else y


def test_dropout_module(perfguard):
    result = perfguard(mlp(), torch.randn(8, 16), train=True)
    assert result.numerics.checked and result.numerics.ok
    assert result.numerics.max_abs_error == 0.0
    assert result.compiled.graphs == 1 and result.compiled.recompiles == 0


def test_functional_dropout(perfguard):
    result = perfguard(FunctionalDropout(), torch.randn(8, 16), train=True)
    assert result.numerics.ok and result.numerics.max_abs_error == 0.0
    assert "random ops in training: bernoulli_" in result.numerics.message


def test_eval_mode_is_checked_as_usual(perfguard):
    result = perfguard(mlp().eval(), torch.randn(8, 16), train=True)
    assert result.numerics.ok and result.numerics.message == ""


def test_real_mismatch_still_fails(perfguard):
    perfguard(WrongWhenCompiled(), torch.randn(8, 16), train=True)
'''


def test_training_with_dropout_checks_numerics_with_eager_random_numbers(
        pytester: pytest.Pytester, results_of: Any) -> None:
    """Before: ``train=True`` on a model with active dropout failed numerics (compiled
    code draws its own random numbers). Now the check compiles a second time with
    inductor's ``fallback_random`` and says so in the record and the report; a model that
    really differs when compiled still fails, with the note."""
    pytester.makepyfile(test_dropout=DROPOUT)
    result = pytester.runpytest("--perfguard", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "*compiled output differs from eager (test_dropout.py::test_real_mismatch_still_fails*",
        "*note: checked against a second compile with inductor's fallback_random (dropout in "
        "training: 1 Dropout module(s) active)*",
    ])
    note = ("checked against a second compile with inductor's fallback_random (dropout in "
            "training: 1 Dropout module(s) active): it draws eager's random numbers; the "
            "measured compiled code draws its own")
    measured = results_of(pytester)["test_dropout.py::test_dropout_module"]
    assert measured["measurement"]["numerics"]["message"] == note
    assert measured["measurement"]["numerics"]["max_abs_error"] == 0.0
    report = (pytester.path / ".perfguard" / "report" / "report.md").read_text()
    assert "inductor's fallback_random" in report
