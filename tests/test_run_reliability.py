"""What a pytest run keeps when things go wrong: crashed xdist workers, pruning a subset,
reports that cannot be written, Ctrl-C, errored tests, and user text in trace paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

MEASURE = "import torch\n\ndef test_{name}(perfguard):\n    perfguard(torch.sin, torch.ones(8))\n"


def _baseline_test_ids(root: Path) -> set[str]:
    data = json.loads((root / ".perfguard" / "baseline.json").read_text())
    ids: set[str] = set()
    blocks = data["environments"]  # schema 2: a list of blocks; schema 1: keyed by fingerprint
    for block in blocks.values() if isinstance(blocks, dict) else blocks:
        entries = block["entries"]
        values = entries.values() if isinstance(entries, dict) else entries
        ids.update(entry["test_id"] for entry in values)
    return ids


def test_a_crashed_xdist_worker_loses_no_finished_measurement(pytester: pytest.Pytester) -> None:
    """test_first measures and passes; then test_crash kills its worker (os._exit). With
    --dist loadfile both run on one worker, in order. The measurement reached the controller
    with test_first's report, so it is in results.json and in the baseline."""
    pytester.makepyfile(test_a=(
        "import os\nimport torch\n\n"
        "def test_first(perfguard):\n    perfguard(torch.sin, torch.ones(8))\n\n"
        "def test_crash():\n    os._exit(1)\n"
    ), test_b=MEASURE.format(name="other"))
    result = pytester.runpytest("-p", "xdist", "-n", "2", "--dist", "loadfile",
                                "--max-worker-restart", "0", "--perfguard", "--perfguard-update")
    assert result.ret != 0
    assert _baseline_test_ids(pytester.path) == {"test_a.py::test_first", "test_b.py::test_other"}
    results = json.loads((pytester.path / ".perfguard/report/results.json").read_text())
    keys = {r["measurement"]["key"] for r in results["results"]}
    assert keys == {"test_a.py::test_first", "test_b.py::test_other"}


def test_prune_drops_only_what_the_run_could_see(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=MEASURE.format(name="a"), test_b=MEASURE.format(name="b"))
    pytester.runpytest("--perfguard", "--perfguard-update").assert_outcomes(passed=2)
    # A run of test_b.py alone cannot know about test_a.py: its entry stays.
    result = pytester.runpytest("test_b.py", "--perfguard", "--perfguard-update",
                                "--perfguard-prune")
    result.assert_outcomes(passed=1)
    assert _baseline_test_ids(pytester.path) == {"test_a.py::test_a", "test_b.py::test_b"}
    # A run over the whole folder after test_a.py was deleted prunes it.
    (pytester.path / "test_a.py").unlink()
    result = pytester.runpytest("--perfguard", "--perfguard-update", "--perfguard-prune")
    result.stdout.fnmatch_lines(["*pruned 1: test_a.py::test_a*"])
    assert _baseline_test_ids(pytester.path) == {"test_b.py::test_b"}


def test_an_unwritable_job_summary_is_a_warning_and_the_baseline_is_written(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makepyfile(test_a=MEASURE.format(name="a"))
    summary_dir = pytester.path / "summary-is-a-directory"
    summary_dir.mkdir()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_dir))
    result = pytester.runpytest("--perfguard", "--perfguard-update")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*baseline updated: 1 entry written to*",
                                 "*WARNING: job summary not written to GITHUB_STEP_SUMMARY=*"])
    assert _baseline_test_ids(pytester.path) == {"test_a.py::test_a"}


def test_an_interrupted_update_writes_no_baseline(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=(
        "import torch\n\n"
        "def test_1(perfguard):\n    perfguard(torch.sin, torch.ones(8))\n\n"
        "def test_2():\n    raise KeyboardInterrupt\n"
    ))
    result = pytester.runpytest("--perfguard", "--perfguard-update")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*the run was interrupted: baseline NOT updated "
                                 "(1 measurement(s) discarded)*"])
    assert not (pytester.path / ".perfguard" / "baseline.json").exists()


def test_errored_tests_are_in_the_results(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=(
        "import pytest\nimport torch\n\n"
        "@pytest.fixture\ndef broken():\n    raise RuntimeError('fixture broke')\n\n"
        "def test_setup_error(perfguard, broken):\n    pass\n\n"
        "def test_model_error(perfguard):\n"
        "    perfguard(lambda x: x.no_such_method(), torch.ones(2))\n\n"
        "def test_fine(perfguard):\n    perfguard(torch.sin, torch.ones(8))\n"
    ))
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    results = json.loads((pytester.path / ".perfguard/report/results.json").read_text())
    errors = {e["test_id"]: e for e in results["errors"]}
    assert set(errors) == {"test_a.py::test_setup_error", "test_a.py::test_model_error"}
    assert errors["test_a.py::test_setup_error"]["when"] == "setup"
    assert "fixture broke" in errors["test_a.py::test_setup_error"]["message"]
    assert "no_such_method" in errors["test_a.py::test_model_error"]["message"]


def test_trace_folders_stay_inside_the_report_and_never_collide(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_t=(
        "import torch\n\n"
        "def test_names(perfguard):\n"
        "    for name in ('../../escape', '/abs/x', 'a/b', 'a:b', 'a::b'):\n"
        "        perfguard(torch.sin, torch.ones(8), name=name, repeats=1)\n"
    ))
    result = pytester.runpytest("--perfguard", "--perfguard-traces")
    result.assert_outcomes(passed=1)
    traces = pytester.path / ".perfguard" / "report" / "traces"
    folders = [p for p in traces.iterdir() if p.is_dir()]
    assert len(folders) == 5, folders
    for folder in folders:
        assert {p.name for p in folder.iterdir()} == {
            "trace.json", "code.py", "eager.events.json", "compiled.events.json"}
    written = {p.resolve() for p in pytester.path.rglob("*") if p.is_file()}
    assert all(traces.resolve() in p.parents for p in written
               if p.name in ("trace.json", "code.py"))
    assert not (pytester.path.parent / "escape.trace.json").exists()
    assert not Path("/abs").exists()
