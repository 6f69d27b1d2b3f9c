"""The history of every metric across commits: an SQLite file, queries, trend reports.

The plugin calls :func:`record_session` once per session (on the controller, with
``--perfguard-history-record``); the ``perfguard history`` commands come from
:func:`~pytest_perfguard.history.cli.add_history_parser`. No torch is imported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..results import RunResults
from .gitinfo import detect
from .store import DEFAULT_HISTORY, HistoryError, HistoryStore, RunInfo

__all__ = ["DEFAULT_HISTORY", "HistoryError", "HistoryStore", "RunInfo", "check_history",
           "record_session"]


def record_session(results: RunResults, db_path: Path, *, cwd: Path,
                   ignore: Sequence[Path] = ()) -> str:
    """Append a finished pytest run to the history at ``db_path``; return what was done.

    The commit, branch and dirty flag come from :func:`~.gitinfo.detect` run in ``cwd``
    (``ignore``: files perfguard writes, which do not make the tree dirty). Raises
    :class:`HistoryError` when the database cannot be used; it is then left as it was.
    """
    if not results.entries:
        return "history: no measurement in this run, nothing recorded"
    info = detect(cwd, ignore=[db_path, *ignore])
    with HistoryStore.open(db_path, create=True) as store:
        outcome = store.append(results, RunInfo(commit=info.commit, branch=info.branch,
                                                dirty=info.dirty, source="pytest"))
    state = f"{info.commit[:12]}{' (dirty)' if info.dirty else ''}"
    if info.branch:
        state += f" on {info.branch}"
    message = (f"history: run {outcome.run_id} recorded in {db_path} ({state})"
               if outcome.added else f"history: already recorded as run {outcome.run_id}")
    return message + (f"; {info.note}" if info.note else "")


def check_history(db_path: Path) -> None:
    """Raise :class:`HistoryError` now if ``db_path`` exists and cannot be used, so a run
    with ``--perfguard-history-record`` can stop before its tests instead of after."""
    if db_path.exists():
        HistoryStore.open(db_path, create=True).close()
