"""Which commit a run measured: from GitHub Actions' variables or from git itself.

- commit: ``GITHUB_SHA``, else ``git rev-parse HEAD``. (On a ``pull_request`` event
  ``GITHUB_SHA`` is the temporary merge commit, which is why the workflow template records
  only pushes to the default branch.)
- branch: ``GITHUB_HEAD_REF`` (a pull request's branch), else ``GITHUB_REF_NAME``, else
  ``git rev-parse --abbrev-ref HEAD`` (empty on a detached HEAD).
- dirty: tracked files differ from the commit (``git status --porcelain
  --untracked-files=no``, what ``git describe --dirty`` means), leaving out the files
  perfguard itself writes (the report, the baseline an update rewrites, the history).

Outside a git repository with no ``GITHUB_SHA`` the commit is ``unknown`` and the note
says so: the run is still recorded, for its trend, but no commit can be named for it.

Commits come from outside (``--commit``, ``GITHUB_SHA``, a history database) and are handed
to git, so each is checked where it enters (:func:`commit_problem`), and the one git call
that takes them (``rev-list``) ends its options with ``--end-of-options``: a commit
``--output=FILE`` can never be read as an option.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

UNKNOWN_COMMIT = "unknown"


@dataclass(frozen=True)
class CommitInfo:
    commit: str
    branch: str
    dirty: bool
    #: Why something could not be found (empty when all is known).
    note: str = ""


#: A full or abbreviated object name: SHA-1 (40 hex digits) or SHA-256 (64).
_OBJECT_NAME = re.compile(r"[0-9a-fA-F]{4,64}")
#: What ``git check-ref-format --allow-onelevel`` refuses anywhere in a ref name: control
#: characters, space, ``~^:?*[\``, ``..``, ``@{``, ``//``, a component starting with ``.``
#: or ending with ``.lock``.
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|(?:^|/)\.|\.lock(?:/|$)")


def is_object_name(commit: str) -> bool:
    """Whether ``commit`` is a (full or abbreviated) hex object name."""
    return _OBJECT_NAME.fullmatch(commit) is not None


def commit_problem(commit: str) -> str | None:
    """Why ``commit`` is not something perfguard records as a commit (None when it is).

    Accepted: an object name (4 to 64 hex digits), ``unknown``, or a ref name git accepts
    (``git check-ref-format --allow-onelevel``: ``v1.2``, ``release/2.0``) that does not
    start with ``-``, so that git can never read it as an option.
    """
    if is_object_name(commit) or commit == UNKNOWN_COMMIT:
        return None
    if not commit:
        return "it is empty"
    if len(commit) > 255:
        return "it is longer than 255 characters"
    if commit.startswith("-"):
        return "it starts with '-' (git would read it as an option)"
    if (_BAD_REF.search(commit) or commit.endswith((".", "/")) or commit.startswith("/")
            or commit == "@" or not commit.isprintable()):
        return ("it is neither a hex object name nor a valid ref name (see "
                "git check-ref-format)")
    return None


def commit_argument(text: str) -> str:
    """``--commit``'s argparse type: the commit, or a usage error saying what is wrong."""
    problem = commit_problem(text.strip())
    if problem is not None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise argparse.ArgumentTypeError(f"{shown!r} is not a commit id: {problem}")
    return text.strip()


def _git(cwd: Path, *args: str) -> str | None:
    """``git ARGS`` in ``cwd``; its output, or None when git is missing or fails. Only
    :func:`commits_between` passes outside text, after ``--end-of-options``."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=30,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "surrogateescape")


def detect(cwd: Path, *, ignore: Sequence[Path] = (),
           environ: Mapping[str, str] | None = None) -> CommitInfo:
    """The commit, branch and dirty flag of the checkout at ``cwd``.

    ``ignore``: files or folders whose changes do not make the tree dirty.
    """
    env = os.environ if environ is None else environ
    top = _git(cwd, "rev-parse", "--show-toplevel")
    commit = env.get("GITHUB_SHA", "").strip()
    branch = (env.get("GITHUB_HEAD_REF", "").strip() or env.get("GITHUB_REF_NAME", "").strip())
    ignored = ""  # what of the environment was not used, and why
    if commit and not is_object_name(commit):
        ignored = f"GITHUB_SHA={commit[:80]!r} is not a hex object name and was ignored; "
        commit = ""
    if branch and commit_problem(branch):
        ignored += f"the branch {branch[:80]!r} is not a valid ref name and was ignored; "
        branch = ""
    if top is None:
        note = ignored.removesuffix("; ") if commit else ignored + (
            f"{cwd} is not in a git repository and GITHUB_SHA is not set: the run is "
            f"recorded with commit '{UNKNOWN_COMMIT}' (record a known commit with "
            "`perfguard history add RESULTS.json --commit SHA`)"
        )
        return CommitInfo(commit or UNKNOWN_COMMIT, branch, dirty=False, note=note)
    root = Path(top.strip())
    if not commit:
        head = _git(cwd, "rev-parse", "HEAD")
        if head is None:
            return CommitInfo(UNKNOWN_COMMIT, branch, dirty=True, note=ignored
                              + f"{root} has no commit yet: recorded as '{UNKNOWN_COMMIT}'")
        commit = head.strip()
    if not branch:
        name = (_git(cwd, "rev-parse", "--abbrev-ref", "HEAD") or "").strip()
        branch = "" if name == "HEAD" else name
    status = _git(cwd, "status", "--porcelain", "-z", "--untracked-files=no", "--")
    if status is None:
        return CommitInfo(commit, branch, dirty=False, note=ignored
                          + "`git status` failed: the dirty flag is unknown (recorded clean)")
    return CommitInfo(commit, branch, dirty=bool(_changed(status, root, ignore)),
                      note=ignored.removesuffix("; "))


def _changed(status: str, root: Path, ignore: Sequence[Path]) -> list[str]:
    """Paths in ``git status --porcelain -z`` output outside the ignored ones."""
    ignored = [Path(os.path.realpath(p)) for p in ignore]
    real_root = Path(os.path.realpath(root))
    fields = status.split("\0")
    changed: list[str] = []
    index = 0
    while index < len(fields):
        record = fields[index]
        index += 1
        if len(record) < 4:
            continue
        code, path = record[:2], record[3:]
        if "R" in code or "C" in code:
            index += 1  # the rename's or copy's source path follows
        full = real_root / path
        if any(full == p or p in full.parents for p in ignored):
            continue
        changed.append(path)
    return changed


def commits_between(cwd: Path, old: str, new: str) -> int | None:
    """How many commits ``git rev-list old..new`` lists (None outside git, if unknown, or
    if either is not a commit id: a history database is outside text too)."""
    if UNKNOWN_COMMIT in (old, new) or commit_problem(old) or commit_problem(new):
        return None
    out = _git(cwd, "rev-list", "--count", "--end-of-options", f"{old}..{new}", "--")
    try:
        return int(out.strip()) if out is not None else None
    except ValueError:
        return None
