"""Hostile option values and pytest's other modes (issue 19, items 7 and 8).

Every number a user can give (flag, ini key, marker key, call argument) has bounds, declared
once on its field; a value outside them, a mode torch.compile does not have or an inductor
option that does not exist is a short error naming it. A collection-only run touches no file,
and a test rerun by pytest-rerunfailures counts once, with its last attempt's measurement.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from pytest_perfguard.settings import ProfileOptions, Rules, SessionSettings

HOSTILE_NUMBERS = """
import pytest
import torch

@pytest.mark.perfguard(bytes_tolerance=10**400)
def test_huge_tolerance(perfguard):
    perfguard(torch.sin, torch.ones(4))

def test_huge_warmup(perfguard):
    perfguard(torch.sin, torch.ones(4), warmup=10**12)

@pytest.mark.perfguard(repeats=10**6)
def test_huge_repeats(perfguard):
    perfguard(torch.sin, torch.ones(4))

def test_infinite_rtol(perfguard):
    perfguard(torch.sin, torch.ones(4), rtol=float("inf"))
"""


def test_out_of_range_numbers_fail_fast_naming_the_option_and_its_range(
    pytester: pytest.Pytester,
) -> None:
    """Before: 10**400 was an OverflowError traceback and warmup=10**12 ran (for ever)."""
    pytester.makepyfile(test_numbers=HOSTILE_NUMBERS)
    result = pytester.runpytest_subprocess("--perfguard", timeout=120)
    result.assert_outcomes(failed=2, errors=2)
    result.stdout.fnmatch_lines_random([
        "*@pytest.mark.perfguard on test_numbers.py::test_huge_tolerance: bytes_tolerance must "
        "be at most 100, got 10000000000000000000... (401 characters) (allowed: 0 to 100)*",
        "*perfguard() in test_numbers.py::test_huge_warmup: warmup must be at most 1,000, "
        "got 1000000000000 (allowed: 1 to 1,000)*",
        "*@pytest.mark.perfguard on test_numbers.py::test_huge_repeats: repeats must be at most "
        "10,000, got 1000000 (allowed: 1 to 10,000)*",
        "*perfguard() in test_numbers.py::test_infinite_rtol: rtol must be a finite number, "
        "got inf (allowed: 0 to 1,000)*",
    ])
    assert "OverflowError" not in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--perfguard-bytes-tolerance", "1000"], "",
         "*bad value for --perfguard-bytes-tolerance: must be at most 100, got '1000' "
         "(allowed: 0 to 100)"),
        (["--perfguard-time-min-effect", "1e400"], "",
         "*bad value for --perfguard-time-min-effect: must be a finite number, got '1e400' "
         "(allowed: 0 to 100)"),
        # An ini key has its type (float): pytest converts the text, perfguard checks it.
        ([], "perfguard_utilisation_tolerance = 1.5",
         "*bad value for ini perfguard_utilisation_tolerance: must be at most 1, got 1.5 "
         "(allowed: 0 to 1)"),
        ([], "perfguard_memory_tolerance = 1" + "0" * 400,
         "*bad value for ini perfguard_memory_tolerance: must be a finite number, "
         "got inf (allowed: 0 to 100)"),
    ],
)
def test_out_of_range_flags_and_ini_keys_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], ini: str, message: str,
) -> None:
    """Before: each of these was accepted (the ini value as infinity)."""
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("--perfguard", *args, timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_perfguard_compare_flags_have_the_same_bounds(tmp_path: Path) -> None:
    """Before: ``perfguard compare --bytes-tolerance 1000`` was accepted."""
    baseline = tmp_path / "b.json"
    baseline.write_text('{"schema": 1, "environments": {}}')
    results = tmp_path / "r.json"
    results.write_text('{"schema": 1, "results": []}')
    ran = subprocess.run([sys.executable, "-m", "pytest_perfguard.cli", "compare", str(baseline),
                          str(results), "--bytes-tolerance", "1000"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 2, ran.stderr
    assert "--bytes-tolerance must be at most 100, got '1000' (allowed: 0 to 100)" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_every_number_option_declares_an_upper_bound(pytester: pytest.Pytester) -> None:
    """Bounds live on the fields, so a new number option without one fails here; pytest's
    --help shows each flag's range."""
    numbers = []
    for cls in (SessionSettings, Rules, ProfileOptions):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if {int, float} & {hints[f.name], *typing.get_args(hints[f.name])}:
                numbers.append((cls, f))
                assert f.metadata["maximum"] is not None, f.name
    assert {f.name for _, f in numbers} >= {"bytes_tolerance", "warmup", "repeats", "rtol"}
    help_text = " ".join(pytester.runpytest_subprocess("--help").stdout.str().split())
    for cls, f in numbers:
        if cls is Rules:
            assert f"allowed: {f.metadata['minimum']:,} to {f.metadata['maximum']:,})" in help_text


BAD_COMPILE = """
import torch

def test_bogus_mode(perfguard):
    perfguard(torch.sin, torch.ones(4), mode="bogus")

def test_misspelt_option(perfguard):
    perfguard(torch.sin, torch.ones(4), compile_options={"max_autotun": True})

def test_unrelated_option(perfguard):
    perfguard(torch.sin, torch.ones(4), compile_options={"zzzzzzzz": 1})
"""


def test_bad_mode_and_unknown_compile_option_name_what_is_allowed(
    pytester: pytest.Pytester,
) -> None:
    """Before: mode="bogus" read "bad compile_options None", and an unknown option listed
    all ~600 inductor options (30 KB)."""
    pytester.makepyfile(test_compile=BAD_COMPILE)
    result = pytester.runpytest_subprocess(timeout=120)
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines_random([
        "*ValueError: perfguard: bad mode 'bogus': torch.compile's modes are default,*"
        "reduce-overhead*max-autotune",
        "*ValueError: perfguard: bad compile_options {'max_autotun': True}: unknown inductor "
        "option 'max_autotun' (did you mean max_autotune, *? see torch._inductor.config)",
        "*ValueError: perfguard: bad compile_options {'zzzzzzzz': 1}: unknown inductor option "
        "'zzzzzzzz' (see torch._inductor.config)",
    ])
    text = result.stdout.str()
    assert "compile_options None" not in text
    assert "known options are" not in text
    assert len(text) < 10_000


def test_collect_only_touches_nothing(pytester: pytest.Pytester) -> None:
    """Before: ``pytest --perfguard --co`` replaced the last results.json and report with an
    empty run ("no test used the perfguard fixture"), and with --perfguard-update wrote an
    empty baseline or moved an unreadable one aside."""
    pytester.makepyfile(test_x="def test_x(perfguard):\n    pass\n")
    folder = pytester.path / ".perfguard"
    (folder / "report").mkdir(parents=True)
    (folder / "report" / "results.json").write_text("the last run's results\n")
    before = sorted(folder.rglob("*"))
    for args in (["--perfguard", "--co"], ["--perfguard", "--collect-only"],
                 ["--perfguard-update", "--perfguard-prune", "--perfguard-history-record",
                  "--co"]):
        result = pytester.runpytest_subprocess(*args, timeout=120)
        assert result.ret == pytest.ExitCode.OK, (args, result.stdout.str(), result.stderr.str())
        result.stdout.fnmatch_lines(["*1 test collected*"])
        result.stdout.no_fnmatch_line("*no test used the perfguard fixture*")
        result.stdout.no_fnmatch_line("*= perfguard =*")
        assert sorted(folder.rglob("*")) == before, args
    assert (folder / "report" / "results.json").read_text() == "the last run's results\n"
    (folder / "baseline.json").write_text("not json\n")
    pytester.runpytest_subprocess("--perfguard-update", "--co", timeout=120)
    assert sorted(folder.rglob("*")) == sorted([*before, folder / "baseline.json"])
    assert (folder / "baseline.json").read_text() == "not json\n"


FUSED = "import torch\n\ndef model(x):\n    return torch.relu(x * 2 + 1)\n"
# A graph break: two compiled kernels instead of one, and the intermediate goes to memory.
BROKEN = """import torch

@torch.compiler.disable
def opaque(y):
    return y

def model(x):
    return torch.relu(opaque(x * 2) + 1)
"""

RERUN_TESTS = """
from pathlib import Path
import torch
import models

X = torch.ones(1024)

def test_regressed(perfguard):
    perfguard(models.model, X)

def test_flaky(perfguard):
    perfguard(models.model, X, name="flaky")
    attempts = Path("flaky-attempts")
    attempts.write_text(attempts.read_text() + "x" if attempts.exists() else "x")
    assert attempts.read_text() != "x", "fails on its first attempt only"
"""


@pytest.mark.skipif(importlib.util.find_spec("pytest_rerunfailures") is None,
                    reason="pytest-rerunfailures is not installed (pip install "
                    "'pytest-torch-perfguard[dev]')")
def test_a_rerun_counts_once_with_its_last_attempt(pytester: pytest.Pytester) -> None:
    """Before, with ``--reruns 1``: the regressed test showed ``PP`` and counted as two
    failures, results.json held the flaky test's measurement twice (one per attempt, the
    second attempt's stash still holding the first's) and its first attempt's error."""
    pytester.makepyfile(models=FUSED, test_rerun=RERUN_TESTS)
    pytester.runpytest_subprocess("--perfguard", "--perfguard-update", "-k", "regressed",
                                  timeout=300).assert_outcomes(passed=1, deselected=1)
    pytester.makepyfile(models=BROKEN)
    result = pytester.runpytest_subprocess("--perfguard", "--reruns", "1", timeout=300)
    outcomes = result.parseoutcomes()
    assert (outcomes["failed"], outcomes["passed"], outcomes["rerun"]) == (1, 1, 2), outcomes
    result.stdout.fnmatch_lines(["test_rerun.py RPR.*"])
    result.stdout.fnmatch_lines(["perfguard: 1 regressed, 0 improved, 1 new, *"])
    assert result.stdout.str().count("PERF REGRESSION test_rerun.py::test_regressed") == 1
    results = json.loads((pytester.path / ".perfguard" / "report" / "results.json").read_text())
    assert sorted(r["measurement"]["key"] for r in results["results"]) == [
        "test_rerun.py::test_flaky::flaky", "test_rerun.py::test_regressed"]
    assert results["errors"] == []
