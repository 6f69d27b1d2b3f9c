"""The CI gate end to end: record a baseline, break fusion three ways, accept changes.

Each scenario edits a real model file and runs pytest --perfguard in a subprocess with real
torch on CPU, the way a user's CI does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_perfguard.baseline import Baseline

MODELS = '''
import torch


@torch.library.custom_op("perfguard_test::opaque_scale", mutates_args=())
def opaque_scale(x: torch.Tensor) -> torch.Tensor:
    return x * 3


@opaque_scale.register_fake
def _(x):
    return torch.empty_like(x)


def graph_model(x):
    y = x * 2 + 1
    return torch.relu(y) - 0.5


def custom_model(x):
    y = x * 2 + 1
    return torch.relu(y) - 0.5


def dtype_model(x):
    y = x * 2 + 1
    return torch.relu(y) - 0.5
'''

TESTS = '''
import torch
import models

X = torch.randn(4096)


def test_graph(perfguard):
    perfguard(models.graph_model, X)


def test_custom(perfguard):
    perfguard(models.custom_model, X)


def test_dtype(perfguard):
    # bf16 inputs: eager rounds to bf16 between ops, inductor computes in float32.
    perfguard(models.dtype_model, X.to(torch.bfloat16), rtol=1.6e-2, atol=1e-2)
'''

#: One-line changes a user might make, each undoing fusion in its own way.
GRAPH_BREAK = ("def graph_model(x):\n    y = x * 2 + 1\n",
               "def graph_model(x):\n    y = x * 2 + 1\n    print('debug', y.shape)\n")
CUSTOM_OP = ("def custom_model(x):\n    y = x * 2 + 1\n",
             "def custom_model(x):\n    y = opaque_scale(x * 2) + 1\n")
UPCAST = ("def dtype_model(x):\n    y = x * 2 + 1\n    return torch.relu(y) - 0.5",
          "def dtype_model(x):\n    y = x * 2 + 1\n    return torch.relu(y).float() - 0.5")


def _edit(pytester: pytest.Pytester, change: tuple[str, str], *, undo: bool = False) -> None:
    path = pytester.path / "models.py"
    old, new = change if not undo else change[::-1]
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def _perfguard_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_perfguard.cli", *args], cwd=cwd,
                          capture_output=True, text=True)


def test_record_break_and_accept(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(models=MODELS, test_models=TESTS)
    baseline_file = pytester.path / ".perfguard" / "baseline.json"

    # 1. Record the first baseline.
    result = pytester.runpytest("--perfguard", "--perfguard-update")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*baseline updated: 3 entries written to*baseline.json*"])
    stored = json.loads(baseline_file.read_text())
    assert stored["schema"] == 2
    (block,) = stored["environments"]
    entries = {(e["test_id"], e["name"]): e for e in block["entries"]}
    assert sorted(entries) == [("test_models.py::test_custom", "default"),
                               ("test_models.py::test_dtype", "default"),
                               ("test_models.py::test_graph", "default")]
    # x*2+1, relu, -0.5 fuse into one kernel: read 4096 floats, write 4096 floats.
    graph_entry = entries[("test_models.py::test_graph", "default")]["compiled"]
    assert (graph_entry["kernel_launches"], graph_entry["bytes_moved"]) == (1, 32_768)
    original = baseline_file.read_text()

    # 2. The unchanged model passes three runs in a row, and the baseline is untouched.
    for _ in range(3):
        result = pytester.runpytest("--perfguard")
        result.assert_outcomes(passed=3)
        result.stdout.fnmatch_lines(["*0 regressed, 0 improved, 0 new, 0 other-environment, "
                                     "3 unchanged*"])
    assert baseline_file.read_text() == original

    # 3. A graph break (a debug print) fails test_graph, naming the metric and the line.
    _edit(pytester, GRAPH_BREAK)
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(passed=2, failed=1)
    print_line = (pytester.path / "models.py").read_text().splitlines().index(
        "    print('debug', y.shape)") + 1
    result.stdout.fnmatch_lines([
        "*perfguard: test_models.py::test_graph regressed against the baseline*",
        "*compiled kernel_launches: baseline 1, current 2 (+100.0%)*",
        f"*likely cause: new graph break at models.py:{print_line}:*",
        "*graph_breaks: baseline 0, current 1*",
        "PERF REGRESSION test_models.py::test_graph*",
    ])
    # The same verdict outside pytest, from the run's results file.
    results_file = pytester.path / ".perfguard" / "report" / "results.json"
    compared = _perfguard_cli("compare", str(baseline_file), str(results_file),
                              cwd=pytester.path)
    assert compared.returncode == 1, compared.stdout + compared.stderr
    assert "FAILED test_models.py::test_graph" in compared.stdout

    # 4. Accept it with `perfguard update`, then revert: now it is an improvement, which
    #    passes (and says how to accept) unless --perfguard-strict is set.
    updated = _perfguard_cli("update", str(results_file), "--baseline", str(baseline_file),
                             cwd=pytester.path)
    assert updated.returncode == 0, updated.stderr
    assert _perfguard_cli("compare", str(baseline_file), str(results_file),
                          cwd=pytester.path).returncode == 0
    _edit(pytester, GRAPH_BREAK, undo=True)
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*1 test(s) improved beyond tolerance; accept with*"])
    result = pytester.runpytest("--perfguard", "--perfguard-strict")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_graph improved beyond tolerance and "
                                 "--perfguard-strict is set*"])
    baseline_file.write_text(original)

    # 5. An opaque custom op in the fused chain splits it in three: the x*2 kernel writes its
    #    result out, the op's own kernel (its aten::mul) reads and writes it, and a second
    #    fused kernel does +1, relu, -0.5. Each of the three reads and writes 4096 floats:
    #    3 kernels, 3 x 32,768 = 98,304 bytes.
    _edit(pytester, CUSTOM_OP)
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*test_models.py::test_custom regressed*",
        "*compiled kernel_launches: baseline 1, current 3*",
        "*compiled bytes_moved: baseline 32,768, current 98,304 (+200.0%)*",
        "PERF REGRESSION test_models.py::test_custom*",
    ])
    _edit(pytester, CUSTOM_OP, undo=True)

    # 6. A dtype upcast (bf16 -> float32 output) keeps one kernel but writes twice the bytes:
    #    read 4096 x 2 B, write 4096 x 4 B = 24,576 instead of 16,384.
    _edit(pytester, UPCAST)
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*test_models.py::test_dtype regressed*",
        "*compiled bytes_moved: baseline 16,384, current 24,576 (+50.0%)*",
        "PERF REGRESSION test_models.py::test_dtype*",
    ])
    result.stdout.no_fnmatch_line("*compiled kernel_launches: baseline*")


def test_other_environment_is_never_compared(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(models=MODELS, test_models=TESTS.split("\n\n\ndef test_custom")[0])
    pytester.runpytest("--perfguard", "--perfguard-update").assert_outcomes(passed=1)
    path = pytester.path / ".perfguard" / "baseline.json"
    baseline = Baseline.load(path)
    (block,) = baseline.environments.values()
    block.environment.device_name = "NVIDIA H100 80GB HBM3"
    block.environment.device = "cuda"
    for entry in block.entries.values():
        entry.compiled.kernel_launches = 0  # would regress if it were compared
    baseline.environments = {block.environment.key(): block}
    baseline.save()

    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*0 regressed*1 other-environment*"])
    result = pytester.runpytest("--perfguard", "--perfguard-require-baseline")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no baseline for test_models.py::test_graph in this "
                                 "environment*--perfguard-require-baseline*"])


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "baseline is not valid JSON"),
        ('{"schema": 1, "environments": {"ab', "baseline is not valid JSON"),
        ("", "baseline file is empty (truncated?)"),
        ('{"schema": 99, "environments": {}}', "baseline schema 99 is newer than this"),
        ('[1, 2]', "not a perfguard baseline"),
    ],
)
def test_unreadable_baseline_is_a_usage_error_and_kept(
    pytester: pytest.Pytester, content: str, problem: str
) -> None:
    pytester.makepyfile(test_x="def test_x(perfguard):\n    pass\n")
    path = pytester.path / ".perfguard" / "baseline.json"
    path.parent.mkdir()
    path.write_text(content)
    result = pytester.runpytest("--perfguard")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*perfguard: {path}: *{problem}*"])
    assert path.read_text() == content


def test_update_sets_an_unreadable_baseline_aside(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_x="import torch\n\ndef test_x(perfguard):\n    perfguard(torch.sin, torch.ones(8))\n")
    path = pytester.path / ".perfguard" / "baseline.json"
    path.parent.mkdir()
    path.write_text('{"schema": 1, "environments": {"trunc')
    result = pytester.runpytest("--perfguard", "--perfguard-update")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*unreadable baseline moved to *baseline.json.unreadable-*"])
    (aside,) = path.parent.glob("baseline.json.unreadable-*")
    assert aside.read_text() == '{"schema": 1, "environments": {"trunc'
    assert "test_x.py::test_x" in path.read_text()


def test_unwritable_baseline_location_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_x="import torch\n\ndef test_x(perfguard):\n    perfguard(torch.sin, torch.ones(8))\n")
    (pytester.path / "not_a_dir").write_text("a file")
    result = pytester.runpytest("--perfguard", "--perfguard-update",
                                "--perfguard-baseline", "not_a_dir/baseline.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*perfguard: ERROR: *not_a_dir/baseline.json: cannot write here*"])


IDS_TESTS = '''
import pytest
import torch

@pytest.mark.parametrize("scale", [2.0, 3.0], ids=["a|b<script>x</script>", "ünï code::\\"q\\" [1]"])
def test_scaled(perfguard, scale):
    perfguard(lambda x: x * scale + 1, torch.ones(256))

def test_plain(perfguard):
    perfguard(torch.relu, torch.ones(256))

def test_removed_later(perfguard):
    perfguard(torch.cos, torch.ones(256))
'''


def test_xdist_and_serial_agree_and_ids_round_trip(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_ids=IDS_TESTS)
    path = pytester.path / ".perfguard" / "baseline.json"
    pytester.runpytest("--perfguard", "--perfguard-update").assert_outcomes(passed=4)
    serial = path.read_text()
    path.unlink()
    result = pytester.runpytest("-n", "2", "--perfguard", "--perfguard-update")
    result.assert_outcomes(passed=4)
    assert path.read_text() == serial
    (block,) = json.loads(serial)["environments"]
    entries = [e["test_id"] for e in block["entries"]]
    assert "test_ids.py::test_scaled[a|b<script>x</script>]" in entries
    # pytest itself escapes non-ASCII in node ids; the key is the id exactly as pytest has it.
    assert 'test_ids.py::test_scaled[\\xfcn\\xef code::"q" [1]]' in entries
    # Gate with xdist: every id finds its entry again.
    result = pytester.runpytest("-n", "2", "--perfguard")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*0 regressed, 0 improved, 0 new, 0 other-environment, "
                                 "4 unchanged*"])
    # Prune drops the entry of a test that no longer exists, and only that one.
    (pytester.path / "test_ids.py").write_text(IDS_TESTS.split("\ndef test_removed_later")[0])
    result = pytester.runpytest("--perfguard", "--perfguard-update", "--perfguard-prune")
    result.stdout.fnmatch_lines(["*pruned 1: test_ids.py::test_removed_later*"])
    (block,) = json.loads(path.read_text())["environments"]
    entries = [e["test_id"] for e in block["entries"]]
    assert len(entries) == 3 and "test_ids.py::test_removed_later" not in entries


def test_cli_show_and_errors(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(
        test_x="import torch\n\ndef test_x(perfguard):\n    perfguard(torch.sin, torch.ones(8))\n")
    pytester.runpytest("--perfguard", "--perfguard-update").assert_outcomes(passed=1)
    shown = _perfguard_cli("show", cwd=pytester.path)
    assert shown.returncode == 0, shown.stderr
    assert "cpu (" in shown.stdout and "test_x.py::test_x" in shown.stdout
    missing = _perfguard_cli("show", str(tmp_path / "nope.json"), cwd=pytester.path)
    assert missing.returncode == 2
    assert "nope.json: baseline file not found" in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    compared = _perfguard_cli("compare", str(pytester.path / ".perfguard" / "baseline.json"),
                              str(bad), cwd=pytester.path)
    assert compared.returncode == 2
    assert "bad.json: not valid JSON" in compared.stderr
    # The console script pip installed, found next to the interpreter (never through PATH,
    # which a fresh machine's CI does not extend with the venv).
    script = Path(sys.executable).with_name("perfguard")
    assert script.exists(), f"console script missing: {script}"
    via_script = subprocess.run([str(script), "show"], cwd=pytester.path, capture_output=True,
                                text=True)
    assert via_script.returncode == 0 and "test_x.py::test_x" in via_script.stdout
