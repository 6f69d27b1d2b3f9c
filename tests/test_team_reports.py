"""Reports a team reads at scale (issue 20, items 2 and 3).

- The HTML report and the history page stay bounded however many tests a run has: what
  changed is shown in full, the unchanged are summarised.
- ``perfguard report RESULTS... --comment FILE`` writes the pull-request comment: the gate's
  verdict first, regressions with their cause, improvements to accept, then counts, bounded;
  a test deselected with ``-k`` is counted nowhere, in the comment or in the history table.

Everything runs as users run it: the plugin through pytester (real torch on CPU), the
``perfguard`` CLI as ``python -m pytest_perfguard.cli``.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
from report_factory import sample_results

from pytest_perfguard.compare import Change, Verdict
from pytest_perfguard.reporting.html import UNCHANGED_DETAILS, UNCHANGED_ROWS
from pytest_perfguard.reporting.markdown import COMMENT_MAX_CHARS
from pytest_perfguard.results import ResultEntry, RunResults


def _cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_perfguard.cli", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, check=False, timeout=300)


def _copies(entry: ResultEntry, count: int, name: str) -> list[ResultEntry]:
    copies = []
    for index in range(count):
        clone = copy.deepcopy(entry)
        clone.measurement.test_id = f"tests/test_{name}.py::test_case[{index}]"
        clone.verdict.key = clone.measurement.key
        copies.append(clone)
    return copies


def _run(unchanged: int) -> RunResults:
    """The sample run's changed and errored tests, and ``unchanged`` unchanged tests."""
    sample = sample_results()
    changed = [e for e in sample.entries
               if e.verdict.status != "unchanged" and (e.verdict.changes or e.verdict.fails
                                                      or e.verdict.status != "other-environment")]
    template = next(e for e in sample.entries if e.verdict.status == "unchanged")
    return RunResults(entries=changed + _copies(template, unchanged, "many"),
                      created=sample.created, errors=sample.errors)


# --- the HTML report --------------------------------------------------------------------


def _html(tmp_path: Path, run: RunResults, name: str) -> str:
    results = tmp_path / f"{name}.json"
    results.write_text(run.dumps(), encoding="utf-8")
    page = tmp_path / f"{name}.html"
    done = _cli("report", results, "--html", page)
    assert done.returncode == 0, done.stderr
    return page.read_text(encoding="utf-8")


def test_html_report_shows_changes_in_full_and_summarises_the_unchanged(tmp_path: Path) -> None:
    small = _html(tmp_path, _run(UNCHANGED_DETAILS), "small")
    large = _html(tmp_path, _run(UNCHANGED_ROWS + 100), "large")
    huge = _html(tmp_path, _run(4 * UNCHANGED_ROWS), "huge")
    sizes = [len(page.encode()) for page in (small, large, huge)]
    # 2,000 unchanged tests cost no more than 600 (before: ~3.6 MB and ~14 MB), and the
    # whole page stays under 600 kB (one compact row per listed unchanged test).
    assert sizes[2] - sizes[1] < 2_000, sizes
    assert sizes[2] < 600_000, sizes

    for page in (small, large, huge):
        # Every changed test has its own block with its changes and likely causes.
        entries = re.findall(r'<article class="test-entry status-([\w-]+)"', page)
        assert entries[:5] == ["errored", "errored", "regressed", "improved", "new"]
        assert "compiled kernel_launches: 4 → 5 (+25.0%)" in page
        assert "new graph break at tests/test_models.py:48" in page
        assert "compiled bytes_moved: 64.0 MiB → 32.0 MiB (-50.0%)" in page
    # A small run keeps the unchanged tests' detail blocks; a large one lists each in one
    # row (the first UNCHANGED_ROWS of them) and counts the rest.
    assert small.count('class="test-entry status-unchanged"') == UNCHANGED_DETAILS
    assert 'id="unchanged-note"' not in small
    for page, total in ((large, UNCHANGED_ROWS + 100), (huge, 4 * UNCHANGED_ROWS)):
        assert 'class="test-entry status-unchanged"' not in page
        assert page.count('<tr class="summary-row" data-status="unchanged">') == UNCHANGED_ROWS
        note = re.search(r'<p class="note" id="unchanged-note">([^<]*)</p>', page)
        assert note and note.group(1) == (
            f"{total:,} unchanged tests (or compared with another environment and unchanged): "
            f"more than {UNCHANGED_DETAILS}, so they are shown "
            f"without detail blocks, and only the first {UNCHANGED_ROWS} are listed; the other "
            f"{total - UNCHANGED_ROWS:,} are counted here and are in results.json.")
        assert f'<span class="n">{total}</span>unchanged' in page


# --- the history page -------------------------------------------------------------------


def test_an_upgrade_run_is_bounded_like_an_unchanged_one(tmp_path: Path) -> None:
    """After an upgrade every test is compared with another environment: those where no
    metric moved are summarised as unchanged ones are; one where a metric moved keeps its
    block."""
    sample = sample_results()
    other = next(e for e in sample.entries if e.verdict.status == "other-environment")
    moved = copy.deepcopy(other)
    moved.measurement.test_id = "tests/test_moved.py::test_moved"
    moved.verdict.key = moved.measurement.key
    moved.verdict.changes = [Change("graph_breaks", 0, 1, "regressed",
                                    ["new graph break at tests/test_moved.py:3: print"])]
    run = RunResults(entries=[moved, *_copies(other, 4 * UNCHANGED_ROWS, "upgraded")],
                     created=sample.created)
    page = _html(tmp_path, run, "upgrade")
    assert len(page.encode()) < 600_000
    assert page.count('class="test-entry status-other-environment"') == 1
    assert "new graph break at tests/test_moved.py:3: print" in page
    assert page.count('<tr class="summary-row" data-status="other-environment">') == (
        UNCHANGED_ROWS + 1)
    assert f"{4 * UNCHANGED_ROWS:,} unchanged tests (or compared with another" in page


def _history_run(tests: int, stepped: int, launches: int) -> RunResults:
    """``tests`` copies of one unchanged test; the first ``stepped`` have ``launches``
    compiled kernel launches (the others keep theirs)."""
    sample = sample_results()
    template = next(e for e in sample.entries if e.verdict.status == "unchanged")
    entries = _copies(template, tests, "history")
    for entry in entries[:stepped]:
        entry.measurement.compiled.kernel_launches = launches
    return RunResults(entries=entries, created=sample.created)


def test_history_page_charts_what_changed_and_lists_the_rest(tmp_path: Path) -> None:
    from pytest_perfguard.history.report import CHARTED_STEADY

    db = tmp_path / "history.sqlite"
    for number, launches in enumerate((3, 3, 9)):  # five tests step at the third run
        results = tmp_path / f"run{number}.json"
        results.write_text(_history_run(300, 5, launches).dumps(), encoding="utf-8")
        done = _cli("history", "add", results, "--commit", f"{number + 1}" * 40, "--db", db)
        assert done.returncode == 0, done.stderr
    page_file = tmp_path / "history.html"
    done = _cli("history", "report", "--html", page_file, "--db", db)
    assert done.returncode == 0, done.stderr
    page = page_file.read_text(encoding="utf-8")
    sections = re.findall(r'<section class="test-history( stepped)?" id="[^"]*" '
                          r'data-test="([^"]*)"', page)
    # The five tests with a step are charted, then CHARTED_STEADY others; before, all 300.
    assert [bool(stepped) for stepped, _ in sections] == [True] * 5 + [False] * CHARTED_STEADY
    assert {key for stepped, key in sections if stepped} == {
        f"tests/test_history.py::test_case[{i}]" for i in range(5)}
    assert "compiled.kernel_launches 3 → 9" in page
    # The rest are listed by name, and counted.
    uncharted = re.findall(r"<li><code>(tests/test_history\.py::test_case\[\d+\])</code>", page)
    assert len(uncharted) == 300 - 5 - CHARTED_STEADY
    assert not {key for _, key in sections} & set(uncharted)
    assert f"Not charted: {300 - 5 - CHARTED_STEADY} test(s)" in page
    assert "300 test(s) over the last 3 recorded run(s)" in page
    assert len(page.encode()) < 1_500_000  # 55 charted tests; before, 300 of them: 5.4 MB


# --- the pull-request comment -----------------------------------------------------------

MODELS = '''
import os

import torch


def graph_model(x):
    y = x * 2 + 1
    if os.environ.get("PLANT_GRAPH_BREAK"):
        print("debug", y.shape)
    return torch.relu(y) - 0.5


def steady_model(x):
    return torch.relu(x * 3) + 1
'''

TESTS = '''
import torch
import models

X = torch.randn(4096)


def test_graph(perfguard):
    perfguard(models.graph_model, X)


def test_steady(perfguard):
    perfguard(models.steady_model, X)


def test_deselected(perfguard):
    perfguard(models.steady_model, X + 1)
'''


def test_comment_says_the_verdict_and_a_deselected_test_is_not_unchanged(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(models=MODELS, test_models=TESTS)
    results = pytester.path / ".perfguard" / "report" / "results.json"
    db = pytester.path / "history.sqlite"

    # The default branch: a baseline of three tests, recorded in the history.
    pytester.runpytest("--perfguard", "--perfguard-update").assert_outcomes(passed=3)
    done = _cli("history", "add", results, "--commit", "a" * 40, "--db", db)
    assert done.returncode == 0, done.stderr

    # A pull request plants a graph break and runs two of the three tests (-k).
    monkeypatch.setenv("PLANT_GRAPH_BREAK", "1")
    result = pytester.runpytest("--perfguard", "-k", "not deselected")
    result.assert_outcomes(passed=1, failed=1)

    comment = pytester.path / "comment.md"
    done = _cli("report", results, "--comment", comment)
    assert done.returncode == 0, done.stderr
    body = comment.read_text(encoding="utf-8")
    # The verdict first, then the regression: its metric, baseline -> current, its cause.
    assert body.startswith("## perfguard: failed (1 regressed)\n\n### Regressed (1)\n\n"
                           "- <code>test\\_models.py::test\\_graph</code>\n")
    assert "  - compiled kernel\\_launches: 1 → " in body
    assert re.search(r"  - likely cause: new graph break at models\.py:\d+", body)
    # Counts of the tests that ran; the deselected test is nowhere.
    assert ("**Counts** (the 2 tests that ran): 1 regressed, 0 improved, 0 new, "
            "0 other-environment, 1 unchanged.") in body
    assert "deselected" not in body

    # The history table beside this run: the deselected test is not "unchanged" either.
    table = pytester.path / "history.md"
    done = _cli("history", "report", "--current", results, "--markdown", table, "--db", db)
    assert done.returncode == 0, done.stderr
    text = table.read_text(encoding="utf-8")
    assert "**1 test(s) changed in this run**" in text
    assert "<summary>1 test(s) unchanged</summary>" in text  # before: 2, with the deselected
    assert "1 recorded test(s) did not run here (deselected, skipped or removed)" in text
    assert "test\\_deselected" not in text


def test_comment_lists_improvements_with_the_accept_command(tmp_path: Path) -> None:
    sample = sample_results()
    improved = [e for e in sample.entries if e.verdict.status in ("improved", "unchanged")]
    results = tmp_path / "results.json"
    results.write_text(RunResults(entries=improved).dumps(), encoding="utf-8")
    done = _cli("report", results, "--comment", tmp_path / "comment.md")
    assert done.returncode == 0, done.stderr
    body = (tmp_path / "comment.md").read_text(encoding="utf-8")
    assert body.startswith("## perfguard: passed, 1 improved awaiting acceptance\n\n"
                           "### Improved, awaiting acceptance (1)\n\n")
    assert "compiled kernel\\_launches: 2 → 1 (-50.0%)" in body
    assert ("To accept the improvements: run `pytest --perfguard --perfguard-update` locally, "
            "or `perfguard update` on this run's results.json") in body
    assert body.index("Improved, awaiting") < body.index("**Counts**")


def test_comment_stays_under_githubs_limit_for_5000_tests(tmp_path: Path) -> None:
    sample = sample_results()
    regressed = next(e for e in sample.entries if e.verdict.status == "regressed")
    entries = _copies(regressed, 5000, "huge")
    for entry in entries:  # light records: loading 5,000 tests' kernels is not the point
        for record in (entry.measurement.eager, entry.measurement.compiled):
            record.kernels, record.peak_allocations = [], []
    for entry in entries[::2]:  # half of them with a long cause
        entry.verdict = Verdict(entry.measurement.key, "regressed", [
            Change("compiled kernel_launches", 4, 5, "regressed", ["x" * 2000] * 5)])
    results = tmp_path / "results.json"
    results.write_text(RunResults(entries=entries, errors=sample.errors).dumps(),
                       encoding="utf-8")
    comment = tmp_path / "comment.md"
    done = _cli("report", results, "--comment", comment)
    assert done.returncode == 0, done.stderr
    body = comment.read_text(encoding="utf-8")
    assert len(body) <= COMMENT_MAX_CHARS < 60_000
    assert body.startswith("## perfguard: failed (5000 regressed, 2 errored)\n\n### Regressed")
    shown = body.count("\n- <code>tests/test\\_huge.py::test\\_case")
    assert 10 < shown < 5000
    assert (f"... and {5000 - shown:,} more regressed tests and 2 errored tests in the "
            f"artifact: the comment is limited to {COMMENT_MAX_CHARS:,} characters.") in body
    assert "**Counts** (the 5,002 tests that ran): 2 errored, 5000 regressed" in body


def test_report_without_an_output_names_the_comment_option(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(sample_results().dumps(), encoding="utf-8")
    done = _cli("report", results)
    assert done.returncode == 2
    assert done.stderr.strip() == ("perfguard: error: report: give --html FILE, --markdown "
                                   "FILE, --summary FILE and/or --comment FILE")
