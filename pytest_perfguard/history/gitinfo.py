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
"""

from __future__ import annotations

import os
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


def _git(cwd: Path, *args: str) -> str | None:
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
    if top is None:
        note = "" if commit else (
            f"{cwd} is not in a git repository and GITHUB_SHA is not set: the run is "
            f"recorded with commit '{UNKNOWN_COMMIT}' (record a known commit with "
            "`perfguard history add RESULTS.json --commit SHA`)"
        )
        return CommitInfo(commit or UNKNOWN_COMMIT, branch, dirty=False, note=note)
    root = Path(top.strip())
    if not commit:
        head = _git(cwd, "rev-parse", "HEAD")
        if head is None:
            return CommitInfo(UNKNOWN_COMMIT, branch, dirty=True,
                              note=f"{root} has no commit yet: recorded as '{UNKNOWN_COMMIT}'")
        commit = head.strip()
    if not branch:
        name = (_git(cwd, "rev-parse", "--abbrev-ref", "HEAD") or "").strip()
        branch = "" if name == "HEAD" else name
    status = _git(cwd, "status", "--porcelain", "-z", "--untracked-files=no")
    if status is None:
        return CommitInfo(commit, branch, dirty=False,
                          note="`git status` failed: the dirty flag is unknown (recorded clean)")
    return CommitInfo(commit, branch, dirty=bool(_changed(status, root, ignore)))


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
    """How many commits ``git rev-list old..new`` lists (None outside git or if unknown)."""
    if UNKNOWN_COMMIT in (old, new):
        return None
    out = _git(cwd, "rev-list", "--count", f"{old}..{new}")
    try:
        return int(out.strip()) if out is not None else None
    except ValueError:
        return None
