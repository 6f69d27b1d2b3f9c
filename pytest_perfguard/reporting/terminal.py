"""The terminal summary: errored tests, one plain-text table, one line per regression.

No ANSI colour and no terminal width probing here: the plugin decides how to colour and
where to write, so the same text works under ``-q``, ``-v``, xdist and ``--color=no``.
"""

from __future__ import annotations

import textwrap

from tabulate import tabulate

from ..metrics import MODES, Metric
from ..results import RunResults
from ._format import one_line, printable, truncate
from .model import SUMMARY_METRICS, ErrorView, TestView, build_view

#: The summary table's metrics: the summary row's that have a terminal ``column`` (the gated
#: metrics and their eager/compiled ratios; FLOPs are in the markdown and HTML reports).
#: Each test's id is on its own line above its rows, so the table stays under 120
#: characters wide however long the ids are.
COLUMNS = [metrics for metrics in SUMMARY_METRICS if metrics[0].column]
HEADERS = ("mode", *(metrics[0].column for metrics in COLUMNS), "verdict")

ALIGN = ("left",) + ("right",) * (len(HEADERS) - 2) + ("left",)

#: Without ``verbose``, longer test ids are shortened from the middle, and an errored
#: test's cause that does not fit on its line goes on the lines below, wrapped to the
#: table's width (at most ``ERROR_CAUSE_LINES`` of them).
TEST_ID_WIDTH = 100
ERROR_LINE_WIDTH = 120
ERROR_CAUSE_LINES = 4


def render_terminal(results: RunResults, *, verbose: bool = False) -> str:
    """Render ``results`` as plain text for the pytest terminal summary.

    Errored tests first, with their cause. Then per measurement that changed (regressed,
    improved, new, other-environment): its id on one line, then an eager and a compiled
    row; regressions first; the unchanged ones are counted in one line. Under the table
    comes one line per regressed metric (its likely causes are in the test's failure
    message; with ``verbose`` here too, each once per test). With ``verbose``: every
    measurement, full test ids, improvements and within-tolerance
    changes too, the verdict notes, and why unavailable metrics are missing (a reason every
    test of an environment shares is said once).
    """
    view = build_view(results, details=False)
    if not view.tests and not view.errors:
        return "perfguard: no measurements in this run\n"
    width = None if verbose else TEST_ID_WIDTH
    lines = [line for error in view.errors for line in _error_lines(error, width)]
    listed = view.tests if verbose else [t for t in view.tests if t.status != "unchanged"]
    unchanged = len(view.tests) - len(listed)
    if listed or unchanged:
        if lines:
            lines.append("")
        if listed:
            lines += _table(listed, width)
        if unchanged:
            lines.append(f"{unchanged} unchanged (-v to list them)")
    details = [line for test in view.tests for line in _detail_lines(test, verbose)]
    if verbose:
        details += [one_line(note) for note in view.notes]
    if details:
        lines.append("")
        lines.extend(details)
    lines.append("")
    lines.append(f"perfguard: {view.headline}")
    return "\n".join(lines) + "\n"


def _fit(text: str, width: int | None) -> str:
    text = printable(text)
    return text if width is None else truncate(text, width)


def _error_lines(error: ErrorView, width: int | None) -> list[str]:
    """``errored <test> (in call): <cause>``; a cause too long for the line goes below it,
    wrapped, so it is read in full (pytest's own short summary cuts it at the terminal's
    width)."""
    head = f"errored {_fit(error.test_id, width)} ({one_line(error.phase)}):"
    cause = one_line(error.summary)
    if width is None or len(head) + 1 + len(cause) <= ERROR_LINE_WIDTH:
        return [f"{head} {cause}"]
    return [head, *textwrap.wrap(cause, ERROR_LINE_WIDTH, initial_indent="    ",
                                 subsequent_indent="    ", max_lines=ERROR_CAUSE_LINES,
                                 placeholder=" ...")]


def _table(tests: list[TestView], width: int | None) -> list[str]:
    rows: list[list[str]] = []
    for test in tests:
        rows.extend(_rows(test))
    # The header goes in as a data row: tabulate pads header cells by two extra spaces,
    # which would make this table ~10 characters wider. "simple" without headers draws a
    # rule above and below; the top one is moved under the header.
    rendered = tabulate(
        [list(HEADERS), *rows], tablefmt="simple", disable_numparse=True, colalign=ALIGN
    ).split("\n")
    table = [("  " + line).rstrip() for line in (rendered[1], rendered[0], *rendered[2:-1])]
    lines = table[:2]  # header and rule
    for index, test in enumerate(tests):
        lines.append(_fit(test.label, width))
        lines.extend(table[2 + 2 * index : 4 + 2 * index])
    return lines


def _rows(test: TestView) -> list[list[str]]:
    """An eager and a compiled row."""
    return [[mode, *(_cell(test, metrics, mode) for metrics in COLUMNS),
             test.status if mode == "eager" else ""] for mode in MODES]


def _cell(test: TestView, metrics: tuple[Metric, ...], mode: str) -> str:
    """The value of ``mode``'s metric in a column; a ratio of the two modes is on the eager
    row."""
    for metric in metrics:
        if (metric.mode or "eager") == mode:
            return test.values[metric.name]
    return ""


def _detail_lines(test: TestView, verbose: bool) -> list[str]:
    label = printable(test.label)
    shown = test.changes if verbose else test.regressions
    lines = []
    for change in shown:
        lines.append(f"{change.direction} {label}: {change.exact}")
        if verbose:  # else the test's failure above already says its likely causes
            lines.extend(f"    hint: {one_line(hint)}" for hint in change.hints)
    if test.note and (verbose or shown):  # shown changes say what they were measured against
        lines.append(f"{test.status} {label}: {one_line(test.note)}")
    if verbose:
        lines.extend(f"unavailable {label}: {one_line(text)}" for text in test.unavailable)
    return lines
