"""Hostile text in what perfguard prints and renders: commits handed to git, markdown for
the job summary and PR comment, and terminal escapes in test ids and names.

Commits, branches and names are outside text: a ``--commit``, ``GITHUB_SHA``, a history
database, a ``perfguard(..., name=...)``. Each test puts such text through the commands a
user runs (pytest in a subprocess, ``python -m pytest_perfguard.cli``) with real git and
real sqlite, and checks that git read no option, that the markdown renders no image,
mention, link or heading of the attacker's, and that no control character reaches a
terminal.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from report_factory import sample_results

try:
    from markdown_it import MarkdownIt
except ImportError:  # pragma: no cover
    MarkdownIt = None  # type: ignore[assignment,misc]

from pytest_perfguard.history.gitinfo import commit_problem

#: Variables that would make the recorded commit the CI job's rather than the test's.
GITHUB_VARIABLES = ("GITHUB_SHA", "GITHUB_REF_NAME", "GITHUB_HEAD_REF", "GITHUB_STEP_SUMMARY",
                    "GITHUB_SERVER_URL", "GITHUB_REPOSITORY")
#: Markdown that, rendered raw by GitHub, shows a tracking image and pings a user.
IMAGE_AND_MENTION = "v1` | @octocat ![t](https://evil.example/t.png) `"
#: Erases the current terminal line and prints a green "PASSED" instead.
ERASE_LINE = "\x1b[2K\r\x1b[32mPASSED all good"
VICTIM_TEXT = "precious data\n"


def perfguard(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in GITHUB_VARIABLES}
    return subprocess.run([sys.executable, "-m", "pytest_perfguard.cli", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300, env=env,
                          check=False)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True, timeout=60)
    return done.stdout.strip()


def git_repo(repo: Path, commits: int) -> list[str]:
    """A repository at ``repo`` with ``commits`` commits; their hashes, oldest first."""
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.name", "perfguard tests")
    git(repo, "config", "user.email", "tests@perfguard.invalid")
    git(repo, "config", "commit.gpgsign", "false")
    hashes = []
    for number in range(commits):
        (repo / "model.py").write_text(f"VERSION = {number}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"commit {number}")
        hashes.append(git(repo, "rev-parse", "HEAD"))
    return hashes


def history_of_three_runs(tmp_path: Path, commits: list[str]) -> Path:
    """A history of the sample run at ``commits``: test_mlp_block's compiled launches
    step up at the second commit. Recorded with ``perfguard history add``."""
    db = tmp_path / "history.sqlite"
    for index, commit in enumerate(commits):
        run = sample_results()
        run.created = f"2025-11-2{index + 1}T09:00:00+00:00"
        for entry in run.entries:
            if entry.measurement.key.endswith("test_mlp_block"):
                compiled = entry.measurement.compiled
                compiled.kernel_launches = (compiled.kernel_launches or 0) + min(index, 1)
        path = tmp_path / f"run{index}.json"
        path.write_text(run.dumps())
        done = perfguard("history", "add", path, "--commit", commit, "--branch", "main",
                         "--db", db, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    return db


def rewrite_runs(db: Path, column: str, values: list[str]) -> None:
    """Set ``column`` of the runs, oldest first, as a database written by an older
    perfguard (which took any ``--commit``) or by hand may hold them."""
    with sqlite3.connect(db) as connection:
        ids = [row[0] for row in connection.execute("SELECT id FROM runs ORDER BY id")]
        for run_id, value in zip(ids, values, strict=False):
            connection.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, run_id))
    connection.close()


def assert_inert_markdown(text: str) -> None:
    """No mention, and, rendered as CommonMark with tables and raw HTML (GitHub's dialect
    short of its autolinks), no image, no link to the attacker's site, no injected heading."""
    assert not re.search(r"(?<![\w&#;])@octocat", text), "a raw @mention"
    headings = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert all("injected" not in line for line in headings), headings
    if MarkdownIt is None:  # markdown-it-py comes with rich; the checks above still ran
        return
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(text)
    assert "<img" not in rendered
    assert 'href="https://evil' not in rendered
    assert not re.search(r"<h\d>[^<]*injected", rendered)


# --- 2. commits handed to git ----------------------------------------------------------


@pytest.mark.parametrize("commit", ["--output={victim}", "{victim}", IMAGE_AND_MENTION,
                                    "main\n# injected", "a..b", ""])
def test_history_add_refuses_what_is_not_a_commit(tmp_path: Path, commit: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    results = tmp_path / "results.json"
    results.write_text(sample_results().dumps())
    db = tmp_path / "history.sqlite"
    done = perfguard("history", "add", results, f"--commit={commit.format(victim=victim)}",
                     "--db", db, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    (message,) = [line for line in done.stderr.splitlines() if "error:" in line]
    assert "argument --commit:" in message and "is not a commit id" in message
    assert "Traceback" not in done.stderr
    assert victim.read_text() == VICTIM_TEXT
    assert not db.exists()


def test_history_add_takes_hex_commits_and_ref_names(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(sample_results().dumps())
    for commit in ("a" * 40, "b" * 64, "1234abc", "v1.2.0", "release/2.0"):
        done = perfguard("history", "add", results, "--commit", commit,
                         "--db", tmp_path / "h.sqlite", cwd=tmp_path)
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", ["main", "v1.2", "release/2.0", "a..b", "x.lock", ".hidden",
                                  "a/.b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[b",
                                  "a\\b", "a@{1}", "@", "a//b", "/a", "a/", "a.", "tab\there",
                                  "x\x7f", "feature/@me", "a|b`c"])
def test_ref_names_accepted_as_git_check_ref_format_does(tmp_path: Path, name: str) -> None:
    """The validator agrees with the real ``git check-ref-format --allow-onelevel``."""
    done = subprocess.run(["git", "check-ref-format", "--allow-onelevel", name],
                          capture_output=True, check=False, cwd=tmp_path)
    assert (commit_problem(name) is None) == (done.returncode == 0)


def test_first_change_passes_no_commit_from_the_database_to_git_as_an_option(
        tmp_path: Path) -> None:
    """The commits of the issue: ``rev-list --count --output=/../VICTIM`` truncated it."""
    commits = git_repo(tmp_path / "repo", 3)
    db = history_of_three_runs(tmp_path, commits)
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    # The change is at the second run: git is asked to count OLD..NEW of the first two.
    rewrite_runs(db, "commit_sha", ["--output=/", str(victim), str(victim)])
    done = perfguard("history", "first-change", "test_mlp_block", "compiled.kernel_launches",
                     "--db", db, cwd=tmp_path / "repo")
    assert victim.read_text() == VICTIM_TEXT
    assert "Traceback" not in done.stderr
    # Well-formed commits still get git's count: the same history with real hex commits.
    rewrite_runs(db, "commit_sha", [commits[0], commits[2], commits[2]])
    done = perfguard("history", "first-change", "test_mlp_block", "compiled.kernel_launches",
                     "--db", db, cwd=tmp_path / "repo")
    assert done.returncode == 0, done.stderr
    assert "git counts 2 commits" in done.stdout


def test_a_hostile_github_sha_is_ignored_when_recording(tmp_path: Path) -> None:
    from pytest_perfguard.history.gitinfo import detect

    commits = git_repo(tmp_path / "repo", 1)
    info = detect(tmp_path / "repo", environ={"GITHUB_SHA": "--output=/x",
                                              "GITHUB_HEAD_REF": "a b\x1b[2K"})
    assert info.commit == commits[0]
    assert info.branch == git(tmp_path / "repo", "rev-parse", "--abbrev-ref", "HEAD")
    assert "GITHUB_SHA='--output=/x' is not a hex object name and was ignored" in info.note
    assert "the branch 'a b\\x1b[2K' is not a valid ref name and was ignored" in info.note


# --- 3. markdown: the job summary, the PR comment, the history table -------------------


def test_history_markdown_renders_no_markup_from_commits_branches_or_names(
        tmp_path: Path) -> None:
    db = history_of_three_runs(tmp_path, ["1" * 40, "2" * 40, "3" * 40])
    rewrite_runs(db, "commit_sha",
                 [IMAGE_AND_MENTION, "abc)![t](https://evil.example/t.png)", "3" * 40])
    rewrite_runs(db, "branch", ["main\n# injected heading"] * 3)
    current = sample_results()
    current.entries[0].measurement.name = f"{IMAGE_AND_MENTION}\n# injected heading"
    current_file = tmp_path / "current.json"
    current_file.write_text(current.dumps())
    out = tmp_path / "history.md"
    done = perfguard("history", "report", "--markdown", out, "--current", current_file,
                     "--branch", "main\n# injected heading",
                     "--commit-url", "https://github.com/o/r/commit/{commit}",
                     "--db", db, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert_inert_markdown(text)
    # The hex commit still links; the others are shown as escaped code, not linked.
    assert f"[3333333](https://github.com/o/r/commit/{'3' * 40})" in text
    assert "commit/abc" not in text
    assert r"<code>v1\` \| @&#8203;octocat \!\[t\](https://evil.example/t.png) \`</code>" in text


def test_report_markdown_renders_no_markup_from_names(tmp_path: Path) -> None:
    results = sample_results()
    results.entries[0].measurement.name = f"{IMAGE_AND_MENTION}\n# injected {ERASE_LINE}"
    path = tmp_path / "results.json"
    path.write_text(results.dumps())
    done = perfguard("report", path, "--markdown", tmp_path / "report.md", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "report.md").read_text()
    assert_inert_markdown(text)
    assert "\x1b" not in text
    assert "@&#8203;octocat" in text


# --- 4. terminal escapes ------------------------------------------------------------------

MODEL = '''
def model(x):
    y = x * 2 + 1
    return y - 0.5
'''

TEST = '''
import torch
import model

NAME = {name!r}


def test_hostile(perfguard):
    perfguard(model.model, torch.randn(256), name=NAME)
'''

#: A graph break between the two ops: more kernel launches, so the test regresses.
GRAPH_BREAK = ("    y = x * 2 + 1\n", "    y = x * 2 + 1\n    print('debug')\n")
HOSTILE_NAME = f"{ERASE_LINE} \u202eevil {IMAGE_AND_MENTION}"


def assert_no_control(text: str) -> None:
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text), \
        [line for line in text.splitlines() if not line.isprintable()][:5]


def test_escapes_in_a_name_reach_no_terminal(pytester: pytest.Pytester,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The regressed line is shown, with the name's escapes written out, in pytest's
    failure output, the terminal summary, ``compare``, ``show`` and ``history show``; the
    job summary renders no markup from it."""
    for variable in GITHUB_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    pytester.makepyfile(model=MODEL, test_hostile=TEST.format(name=HOSTILE_NAME))
    result = pytester.runpytest("--perfguard", "--perfguard-update", "--color=no")
    result.assert_outcomes(passed=1)

    path = pytester.path / "model.py"
    path.write_text(path.read_text().replace(*GRAPH_BREAK))
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest("--perfguard", "--color=no")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    result.assert_outcomes(failed=1)
    output = result.stdout.str() + result.stderr.str()
    assert_no_control(output)
    shown = r"\x1b[2K\r\x1b[32mPASSED all good \u202eevil"
    regressed = [line for line in output.splitlines() if "regressed" in line and shown in line]
    assert regressed, output
    assert_inert_markdown(summary.read_text())

    baseline = pytester.path / ".perfguard" / "baseline.json"
    results = pytester.path / ".perfguard" / "report" / "results.json"
    compare = perfguard("compare", baseline, results, cwd=pytester.path)
    assert compare.returncode == 1, compare.stderr
    assert_no_control(compare.stdout + compare.stderr)
    assert any(line.startswith("FAILED") and shown in line for line in compare.stdout.splitlines())

    show = perfguard("show", baseline, cwd=pytester.path)
    assert show.returncode == 0, show.stderr
    assert_no_control(show.stdout + show.stderr)
    assert shown in show.stdout

    db = pytester.path / "h.sqlite"
    done = perfguard("history", "add", results, "--commit", "a" * 40, "--db", db,
                     cwd=pytester.path)
    assert done.returncode == 0, done.stderr
    assert_no_control(done.stdout + done.stderr)
    history = perfguard("history", "show", "test_hostile", "--db", db, cwd=pytester.path)
    assert history.returncode == 0, history.stderr
    assert_no_control(history.stdout + history.stderr)
    assert shown in history.stdout
