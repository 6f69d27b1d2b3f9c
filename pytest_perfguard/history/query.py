"""Reading a metric's history: ``show`` (its value per commit) and ``first-change`` (the
commit that gave it its current value). Pure functions over an open
:class:`~pytest_perfguard.history.store.HistoryStore`; they return text and an exit code,
the CLI prints them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ._text import format_change, format_value
from .gitinfo import UNKNOWN_COMMIT
from .metrics import is_timing
from .store import HistoryError, HistoryStore, Point, Run, Series

DEFAULT_METRIC = "compiled.kernel_launches"


@dataclass
class CommitPoint:
    """Consecutive runs of one commit (and dirty flag), shown as one line."""

    first: Point
    last: Point
    runs: int
    low: float
    high: float

    @property
    def value(self) -> float:
        """The value of the commit's latest run."""
        return self.last.value


def by_commit(points: Iterable[Point]) -> Iterator[CommitPoint]:
    """Group consecutive runs of the same commit and dirty flag (``unknown`` never groups)."""
    group: CommitPoint | None = None
    for point in points:
        run = point.run
        if (group is not None and run.commit == group.last.run.commit
                and run.dirty == group.last.run.dirty and run.commit != UNKNOWN_COMMIT):
            group.last = point
            group.runs += 1
            group.low = min(group.low, point.value)
            group.high = max(group.high, point.value)
            continue
        if group is not None:
            yield group
        group = CommitPoint(point, point, 1, point.value, point.value)
    if group is not None:
        yield group


def resolve_series(store: HistoryStore, test: str, metric: str,
                   environment: str | None = None) -> tuple[Series, list[Series]]:
    """The series of ``metric`` for the test named ``test``, and the other environments'.

    ``test`` is a measurement key (``path::test`` or ``path::test::name``), or a unique
    end or part of one. Without ``environment`` (a key prefix or part of a label) the
    environment most recently recorded for this test is taken.
    """
    matches = store.tests_matching(test)
    if not matches:
        keys = store.test_keys()
        shown = "\n  ".join(keys[:20]) + ("\n  ..." if len(keys) > 20 else "")
        raise HistoryError(f"no test {test!r} in {store.path}; recorded tests:\n  {shown}"
                           if keys else f"no test {test!r} in {store.path}: it holds no tests")
    if len(matches) > 1:
        shown = "\n  ".join(m.key for m in matches[:20])
        raise HistoryError(f"{test!r} matches {len(matches)} tests; give one of:\n  {shown}")
    ref = matches[0]
    candidates = store.series_of(ref, metric)
    if not candidates:
        names = sorted({s.metric for s in store.series_of(ref)})
        raise HistoryError(f"no metric {metric!r} recorded for {ref.key}; recorded metrics: "
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
         limit: int = 0) -> str:
    """One line per commit, newest first, like ``git log``: short commit, date, branch,
    value, change against the older line, the verdict of that run."""
    series, others = resolve_series(store, test, metric, environment)
    groups = list(by_commit(store.points(series, branch=branch)))
    if not groups:
        raise HistoryError(f"{series.test.key}: no {series.metric} recorded"
                           + (f" on branch {branch!r}" if branch else ""))
    rows: list[tuple[str, ...]] = []
    start = max(len(groups) - limit, 0) if limit > 0 else 0
    for index in range(len(groups) - 1, start - 1, -1):
        group = groups[index]
        run = group.last.run
        previous = groups[index - 1].value if index > 0 else None
        value = format_value(metric, group.value)
        if group.runs > 1:
            spread = "" if group.low == group.high else (
                f": {format_value(metric, group.low)} to {format_value(metric, group.high)}")
            value += f" ({group.runs} runs{spread})"
        change = format_change(metric, previous, group.value)
        rows.append((run.short, _date(run.created), run.branch or "-", value, change,
                     group.last.status))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = _header(series, others)
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(5)] + [row[5]]
        lines.append("  ".join(cells).rstrip())
    if limit > 0 and start > 0:
        lines.append(f"... {start} older commit(s) not shown (-n 0 shows all)")
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
                 commits_between: Callable[[str, str], int | None] | None = None
                 ) -> FirstChange:
    """The first commit at which ``metric`` took its current value.

    Walks the runs newest first (dirty and ``unknown`` runs left out unless
    ``include_dirty``) while the value equals the newest one; the oldest run of that
    streak names the commit. ``commits_between(old, new)``, when given, counts the commits
    git knows between the run before and that one, to say when some were never measured.
    """
    if is_timing(metric):
        raise HistoryError(
            f"{metric} is a timing: it varies from run to run, so no single commit changed "
            "it and first-change will not name one (deterministic metrics only: kernel "
            f"launches, bytes, FLOPs, graph breaks, peak memory). See its trend with: "
            f"perfguard history show {test} --metric {metric}"
        )
    series, _others = resolve_series(store, test, metric, environment)
    newest: Point | None = None
    streak_start: Point | None = None
    before: Point | None = None
    streak_runs = 0
    for point in store.points(series, branch=branch, newest_first=True):
        if not include_dirty and (point.run.dirty or point.run.commit == UNKNOWN_COMMIT):
            continue
        if newest is None:
            newest = point
        if point.value != newest.value:
            before = point
            break
        streak_start = point
        streak_runs += 1
    if newest is None or streak_start is None:
        raise HistoryError(f"{series.test.key}: no {series.metric} recorded for a clean "
                           "commit" + (f" on branch {branch!r}" if branch else "")
                           + " (runs of a dirty tree are left out: --include-dirty)")
    current = format_value(metric, newest.value)
    where = f"{series.test.key} ({series.environment_label})"
    if before is None:
        oldest = streak_start.run
        return FirstChange(1, (
            f"{metric} of {where} never changed: {current} in all {streak_runs} recorded "
            f"run(s) since {oldest.short} ({_date(oldest.created)})"
        ))
    at, old = streak_start.run, before.run
    lines = [
        f"{at.commit} is the first commit with {metric} = {current}",
        f"  {where}",
        f"  at     {at.short}  {_date(at.created)}  {at.branch or '-'}  "
        f"{current}  {format_change(metric, before.value, newest.value)}",
        f"  before {old.short}  {_date(old.created)}  {old.branch or '-'}  "
        f"{format_value(metric, before.value)}",
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
