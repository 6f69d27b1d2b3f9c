"""Trend reports from the history: a self-contained HTML page and a markdown summary.

Both show the last N recorded runs, and, given a current run that is not recorded (a pull
request's results.json), that run beside them. The HTML follows the rules of
``report.html``: Jinja2 with autoescape, inline SVG, no script at all, and a
Content-Security-Policy that forbids every fetch; commit links are plain navigation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache, partial

import jinja2
from markupsafe import Markup

from ..metrics import CATALOGUE, HISTORY_SUMMARY, Metric
from ..metrics import CHARTS as METRIC_CHARTS
from ..reporting._format import anchor, formatted, md_escape
from ..reporting._svg import COMPILED_COLOUR, EAGER_COLOUR
from ..results import RunResults
from . import _chart
from ._text import format_change, format_short
from .gitinfo import is_object_name
from .metrics import is_timing, measurement_metrics
from .store import HistoryStore, Run

#: Runs a report shows by default.
DEFAULT_LAST = 50
#: Commits the markdown summary shows beside the current run by default.
DEFAULT_SUMMARY_COMMITS = 5

#: The trend page stays bounded however many tests the history holds: it charts the first
#: CHARTED_STEPPED tests with a step in the window (a deterministic metric that took a new
#: value) and the first CHARTED_STEADY others, and lists at most LISTED_UNCHARTED of the
#: rest by name (the others are counted).
CHARTED_STEPPED = 50
CHARTED_STEADY = 50
LISTED_UNCHARTED = 500


#: A chart line's colour: a mode's, else (a chart of several fields) these, in order.
_COLOURS = {"eager": EAGER_COLOUR, "compiled": COMPILED_COLOUR}
_FIELD_COLOURS = ("#c62828", "#6a1b9a")


@dataclass(frozen=True)
class ChartSpec:
    """A trend chart (:data:`..metrics.CHARTS`) and the catalogue metrics drawn in it."""

    id: str
    title: str
    metrics: tuple[Metric, ...]

    def legend(self, index: int) -> tuple[str, str]:
        """Line ``index``'s name and colour: its mode where the chart holds one field."""
        metric = self.metrics[index]
        if len({m.field for m in self.metrics}) == 1:
            return metric.mode, _COLOURS[metric.mode]
        return metric.brief, _FIELD_COLOURS[index]


CHARTS = tuple(ChartSpec(chart, spec.title, tuple(m for m in CATALOGUE if m.chart == chart))
               for chart, spec in METRIC_CHARTS.items())

#: Rows of the markdown summary, in order.


@dataclass
class StepView:
    metric: str
    index: int
    commit: str
    text: str


@dataclass
class TestHistory:
    """One test in one environment over the report's columns."""

    key: str
    environment_key: str
    environment_label: str
    #: metric -> value per column (None: not measured in that run).
    values: dict[str, list[float | None]]
    statuses: list[str]
    steps: list[StepView] = field(default_factory=list)
    #: ``(test_id, name)``: two tests can share a key (``test_c[x]`` named ``y[z]``).
    identity: tuple[str, str] = ("", "")

    @property
    def anchor(self) -> str:
        """An HTML id that stays the same for the same test and environment across reports."""
        return anchor("history", self.key, *self.identity, self.environment_key)

    def has_current_change(self) -> bool:
        """Whether the last column (the current run) differs from the run before it."""
        return any(step.index == len(self.statuses) - 1 for step in self.steps)


@dataclass
class HistoryView:
    columns: list[_chart.Column]
    tests: list[TestHistory]
    has_current: bool
    branch: str | None


def commit_url_template(explicit: str | None, environ: Mapping[str, str] | None = None
                        ) -> str | None:
    """``--commit-url`` if given, else GitHub's from ``GITHUB_SERVER_URL`` and
    ``GITHUB_REPOSITORY`` (set in Actions), else None (commits shown as text)."""
    if explicit:
        return explicit
    env = os.environ if environ is None else environ
    server, repository = env.get("GITHUB_SERVER_URL", ""), env.get("GITHUB_REPOSITORY", "")
    if server and repository:
        return f"{server.rstrip('/')}/{repository}/commit/{{commit}}"
    return None


def _column(run: Run, template: str | None) -> _chart.Column:
    # A link is built only from checked parts: a hex object name in a safe_url template.
    href = _chart.safe_url(template.replace("{commit}", run.commit)) \
        if template and is_object_name(run.commit) else None
    title = f"{run.commit}{' (dirty)' if run.dirty else ''} · {run.created[:16].replace('T', ' ')}"
    if run.branch:
        title += f" · {run.branch}"
    return _chart.Column(run.short, title, href, run.commit)


def collect(store: HistoryStore, *, last: int = DEFAULT_LAST, branch: str | None = None,
            current: RunResults | None = None, commit_url: str | None = None) -> HistoryView:
    """The last ``last`` runs (0: all) and, if given, the current run as the last column."""
    runs = store.recent_runs(last, branch=branch)
    window = store.window(runs)
    columns = [_column(run, commit_url) for run in runs]
    run_index = {run.id: i for i, run in enumerate(runs)}
    width = len(columns) + (1 if current is not None else 0)
    tests: dict[tuple[tuple[str, str], str], TestHistory] = {}
    for (identity, env_key), metrics in window.values.items():
        history = TestHistory(window.tests[identity].key, env_key,
                              window.labels.get(env_key, env_key), {}, [""] * width,
                              identity=identity)
        for metric, by_run in metrics.items():
            row: list[float | None] = [None] * width
            for run_id, value in by_run.items():
                row[run_index[run_id]] = value
            history.values[metric] = row
        for run in runs:
            history.statuses[run_index[run.id]] = window.statuses.get(
                (identity, env_key, run.id), "")
        tests[(identity, env_key)] = history
    if current is not None:
        columns.append(_chart.Column("current", "this run (not recorded)", None, "current",
                                     current=True))
        for entry in current.entries:
            m = entry.measurement
            env_key = m.environment.key()
            history = tests.setdefault(
                (m.identity, env_key),
                TestHistory(m.key, env_key, m.environment.label(), {}, [""] * width,
                            identity=m.identity))
            for metric, value in measurement_metrics(m).items():
                history.values.setdefault(metric, [None] * width)[-1] = value
            history.statuses[-1] = entry.verdict.status
    for history in tests.values():
        history.steps = _steps(history, columns)
    ordered = sorted(tests.values(), key=lambda t: (not t.steps, t.key, t.environment_label))
    return HistoryView(columns, ordered, current is not None, branch)


def _steps(history: TestHistory, columns: list[_chart.Column]) -> list[StepView]:
    """Columns where a deterministic metric took a new value (against the last known one)."""
    steps: list[StepView] = []
    for metric in sorted(history.values):
        if is_timing(metric):
            continue
        previous: float | None = None
        for index, value in enumerate(history.values[metric]):
            if value is None:
                continue
            if previous is not None and value != previous:
                column = columns[index]
                steps.append(StepView(
                    metric, index, column.commit,
                    f"{column.label}: {metric} {format_short(metric, previous)} → "
                    f"{format_short(metric, value)}, {format_change(metric, previous, value)}"))
            previous = value
    return steps


# --- HTML ---------------------------------------------------------------------------------


@dataclass
class _TestView:
    anchor: str
    key: str
    environment: str
    environment_key: str
    steps: list[str]
    charts: list[tuple[str, Markup]]
    missing: list[str]


def _charted(tests: list[TestHistory]) -> tuple[list[TestHistory], list[TestHistory]]:
    """The tests the page charts (those with a step first) and the rest, in report order."""
    stepped = [t for t in tests if t.steps]
    steady = [t for t in tests if not t.steps]
    chosen = {id(t) for t in (*stepped[:CHARTED_STEPPED], *steady[:CHARTED_STEADY])}
    return ([t for t in tests if id(t) in chosen], [t for t in tests if id(t) not in chosen])


def render_history_html(view: HistoryView, *, title: str = "perfguard history") -> str:
    """The trend page: per test, one chart per metric group over the report's runs, for
    the tests :func:`_charted` picks; the others are listed by name."""
    charted, uncharted = _charted(view.tests)
    tests = []
    for index, history in enumerate(charted):
        charts: list[tuple[str, Markup]] = []
        missing: list[str] = []
        for spec in CHARTS:
            lines = []
            for number, metric in enumerate(spec.metrics):
                values = history.values.get(metric.name)
                if values is None or all(v is None for v in values):
                    continue
                band = None
                if metric.spread in history.values:
                    band = [None if iqr is None else iqr / 2
                            for iqr in history.values[metric.spread]]
                lines.append(_chart.Line(*spec.legend(number), list(values), band,
                                         steps=metric.deterministic))
            if not lines:
                missing.append(spec.title.split(" (")[0].lower())
                continue
            metrics = {metric.name for metric in spec.metrics}
            steps = [_chart.Step(s.index, s.commit, s.text) for s in history.steps
                     if s.metric in metrics]
            first = spec.metrics[0]
            charts.append((spec.title, Markup(_chart.trend_chart(
                f"t{index}-{spec.id}", spec.title, view.columns, lines,
                partial(formatted, first), steps=_dedupe(steps), binary=first.unit == "bytes"))))
        tests.append(_TestView(history.anchor, history.key, history.environment_label,
                               history.environment_key, [s.text for s in history.steps],
                               charts, missing))
    runs = [c for c in view.columns if not c.current]
    return _template().render(
        title=title,
        tests=tests,
        test_count=len(view.tests),
        uncharted=[(t.key, t.environment_label, len(t.steps))
                   for t in uncharted[:LISTED_UNCHARTED]],
        uncharted_count=len(uncharted),
        bounds=(CHARTED_STEPPED, CHARTED_STEADY),
        run_count=len(runs),
        first=runs[0].title if runs else "",
        last=runs[-1].title if runs else "",
        has_current=view.has_current,
        branch=view.branch or "",
        columns=[(c.label, c.title, _chart.safe_url(c.href)) for c in view.columns],
    )


def _dedupe(steps: list[_chart.Step]) -> list[_chart.Step]:
    """One marker per column: the texts of several metrics stepping at once are joined."""
    by_index: dict[int, _chart.Step] = {}
    for step in steps:
        if step.index in by_index:
            by_index[step.index].text += f"; {step.text.split(': ', 1)[1]}"
        else:
            by_index[step.index] = _chart.Step(step.index, step.commit, step.text)
    return [by_index[i] for i in sorted(by_index)]


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    from ..reporting.html import jinja_environment

    return jinja_environment("pytest_perfguard.history").get_template("history.html.j2")


# --- markdown -----------------------------------------------------------------------------


def render_history_markdown(view: HistoryView, *,
                            commits: int = DEFAULT_SUMMARY_COMMITS) -> str:
    """A job-summary table per test: the last ``commits`` runs' values and the current one.

    Tests whose current values differ from the last recorded run come first and open;
    the others are folded. With a current run, a recorded test that is not in it (deselected
    with ``-k``, skipped, removed) is only counted: it did not run, so it is not "unchanged".
    """
    first = max(0, len(view.columns) - (commits + (1 if view.has_current else 0)))
    shown = list(range(first, len(view.columns)))
    heads = [c.label if c.current else (
        f"[{md_escape(c.label)}]({_chart.markdown_url(url)})" if (url := _chart.safe_url(c.href))
        else _md_code(c.label)) for c in (view.columns[i] for i in shown)]
    lines = ["## perfguard history", ""]
    recorded = [c for c in view.columns if not c.current]
    if not recorded:
        lines += ["No run recorded in the history yet: values below are this run's only.", ""]
    what = "This run beside the" if view.has_current else "The"
    lines += [f"{what} last {len(shown) - (1 if view.has_current else 0)} recorded run(s)"
              + (f" on {_md_code(view.branch)}" if view.branch else "")
              + ". Bold: a value that differs from the run before it.", ""]
    ran = [t for t in view.tests if t.statuses[-1]] if view.has_current else view.tests
    changed = [t for t in ran if t.has_current_change()] if view.has_current else \
        [t for t in ran if any(s.index in shown for s in t.steps)]
    changed_ids = {id(t) for t in changed}  # by identity: == compares every value
    steady = [t for t in ran if id(t) not in changed_ids]
    absent = len(view.tests) - len(ran)
    several = len({t.environment_key for t in view.tests}) > 1

    def table(histories: list[TestHistory]) -> list[str]:
        out = ["| test | metric | " + " | ".join(heads) + " |",
               "|---|---|" + "---:|" * len(heads)]
        for history in histories:
            label = f"<code>{md_escape(history.key)}</code>"
            if several:
                label += f" ({md_escape(history.environment_label)})"
            for metric in HISTORY_SUMMARY:
                values = history.values.get(metric)
                if values is None or all(values[i] is None for i in shown):
                    continue
                cells = []
                for i in shown:
                    value = values[i]
                    text = format_short(metric, value)
                    previous = next((values[j] for j in range(i - 1, -1, -1)
                                     if values[j] is not None), None)
                    if (value is not None and previous is not None and value != previous
                            and not is_timing(metric)):
                        text = f"**{text}** {format_change(metric, previous, value)}"
                    cells.append(text)
                out.append(f"| {label} | {metric} | " + " | ".join(cells) + " |")
                label = ""
        return out

    if changed:
        title = "changed in this run" if view.has_current else "with a step in these runs"
        lines += [f"**{len(changed)} test(s) {title}**", ""] + table(changed) + [""]
    if steady:
        lines += ["<details>",
                  f"<summary>{len(steady)} test(s) unchanged</summary>", ""]
        lines += table(steady) + ["", "</details>", ""]
    if absent:
        lines += [f"{absent} recorded test(s) did not run here (deselected, skipped or "
                  "removed): not compared.", ""]
    if not view.tests:
        lines += ["No measurements.", ""]
    return "\n".join(lines)


def _md_code(text: str) -> str:
    """``text`` as code in markdown: a backtick span for a plain name (``main``, a short
    commit), else a ``<code>`` element of escaped text, which a backtick cannot close."""
    if re.fullmatch(r"[A-Za-z0-9._/-]+", text):
        return f"`{text}`"
    return f"<code>{md_escape(text)}</code>"
