"""The history database in hostile places: a read-only folder or mount, an empty file, a
file damaged in the middle, two tests whose keys read the same, and metric names copied
from the gate's output.

Every ``perfguard`` call runs ``[sys.executable, "-m", "pytest_perfguard.cli", ...]``.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from report_factory import sample_results

from pytest_perfguard.history.store import HistoryStore, RunInfo

#: Variables that would make a recorded commit the CI job's rather than the test's.
GITHUB_VARIABLES = ("GITHUB_SHA", "GITHUB_REF_NAME", "GITHUB_HEAD_REF", "GITHUB_STEP_SUMMARY",
                    "GITHUB_SERVER_URL", "GITHUB_REPOSITORY")
MLP = "tests/test_models.py::test_mlp_block"


def perfguard(*args: str | Path, cwd: Path, prefix: tuple[str, ...] = ()
              ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in GITHUB_VARIABLES}
    return subprocess.run([*prefix, sys.executable, "-m", "pytest_perfguard.cli",
                           *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300, env=env,
                          check=False)


def _history(tmp_path: Path, commits: int = 2) -> Path:
    """A history of ``commits`` runs of the sample results, written by ``history add``."""
    results = tmp_path / "results.json"
    results.write_text(sample_results().dumps())
    db = tmp_path / "db" / "history.sqlite"
    for number in range(commits):
        added = perfguard("history", "add", results, "--commit", f"{number:x}" * 40, "--db", db,
                          cwd=tmp_path)
        assert added.returncode == 0, added.stderr
    return db


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# ---- reading where nothing can be written -----------------------------------------------

#: Drops root's power to ignore file permissions, so that a chmod 0555 folder is read-only
#: to this process as it is to any other user.
NO_OVERRIDE = ("setpriv", "--inh-caps=-dac_override,-dac_read_search",
               "--bounding-set=-dac_override,-dac_read_search", "--")


def _read_only(folder: Path, how: str) -> tuple[str, ...]:
    """Make ``folder`` read-only for the commands run with the returned prefix: a chmod
    (for root: with the permission override dropped), or a read-only bind mount in a mount
    namespace of its own. Skips where this machine can do neither."""
    prefix: tuple[str, ...]
    if how == "chmod":
        folder.chmod(0o555)
        if os.geteuid() != 0:
            return ()
        prefix = NO_OVERRIDE
    else:
        prefix = ("unshare", "-m", "sh", "-c",
                  'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder))
    if shutil.which(prefix[0]) is None:
        pytest.skip(f"no {prefix[0]} here to make a read-only folder with {how}")
    probe = subprocess.run([*prefix, sys.executable, "-c",
                            f"open({str(folder / 'probe')!r}, 'w')"],
                           capture_output=True, text=True, check=False)
    refused = any(reason in probe.stderr
                  for reason in ("Permission denied", "Read-only file system"))
    if probe.returncode == 0 or not refused:
        (folder / "probe").unlink(missing_ok=True)
        pytest.skip(f"cannot make a read-only folder here with {how}: {probe.stderr[-200:]}")
    return prefix


@pytest.mark.parametrize("how", ["chmod", "mount"])
def test_a_history_in_a_read_only_folder_can_be_read(tmp_path: Path, how: str) -> None:
    """A WAL-mode history (as every recorded one is) restored into a read-only place: SQLite
    cannot create its ``-shm`` index there, so a plain open fails ("unable to open database
    file", "attempt to write a readonly database"); reads must work anyway."""
    db = _history(tmp_path)
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()
    before = _snapshot(db.parent)
    prefix = _read_only(db.parent, how)
    try:
        shown = perfguard("history", "show", "test_mlp_block", "--db", db, cwd=tmp_path,
                          prefix=prefix)
        assert shown.returncode == 0, shown.stderr
        assert [line.split()[-1] for line in shown.stdout.splitlines()[1:]] == ["5", "5"]
        first = perfguard("history", "first-change", "test_mlp_block",
                          "compiled.kernel_launches", "--db", db, cwd=tmp_path, prefix=prefix)
        assert first.returncode == 1, first.stderr  # never changed
        assert "never changed: 5 in all 2 recorded run(s)" in first.stdout
        page = tmp_path / "trend.html"
        report = perfguard("history", "report", "--html", page, "--db", db, cwd=tmp_path,
                           prefix=prefix)
        assert report.returncode == 0, report.stderr
        assert "test_mlp_block" in page.read_text()
        # Recording there is refused, clearly.
        added = perfguard("history", "add", tmp_path / "results.json", "--commit", "c" * 40,
                          "--db", db, cwd=tmp_path, prefix=prefix)
        assert added.returncode == 2
        assert added.stderr.startswith(f"perfguard: error: {db}: "), added.stderr
        assert "read-only" in added.stderr and "Traceback" not in added.stderr
    finally:
        db.parent.chmod(0o755)
    assert _snapshot(db.parent) == before


def test_unsaved_changes_beside_a_read_only_history_are_not_ignored(tmp_path: Path) -> None:
    """A copy taken while a writer was open keeps runs in its ``-wal`` file. Where SQLite
    cannot open that read-only, reading the database without it would silently drop
    those runs: it is refused instead."""
    db = _history(tmp_path, commits=1)
    copy = tmp_path / "copy"
    copy.mkdir()
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("UPDATE runs SET branch = 'main'")
    shutil.copy(db, copy / db.name)
    shutil.copy(db.with_name(db.name + "-wal"), copy / (db.name + "-wal"))
    writer.close()
    assert (copy / (db.name + "-wal")).stat().st_size > 0
    prefix = _read_only(copy, "chmod")
    try:
        shown = perfguard("history", "show", "test_mlp_block", "--db", copy / db.name,
                          cwd=tmp_path, prefix=prefix)
    finally:
        copy.chmod(0o755)
    assert shown.returncode == 2
    assert "history.sqlite-wal beside it holds changes not yet in the database" \
        in shown.stderr, shown.stderr


# ---- an empty file, a damaged file ------------------------------------------------------


def test_an_empty_file_is_refused_not_initialised(tmp_path: Path) -> None:
    empty = tmp_path / "history.sqlite"
    empty.touch()
    results = tmp_path / "results.json"
    results.write_text(sample_results().dumps())
    for args in (("show", "test_mlp_block"), ("add", results, "--commit", "a" * 40),
                 ("report", "--html", tmp_path / "h.html")):
        result = perfguard("history", *args, "--db", empty, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stdout)
        assert result.stderr == (
            f"perfguard: error: {empty}: not a perfguard history database (empty file); "
            "perfguard only starts a history in a file it creates: delete it, or point --db "
            "(or --perfguard-history) at another path\n")
    assert empty.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.sqlite", "results.json"]


def test_damage_in_the_middle_of_the_file_is_reported_as_corruption(tmp_path: Path) -> None:
    """Garbage over one page of the ``runs`` table, in the middle of the file: SQLite still
    opens it, an append used to land (or fail with "FOREIGN KEY constraint failed") and
    ``show`` read on. Now every command says the file is corrupt and leaves it alone."""
    db = tmp_path / "history.sqlite"
    run = sample_results()
    with HistoryStore.open(db, create=True) as store:
        for number in range(40):  # enough runs for `runs` to span several pages
            store.append(run, RunInfo(commit=f"{number:040x}", branch="main"))
    with sqlite3.connect(db) as connection:
        pages = [row[0] for row in connection.execute(
            "SELECT pageno FROM dbstat WHERE name = 'runs' AND pagetype = 'leaf' "
            "ORDER BY pageno")]
        (page_size,) = connection.execute("PRAGMA page_size").fetchone()
        (page_count,) = connection.execute("PRAGMA page_count").fetchone()
    connection.close()
    page = pages[len(pages) // 2]
    assert 1 < page < page_count
    data = bytearray(db.read_bytes())
    start = (page - 1) * page_size
    data[start + 100:start + page_size] = random.Random(0).randbytes(page_size - 100)
    db.write_bytes(bytes(data))
    results = tmp_path / "results.json"
    results.write_text(run.dumps())
    before = _snapshot(tmp_path)
    for args in (("add", results, "--commit", "f" * 40),
                 ("show", "test_mlp_block"),
                 ("first-change", "test_mlp_block", "compiled.kernel_launches"),
                 ("report", "--markdown", tmp_path / "h.md")):
        result = perfguard("history", *args, "--db", db, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert re.match(rf"perfguard: error: {re.escape(str(db))}: the history database is "
                        r"corrupt: table runs: .+ \(perfguard leaves it as it is: restore it "
                        "from a backup or CI cache, or move it aside to start a new history\\)",
                        result.stderr), result.stderr
        assert _snapshot(tmp_path) == before


# ---- two measurements whose keys read the same ------------------------------------------


def test_tests_whose_keys_read_the_same_are_kept_apart(tmp_path: Path) -> None:
    """``t.py::test_c[x]`` named ``y[z]`` and ``t.py::test_c[x]::y[z]`` both read
    ``t.py::test_c[x]::y[z]``; the baseline keys them by (test id, name), and so does the
    history: each can be queried (``--name``) and the report shows both."""
    run = sample_results()
    named, plain = run.entries[0].measurement, run.entries[1].measurement
    named.test_id, named.name = "t.py::test_c[x]", "y[z]"
    plain.test_id, plain.name = "t.py::test_c[x]::y[z]", "default"
    named.compiled.kernel_launches, plain.compiled.kernel_launches = 11, 33
    assert named.key == plain.key == "t.py::test_c[x]::y[z]"
    results = tmp_path / "results.json"
    results.write_text(run.dumps())
    db = tmp_path / "history.sqlite"
    added = perfguard("history", "add", results, "--commit", "a" * 40, "--db", db,
                      cwd=tmp_path)
    assert added.returncode == 0, added.stderr

    ambiguous = perfguard("history", "show", "t.py::test_c[x]::y[z]", "--db", db, cwd=tmp_path)
    assert ambiguous.returncode == 2
    assert ambiguous.stderr == (
        "perfguard: error: 't.py::test_c[x]::y[z]' matches 2 tests; give one of:\n"
        "  't.py::test_c[x]::y[z]' --name default\n"
        "  't.py::test_c[x]' --name 'y[z]'\n")
    for test_id, name, launches in (("t.py::test_c[x]", "y[z]", "11"),
                                    ("t.py::test_c[x]::y[z]", "default", "33")):
        shown = perfguard("history", "show", test_id, "--name", name, "--db", db,
                          cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines()[1].split()[-1] == launches

    page = tmp_path / "trend.html"
    report = perfguard("history", "report", "--html", page, "--db", db, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    sections = re.findall(r'<section class="test-history[^"]*" id="([^"]+)" '
                          r'data-test="t.py::test_c\[x\]::y\[z\]"', page.read_text())
    assert len(sections) == 2 and len(set(sections)) == 2, sections


# ---- metric names as the gate prints them -----------------------------------------------

MODEL = '''
def model(x):
    y = x * 2 + 1
    return y - 0.5
'''
BROKEN = '''
import torch


def model(x):
    y = x * 2 + 1
    torch._dynamo.graph_break()
    return y - 0.5
'''
TEST = '''
import torch
import models


def test_model(perfguard):
    perfguard(models.model, torch.randn(1024))
'''


def test_first_change_takes_the_metric_names_the_gate_prints(pytester: pytest.Pytester
                                                             ) -> None:
    """A gate failure prints ``graph_breaks: baseline 0, current 1``; pasting that name
    (or the junit, Bencher or github-action-benchmark spelling) into ``first-change``
    finds the commit."""
    pytester.makepyfile(models=MODEL, test_models=TEST)
    results = pytester.path / ".perfguard" / "report" / "results.json"
    db = pytester.path / "history.sqlite"
    first = pytester.runpytest("--perfguard", "--perfguard-update", "-p", "no:cacheprovider")
    first.assert_outcomes(passed=1)
    added = perfguard("history", "add", results, "--commit", "a" * 40, "--db", db,
                      cwd=pytester.path)
    assert added.returncode == 0, added.stderr

    (pytester.path / "models.py").write_text(BROKEN)
    gate = pytester.runpytest("--perfguard", "-p", "no:cacheprovider")
    gate.assert_outcomes(failed=1)
    printed = dict(re.findall(r"^\s+(graph_breaks|compiled kernel_launches): baseline (\d+)",
                              gate.stdout.str(), re.MULTILINE))
    assert printed == {"graph_breaks": "0", "compiled kernel_launches": "1"}, gate.stdout.str()
    added = perfguard("history", "add", results, "--commit", "b" * 40, "--db", db,
                      cwd=pytester.path)
    assert added.returncode == 0, added.stderr

    for spelt, canonical in (("graph_breaks", "compiled.graph_breaks"),
                             ("compiled kernel_launches", "compiled.kernel_launches"),
                             ("compiled.graph_breaks", "compiled.graph_breaks"),
                             ("perfguard.compiled.graph_breaks", "compiled.graph_breaks"),
                             ("graph-breaks", "compiled.graph_breaks"),
                             ("compiled kernel launches", "compiled.kernel_launches")):
        answer = perfguard("history", "first-change", "test_model", spelt, "--db", db,
                           cwd=pytester.path)
        assert answer.returncode == 0, (spelt, answer.stderr)
        assert answer.stdout.startswith(f"{'b' * 40} is the first commit with {canonical} = ")
    shown = perfguard("history", "show", "test_model", "--metric", "graph_breaks", "--db", db,
                      cwd=pytester.path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0].startswith(
        "test_models.py::test_model · compiled.graph_breaks · ")
    unknown = perfguard("history", "show", "test_model", "--metric", "graph breakz", "--db", db,
                        cwd=pytester.path)
    assert unknown.returncode == 2
    assert "no metric 'graph breakz (compiled.graph_breakz)' recorded" in unknown.stderr
