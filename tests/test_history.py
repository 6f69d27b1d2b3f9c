"""The history across commits: recorded by ``pytest --perfguard --perfguard-history-record``,
read with ``perfguard history show | first-change | report``.

The main story is real: a git repository with three commits of a tiny model, measured with
real torch on CPU after each commit. ``f(x) = x * 2 + 1`` on 1,024 float32 values:

- commit 1: dynamo traces the whole function, inductor fuses the multiply and the add into
  one C++ kernel: compiled 1 launch, 0 graph breaks, 8,192 bytes (x read once, 4,096 B; the
  result written once, 4,096 B).
- commit 2 puts a ``print`` between the two ops: a graph break, two graphs of one kernel
  each: compiled 2 launches, 1 graph break, 16,384 bytes (each graph reads and writes
  4,096 B).
- commit 3 changes only a comment: the values stay those of commit 2.

Eager is 2 launches (aten::mul, aten::add) and 16,384 bytes throughout. So the first change
of compiled launches, graph breaks and bytes is commit 2, and eager launches never changed.

Every ``perfguard`` call runs ``[sys.executable, "-m", "pytest_perfguard.cli", ...]``.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_factory import sample_results

from pytest_perfguard.history import HistoryError, check_history
from pytest_perfguard.history.gitinfo import detect
from pytest_perfguard.history.metrics import measurement_metrics
from pytest_perfguard.history.store import APPLICATION_ID, SCHEMA_VERSION

GOLDEN = Path(__file__).parent / "golden"
CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None
)
#: Variables that would make the recorded commit the CI job's rather than the test repo's.
GITHUB_VARIABLES = ("GITHUB_SHA", "GITHUB_REF_NAME", "GITHUB_HEAD_REF", "GITHUB_STEP_SUMMARY",
                    "GITHUB_SERVER_URL", "GITHUB_REPOSITORY")
TEST_KEY = "test_chain.py::test_chain"


def perfguard(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in GITHUB_VARIABLES}
    return subprocess.run([sys.executable, "-m", "pytest_perfguard.cli", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300, env=env,
                          check=False)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True, timeout=60)
    return done.stdout.strip()


def init_repo(repo: Path) -> None:
    git(repo, "init", "-q")
    git(repo, "checkout", "-q", "-b", "main")
    git(repo, "config", "user.name", "perfguard tests")
    git(repo, "config", "user.email", "tests@perfguard.invalid")
    git(repo, "config", "commit.gpgsign", "false")


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


MODEL_V1 = '''
def f(x):
    y = x * 2
    return y + 1
'''
MODEL_V2 = '''
def f(x):
    y = x * 2
    print("between the two ops")  # a graph break
    return y + 1
'''
MODEL_V3 = '''
def f(x):
    # Only this comment is new in the third commit.
    y = x * 2
    print("between the two ops")  # a graph break
    return y + 1
'''
TEST_FILE = '''
import torch
from models import f

def test_chain(perfguard):
    perfguard(f, torch.randn(1024))
'''


@dataclass
class Story:
    repo: Path
    commits: list[str]
    outputs: list[str]

    @property
    def db(self) -> Path:
        return self.repo / ".perfguard" / "history.sqlite"


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    """Three commits, each measured by ``pytest --perfguard --perfguard-history-record``
    in a subprocess, exactly as a user runs it in their repository."""
    repo = tmp_path_factory.mktemp("history-repo")
    init_repo(repo)
    (repo / "pytest.ini").write_text("[pytest]\n")
    (repo / ".gitignore").write_text(".perfguard/\n__pycache__/\n")
    (repo / "test_chain.py").write_text(TEST_FILE)
    env = {k: v for k, v in os.environ.items() if k not in GITHUB_VARIABLES}
    commits, outputs = [], []
    for number, model in enumerate((MODEL_V1, MODEL_V2, MODEL_V3), start=1):
        (repo / "models.py").write_text(model)
        commits.append(commit_all(repo, f"commit {number}"))
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "--perfguard", "--perfguard-history-record",
             "-p", "no:cacheprovider", "-q"],
            cwd=repo, capture_output=True, text=True, timeout=600, env=env, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        outputs.append(done.stdout)
    # A pull request that takes the print out again, gated but not recorded (as in CI).
    git(repo, "checkout", "-q", "-b", "fix-graph-break")
    (repo / "models.py").write_text(MODEL_V1)
    commit_all(repo, "remove the print")
    done = subprocess.run([sys.executable, "-m", "pytest", "--perfguard", "-p",
                           "no:cacheprovider", "-q"],
                          cwd=repo, capture_output=True, text=True, timeout=600, env=env,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "perfguard: history:" not in done.stdout
    return Story(repo, commits, outputs)


# ---- recording and reading back ---------------------------------------------------------


def test_each_run_is_recorded_at_its_commit(story: Story) -> None:
    for number, (commit, output) in enumerate(zip(story.commits, story.outputs, strict=True),
                                              start=1):
        assert f"perfguard: history: run {number} recorded in {story.db} ({commit[:12]} on main)" \
            in output, output[-2000:]
    with sqlite3.connect(story.db) as db:
        runs = db.execute("SELECT commit_sha, branch, dirty FROM runs ORDER BY id").fetchall()
        assert runs == [(c, "main", 0) for c in story.commits]
        # The `metrics` view is the long table, for anyone reading the file with sqlite3.
        launches = db.execute(
            "SELECT commit_sha, value, status FROM metrics WHERE test_key = ? AND "
            "metric = 'compiled.kernel_launches' ORDER BY run_id", (TEST_KEY,)).fetchall()
    assert launches == [(story.commits[0], 1, "new"), (story.commits[1], 2, "new"),
                        (story.commits[2], 2, "new")]


def test_first_change_names_the_commit_that_added_the_graph_break(story: Story) -> None:
    middle = story.commits[1]
    for metric, old, new in (("compiled.kernel_launches", "1", "2"),
                             ("compiled.graph_breaks", "0", "1"),
                             ("compiled.bytes_moved", "8,192 B (8.00 KiB)",
                              "16,384 B (16.0 KiB)")):
        result = perfguard("history", "first-change", TEST_KEY, metric, cwd=story.repo)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == f"{middle} is the first commit with {metric} = {new}"
        assert re.match(rf"  at     {middle[:7]}  \d{{4}}-\d\d-\d\d \d\d:\d\d  main  ", lines[2])
        assert lines[3].startswith(f"  before {story.commits[0][:7]} ")
        assert lines[3].endswith(f"  {old}")
        assert lines[4] == "  2 run(s) since have this value"
        # Every commit between was measured: no "git counts" caveat.
        assert "git counts" not in result.stdout


def test_first_change_of_a_metric_that_never_changed_exits_1(story: Story) -> None:
    result = perfguard("history", "first-change", "test_chain", "eager.kernel_launches",
                       cwd=story.repo)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith(f"eager.kernel_launches of {TEST_KEY} (cpu ")
    assert f"never changed: 2 in all 3 recorded run(s) since {story.commits[0][:7]}" \
        in result.stdout


def test_first_change_refuses_timings(story: Story) -> None:
    result = perfguard("history", "first-change", TEST_KEY, "compiled.time_median",
                       cwd=story.repo)
    assert result.returncode == 2
    assert "compiled.time_median is a timing: it varies from run to run" in result.stderr
    assert "Traceback" not in result.stderr


def test_show_lists_every_commit_newest_first(story: Story) -> None:
    c1, c2, c3 = (c[:7] for c in story.commits)
    result = perfguard("history", "show", TEST_KEY, cwd=story.repo)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{TEST_KEY} · compiled.kernel_launches · cpu ")
    date = r"\d{4}-\d\d-\d\d \d\d:\d\d"
    assert len(lines) == 4
    assert re.fullmatch(rf"{c3}  {date}  main  2", lines[1]), lines[1]
    assert re.fullmatch(rf"{c2}  {date}  main  2  \+1 \(\+100\.0%\)", lines[2]), lines[2]
    assert re.fullmatch(rf"{c1}  {date}  main  1", lines[3]), lines[3]

    breaks = perfguard("history", "show", TEST_KEY, "--metric", "compiled.graph_breaks",
                       "-n", "2", cwd=story.repo)
    assert breaks.returncode == 0, breaks.stderr
    values = [line.split()[4] for line in breaks.stdout.splitlines()[1:3]]
    assert values == ["1", "1"]
    assert breaks.stdout.splitlines()[3] == "... 1 older commit(s) not shown (-n 0 shows all)"


def test_show_names_unknown_tests_and_metrics(story: Story) -> None:
    result = perfguard("history", "show", "test_nope", cwd=story.repo)
    assert result.returncode == 2
    assert "no test 'test_nope' in" in result.stderr and TEST_KEY in result.stderr
    result = perfguard("history", "show", TEST_KEY, "--metric", "compiled.nope", cwd=story.repo)
    assert result.returncode == 2
    assert "no metric 'compiled.nope' recorded" in result.stderr
    assert "compiled.graph_breaks" in result.stderr


# ---- the trend report -------------------------------------------------------------------


#: HTML elements without an end tag (Chromium's DOM dump closes every SVG element).
VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                 "source", "track", "wbr"}


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.parents: list[list[tuple[str, dict[str, str]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = (tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        self.parents.append(list(self.stack))
        if tag not in VOID_ELEMENTS:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        self.parents.append(list(self.stack))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def of(self, tag: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag]


def _chromium_dom(tmp_path: Path, page: Path) -> str:
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         "--disable-extensions", "--disable-background-networking", "--disable-sync",
         "--disable-component-update", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no script error and no refused fetch (CSP)
    return result.stdout


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium or chromium-browser on PATH "
                    "(Debian: apt-get install -y chromium)")
def test_trend_report_renders_in_chromium_with_the_step(story: Story, tmp_path: Path) -> None:
    page = tmp_path / "history.html"
    result = perfguard("history", "report", "--html", page, "--db", story.db, "--commit-url",
                       "https://example.invalid/repo/commit/{commit}", cwd=story.repo)
    assert result.returncode == 0, result.stderr
    dom = _Elements()
    dom.feed(_chromium_dom(tmp_path, page))

    csp = [a for a in dom.of("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in csp[0]["content"] and "script-src 'none'" in csp[0]["content"]
    assert dom.of("script") == []
    charts = {a["id"]: a for a in dom.of("svg")}
    assert set(charts) == {"t0-launches", "t0-bytes", "t0-breaks", "t0-memory", "t0-time"}
    # A step marker at the middle commit in the launches, bytes, graph-break and peak-memory
    # charts, and nowhere else. Peak memory: fused, the call allocates only its output
    # (1,024 floats = 4,096 bytes); split by the print, y = x * 2 (4,096 bytes) is still
    # alive while the second graph allocates the output: 8,192 bytes.
    steps = [(parents[-1][1].get("id"), attrs["data-commit"])
             for (tag, attrs), parents in zip(dom.elements, dom.parents, strict=True)
             if tag == "g" and attrs.get("class") == "step"]
    middle = story.commits[1]
    assert sorted(steps) == [("t0-breaks", middle), ("t0-bytes", middle),
                             ("t0-launches", middle), ("t0-memory", middle)]
    # Every point is a link to its commit: 3 runs x 2 lines x 5 charts.
    links = [attrs["href"] for (tag, attrs) in dom.elements if tag == "a"]
    point_links = [h for h in links if h.startswith("https://example.invalid/repo/commit/")]
    assert len(point_links) == 3 * 2 * 5 + 3  # + the table of runs
    assert {h.rsplit("/", 1)[1] for h in point_links} == set(story.commits)
    points = dom.of("circle")
    launches_compiled = [p for p, parents in zip(dom.elements, dom.parents, strict=True)
                         if p[0] == "circle" and any(a.get("id") == "t0-launches"
                                                     for _, a in parents)]
    assert len(launches_compiled) == 6 and len(points) == 3 * 2 * 5


def test_summary_shows_the_current_run_beside_the_last_commits(story: Story,
                                                               tmp_path: Path) -> None:
    """The pull request's run (print removed again) beside the last two recorded commits:
    compiled launches back from 2 to 1, graph breaks from 1 to 0, bytes halved."""
    current = story.repo / ".perfguard" / "report" / "results.json"
    summary = tmp_path / "history.md"
    result = perfguard("history", "report", "--markdown", summary, "--current", current,
                       "--summary-commits", "2", cwd=story.repo)
    assert result.returncode == 0, result.stderr
    lines = summary.read_text().splitlines()
    c2, c3 = story.commits[1][:7], story.commits[2][:7]
    start = lines.index("**1 test(s) changed in this run**")
    assert lines[start + 2:start + 8] == [
        f"| test | metric | `{c2}` | `{c3}` | current |",
        "|---|---|---:|---:|---:|",
        r"| <code>test\_chain.py::test\_chain</code> | compiled.kernel_launches | "
        "**2** +1 (+100.0%) | 2 | **1** -1 (-50.0%) |",
        "|  | eager.kernel_launches | 2 | 2 | 2 |",
        "|  | compiled.bytes_moved | **16.0 KiB** +8.00 KiB (+100.0%) | 16.0 KiB | "
        "**8.00 KiB** -8.00 KiB (-50.0%) |",
        "|  | compiled.graph_breaks | **1** +1 | 1 | **0** -1 (-100.0%) |",
    ]
    with sqlite3.connect(story.db) as db:  # the pull request's run was not recorded
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (3,)
    db.close()


def test_report_golden_markdown(tmp_path: Path) -> None:
    """Three commits of the hand-built sample run, the second adding a kernel and a graph
    break to test_mlp_block; the current run (a pull request) takes both back."""
    db = tmp_path / "h.sqlite"
    base = sample_results()
    for commit, extra, created in (("1" * 40, 0, "2025-11-26T14:40:00+00:00"),
                                   ("2" * 40, 1, "2025-11-27T09:00:00+00:00"),
                                   ("3" * 40, 1, "2025-11-28T09:00:00+00:00")):
        run = sample_results()
        run.created = created
        for entry in run.entries:
            if entry.measurement.key.endswith("test_mlp_block"):
                entry.measurement.compiled.kernel_launches = (
                    (entry.measurement.compiled.kernel_launches or 0) + extra)
                entry.measurement.compiled.graph_breaks = (
                    (entry.measurement.compiled.graph_breaks or 0) + extra)
        path = tmp_path / f"{commit[:1]}.json"
        path.write_text(run.dumps())
        result = perfguard("history", "add", path, "--commit", commit, "--branch", "main",
                           "--db", db, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    current = tmp_path / "current.json"
    current.write_text(base.dumps())
    out = tmp_path / "history.md"
    result = perfguard("history", "report", "--markdown", out, "--current", current,
                       "--db", db, "--commit-url", "https://example.invalid/c/{commit}",
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    if os.environ.get("PERFGUARD_REGEN_GOLDEN"):  # regenerate deliberately, review the diff
        (GOLDEN / "history.md").write_text(out.read_text())
    assert out.read_text() == (GOLDEN / "history.md").read_text()


# ---- the database: concurrency, corruption, versions ------------------------------------


APPENDER = textwrap.dedent("""
    import sys
    from pytest_perfguard.cli import main

    db, results, prefix, count = sys.argv[1:]
    for i in range(int(count)):
        code = main(["history", "add", results, "--commit", f"{prefix}{i:04d}", "--db", db])
        if code != 0:
            sys.exit(f"append {i} failed with {code}")
""")


def test_two_concurrent_appenders_lose_nothing(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(sample_results().dumps())
    script = tmp_path / "appender.py"
    script.write_text(APPENDER)
    db = tmp_path / "new" / "history.sqlite"  # both race to create it, too
    per_process = 40
    processes = [subprocess.Popen([sys.executable, str(script), str(db), str(results), prefix,
                                   str(per_process)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for prefix in ("aaaa", "bbbb")]
    outputs = [p.communicate(timeout=300) for p in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
        assert out.count("appended to") == per_process
    per_run = sum(len(measurement_metrics(e.measurement)) for e in sample_results().entries)
    with sqlite3.connect(db) as connection:
        commits = {row[0] for row in connection.execute("SELECT commit_sha FROM runs")}
        assert commits == {f"{p}{i:04d}" for p in ("aaaa", "bbbb") for i in range(per_process)}
        (measurements,) = connection.execute("SELECT count(*) FROM measurements").fetchone()
        (values,) = connection.execute("SELECT count(*) FROM metric_values").fetchone()
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    assert measurements == 2 * per_process * len(sample_results().entries)
    assert values == 2 * per_process * per_run
    assert mode == "wal"
    shown = perfguard("history", "show", "test_mlp_block", "--db", db, cwd=tmp_path)
    assert len(shown.stdout.splitlines()) == 1 + 2 * per_process


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _history(tmp_path: Path) -> Path:
    results = tmp_path / "results.json"
    results.write_text(sample_results().dumps())
    db = tmp_path / "db" / "history.sqlite"
    for commit in ("a" * 40, "b" * 40):
        assert perfguard("history", "add", results, "--commit", commit, "--db", db,
                         cwd=tmp_path).returncode == 0
    return db


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign", "newer"])
def test_an_unusable_database_is_a_clear_error_and_left_as_it_was(tmp_path: Path,
                                                                  damage: str) -> None:
    db = _history(tmp_path)
    expected = {
        "garbage": "not an SQLite database (it starts with b'{\"runs\":')",
        "truncated": "the file is corrupt; perfguard leaves it as it is",
        "foreign": "an SQLite database, but not a perfguard history (application id 0x0, "
                   "tables: notes)",
        "newer": f"history schema 99 is newer than this perfguard understands "
                 f"({SCHEMA_VERSION}); upgrade pytest-torch-perfguard",
    }[damage]
    if damage == "garbage":
        db.write_bytes(b'{"runs": [1, 2, 3]} this is not a database\n')
    elif damage == "truncated":
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 2])
    elif damage == "foreign":
        db.unlink()
        with sqlite3.connect(db) as connection:
            connection.execute("CREATE TABLE notes (text TEXT)")
            connection.execute("INSERT INTO notes VALUES ('mine')")
        connection.close()
    else:
        with sqlite3.connect(db) as connection:
            connection.execute("PRAGMA user_version = 99")
        connection.close()
    before = _snapshot(db.parent)
    results = tmp_path / "results.json"
    for args in (("show", "test_mlp_block"),
                 ("first-change", "test_mlp_block", "compiled.kernel_launches"),
                 ("add", results, "--commit", "c" * 40),
                 ("report", "--html", tmp_path / "h.html")):
        result = perfguard("history", *args, "--db", db, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stderr.startswith(f"perfguard: error: {db}: "), result.stderr
        assert expected in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert _snapshot(db.parent) == before  # not one byte changed, no file added


def test_check_history_refuses_early_and_touches_nothing(tmp_path: Path) -> None:
    """What the plugin may call before the tests run: a missing file is fine (it will be
    created), an unusable one raises at once."""
    check_history(tmp_path / "absent.sqlite")
    assert not (tmp_path / "absent.sqlite").exists()
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not sqlite")
    with pytest.raises(HistoryError, match="bad.sqlite: not an SQLite database"):
        check_history(bad)
    assert bad.read_bytes() == b"not sqlite" and len(list(tmp_path.iterdir())) == 1


def test_a_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    result = perfguard("history", "show", "x", "--db", tmp_path / "none.sqlite", cwd=tmp_path)
    assert result.returncode == 2
    assert "none.sqlite: no history database here; record runs with" in result.stderr
    assert not (tmp_path / "none.sqlite").exists()


def test_schema_is_versioned_and_marked(tmp_path: Path) -> None:
    db = _history(tmp_path)
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert connection.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()


def test_runs_of_one_commit_make_one_line(tmp_path: Path) -> None:
    """Re-runs of a commit (and dirty runs on top of it) are folded like ``git log`` would
    show one commit; a metric that differs between runs of one commit says so."""
    db = _history(tmp_path)  # commits a... and b...
    run = sample_results()
    for created, extra, dirty in (("2026-01-01T00:00:00+00:00", 0, False),
                                  ("2026-01-02T00:00:00+00:00", 2, False),
                                  ("2026-01-03T00:00:00+00:00", 2, True)):
        run.created = created
        for entry in run.entries:
            if entry.measurement.key.endswith("test_mlp_block"):
                entry.measurement.compiled.kernel_launches = 5 + extra
        path = tmp_path / "again.json"
        path.write_text(run.dumps())
        args = ["--dirty"] if dirty else []
        assert perfguard("history", "add", path, "--commit", "b" * 40, *args, "--db", db,
                         cwd=tmp_path).returncode == 0
    shown = perfguard("history", "show", "test_mlp_block", "--db", db, cwd=tmp_path)
    lines = [re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", "DATE", line)
             for line in shown.stdout.splitlines()[1:]]
    assert lines == ["bbbbbbb-dirty  DATE  -  7",
                     "bbbbbbb        DATE  -  7 (3 runs: 5 to 7)  +2 (+40.0%)",
                     "aaaaaaa        DATE  -  5"]
    # The sample's launches are 5 for a... and b...'s first runs, 7 for its last clean run:
    # first-change names b..., with a warning that b...'s runs disagree.
    answer = perfguard("history", "first-change", "test_mlp_block", "compiled.kernel_launches",
                       "--db", db, cwd=tmp_path)
    assert answer.returncode == 0
    assert answer.stdout.splitlines()[0] == ("b" * 40 + " is the first commit with "
                                             "compiled.kernel_launches = 7")
    assert "warning: runs of bbbbbbb disagree" in answer.stdout


def test_adding_the_same_results_twice_adds_one_run(tmp_path: Path) -> None:
    db = _history(tmp_path)
    again = perfguard("history", "add", tmp_path / "results.json", "--commit", "a" * 40,
                      "--db", db, cwd=tmp_path)
    assert again.returncode == 0
    assert "already recorded for " + "a" * 40 + " (run 1 in" in again.stdout
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    connection.close()


# ---- the plugin: a corrupt database, and a project outside git ---------------------------


def test_plugin_reports_an_unusable_database_and_records_outside_git(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in GITHUB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(test_x="""
        import torch

        def test_chain(perfguard):
            perfguard(lambda x: x * 2 + 1, torch.randn(1024))
    """)
    db = pytester.path / ".perfguard" / "history.sqlite"
    db.parent.mkdir()
    db.write_bytes(b"garbage, not a database")
    # Checked before the tests run: a usage error, and the file is left as it was.
    result = pytester.runpytest("--perfguard", "--perfguard-history-record")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*perfguard: {db}: not an SQLite database*"])
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output and "Traceback" not in output
    assert db.read_bytes() == b"garbage, not a database"

    # The ini twins; pytester.path is not in a git repository.
    pytester.makeini("""
        [pytest]
        perfguard_history_record = true
        perfguard_history = elsewhere/h.sqlite
    """)
    result = pytester.runpytest("--perfguard")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    other = pytester.path / "elsewhere" / "h.sqlite"
    result.stdout.fnmatch_lines([
        f"perfguard: history: run 1 recorded in {other} (unknown); {pytester.path} is not in "
        "a git repository and GITHUB_SHA is not set*"])
    shown = perfguard("history", "show", "test_x.py::test_chain", "--db", other,
                      cwd=pytester.path)
    assert shown.returncode == 0, shown.stderr
    assert re.fullmatch(r"unknown  \d{4}-\d\d-\d\d \d\d:\d\d  -  1",
                        shown.stdout.splitlines()[1]), shown.stdout


# ---- which commit: git and GitHub Actions -----------------------------------------------


def test_detect_reads_git_and_github_variables(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    init_repo(repo)
    (repo / "model.py").write_text("x = 1\n")
    (repo / ".perfguard").mkdir()
    (repo / ".perfguard" / "baseline.json").write_text("{}\n")
    head = commit_all(repo, "one")
    assert detect(repo, environ={}) == detect(repo / ".perfguard", environ={})
    assert detect(repo, environ={}).commit == head
    clean = detect(repo, environ={})
    assert (clean.branch, clean.dirty, clean.note) == ("main", False, "")

    (repo / "new_file.py").write_text("untracked files do not make a tree dirty\n")
    assert not detect(repo, environ={}).dirty
    # perfguard's own writes (an update rewrites the baseline) are not dirt.
    (repo / ".perfguard" / "baseline.json").write_text('{"updated": true}\n')
    assert not detect(repo, ignore=[repo / ".perfguard"], environ={}).dirty
    assert detect(repo, environ={}).dirty
    (repo / ".perfguard" / "baseline.json").write_text("{}\n")
    (repo / "model.py").write_text("x = 2\n")
    assert detect(repo, ignore=[repo / ".perfguard"], environ={}).dirty

    actions = detect(repo, environ={"GITHUB_SHA": "f" * 40, "GITHUB_REF_NAME": "main",
                                    "GITHUB_HEAD_REF": "feature/x"})
    assert (actions.commit, actions.branch) == ("f" * 40, "feature/x")
    git(repo, "checkout", "-q", "--detach")
    assert detect(repo, environ={}).branch == ""

    outside = detect(tmp_path, environ={})
    assert outside.commit == "unknown" and "not in a git repository" in outside.note
