"""What a person reads in pytest's output: the header, the summary table, errored tests,
ini keys and their types, and where the fixture comes from (issues 17, 18.12, 20.5).

The plugin runs in a subprocess via pytester with real torch on CPU, as a user's run does.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
from report_factory import sample_results

from pytest_perfguard.reporting import render_terminal

GOLDEN = Path(__file__).parent / "golden"

MODELS = '''
import torch


def chain(x):
    return torch.relu(x * 2 + 1) - 0.5
'''

TESTS = '''
import torch
import models


def test_a(perfguard):
    perfguard(models.chain, torch.randn(256))


def test_b(perfguard):
    perfguard(models.chain, torch.randn(512))
'''

NEW_TEST = '''

def test_c(perfguard):
    perfguard(models.chain, torch.randn(1024))
'''


def assert_golden(name: str, text: str) -> None:
    """``text`` equals ``tests/golden/<name>`` (``PERFGUARD_REGEN_GOLDEN=1`` rewrites it)."""
    path = GOLDEN / name
    if os.environ.get("PERFGUARD_REGEN_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8", newline="\n")
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True),
                                            text.splitlines(keepends=True),
                                            f"golden/{name}", "rendered", n=2))
        pytest.fail(f"{name} differs from its golden file (PERFGUARD_REGEN_GOLDEN=1 to "
                    f"regenerate):\n{diff[:6000]}", pytrace=False)


# --- the header and the table (issue 20.5) ----------------------------------------------


def test_header_and_a_table_of_what_changed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(models=MODELS, test_models=TESTS)

    result = pytester.runpytest("--perfguard", "--perfguard-update")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "perfguard: recording the baseline to .perfguard/baseline.json (no file yet); "
        "torch *, python *"])
    result.stdout.no_fnmatch_line("perfguard: gated:*")  # an update gates nothing

    # One more test: the gate run lists it (new) and counts the two unchanged ones.
    test_file = pytester.path / "test_models.py"
    test_file.write_text(test_file.read_text() + NEW_TEST)
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([
        "perfguard: gating against .perfguard/baseline.json (2 entries, 1 environment); "
        "torch *, python *",
        "perfguard: gated: compiled kernel_launches, graph_breaks, recompiles, compiled "
        "bytes_moved (tol 1%), compiled peak_memory (tol 1%), *",
    ])
    summary = result.stdout.str().split("= perfguard =")[1]
    assert "test_models.py::test_c\n" in summary
    assert "test_models.py::test_a" not in summary and "test_models.py::test_b" not in summary
    assert "2 unchanged (-v to list them)" in summary
    assert "perfguard: 0 regressed, 0 improved, 1 new, 0 other-environment, 2 unchanged" in summary

    result = pytester.runpytest("--perfguard", "-v")
    summary = result.stdout.str().split("= perfguard =")[1]
    for name in ("test_a", "test_b", "test_c"):
        assert f"test_models.py::{name}\n" in summary
    assert "(-v to list them)" not in summary


def test_no_header_without_perfguard(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("perfguard:*")
    # Rules switched on, and the tolerance the ini file gives, are in the header.
    pytester.makeini("[pytest]\nperfguard_memory_tolerance = 0.05\n")
    result = pytester.runpytest("--perfguard", "--perfguard-strict", "--perfguard-time")
    result.stdout.fnmatch_lines([
        "perfguard: gating against .perfguard/baseline.json (no file yet: every test is new); *",
        "perfguard: gated: *compiled peak_memory (tol 5%)*, compiled time_median_s; rules: strict"])


def test_terminal_golden_lists_what_changed() -> None:
    assert_golden("terminal.txt", render_terminal(sample_results()))


def test_terminal_golden_verbose_lists_everything() -> None:
    assert_golden("terminal-verbose.txt", render_terminal(sample_results(), verbose=True))


# --- ini keys with their types (issue 20.5) ---------------------------------------------


def test_ini_keys_have_their_types(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["  perfguard_baseline (string):*",
                                 "  perfguard_bytes_tolerance (float):*",
                                 "  perfguard_strict (bool):*"])


def test_native_toml_values_are_read(pytester: pytest.Pytester) -> None:
    """pytest 9's ``[tool.pytest]`` keeps TOML's types: a bool and a float, not strings."""
    if pytest.version_tuple[:2] < (9, 0):
        pytest.skip("[tool.pytest] native TOML configuration is new in pytest 9")
    pytester.makepyprojecttoml("[tool.pytest]\nperfguard_strict = true\n"
                               "perfguard_bytes_tolerance = 0.25\n")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["perfguard: gated: *compiled bytes_moved (tol 25%)*; "
                                 "rules: strict"])


@pytest.mark.parametrize(("line", "message"), [
    ("perfguard_bytes_tolerance = abc",
     "ERROR: perfguard: bad value for ini perfguard_bytes_tolerance: must be a number (*'abc'*)"),
    ("perfguard_strict = maybe",
     "ERROR: perfguard: bad value for ini perfguard_strict: must be true or false (*'maybe'*)"),
    ("perfguard_memory_tolerance = 1000",
     "ERROR: perfguard: bad value for ini perfguard_memory_tolerance: must be at most 100, "
     "got 1000* (allowed: 0 to 100)"),
])
def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester, line: str,
                                        message: str) -> None:
    pytester.makeini(f"[pytest]\n{line}\n")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--perfguard")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    # The command line wins over the ini file, as for every perfguard setting.
    flag = "--" + line.split(" = ")[0].replace("_", "-")
    result = pytester.runpytest("--perfguard", flag + ("" if "strict" in flag else "=0.5"))
    result.assert_outcomes(passed=1)


# --- an errored test's cause (issue 18.12) ----------------------------------------------


def test_errored_test_shows_its_whole_cause(pytester: pytest.Pytester) -> None:
    cause = ("the real cause is a weight of shape (64, 32) where the layer expects (32, 64) "
             "after the checkpoint was converted")
    pytester.makepyfile(test_models=f'''
import torch


def broken(x):
    raise ValueError({cause!r})


def test_a_model_whose_test_name_is_long_enough_to_fill_most_of_a_terminal_line(perfguard):
    perfguard(broken, torch.randn(8))
''')
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(failed=1)
    summary = result.stdout.str().split("= perfguard =")[1]
    lines = summary.splitlines()
    head = ("errored test_models.py::test_a_model_whose_test_name_is_long_enough_to_fill_most"
            "_of_a_terminal_line (in call):")
    assert head in lines
    cause_lines = lines[lines.index(head) + 1:]
    text = " ".join(line.strip() for line in cause_lines[:3])
    assert f"ValueError: {cause} (model raised in eager mode)" in text
    assert all(len(line) <= 120 for line in lines[lines.index(head):lines.index(head) + 4])


# --- the fixture apart from the session hooks (issue 17) --------------------------------


def test_fixture_comes_from_its_module_and_goes_with_the_plugin(pytester: pytest.Pytester
                                                                ) -> None:
    pytester.makepyfile("def test_uses(perfguard):\n    assert callable(perfguard)\n")
    result = pytester.runpytest("--fixtures")
    result.stdout.fnmatch_lines(["*fixtures defined from pytest_perfguard.fixture*",
                                 "perfguard*"])
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result = pytester.runpytest("-p", "no:perfguard")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'perfguard' not found*"])
