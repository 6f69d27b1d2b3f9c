"""Plain-text messages about one verdict, for the plugin's test failures and the CLI.

These keep exact numbers (``baseline 32,768, current 98,304``) rather than the reports'
rounded units: a failure message is read to decide whether a change is real, and is
matched by users' scripts.
"""

from __future__ import annotations

from ..compare import Change, unique_hints
from ..results import ResultEntry
from ._format import one_line, printable


def exact(value: float | None) -> str:
    """A metric value as exact text: counts with thousands separators, ratios to 4 digits."""
    if value is None:
        return "unavailable"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    return f"{int(value):,}"


def describe_change(change: Change) -> str:
    """``compiled bytes_moved: baseline 32,768, current 98,304 (+200.0%)``."""
    rel = change.relative
    suffix = f" ({rel:+.1%})" if rel is not None else ""
    return (f"{change.metric}: baseline {exact(change.baseline)}, "
            f"current {exact(change.current)}{suffix}")


def failure_message(entry: ResultEntry, *, strict: bool | None = None) -> str:
    """Why a test failed the gate: every metric that regressed (or, with ``strict``, that
    improved beyond tolerance), each likely cause once, and how to accept the change.
    ``strict`` defaults to what the verdict says (an improvement fails only under it)."""
    m, verdict = entry.measurement, entry.verdict
    # The test id, name and environment are the user's text: shown escaped (printable).
    key, environment = printable(m.key), printable(m.environment.label())
    if verdict.missing_baseline:
        return (f"perfguard: no baseline for {key} in this environment "
                f"({environment}) and --perfguard-require-baseline is set. Record "
                "one with --perfguard-update.")
    if strict is None:
        strict = verdict.status == "improved"
    head = (f"perfguard: {key} improved beyond tolerance and --perfguard-strict is set"
            if strict else f"perfguard: {key} regressed against the baseline")
    lines = [head + f" ({environment})"]
    if verdict.note:  # compared across environments: with which, and what differs
        lines.append(f"  {one_line(verdict.note)}")
    changes = verdict.improvements if strict else verdict.regressions
    for change, hints in unique_hints(changes):
        lines.append(f"  {describe_change(change)}")
        lines.extend(f"    likely cause: {one_line(hint)}" for hint in hints)
    lines.append("If this change is intended, accept it: pytest --perfguard --perfguard-update")
    return "\n".join(lines)
