"""Settings are defined once: flags, ini keys, marker keys and CLI flags agree, every value is
validated where it enters, and pytest and `perfguard compare` reach the same verdict."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_perfguard.settings import ProfileOptions, Rules, SessionSettings


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_perfguard.cli", *args], cwd=cwd,
                          capture_output=True, text=True)


def test_every_field_is_a_flag_an_ini_key_and_a_marker_key(pytester: pytest.Pytester) -> None:
    """The help texts are generated from the dataclass fields, so none can be forgotten."""
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    for f in dataclasses.fields(SessionSettings) + dataclasses.fields(Rules):
        flag = f.metadata.get("flag") or "--perfguard-" + f.name.replace("-", "_").replace("_", "-")
        assert flag in text, flag
        if f.type == "bool" or f.default in (True, False):
            assert "--no-" + flag.lstrip("-") in text, flag
        assert flag.lstrip("-").replace("-", "_") in text  # the ini key
    markers = pytester.runpytest("--markers").stdout.str()
    for f in dataclasses.fields(Rules) + dataclasses.fields(ProfileOptions):
        assert f"{f.name}=" in markers, f.name
    cli = _cli("compare", "--help", cwd=pytester.path).stdout
    for f in dataclasses.fields(Rules):
        assert "--" + f.name.replace("_", "-") in cli, f.name


MODEL_V1 = "def model(x, y):\n    return x * 2 + 1\n"
# Reads y too: one more input of 1,024 floats into the same single fused kernel.
MODEL_V2 = "def model(x, y):\n    return x * 2 + y\n"

TESTS = """
import pytest
import torch
import models

X = torch.ones(4, 1024)
Y = torch.ones(1024)

@pytest.mark.perfguard(bytes_tolerance=0.5)
def test_lenient(perfguard):
    perfguard(models.model, X, Y)

def test_default(perfguard):
    perfguard(models.model, X, Y)
"""


def test_marker_override_gives_the_same_verdict_in_pytest_and_the_cli(
    pytester: pytest.Pytester,
) -> None:
    """Compiled bytes grow by 12.5%: x (4,096 floats) read + result written = 32,768 bytes
    becomes 32,768 + 4,096 (y, 1,024 floats, read once by the one fused kernel) = 36,864.
    The launch count stays 1. The default 1% tolerance fails it; the marker's 50% does not,
    and `perfguard compare` on the run's results.json says the same for both tests."""
    pytester.makepyfile(models=MODEL_V1, test_models=TESTS)
    pytester.runpytest("--perfguard", "--perfguard-update").assert_outcomes(passed=2)
    pytester.makepyfile(models=MODEL_V2)
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*compiled bytes_moved: baseline 32,768, current 36,864 (+12.5%)*"])
    results_file = pytester.path / ".perfguard" / "report" / "results.json"
    data = json.loads(results_file.read_text())
    verdicts = {r["measurement"]["test_id"].split("::")[1]: r["verdict"] for r in data["results"]}
    assert verdicts["test_lenient"]["rules"]["bytes_tolerance"] == 0.5
    assert verdicts["test_default"]["rules"]["bytes_tolerance"] == 0.01
    assert not verdicts["test_lenient"]["fails"] and verdicts["test_default"]["fails"]

    compared = _cli("compare", ".perfguard/baseline.json", str(results_file), cwd=pytester.path)
    assert compared.returncode == 1, compared.stdout + compared.stderr
    assert "FAILED test_models.py::test_default" in compared.stdout
    assert "FAILED test_models.py::test_lenient" not in compared.stdout
    # A rule given to the CLI overrides every result's own.
    lenient = _cli("compare", ".perfguard/baseline.json", str(results_file),
                   "--bytes-tolerance", "0.2", cwd=pytester.path)
    assert lenient.returncode == 0, lenient.stdout


def test_an_ini_switch_can_be_turned_off_on_the_command_line(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nperfguard_require_baseline = true\n")
    pytester.makepyfile(test_x="import torch\n\ndef test_x(perfguard):\n"
                               "    perfguard(torch.sin, torch.ones(8))\n")
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no baseline for test_x.py::test_x in this environment*"])
    pytester.runpytest("--perfguard", "--no-perfguard-require-baseline").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--perfguard-bytes-tolerance", "nan"], "",
         "*bad value for --perfguard-bytes-tolerance: must be a finite number, got 'nan'*"),
        (["--perfguard-bytes-tolerance", "inf"], "", "*must be a finite number, got 'inf'*"),
        (["--perfguard-memory-tolerance", "-0.1"], "", "*must be at least 0, got '-0.1'*"),
        ([], "perfguard_bytes_tolerance = abc",
         "*bad value for ini perfguard_bytes_tolerance: must be a number (*'abc'*)"),
        ([], "perfguard_strict = maybe",
         "*bad value for ini perfguard_strict: must be true or false (*'maybe'*)"),
        (["--perfguard-time-alpha", "2"], "", "*time-alpha: must be at most 1, got '2'*"),
    ],
)
def test_bad_settings_are_usage_errors(pytester: pytest.Pytester, args: list[str], ini: str,
                                       message: str) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("--perfguard", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert "INTERNALERROR" not in result.stderr.str() + result.stdout.str()


BAD_CALLS = """
import pytest
import torch

@pytest.mark.perfguard(bytes_tolerance="abc")
def test_marker_type(perfguard):
    perfguard(torch.sin, torch.ones(2))

@pytest.mark.perfguard(no_such_rule=1)
def test_marker_key(perfguard):
    perfguard(torch.sin, torch.ones(2))

def test_repeats_text(perfguard):
    perfguard(torch.sin, torch.ones(2), repeats="3")

def test_rtol_text(perfguard):
    perfguard(torch.sin, torch.ones(2), rtol="abc")

def test_kwargs_list(perfguard):
    perfguard(torch.sin, torch.ones(2), kwargs=[1])

def test_warmup_zero(perfguard):
    perfguard(torch.sin, torch.ones(2), warmup=0)

def test_name_empty(perfguard):
    perfguard(torch.sin, torch.ones(2), name="")

def test_meta_input(perfguard):
    perfguard(torch.sin, torch.ones(2, device="meta"))
"""


def test_bad_markers_and_call_arguments_name_the_test_and_the_argument(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_bad=BAD_CALLS)
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(failed=6, errors=2)
    result.stdout.fnmatch_lines_random([
        "*@pytest.mark.perfguard on test_bad.py::test_marker_type: bytes_tolerance must be a "
        "number, got 'abc'*",
        "*@pytest.mark.perfguard on test_bad.py::test_marker_key: unknown option(s) no_such_rule*",
        "*perfguard() in test_bad.py::test_repeats_text: repeats must be a whole number, got '3'*",
        "*perfguard() in test_bad.py::test_rtol_text: rtol must be a number, got 'abc'*",
        "*perfguard() in test_bad.py::test_kwargs_list: kwargs must be a dict*",
        "*perfguard() in test_bad.py::test_warmup_zero: warmup must be at least 1, got 0*",
        "*perfguard() in test_bad.py::test_name_empty: name must be a non-empty string*",
        "*perfguard: model and inputs are on the meta device (input*): meta tensors have "
        "shapes but no data*",
    ])
    assert "Traceback" not in result.stdout.str()
    assert "pytest_perfguard/" not in result.stdout.str()


def test_cli_rule_flags_are_validated(tmp_path: Path) -> None:
    baseline = tmp_path / "b.json"
    baseline.write_text('{"schema": 1, "environments": {}}')
    results = tmp_path / "r.json"
    results.write_text('{"schema": 1, "results": []}')
    for flag, value in (("--bytes-tolerance", "nan"), ("--time-alpha", "-1"),
                        ("--memory-tolerance", "abc")):
        ran = _cli("compare", str(baseline), str(results), flag, value, cwd=tmp_path)
        assert ran.returncode == 2, (flag, ran.stdout, ran.stderr)
        assert f"perfguard: error: {flag} " in ran.stderr, ran.stderr
        assert "Traceback" not in ran.stderr


def test_the_readme_documents_every_setting() -> None:
    """The README's tables are hand-written prose: this keeps them from drifting."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for f in dataclasses.fields(SessionSettings) + dataclasses.fields(Rules):
        flag = f.metadata.get("flag") or "--perfguard-" + f.name.replace("_", "-")
        assert f"`{flag}" in readme, flag
        assert f"`{flag.lstrip('-').replace('-', '_')}`" in readme, flag
    for f in dataclasses.fields(ProfileOptions):
        assert f"`{f.name}`" in readme, f.name
