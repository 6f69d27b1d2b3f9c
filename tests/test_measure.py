"""The perfguard fixture end to end: real torch on CPU, numbers derived by hand.

Oracle (issue "Measure a model..."): ``x * 2 + 1`` on a float32 tensor of 2**20 elements.
Eager runs two kernels (mul, add); each reads 4 MiB and writes 4 MiB: 16,777,216 bytes.
Compiled, inductor fuses both into one kernel that reads x and writes the result once:
8,388,608 bytes.
"""

from __future__ import annotations

import pytest

CHAIN = """
import torch

def chain(x):
    return x * 2 + 1
"""


def test_pointwise_chain_oracle(pytester: pytest.Pytester, results_of) -> None:
    pytester.makepyfile(
        CHAIN
        + """
def test_chain(perfguard):
    result = perfguard(chain, torch.randn(2**20))
    assert result.eager.kernel_launches == 2
    assert result.compiled.kernel_launches == 1
    assert result.eager.bytes_moved == 16_777_216
    assert result.compiled.bytes_moved == 8_388_608
    assert result.fusion_ratio == 2.0
    assert result.traffic_ratio == 2.0
    assert result.compiled.graph_breaks == 0
    assert result.compiled.recompiles == 0
    assert result.numerics.ok
"""
    )
    result = pytester.runpytest("--perfguard", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    entry = results_of(pytester)["test_pointwise_chain_oracle.py::test_chain"]["measurement"]
    assert entry["eager"]["kernel_launches"] == 2
    assert entry["compiled"]["kernel_launches"] == 1
    assert [k["name"] for k in entry["compiled"]["kernels"]] == ["cpp_fused_add_mul_0"]
    assert sorted(k["name"] for k in entry["eager"]["kernels"]) == ["aten::add", "aten::mul"]
    assert entry["eager"]["bytes_moved"] == 16_777_216
    assert entry["compiled"]["bytes_moved"] == 8_388_608
    # FlopCounterMode counts matmul-like work only: a pointwise chain has none.
    assert entry["eager"]["flops"] == 0
    assert entry["environment"]["device"] == "cpu"
    result.stdout.fnmatch_lines(["*= perfguard =*", "*test_chain*", "*eager*2*16.0 MiB*new*"])


def test_train_counts_backward_kernels_and_runs_are_deterministic(
    pytester: pytest.Pytester, results_of
) -> None:
    """train=True: forward + backward of x*2+1 with x requiring grad.

    Eager: mul, add, and the backward of mul (grad * 2) = 3 kernels; the add's backward
    passes the gradient through without a kernel. Bytes: 16 MiB forward + 8 MiB backward
    (read grad, write grad * 2) = 25,165,824. Compiled: one fused forward kernel and one
    backward kernel, 8 MiB each = 16,777,216 bytes.
    """
    pytester.makepyfile(
        CHAIN
        + """
def test_train(perfguard):
    x = torch.randn(2**20, requires_grad=True)
    first = perfguard(chain, x, train=True, name="first")
    second = perfguard(chain, x, train=True, name="second")
    for r in (first, second):
        assert (r.eager.kernel_launches, r.eager.bytes_moved) == (3, 25_165_824)
        assert (r.compiled.kernel_launches, r.compiled.bytes_moved) == (2, 16_777_216)
    assert [k.name for k in first.compiled.kernels] == [k.name for k in second.compiled.kernels]
"""
    )
    result = pytester.runpytest("--perfguard", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    results = results_of(pytester)
    assert set(results) == {"test_train_counts_backward_kernels_and_runs_are_deterministic.py"
                            "::test_train::first",
                            "test_train_counts_backward_kernels_and_runs_are_deterministic.py"
                            "::test_train::second"}
    first, second = (r["measurement"] for r in results.values())
    for mode in ("eager", "compiled"):
        assert first[mode]["kernel_launches"] == second[mode]["kernel_launches"]
        assert first[mode]["bytes_moved"] == second[mode]["bytes_moved"]
        assert first[mode]["kernels"] == second[mode]["kernels"]
    assert first["train"] is True


def test_item_in_forward_is_one_graph_break_with_its_line(
    pytester: pytest.Pytester, results_of
) -> None:
    pytester.makepyfile(
        model="""
import torch

class Gated(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(32, 32)

    def forward(self, x):
        y = torch.relu(self.linear(x))
        if y.sum().item() > 0:  # BREAK
            y = y * 2
        return y + 1
""",
        test_gate="""
import torch
from model import Gated

def test_gated(perfguard):
    result = perfguard(Gated(), torch.randn(8, 32))
    assert result.compiled.graph_breaks == 1
    assert result.compiled.graphs == 2
""",
    )
    result = pytester.runpytest("--perfguard", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    compiled = results_of(pytester)["test_gate.py::test_gated"]["measurement"]["compiled"]
    (graph_break,) = compiled["graph_break_details"]
    break_line = (pytester.path / "model.py").read_text().splitlines().index(
        "        if y.sum().item() > 0:  # BREAK") + 1
    assert graph_break["location"] == f"model.py:{break_line}"
    assert graph_break["function"] == "forward"
    assert "Tensor.item()" in graph_break["reason"]


def test_recompiles_are_counted(pytester: pytest.Pytester) -> None:
    """A Python int attribute changed in forward is baked into the graph: every later call
    fails its guard and recompiles. Recompiles are counted over the calls after the first
    that do not depend on the time budget: ``warmup - 1`` warm-up calls and one profiled
    call. With warmup=3 that is 3 calls after the first, so 3 recompiles, whatever the
    number of timed calls (repeats=2 here)."""
    pytester.makepyfile(
        """
import torch

class Counter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.step = 0

    def forward(self, x):
        self.step += 1
        return x * self.step

def test_counter(perfguard):
    result = perfguard(Counter(), torch.randn(16), warmup=3, repeats=2, check_numerics=False)
    assert result.compiled.recompiles == 3
"""
    )
    result = pytester.runpytest("--perfguard", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_fast_mode_without_flag_checks_numerics_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        CHAIN
        + """
def test_chain(perfguard):
    result = perfguard(chain, torch.randn(1024))
    assert result.numerics.ok and result.numerics.checked
    assert result.compiled.kernel_launches is None
    assert "--perfguard" in result.compiled.unavailable["kernel_launches"]
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*= perfguard =*")
    assert not (pytester.path / ".perfguard").exists()


def test_numerics_mismatch_fails_naming_the_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import torch

def sneaky(x):
    if torch.compiler.is_compiling():
        return x + 1
    return x

def test_sneaky(perfguard):
    perfguard(sneaky, torch.zeros(4, 3))
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*NumericsMismatch: perfguard: compiled output differs from eager*"
        "largest error at output[[]0, 0[]]: eager 0, compiled 1, abs error 1*",
    ])


def test_nested_outputs_are_compared(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import dataclasses
import torch

@dataclasses.dataclass
class Out:
    logits: torch.Tensor
    extras: dict

def model(x):
    return (x.sin(), [x.cos()]), Out(logits=x * 3, extras={"n": x.sum(), "k": 3})

def test_nested(perfguard):
    result = perfguard(model, torch.randn(64))
    assert result.numerics.ok
"""
    )
    pytester.runpytest("--perfguard", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_model_errors_name_the_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import torch

def broken(x):
    raise RuntimeError("model is broken")

def breaks_graph(x):
    print("side effect")
    return x + 1

def test_eager_error(perfguard):
    perfguard(broken, torch.ones(2))

def test_compiled_error(perfguard):
    perfguard(breaks_graph, torch.ones(2), fullgraph=True)

def test_bad_backend(perfguard):
    perfguard(torch.sin, torch.ones(2), backend="no-such-backend")

def test_mixed_devices(perfguard):
    perfguard(torch.add, torch.ones(2), torch.ones(2, device="meta"))

def test_not_callable(perfguard):
    perfguard(42, torch.ones(2))

def test_unknown_option(perfguard):
    perfguard(torch.sin, torch.ones(2), bakend="inductor")
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=6)
    result.stdout.fnmatch_lines_random([
        "*ModelError: RuntimeError: model is broken (model raised in eager mode)*",
        "*ModelError: *(model raised in compiled (backend='inductor') mode)*",
        "*unsupported torch.compile backend 'no-such-backend'*Available:*inductor*",
        "*model and inputs are on more than one device: cpu (input*meta (input*",
        "*model must be an nn.Module or a callable*",
        "*unknown option(s) bakend*",
    ])
    result.stdout.no_fnmatch_line("*pytest_perfguard/runner.py:*: in *")


def test_empty_model(pytester: pytest.Pytester) -> None:
    """An identity model compiles to no graph: zero kernels, no bytes, ratios undefined."""
    pytester.makepyfile(
        """
import torch

def test_identity(perfguard):
    result = perfguard(torch.nn.Identity(), torch.randn(8))
    assert result.eager.kernel_launches == 0
    assert result.compiled.kernel_launches == 0
    assert result.eager.bytes_moved == 0
    assert result.fusion_ratio is None
"""
    )
    pytester.runpytest("--perfguard", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_matmul_flops_and_arithmetic_intensity(pytester: pytest.Pytester, results_of) -> None:
    """``x @ w`` with x [64, 128] and w [128, 32], float32: 2 * 64 * 128 * 32 = 524,288
    FLOPs. Eager runs one mm that reads x (32,768 bytes) and w (16,384) and writes the
    [64, 32] result (8,192): 57,344 bytes, so the arithmetic intensity is 524,288 / 57,344
    = 9.142857... FLOPs per byte, in results.json's derived block and the catalogue's
    ``eager.arithmetic_intensity`` alike."""
    pytester.makepyfile("""
import torch

def matmul(x, w):
    return x @ w

def test_mm(perfguard):
    perfguard(matmul, torch.randn(64, 128), torch.randn(128, 32))
""")
    pytester.runpytest("--perfguard", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    result = results_of(pytester)["test_matmul_flops_and_arithmetic_intensity.py::test_mm"]
    entry = result["measurement"]
    assert entry["eager"]["flops"] == entry["compiled"]["flops"] == 524_288
    assert entry["eager"]["bytes_moved"] == 57_344
    assert entry["derived"]["eager_arithmetic_intensity"] == pytest.approx(524_288 / 57_344)

    from pytest_perfguard.codec import load_measurement
    from pytest_perfguard.metrics import BY_NAME

    measurement = load_measurement(entry)
    assert BY_NAME["eager.arithmetic_intensity"].read(measurement) == pytest.approx(9.142857, 1e-6)
