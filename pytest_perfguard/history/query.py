"""Reading a metric's history: ``show`` (its value per commit) and ``first-change`` (the
commit that gave it its current value). Pure functions over an open
:class:`~pytest_perfguard.history.store.HistoryStore`; they return text and an exit code,
the CLI prints them.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass

from ._text import format_change, format_value
from .gitinfo import UNKNOWN_COMMIT
from .metrics import canonical_metric, is_timing
from .store import HistoryError, HistoryStore, Row, Run, Series, TestRef, run_of, short_commit

DEFAULT_METRIC = "compiled.kernel_launches"


def resolve_series(store: HistoryStore, test: str, metric: str,
                   environment: str | None = None, *, name: str | None = None
                   ) -> tuple[Series, list[Series]]:
    """The series of ``metric`` for the test named ``test``, and the other environments'.

    ``test`` is a measurement key (``path::test`` or ``path::test::name``), or a unique
    end or part of one; with ``name``, the node id of the measurement of that name.
    ``metric`` may be spelt as any perfguard output prints it (``graph_breaks``,
    ``compiled kernel_launches``: :func:`~.metrics.canonical_metric`). Without
    ``environment`` (a key prefix or part of a label) the environment most recently
    recorded for this test is taken.
    """
    matches = store.tests_matching(test, name)
    if not matches:
        keys = store.test_keys()
        shown = "\n  ".join(keys[:20]) + ("\n  ..." if len(keys) > 20 else "")
        what = f"{test!r}" + (f" named {name!r}" if name is not None else "")
        raise HistoryError(f"no test {what} in {store.path}; recorded tests:\n  {shown}"
                           if keys else f"no test {what} in {store.path}: it holds no tests")
    if len(matches) > 1:
        shown = "\n  ".join(_argument(m, matches) for m in matches[:20])
        raise HistoryError(f"{test!r} matches {len(matches)} tests; give one of:\n  {shown}")
    ref = matches[0]
    wanted = canonical_metric(metric)
    candidates = store.series_of(ref, wanted)
    if not candidates:
        names = sorted({s.metric for s in store.series_of(ref)})
        spelt = metric if wanted == metric else f"{metric} ({wanted})"
        raise HistoryError(f"no metric {spelt!r} recorded for {ref.key}; recorded metrics: "
                           + ", ".join(names))
    if environment:
        chosen = [s for s in candidates if s.environment_key.startswith(environment)
                  or environment in s.environment_label]
        if len(chosen) != 1:
            shown = "\n  ".join(f"{s.environment_key}  {s.environment_label}"
                                for s in candidates)
            what = "matches no" if not chosen else "matches several"
            raise HistoryError(f"--environment {environment!r} {what} environment of "
                               f"{ref.key}; recorded:\n  {shown}")
        series = chosen[0]
    else:
        series = candidates[0]
    return series, [s for s in candidates if s.id != series.id]


def _argument(ref: TestRef, matches: list[TestRef]) -> str:
    """How to name ``ref`` on the command line: its key, or where another match reads the
    same (``t.py::test_c[x]`` named ``y[z]``, ``t.py::test_c[x]::y[z]``), node id and name."""
    if sum(m.key == ref.key for m in matches) == 1:
        return ref.key
    return f"{shlex.quote(ref.test_id)} --name {shlex.quote(ref.name)}"


def _header(series: Series, others: list[Series]) -> list[str]:
    lines = [f"{series.test.key} · {series.metric} · {series.environment_label} "
             f"(environment {series.environment_key})"]
    if others:
        lines.append(f"  also recorded in {len(others)} other environment(s), see "
                     "--environment: " + "; ".join(f"{s.environment_key} {s.environment_label}"
                                                  for s in others))
    return lines


def _date(created: str) -> str:
    """``2026-11-03T12:00:00+00:00`` -> ``2026-11-03 12:00``."""
    return created[:16].replace("T", " ")


def show(store: HistoryStore, test: str, metric: str = DEFAULT_METRIC, *,
         environment: str | None = None, branch: str | None = None,
         limit: int = 0, name: str | None = None) -> str:
    """One line per commit, newest first, like ``git log``: short commit, date, branch,
    value, and the change against the line below (the commit before).

    Consecutive runs of the same commit (and dirty flag) make one line with the newest
    run's value and, when there are several, how many and the range of their values.
    """
    series, others = resolve_series(store, test, metric, environment, name=name)
    metric = series.metric
    rows = store.rows(series, branch=branch)
    if not rows:
        raise HistoryError(f"{series.test.key}: no {series.metric} recorded"
                           + (f" on branch {branch!r}" if branch else ""))
    # Consecutive runs of one commit make one line: its newest row, and for lines of
    # several runs [runs, lowest, highest]. One plain loop: this runs 100,000 times.
    heads: list[Row] = []
    merged: dict[int, list[float]] = {}
    last_commit, last_dirty = "", -1
    for row in rows:
        commit = row[1]
        if commit == last_commit and row[3] == last_dirty and commit != UNKNOWN_COMMIT:
            index = len(heads) - 1
            stats = merged.setdefault(index, [1, heads[index][5], heads[index][5]])
            value = row[5]
            stats[0] += 1
            stats[1] = min(stats[1], value)
            stats[2] = max(stats[2], value)
            continue
        heads.append(row)
        last_commit, last_dirty = commit, row[3]
    total = len(heads)
    count = min(limit, total) if limit > 0 else total
    # Values repeat (a step function): format each distinct one once.
    texts: dict[float, str] = {}

    def text(value: float) -> str:
        found = texts.get(value)
        if found is None:
            found = texts[value] = format_value(metric, value)
        return found

    numbers = [row[5] for row in heads[:count + 1]]
    values = [text(number) for number in numbers[:count]]
    for index, (runs, low, high) in merged.items():
        if index < count:
            spread = "" if low == high else f": {text(low)} to {text(high)}"
            values[index] += f" ({int(runs)} runs{spread})"
    changes = [""] * count
    for index in range(min(count, len(numbers) - 1)):
        newer, older = numbers[index], numbers[index + 1]
        if newer != older:
            changes[index] = format_change(metric, older, newer)
    shown = heads[:count]
    labels = [short_commit(row[1], row[3]) for row in shown]
    dates = [row[4][:16].replace("T", " ") for row in shown]
    branches = [row[2] or "-" for row in shown]
    w0, w1, w2, w3 = (max(map(len, column)) for column in (labels, dates, branches, values))
    # One %-template with the widths baked in: much faster than per-line format specs.
    template = f"%-{w0}s  %-{w1}s  %-{w2}s  %-{w3}s  %s"
    lines = _header(series, others)
    lines += [(template % line).rstrip()
              for line in zip(labels, dates, branches, values, changes, strict=True)]
    if count < total:
        lines.append(f"... {total - count} older commit(s) not shown (-n 0 shows all)")
    return "\n".join(lines)


@dataclass
class FirstChange:
    """The answer of ``first-change``: exit code 0 (found) or 1 (never changed), and text."""

    exit_code: int
    text: str
    #: The commit that introduced the current value (None when it never changed).
    commit: str | None = None
    before: Run | None = None
    at: Run | None = None


def first_change(store: HistoryStore, test: str, metric: str, *,
                 environment: str | None = None, branch: str | None = None,
                 include_dirty: bool = False,
                 commits_between: Callable[[str, str], int | None] | None = None,
                 name: str | None = None) -> FirstChange:
    """The first commit at which ``metric`` took its current value.

    The newest value (of a clean commit, unless ``include_dirty``) is the current one;
    the newest run with another value is the one before the change; the oldest run after
    that one names the commit. Three indexed queries, so the length of the history hardly
    matters. ``commits_between(old, new)``, when given, counts the commits git knows
    between the two, to say when some were never measured.
    """
    metric = canonical_metric(metric)
    if is_timing(metric):
        raise HistoryError(
            f"{metric} is a timing: it varies from run to run, so no single commit changed "
            "it and first-change will not name one (deterministic metrics only: kernel "
            f"launches, bytes, FLOPs, graph breaks, peak memory). See its trend with: "
            f"perfguard history show {test} --metric {metric}"
        )
    series, _others = resolve_series(store, test, metric, environment, name=name)
    clean = not include_dirty
    newest = store.find_row(series, branch=branch, clean=clean)
    if newest is None:
        raise HistoryError(f"{series.test.key}: no {series.metric} recorded for a clean "
                           "commit" + (f" on branch {branch!r}" if branch else "")
                           + " (runs of a dirty tree are left out: --include-dirty)")
    before = store.find_row(series, branch=branch, clean=clean, value_not=newest[5])
    start = store.find_row(series, branch=branch, clean=clean, after=before, oldest=True)
    assert start is not None  # newest itself qualifies
    current = format_value(metric, newest[5])
    where = f"{series.test.key} ({series.environment_label})"
    streak = store.count_rows(series, since=start, branch=branch, clean=clean)
    if before is None:
        oldest = run_of(start)
        return FirstChange(1, (
            f"{metric} of {where} never changed: {current} in all {streak} recorded "
            f"run(s) since {oldest.short} ({_date(oldest.created)})"
        ))
    at, old = run_of(start), run_of(before)
    lines = [
        f"{at.commit} is the first commit with {metric} = {current}",
        f"  {where}",
        f"  at     {at.short}  {_date(at.created)}  {at.branch or '-'}  "
        f"{current}  {format_change(metric, before[5], newest[5])}",
        f"  before {old.short}  {_date(old.created)}  {old.branch or '-'}  "
        f"{format_value(metric, before[5])}",
        f"  {streak} run(s) since have this value",
    ]
    if old.commit == at.commit:
        lines.append(f"  warning: runs of {at.short} disagree, so {metric} was not "
                     "deterministic here; do not trust this answer")
    unmeasured = [r for r in store.runs_between(old, at, branch=branch)
                  if r.commit not in (old.commit, at.commit)]
    if unmeasured:
        lines.append(f"  {len(unmeasured)} run(s) between them did not record this metric "
                     "(the test did not run or the metric was unavailable)")
    if commits_between is not None and at.commit != old.commit:
        between = commits_between(old.commit, at.commit)
        if between is not None and between > 1:
            lines.append(f"  git counts {between} commits from {old.short} to {at.short}; only "
                         "the recorded ones were measured, so the change is in one of: "
                         f"git log --oneline {old.commit[:12]}..{at.commit[:12]}")
    return FirstChange(0, "\n".join(lines), commit=at.commit, before=old, at=at)
