"""Text for one verdict: how a change reads and a failing test's message. No torch, no I/O."""

from __future__ import annotations

from ..compare import Change, unique_hints
from ..results import ResultEntry, RunResults


def _value(value: float | None) -> str:
    if value is None:
        return "unavailable"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    return f"{int(value):,}"


def describe_change(change: Change) -> str:
    """``compiled kernel_launches: baseline 1, current 2 (+100.0%)``."""
    rel = change.relative
    moved = f" ({rel:+.1%})" if rel is not None else ""
    return f"{change.metric}: baseline {_value(change.baseline)}, current {_value(change.current)}{moved}"


def failure_message(entry: ResultEntry) -> str:
    """Why a failing verdict fails its test: every metric that regressed, with likely causes."""
    m, verdict = entry.measurement, entry.verdict
    if verdict.missing_baseline:
        return (f"perfguard: no baseline for {m.key} in this environment "
                f"({m.environment.label()}) and require_baseline is set. Record one with "
                "--perfguard-update.")
    strict = verdict.status == "improved"
    head = (f"perfguard: {m.key} improved beyond tolerance and --perfguard-strict is set" if strict
            else f"perfguard: {m.key} regressed against the baseline")
    lines = [head + f" ({m.environment.label()})"]
    for change, hints in unique_hints(verdict.improvements if strict else verdict.regressions):
        lines.append(f"  {describe_change(change)}")
        lines.extend(f"    likely cause: {hint}" for hint in hints)
    lines.append("If this change is intended, accept it: pytest --perfguard --perfguard-update")
    return "\n".join(lines)


def render_markdown_summary(results: RunResults, *, max_bytes: int = 900_000) -> str:
    """The job summary: the full markdown when it fits GitHub's 1 MiB limit (interim)."""
    from .markdown import render_markdown

    text = render_markdown(results)
    if len(text.encode()) <= max_bytes:
        return text
    return text.encode()[:max_bytes].decode(errors="ignore") + "\n\n(truncated)\n"
