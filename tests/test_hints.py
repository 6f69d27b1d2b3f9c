"""Likely causes a regression carries (issue 18 items 10 and 11): kernels matched without
inductor's renumbering and ranked by what changed, recompiles with dynamo's guard failure
and the user's line, and the allocations that grew at the peak.

Unit tests on hand-built measurements with the exact lines, then pytest --perfguard end to
end on real models: one whose kernels are only renumbered, one where an op leaves a fused
kernel.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from report_factory import cpu_environment

from pytest_perfguard.compare import compare
from pytest_perfguard.hints import likely_causes
from pytest_perfguard.record import (
    Allocation,
    GraphBreak,
    Kernel,
    Measurement,
    ModeRecord,
    Numerics,
    Recompile,
)
from pytest_perfguard.reporting import failure_message
from pytest_perfguard.results import ResultEntry
from pytest_perfguard.settings import Rules

MiB = 1024**2
GUARD = "tensor 'x' size mismatch at index 0. expected 8, actual 16"


def measurement(**compiled: Any) -> Measurement:
    """A CPU measurement whose compiled record holds ``compiled``."""
    return Measurement(test_id="tests/test_model.py::test_block", name="default", train=False,
                       environment=cpu_environment(), eager=ModeRecord("eager"),
                       compiled=ModeRecord("compiled", **compiled),
                       numerics=Numerics(checked=True))


def kernel_hints(before: list[Kernel], after: list[Kernel]) -> list[str]:
    return likely_causes(measurement(kernels=before), measurement(kernels=after))["fusion"]


def generated(name: str, count: int = 1) -> Kernel:
    return Kernel(name, "generated", count)


def aten(name: str, count: int = 1) -> Kernel:
    return Kernel(name, "aten", count)


# --- kernels (item 10) ------------------------------------------------------------------


def test_renumbered_kernels_are_the_same_kernels() -> None:
    before = [generated("cpp_fused_add_view_2"), generated("cpp_fused_mul_relu_0"),
              generated("triton_poi_fused_add_0"), aten("aten::mm")]
    after = [generated("cpp_fused_add_view_5"), generated("cpp_fused_mul_relu_3"),
             generated("triton_poi_fused_add_1"), aten("aten::mm")]
    assert kernel_hints(before, after) == []


def test_counts_are_compared_per_name_without_the_index() -> None:
    before = [generated("cpp_fused_add_0"), generated("cpp_fused_add_3")]
    after = [generated("cpp_fused_add_1", count=3)]
    assert kernel_hints(before, after) == ["kernel cpp_fused_add: x2 -> x3"]


def test_triton_kernels_keep_their_kind() -> None:
    before = [generated("triton_poi_fused_add_0")]
    after = [generated("triton_per_fused_add_0")]
    assert kernel_hints(before, after) == ["kernel appeared: triton_per_fused_add (x1)",
                                           "kernel vanished: triton_poi_fused_add (x1)"]


def test_an_op_that_left_a_fused_kernel_is_named() -> None:
    """The opaque custom op of issue 18: silu inside ``hx::op`` runs as aten::silu."""
    before = [generated("cpp_fused_mul_silu_0")]
    after = [generated("cpp_fused_mul_op_0"), aten("aten::silu"), generated("cpp_fused_mul_1")]
    assert kernel_hints(before, after) == [
        "silu left fused kernel cpp_fused_mul_silu (now aten::silu)",
        "kernel appeared: cpp_fused_mul (x1)",
        "kernel appeared: cpp_fused_mul_op (x1)",
    ]


def test_ops_that_left_one_fused_kernel_share_a_line() -> None:
    before = [generated("cpp_fused_add_mul_relu_0")]
    after = [aten("aten::add"), aten("aten::mul"), aten("aten::relu")]
    assert kernel_hints(before, after) == [
        "add, mul, relu left fused kernel cpp_fused_add_mul_relu "
        "(now aten::add, aten::mul, aten::relu)"]


def test_a_split_kernel_is_named_with_its_parts() -> None:
    before = [generated("cpp_fused_add_mul_relu_0"), aten("aten::mm")]
    after = [generated("cpp_fused_add_mul_0"), aten("aten::mm"), generated("cpp_fused_relu_1")]
    assert kernel_hints(before, after) == [
        "kernel split: cpp_fused_add_mul_relu -> cpp_fused_add_mul + cpp_fused_relu"]


def test_kernel_changes_are_ranked_and_cut_at_ten_lines() -> None:
    before = [generated(f"cpp_fused_op{i}_{i}") for i in range(12)]
    after = [generated(f"cpp_fused_op{i}_{i + 1}", count=2) for i in range(12)]
    after += [Kernel("mylib::opaque", "custom"), aten("aten::native_layer_norm", 2)]
    hints = kernel_hints(before, after)
    assert hints == [
        "aten kernel appeared: aten::native_layer_norm (x2)",
        "custom op appeared: mylib::opaque (x1)",
        *(f"kernel cpp_fused_op{i}: x1 -> x2" for i in (0, 1, 10, 11, 2, 3, 4)),
        "... and 5 more kernel changes (see report)",
    ]


def test_new_graph_breaks_come_before_kernel_changes() -> None:
    baseline = measurement(kernels=[generated("cpp_fused_mul_silu_0")])
    current = measurement(kernels=[generated("cpp_fused_mul_0", 2), aten("aten::silu")],
                          graph_break_details=[GraphBreak("Skip calling `silu`", "model.py:7")])
    assert likely_causes(baseline, current)["fusion"] == [
        "new graph break at model.py:7: Skip calling `silu`",
        "silu left fused kernel cpp_fused_mul_silu (now aten::silu)",
        "kernel appeared: cpp_fused_mul (x2)",
    ]


# --- recompiles and peak memory (item 11) -----------------------------------------------


def test_recompiles_name_the_new_guard_failures_and_the_line() -> None:
    baseline = measurement(recompiles=2, recompile_details=[
        Recompile("___check_obj_id(L['self'])", "model.py:3"),
        Recompile(GUARD.replace("16", "32"), "model.py:12")])
    # Three lines were added above the model: the same guards, three lines further down.
    current = measurement(recompiles=5, recompile_details=[
        Recompile("___check_obj_id(L['self'])", "model.py:6"),
        Recompile(GUARD, "model.py:15"),
        Recompile(GUARD.replace("16", "32"), "model.py:15", count=3),
        Recompile("len(L['xs']) == 2", ""),
        Recompile("___check_obj_id(L['self'])", "other.py:3")])
    assert likely_causes(baseline, current)["recompiles"] == [
        f"recompiled at model.py:15: {GUARD}",
        f"recompiled at model.py:15: {GUARD.replace('16', '32')}, 3 times (baseline 1)",
        "recompiled: len(L['xs']) == 2",
        "recompiled at other.py:3: ___check_obj_id(L['self'])",
    ]


def test_peak_memory_names_the_allocations_that_grew() -> None:
    mm = Allocation("aten::mm", 4 * MiB, "[1024, 1024] float32", "model.py:20")
    relu = Allocation("aten::relu", 4096, "[1024] float32", "model.py:21")
    wrapper = Allocation("compiled graph 0/0", 512, "", "model.py:20")
    baseline = measurement(peak_memory=4 * MiB + 4608, peak_allocations=[mm, relu, wrapper])
    # Three lines were added above the model: the same tensors, three lines further down.
    relu_moved = Allocation("aten::relu", 4096, "[1024] float32", "model.py:24")
    current = measurement(peak_memory=12 * MiB + 8292, peak_allocations=[
        Allocation("aten::mm", 8 * MiB, "[2048, 1024] float32", "model.py:23"),
        Allocation("aten::mm", 4 * MiB, "[1024, 1024] float32", "model.py:23"),
        relu_moved, relu_moved, Allocation("aten::empty", 100),
        Allocation("compiled graph 0/0", 1024, "", "model.py:23")])
    assert likely_causes(baseline, current)["memory"] == [
        "+8.00 MiB: [2048, 1024] float32 from aten::mm at model.py:23",
        "+4.00 KiB: [1024] float32 from aten::relu at model.py:24",
        "+1.00 KiB: from compiled graph 0/0 at model.py:23",
        "+100 B: from aten::empty",
    ]


# --- the failure message ---------------------------------------------------------------


def test_failure_message_says_each_cause_once() -> None:
    baseline = measurement(kernel_launches=1, bytes_moved=8 * MiB, recompiles=0,
                           peak_memory=4 * MiB, kernels=[generated("cpp_fused_mul_silu_0")],
                           peak_allocations=[Allocation("aten::empty", 4 * MiB)])
    current = copy.deepcopy(baseline)
    current.compiled.kernel_launches, current.compiled.bytes_moved = 3, 16 * MiB
    current.compiled.kernels = [generated("cpp_fused_mul_1", 2), aten("aten::silu")]
    current.compiled.recompiles = 1
    current.compiled.recompile_details = [Recompile(GUARD, "model.py:12")]
    current.compiled.peak_memory = 8 * MiB
    current.compiled.peak_allocations = [
        Allocation("aten::silu", 4 * MiB, "[1048576] float32", "model.py:9"),
        Allocation("aten::empty", 4 * MiB)]
    verdict = compare(baseline, current, Rules())
    message = failure_message(ResultEntry(current, verdict)).splitlines()
    assert message[1:] == [
        "  compiled kernel_launches: baseline 1, current 3 (+200.0%)",
        "    likely cause: silu left fused kernel cpp_fused_mul_silu (now aten::silu)",
        "    likely cause: kernel appeared: cpp_fused_mul (x2)",
        "  recompiles: baseline 0, current 1",
        f"    likely cause: recompiled at model.py:12: {GUARD}",
        "  compiled bytes_moved: baseline 8,388,608, current 16,777,216 (+100.0%)",
        "  compiled peak_memory: baseline 4,194,304, current 8,388,608 (+100.0%)",
        "    likely cause: +4.00 MiB: [1048576] float32 from aten::silu at model.py:9",
        "If this change is intended, accept it: pytest --perfguard --perfguard-update",
    ]


# --- end to end --------------------------------------------------------------------------

MODELS = """
import torch


@torch.library.custom_op("perfguard_hints::opaque_silu", mutates_args=())
def opaque_silu(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.silu(x)


@opaque_silu.register_fake
def _(x):
    return torch.empty_like(x)


STEP = 0


def counted(x):
    return torch.relu(x * 2) + 1


def chain(x, w):
    h = torch.relu(x[:, :32] * 2) @ w[:32]
    return torch.sigmoid(h + 1) @ w


def gated(x):
    return torch.nn.functional.silu(x * 2) * 3
"""

TESTS = """
import torch
import models

X = torch.randn(64, 64)
W = torch.randn(64, 64)


def test_chain(perfguard):
    perfguard(models.chain, X, W)


def test_counted(perfguard):
    perfguard(models.counted, X)


def test_gated(perfguard):
    perfguard(models.gated, X)
"""

#: The chain's two fused kernels swap places (cpp_fused_mul_relu_slice_0 becomes _1) and
#: the first reads a wider slice: more bytes, the same kernels.
REORDER = ("""    h = torch.relu(x[:, :32] * 2) @ w[:32]
    return torch.sigmoid(h + 1) @ w""", """    h = torch.sigmoid(x + 1) @ w
    return torch.relu(h[:, :48] * 2) @ w[:48]""")
#: A call counter in the forward: dynamo guards on its value and recompiles every call.
COUNTER = ("""def counted(x):
    return torch.relu(x * 2) + 1""", """def counted(x):
    global STEP
    STEP += 1
    scale = 2 if STEP > 0 else 3
    return torch.relu(x * scale) + 1""")
#: silu moves into an opaque custom op: inductor cannot fuse it any more.
OPAQUE = ("torch.nn.functional.silu(x * 2) * 3", "opaque_silu(x * 2) * 3")


def test_failures_name_what_changed(pytester: pytest.Pytester,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels renumbered: no kernel line. An op left a fused kernel: named, once. A
    recompile: dynamo's guard and the line. Peak memory: the allocation that grew.

    Not on CI: there pytest's own short summary repeats every failure's whole message
    (``CI``/``BUILD_NUMBER`` set), for perfguard's failures as for any other."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("BUILD_NUMBER", raising=False)
    pytester.makepyfile(models=MODELS, test_models=TESTS)
    pytester.runpytest("--perfguard", "--perfguard-update").assert_outcomes(passed=3)
    models = pytester.path / "models.py"
    text = models.read_text()
    for old, new in (REORDER, COUNTER, OPAQUE):
        assert old in text
        text = text.replace(old, new)
    models.write_text(text)
    lines = text.splitlines()
    counted_line = lines.index("def counted(x):") + 1

    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines([
        "*perfguard: test_models.py::test_chain regressed against the baseline*",
        "*compiled bytes_moved: baseline *",
        "*perfguard: test_models.py::test_counted regressed against the baseline*",
        "*recompiles: baseline 0, current *",
        f"    likely cause: recompiled at models.py:{counted_line}: G[[]'STEP'] == *",
        "*perfguard: test_models.py::test_gated regressed against the baseline*",
        "*compiled kernel_launches: baseline 1, current 3 (+200.0%)",
        "    likely cause: silu left fused kernel cpp_fused_mul_silu (now aten::silu)",
        "*compiled peak_memory: baseline 16,384, current 32,768 (+100.0%)",
        # (which line of the model an allocation names is the collector's business)
        "    likely cause: +16.0 KiB: [[]64, 64] float32 from perfguard_hints::opaque_silu "
        "at models.py:*",
    ])
    output = result.stdout.lines
    # Renumbered kernels are the same kernels: the chain's failure names none.
    chain = output[output.index(next(line for line in output if "test_chain regressed" in line)):]
    chain = chain[:next(i for i, line in enumerate(chain) if line.startswith("If this change"))]
    assert not [line for line in chain if "likely cause" in line], chain
    # Each cause is printed once: in the failure, not again in the summary.
    cause = "silu left fused kernel cpp_fused_mul_silu (now aten::silu)"
    assert sum(cause in line for line in output) == 1



def test_recompile_reasons_are_cut_at_five_lines() -> None:
    current = measurement(recompiles=6, recompile_details=[
        Recompile(f"G['STEP'] == {step}", "model.py:7") for step in range(6)])
    assert likely_causes(measurement(recompiles=0), current)["recompiles"] == [
        *(f"recompiled at model.py:7: G['STEP'] == {step}" for step in range(4)),
        "... and 2 more recompile reasons",
    ]
