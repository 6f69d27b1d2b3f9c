"""The terminal summary: one plain-text table plus one line per regression and its hints.

No ANSI colour and no terminal width probing here: the plugin decides how to colour and
where to write, so the same text works under ``-q``, ``-v``, xdist and ``--color=no``.
"""

from __future__ import annotations

from tabulate import tabulate

from ..compare import unique_hints
from ..results import ResultEntry, RunResults
from ._format import (
    count,
    entry_label,
    environments,
    headline,
    human_bytes,
    human_flops,
    one_line,
    ratio,
    speedup_text,
    truncate,
)
from ._interim import describe_change

#: Column headers of the summary table; each test's id is on its own line above its rows,
#: so the table stays about 110 characters wide however long the ids are.
HEADERS = (
    "mode",
    "launches",
    "bytes moved",
    "FLOPs",
    "fusion",
    "traffic",
    "breaks",
    "recompiles",
    "speedup",
    "verdict",
)

ALIGN = ("left",) + ("right",) * 8 + ("left",)

#: Without ``verbose``, longer test ids are shortened from the middle.
TEST_ID_WIDTH = 100


def render_terminal(results: RunResults, *, verbose: bool = False) -> str:
    """Render ``results`` as plain text for the pytest terminal summary.

    Per measurement: its id on one line, then an eager and a compiled row; regressions
    first. Under the table comes one line per regressed metric with its hints (each hint
    once per test). With ``verbose``: full test ids, improvements and within-tolerance
    changes too, the verdict notes, and why unavailable metrics are missing.
    """
    if not results.entries:
        return "perfguard: no measurements in this run\n"
    several = len(environments(results)) > 1
    entries = results.sorted_entries()
    rows: list[list[str]] = []
    for entry in entries:
        rows.extend(_rows(entry))
    # The header goes in as a data row: tabulate pads header cells by two extra spaces,
    # which would make this table ~10 characters wider. "simple" without headers draws a
    # rule above and below; the top one is moved under the header.
    rendered = tabulate(
        [list(HEADERS), *rows], tablefmt="simple", disable_numparse=True, colalign=ALIGN
    ).split("\n")
    table = [("  " + line).rstrip() for line in (rendered[1], rendered[0], *rendered[2:-1])]
    lines = table[:2]  # header and rule
    for index, entry in enumerate(entries):
        label = one_line(entry_label(entry, several))
        lines.append(label if verbose else truncate(label, TEST_ID_WIDTH))
        lines.extend(table[2 + 2 * index : 4 + 2 * index])
    details = [line for entry in entries for line in _detail_lines(entry, several, verbose)]
    if details:
        lines.append("")
        lines.extend(details)
    lines.append("")
    lines.append(f"perfguard: {headline(results)}")
    return "\n".join(lines) + "\n"


def _rows(entry: ResultEntry) -> list[list[str]]:
    m = entry.measurement
    eager, compiled = m.eager, m.compiled
    return [
        [
            "eager",
            count(eager.kernel_launches),
            human_bytes(eager.bytes_moved),
            human_flops(eager.flops),
            ratio(m.fusion_ratio),
            ratio(m.traffic_ratio),
            "",
            "",
            speedup_text(m),
            entry.verdict.status,
        ],
        [
            "compiled",
            count(compiled.kernel_launches),
            human_bytes(compiled.bytes_moved),
            human_flops(compiled.flops),
            "",
            "",
            count(compiled.graph_breaks),
            count(compiled.recompiles),
            "",
            "",
        ],
    ]


def _detail_lines(entry: ResultEntry, several: bool, verbose: bool) -> list[str]:
    verdict = entry.verdict
    label = one_line(entry_label(entry, several))
    shown = verdict.changes if verbose else verdict.regressions
    lines = []
    for change, hints in unique_hints(shown):
        lines.append(f"{change.direction} {label}: {describe_change(change)}")
        lines.extend(f"    hint: {one_line(hint)}" for hint in hints)
    if verbose and verdict.note:
        lines.append(f"{verdict.status} {label}: {one_line(verdict.note)}")
    if verbose:
        for mode in (entry.measurement.eager, entry.measurement.compiled):
            for metric, reason in sorted(mode.unavailable.items()):
                lines.append(f"unavailable {label}: {mode.mode} {metric}: {one_line(reason)}")
    return lines
