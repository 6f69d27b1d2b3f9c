"""The GitHub-flavoured markdown report (report.md), the bounded job summary and the
bounded pull-request comment.

Every piece of user-controlled text (test ids, parametrize ids, kernel names, graph-break
reasons, file paths, ops, shapes, error messages) goes through :func:`md_escape` in
markdown context (in ``<code>`` for identifiers, never a backtick span, which a backtick in
the text could close), :func:`html_inline` inside raw HTML (``<summary>``), or HTML escaping
inside a ``<pre>`` block (error messages, whose lines matter), so it can neither split a
table cell nor inject markup, an image or an ``@mention``.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import replace

from ..results import RunResults
from ._format import MISSING, html_inline, md_escape, printable, truncate
from .model import (
    SUMMARY_COLUMNS,
    SUMMARY_METRICS,
    ChangeView,
    Column,
    EnvironmentView,
    ErrorView,
    ReportView,
    Table,
    TestView,
    arrow,
    build_view,
)

#: GitHub refuses a job summary ($GITHUB_STEP_SUMMARY) over 1 MiB; this leaves room for
#: what other steps of the job append.
SUMMARY_MAX_BYTES = 1_000_000

#: Where the full report is, as the job summary says by default.
FULL_REPORT = "report.md and report.html in this run's artifacts"


def render_markdown(results: RunResults) -> str:
    """Render ``results`` as GitHub-flavoured markdown: errored tests first, then every
    test by verdict (regressions first) with its details. For a job summary, which GitHub
    limits to 1 MiB, use :func:`render_markdown_summary`."""
    view = build_view(results)
    if not view.tests and not view.errors:
        return "## perfguard: no measurements\n"
    out = _head(view)
    if view.errors:
        out += [f"### Errored tests ({len(view.errors)})", ""]
        for error in view.errors:
            out += _error(error)
    if view.tests:
        out += _summary_table(view.tests)
        out += ["### Details", ""]
        for test in view.tests:
            out += _details(test)
    if view.environments:
        out += ["### Environments", ""]
        out += _environment_table(view.environments)
    return "\n".join(out) + "\n"


def render_markdown_summary(
    results: RunResults, *, max_bytes: int = SUMMARY_MAX_BYTES, full_report: str = FULL_REPORT
) -> str:
    """A job summary that always fits in ``max_bytes`` (UTF-8): errored tests and regressed
    tests in full (their changes and likely causes), every other test counted, and a line
    pointing to the full report (``full_report`` says where it is).

    When even that is too long (a run where a thousand tests regressed), the tests that do
    not fit are counted in a closing "... and N more" line. ``max_bytes`` below 4,096 is
    refused: there would be no room for the headline and one test.
    """
    if max_bytes < 4096:
        raise ValueError(f"max_bytes must be at least 4096 to hold a summary, not {max_bytes}")
    view = build_view(results, details=False)
    if not view.tests and not view.errors:
        return "## perfguard: no measurements\n"
    head = "\n".join(_head(view, bounded=True)) + "\n"
    regressed = view.with_status("regressed")
    sections = [
        (f"### Errored tests ({len(view.errors)})", "errored test",
         ["\n".join(_error(error, message_chars=2000)) + "\n" for error in view.errors]),
        (f"### Regressed tests ({len(regressed)})", "regressed test",
         ["\n".join(_regression(test)) + "\n" for test in regressed]),
    ]
    others = {status: n for status, n in view.counts.items()
              if status not in ("errored", "regressed") and n}
    rest = md_escape(", ".join(f"{n} {status}" for status, n in others.items()))
    where = md_escape(truncate(full_report, 400))

    def tail(left_out: list[str]) -> str:
        lines = []
        if left_out:
            lines += [f"... and {' and '.join(left_out)} not shown: the job summary is "
                      f"limited to {max_bytes:,} bytes.", ""]
        if rest:
            lines += [f"Not listed here: {rest}.", ""]
        lines.append(f"Every test with its kernels, peak memory, graph breaks and charts: "
                     f"{where}.")
        return "\n".join(lines) + "\n"

    return _fit(head, sections, tail, max_bytes, _size)


#: A titled section of a bounded text: its title, the noun its blocks are counted with
#: ("regressed test"), and its blocks (each a whole test, ending in a blank line).
_Section = tuple[str, str, list[str]]


def _fit(head: str, sections: list[_Section], tail: Callable[[list[str]], str], limit: int,
         size: Callable[[str], int]) -> str:
    """``head``, as many blocks of ``sections`` as fit in ``limit`` (measured by ``size``)
    in order, and ``tail`` given what was left out ("3 more regressed tests")."""
    # Room for the tail with every test left out: a bound on any real tail's size.
    budget = limit - size(head) - size(tail([_left_out(len(blocks), noun, True)
                                             for _, noun, blocks in sections]))
    body: list[str] = []
    left_out: list[str] = []
    for title, noun, blocks in sections:
        shown = 0
        for block in blocks:
            needed = size(block) + (size(title) + 2 if shown == 0 else 0)
            if left_out or needed > budget:
                break
            if shown == 0:
                body.append(title + "\n\n")
            body.append(block)
            budget -= needed
            shown += 1
        if shown < len(blocks):
            left_out.append(_left_out(len(blocks) - shown, noun, shown > 0))
    return head + "".join(body) + tail(left_out)


#: GitHub refuses a pull-request comment over 65,536 characters. The verdict comment stays
#: under this, leaving room for the workflow's marker line, a link to the run and (when it
#: fits) the history table.
COMMENT_MAX_CHARS = 50_000

#: Likely causes shown per regressed test in the comment (the full report has them all).
COMMENT_HINTS = 3

#: How an improvement is accepted into the baseline, as the comment says it.
ACCEPT = ("run `pytest --perfguard --perfguard-update` locally, or `perfguard update` on this "
          "run's results.json (in its artifact), and commit the baseline")


def render_markdown_comment(
    results: RunResults, *, max_chars: int = COMMENT_MAX_CHARS, full_report: str = FULL_REPORT
) -> str:
    """A pull-request comment that says the gate's verdict first: failed or passed, then
    each regressed test with its cause (the metric, baseline → current, the first likely
    causes), errored tests and other failing verdicts, then improvements awaiting acceptance
    with the command that accepts them, then the counts of the tests that ran.

    Always at most ``max_chars`` characters (GitHub limits comments by characters): tests
    that do not fit are counted in a closing "... and N more" line pointing to
    ``full_report``. Only tests in ``results`` are counted: a test deselected with ``-k``
    did not run and is neither unchanged nor anything else.
    """
    if max_chars < 4096:
        raise ValueError(f"max_chars must be at least 4096 to hold a comment, not {max_chars}")
    view = build_view(results, details=False)
    if not view.tests and not view.errors:
        return "## perfguard: no measurements\n\nNo test measured anything in this run.\n"
    regressed = view.with_status("regressed")
    improved = view.with_status("improved")
    other_failing = [t for t in view.tests if t.fails and t.status != "regressed"]
    failing = bool(view.errors or regressed or other_failing)
    reasons = [f"{len(regressed)} regressed"] if regressed else []
    if view.errors:
        reasons.append(f"{len(view.errors)} errored")
    if other_failing:
        reasons.append(f"{len(other_failing)} other failing")
    if failing:
        head = f"## perfguard: failed ({', '.join(reasons)})\n\n"
    elif improved:
        head = f"## perfguard: passed, {len(improved)} improved awaiting acceptance\n\n"
    else:
        head = "## perfguard: passed\n\n"
    sections: list[_Section] = [
        (f"### Regressed ({len(regressed)})", "regressed test",
         [_comment_regression(test) for test in regressed]),
        (f"### Errored ({len(view.errors)})", "errored test",
         [f"- {_code(truncate(e.test_id, 300))} {md_escape(e.phase)}: "
          f"{md_escape(truncate(e.summary, 300))}\n\n" for e in view.errors]),
        (f"### Also failing ({len(other_failing)})", "failing test",
         [f"- {_code(truncate(t.label, 300))}: {md_escape(t.status)}"
          f"{': ' + md_escape(truncate(t.note, 300)) if t.note else ''}"
          f"{' (no baseline, and the rules require one)' if t.status != 'improved' else ''}"
          f"\n\n" for t in other_failing]),
        (f"### Improved, awaiting acceptance ({len(improved)})", "improved test",
         [f"- {_code(truncate(t.label, 300))}: "
          f"{md_escape('; '.join(c.text for c in t.changes if c.direction == 'improved'))}"
          f"\n\n" for t in improved]),
    ]
    counts = md_escape(view.headline)
    where = md_escape(truncate(full_report, 400))

    def tail(left_out: list[str]) -> str:
        lines = []
        if left_out:
            lines += [f"... and {' and '.join(left_out)} in the artifact: the comment is "
                      f"limited to {max_chars:,} characters.", ""]
        if improved:
            lines += [f"To accept the improvements: {ACCEPT}.", ""]
        lines += [f"**Counts** (the {len(view.tests) + len(view.errors):,} tests that ran): "
                  f"{counts}.", "",
                  f"Every test with its kernels, peak memory, graph breaks and charts: "
                  f"{where}."]
        return "\n".join(lines) + "\n"

    return _fit(head, sections, tail, max_chars, len)


def _comment_regression(test: TestView) -> str:
    """A regressed test in the comment: each regressed metric, baseline → current, and the
    first COMMENT_HINTS likely causes."""
    hints = [hint for change in test.changes for hint in change.hints]
    lines = [f"- {_code(truncate(test.label, 300))}"]
    lines += [f"  - {md_escape(truncate(change.text, 300))}" for change in test.regressions]
    lines += [f"  - likely cause: {md_escape(truncate(hint, 300))}"
              for hint in hints[:COMMENT_HINTS]]
    if len(hints) > COMMENT_HINTS:
        lines.append(f"  - ... and {len(hints) - COMMENT_HINTS} more in the full report")
    return "\n".join(lines) + "\n\n"


def _left_out(n: int, noun: str, more: bool) -> str:
    return f"{n:,} {'more ' if more else ''}{noun}{'' if n == 1 else 's'}"


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


# --- pieces ------------------------------------------------------------------------------


def _code(text: str) -> str:
    # An HTML <code> element rather than a backtick span: its content is still parsed as
    # markdown, so the backslash escapes work and a backtick in the text cannot end it.
    return f"<code>{md_escape(text)}</code>"


def _pre(text: str) -> str:
    """``text`` verbatim, lines kept, in a ``<pre>`` block.

    GitHub passes a ``<pre>`` block through as HTML without parsing markdown inside it, and
    everything in ``text`` is HTML-escaped, so it shows as typed and cannot close the block;
    control characters other than newlines are shown escaped (``printable``).
    """
    text = printable(text.replace("\r\n", "\n").replace("\r", "\n").expandtabs(),
                     multiline=True)
    return f"<pre>{html.escape(text, quote=False).replace('`', '&#96;')}</pre>"


def _status(status: str) -> str:
    return f"**{status}**" if status in ("regressed", "errored") else status


#: In the job summary, at most this many run notes, each cut at NOTE_CHARS characters.
SUMMARY_NOTES, NOTE_CHARS = 3, 400


def _head(view: ReportView, *, bounded: bool = False) -> list[str]:
    """The headline, the run's facts and the run-wide notes (``bounded``: with user text
    cut to a size, for the job summary)."""
    cut = (lambda text: truncate(text, NOTE_CHARS)) if bounded else (lambda text: text)
    facts = [md_escape(cut(fact)) for fact in view.run_facts]
    if view.baseline_path:
        facts.append(f"baseline {_code(cut(view.baseline_path))}")
    out = [f"## perfguard: {md_escape(view.headline)}", "", " · ".join(facts), ""]
    notes = view.notes[:SUMMARY_NOTES] if bounded else view.notes
    for note in notes:
        out += [md_escape(cut(note)), ""]
    if len(notes) < len(view.notes):
        out += [f"... and {len(view.notes) - len(notes)} more notes in the full report.", ""]
    return out


def _error(error: ErrorView, message_chars: int | None = None) -> list[str]:
    message = error.message
    if message_chars is not None and len(message) > message_chars:
        message = message[:message_chars] + f"\n... ({len(message) - message_chars:,} more " \
            "characters in the full report)"
    test_id = error.test_id if message_chars is None else truncate(error.test_id, 300)
    summary = error.summary if message_chars is None else truncate(error.summary, 300)
    return [
        f"<details><summary><b>errored</b> · <code>{html_inline(test_id)}</code> "
        f"{html_inline(error.phase)}: {html_inline(summary)}</summary>",
        "",
        _pre(message),
        "",
        "</details>",
        "",
    ]


def _table(table: Table, *, title: bool = True) -> list[str]:
    out = [f"**{md_escape(table.title)}**", ""] if title else []
    rows = [[_cell(c, value) for c, value in zip(table.columns, row, strict=True)]
            for row in table.rows]
    out += _grid(table.columns, rows)
    if table.note:
        out += [md_escape(table.note), ""]
    return out


def _grid(columns: list[Column], rows: list[list[str]]) -> list[str]:
    """A markdown table of already-escaped cells, then a blank line."""
    out = [_row([md_escape(c.header) for c in columns]),
           "|" + "|".join("---:" if c.numeric else "---" for c in columns) + "|"]
    return out + [_row(cells) for cells in rows] + [""]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cell(column: Column, value: str) -> str:
    return _code(value) if column.code and value != MISSING else md_escape(value)


def _summary_table(tests: list[TestView]) -> list[str]:
    rows = [[_code(test.label), _status(test.status), *map(md_escape, test.summary_cells)]
            for test in tests]
    return _grid(SUMMARY_COLUMNS, rows)


def _details(test: TestView) -> list[str]:
    out = [
        f"<details><summary><b>{html_inline(test.status)}</b> · "
        f"<code>{html_inline(test.label)}</code></summary>",
        "",
    ]
    out += _changes(test)
    out += _table(test.metrics, title=False)
    if test.unavailable:
        out += ["Unavailable: " + "; ".join(md_escape(text) for text in test.unavailable), ""]
    for table in (*test.allocations, *test.kernels):
        out += _table(table)
    out += _graph_breaks(test)
    out += [_numerics(test), ""]
    for table in test.gpu:
        out += _table(table)
    if test.gpu_notes:
        out += ["NVML notes: " + "; ".join(md_escape(n) for n in test.gpu_notes), ""]
    out += [f"**Environment:** {md_escape(test.environment)} "
            f"(key {_code(test.environment_key)})", ""]
    out += ["</details>", ""]
    return out


def _change_lines(changes: list[ChangeView]) -> list[str]:
    out = []
    for change in changes:
        out.append(f"- {_status(change.direction)} {md_escape(change.text)}")
        out.extend(f"  - hint: {md_escape(hint)}" for hint in change.hints)
    return out


def _changes(test: TestView) -> list[str]:
    out = []
    if test.note:
        out += [f"_{md_escape(test.note)}_", ""]
    if not test.changes:
        if test.status == "new":
            out += ["New measurement: no baseline to compare with.", ""]
        elif test.status == "unchanged":
            out += ["No metric moved against the baseline.", ""]
        return out
    return out + ["**Changes against the baseline**", "", *_change_lines(test.changes), ""]


#: In the job summary, a regressed test shows at most this many hints per change.
SUMMARY_HINTS = 8


def _regression(test: TestView) -> list[str]:
    """A regressed test in the job summary: its id, its headline numbers, its changes."""
    changes = []
    for change in test.changes:
        hints = change.hints[:SUMMARY_HINTS]
        if len(change.hints) > SUMMARY_HINTS:
            hints.append(f"... and {len(change.hints) - SUMMARY_HINTS} more hints")
        changes.append(replace(change, hints=[truncate(h, 500) for h in hints]))
    numbers = " · ".join(f"{metrics[0].brief} {arrow(*(test.values[m.name] for m in metrics))}"
                         for metrics in SUMMARY_METRICS if len(metrics) > 1)
    return [f"**{_code(truncate(test.label, 300))}** · {md_escape(numbers)}", "",
            *_change_lines(changes), ""]


def _graph_breaks(test: TestView) -> list[str]:
    if not test.graph_break_details:
        return []
    out = ["**Graph breaks**", ""]
    for number, brk in enumerate(test.graph_break_details, start=1):
        where = _code(brk.location) if brk.location else "unknown location"
        function = f" in {_code(brk.function)}" if brk.function else ""
        out.append(f"{number}. {md_escape(brk.short)} at {where}{function}")
    out.append("")
    return out


def _numerics(test: TestView) -> str:
    n = test.numerics
    if not n.checked:
        return f"**Numerics:** {md_escape(n.text)}"
    parts = [n.summary if n.ok else f"**{n.summary}**", *map(md_escape, n.facts)]
    if n.where:
        parts.append(f"at {_code(n.where)}")
    if n.message:
        parts.append(md_escape(n.message))
    return f"**Numerics:** {', '.join(parts)}"


def _environment_table(envs: list[EnvironmentView]) -> list[str]:
    names = [name for name, _ in envs[0].fields]
    columns = [Column("key", code=True), *(Column(name) for name in names)]
    rows = [[env.key, *(dict(env.fields).get(name, MISSING) for name in names)]
            for env in envs]
    return _table(Table("Environments", columns, rows), title=False)
