"""Merge several ``results.json`` documents into one, e.g. the CPU and GPU jobs of a CI matrix.

Used by ``perfguard report A.json B.json``. Pure: no I/O, inputs are not modified.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from ..results import ResultEntry, RunResults, TestError


def merge_results(runs: list[RunResults]) -> RunResults:
    """One :class:`RunResults` holding the entries of every run.

    An entry is identified by its measurement key plus its environment key, so the same
    test measured on a CPU job and on a GPU job stays twice. When the same test in the
    same environment appears in several runs (a re-run job), the later run wins and its
    entry takes the earlier one's place.

    Run-level fields: ``created`` is the latest; ``tool_version`` and ``baseline_path`` are
    kept when the runs agree and joined with ``", "`` when they differ; ``rules`` are the
    first run's that has any (a CI matrix shares its rules; each verdict was made with its
    own run's rules either way). Errored tests of every run are kept, in run order, each
    distinct error once.
    """
    by_identity: dict[tuple[str, str], ResultEntry] = {}
    for run in runs:
        for entry in run.entries:
            identity = (entry.measurement.key, entry.measurement.environment.key())
            by_identity[identity] = copy.deepcopy(entry)
    rules: dict[str, Any] = copy.deepcopy(next((run.rules for run in runs if run.rules), {}))
    errors: dict[tuple[str, str, str], TestError] = {}
    for run in runs:
        for error in run.errors:
            errors.setdefault((error.test_id, error.when, error.message), copy.copy(error))
    return RunResults(
        entries=list(by_identity.values()),
        errors=list(errors.values()),
        created=max((run.created for run in runs), default=""),
        tool_version=_joined(run.tool_version for run in runs),
        rules=rules,
        baseline_path=_joined(run.baseline_path for run in runs),
    )


def _joined(values: Iterable[str]) -> str:
    distinct = list(dict.fromkeys(v for v in values if v))
    return ", ".join(distinct)
