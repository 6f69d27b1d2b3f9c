"""Verdicts and signals a person can trust (issue 18 items 5, 6, 7, 9, 12).

Each scenario runs pytest with the plugin in a subprocess (pytester), real torch on CPU:
a probe that fails is a probe's failure, numerics judged by the compute dtype, eager-only
changes are no verdict, too few timing samples are noisy, failure output without torch's
trace records and with the cause first.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import load_results

# A parameter's view passed to a submodule under no_grad: torch's FlopCounterMode (its
# module tracker) raises "Expected gradient function to be set" (DeBERTa-v2 does this with
# its relative embeddings), while the model runs fine without the counter.
FLOP_PROBE_MODEL = '''
import torch


class RelativeProjection(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.nn.Parameter(torch.randn(16, 8))
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x):
        rel = self.table.unsqueeze(0).expand(x.shape[0], -1, -1)
        return x @ self.proj(rel).transpose(1, 2)


def test_relative(perfguard):
    result = perfguard(RelativeProjection(), torch.randn(2, 4, 8))
    assert result.eager.kernel_launches is not None
'''


def test_a_failing_flop_counter_is_unavailable_not_the_models_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_model=FLOP_PROBE_MODEL)
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*ModelError*")
    eager = load_results(pytester)["test_model.py::test_relative"]["measurement"]["eager"]
    assert eager["flops"] is None
    assert eager["unavailable"]["flops"] == (
        "torch's FlopCounterMode failed: AssertionError: Expected gradient function to be set")
    # The other probe that watched the same call still measured.
    assert eager["bytes_moved"] > 0


BF16_MODEL = '''
import torch


class Head(torch.nn.Module):
    """A bf16 model that hands float32 logits to its caller, as LM heads do."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(),
                                        torch.nn.Linear(256, 64), torch.nn.LayerNorm(64))

    def forward(self, x):
        return self.body(x).float()


def test_bf16_head(perfguard):
    torch.manual_seed(1)
    model = Head().to(torch.bfloat16)
    numerics = perfguard(model, torch.randn(32, 64, dtype=torch.bfloat16)).numerics
    assert numerics.checked and numerics.ok
    assert (numerics.rtol, numerics.atol) == (1.6e-2, 1e-2)
'''


def test_a_bf16_model_returning_float32_is_judged_at_bf16_tolerance(
    pytester: pytest.Pytester,
) -> None:
    """Before: the float32 output got float32's rtol 1e-4, and bf16 rounding failed it."""
    pytester.makepyfile(test_model=BF16_MODEL)
    pytester.runpytest().assert_outcomes(passed=1)


MISMATCH_MODEL = '''
import torch
import torch.nn.functional as F


class Attention(torch.nn.Module):
    """Eval-mode attention (SDPA with dropout_p=0) whose compiled code differs on purpose."""

    def forward(self, q):
        out = F.scaled_dot_product_attention(q, q, q, dropout_p=0.0)
        if torch.compiler.is_compiling():
            out = out + 0.5
        return out


def test_attention(perfguard):
    torch.manual_seed(0)
    perfguard(Attention().eval(), torch.randn(1, 2, 8, 16))
'''


def test_a_mismatch_names_the_tolerance_it_applied_and_blames_no_attention(
    pytester: pytest.Pytester,
) -> None:
    """The message states the element's own allowed error (atol + rtol x |eager|), which
    the error exceeds; CPU attention is tagged ``nondeterministic_seeded`` even with
    dropout_p=0, so before, the note said "the model called random ops
    (_scaled_dot_product_flash_attention_for_cpu)". The failure's captured log holds no
    empty ``DEBUG torch.__trace`` records of perfguard's compile (hundreds before)."""
    pytester.makepyfile(test_model=MISMATCH_MODEL)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*compiled output differs from eager*abs error 0.5 > allowed 1.*e-05 "
        "(atol 1e-05 + rtol 0.0001 x |eager|)*",
    ])
    result.stdout.no_fnmatch_line("*random ops*")
    result.stdout.no_fnmatch_line("*torch.__trace*")


EAGER_ONLY_V1 = '''
import torch


def model(x):
    return torch.relu(x * 2) + 1
'''

# Eager launches one more kernel (the copy); inductor removes the clone: the compiled
# program is the same.
EAGER_ONLY_V2 = '''
import torch


def model(x):
    doubled = (x * 2).clone()
    return torch.relu(doubled) + 1
'''

EAGER_ONLY_TEST = '''
import torch
import model


def test_model(perfguard):
    perfguard(model.model, torch.randn(4096))
'''


def test_an_eager_only_change_is_unchanged_even_under_strict(pytester: pytest.Pytester) -> None:
    """Before: fusion_ratio rose, the test read "improved" and --perfguard-strict failed it."""
    pytester.makepyfile(model=EAGER_ONLY_V1, test_model=EAGER_ONLY_TEST)
    pytester.runpytest("--perfguard", "--perfguard-update").assert_outcomes(passed=1)
    before = load_results(pytester)["test_model.py::test_model"]["measurement"]
    pytester.makepyfile(model=EAGER_ONLY_V2)
    result = pytester.runpytest("--perfguard", "--perfguard-strict")
    result.assert_outcomes(passed=1)
    entry = load_results(pytester)["test_model.py::test_model"]
    after = entry["measurement"]
    # The change is real in eager and absent in the compiled program.
    assert after["eager"]["kernel_launches"] == before["eager"]["kernel_launches"] + 1
    assert after["compiled"]["kernels"] == before["compiled"]["kernels"]
    assert after["derived"]["fusion_ratio"] > before["derived"]["fusion_ratio"]
    assert entry["verdict"]["status"] == "unchanged"
    assert entry["verdict"]["changes"] == []
    result.stdout.no_fnmatch_line("*improved beyond tolerance*")


FEW_SAMPLES_TEST = '''
import pytest
import torch


@pytest.mark.perfguard(repeats=2)
def test_two_samples(perfguard):
    perfguard(lambda x: torch.relu(x * 2) + 1, torch.randn(4096))
'''


def test_two_timing_samples_are_noisy_and_give_no_speedup(pytester: pytest.Pytester) -> None:
    """``repeats=2``: at most two samples per mode, whatever the load. Their spread says
    nothing, so both timings are noisy, the speedup column says so instead of a ratio, and
    the exporters leave the time out."""
    pytester.makepyfile(test_model=FEW_SAMPLES_TEST)
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(passed=1)
    entry = load_results(pytester)["test_model.py::test_two_samples"]["measurement"]
    for mode in ("eager", "compiled"):
        assert 1 <= len(entry[mode]["time"]["samples"]) <= 2  # a stalled call is dropped
        assert entry[mode]["time"]["noisy"] is True
    result.stdout.fnmatch_lines(["*eager*n/a (noisy)*"])
    exported = subprocess.run(
        [sys.executable, "-m", "pytest_perfguard.cli", "export",
         str(pytester.path / ".perfguard" / "report" / "results.json"), "--format", "bencher"],
        capture_output=True, text=True, check=True).stdout
    measures = json.loads(exported)["test_model.py::test_two_samples"]
    assert "compiled-kernel-launches" in measures
    assert "latency" not in measures


ERRORED_TEST = '''
import torch


def broken(x):
    raise RuntimeError("the attention mask has the wrong shape")


def test_attention_block(perfguard):
    perfguard(broken, torch.randn(4))
'''


def test_the_errored_line_leads_with_the_models_error(pytester: pytest.Pytester) -> None:
    """Before: ``... (in call): pytest_perfguard.runner.ModelError: model raised in eage...``,
    cut at 120 characters before the cause."""
    pytester.makepyfile(test_model=ERRORED_TEST)
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "errored test_model.py::test_attention_block (in call):",
        "    ModelError: RuntimeError: the attention mask has the wrong shape (model raised in "
        "eager mode)",
    ])
