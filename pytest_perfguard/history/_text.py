"""Metric values as text, in each metric's unit (shared by ``show``, ``first-change`` and the
reports). Kept apart from :mod:`.metrics` so that recording a run does not import the
reporting package."""

from __future__ import annotations

from ..metrics import BY_NAME
from ..reporting._format import count, human_bytes, human_seconds, percent
from .metrics import is_timing


def _format(metric: str, value: float | None, *, short: bool) -> str:
    """In the catalogue's unit for ``metric``; a name the catalogue lacks (a database written
    by another perfguard version) is shown as a plain number."""
    if value is None:
        return "n/a"
    known = BY_NAME.get(metric)
    unit = known.unit if known is not None else "count"
    if unit == "seconds":
        return human_seconds(value)
    if unit == "fraction":
        return percent(value)
    if unit == "bytes":
        if short:
            return human_bytes(value)
        return f"{count(value)} B ({human_bytes(value)})" if abs(value) >= 1024 else \
            f"{count(value)} B"
    return count(value)  # counts and FLOPs: the history shows them exact


def format_value(metric: str, value: float | None) -> str:
    """A value in its metric's unit: exact counts, bytes with their binary size, seconds."""
    return _format(metric, value, short=False)


def format_short(metric: str, value: float | None) -> str:
    """A compact value for a table cell or a chart label."""
    return _format(metric, value, short=True)


def format_change(metric: str, old: float | None, new: float | None) -> str:
    """``+1 (+50.0%)`` for a count, ``+4.00 MiB (+50.0%)`` for bytes; empty when equal."""
    if old is None or new is None or old == new:
        return ""
    delta = new - old
    relative = f" ({delta / old:+.1%})" if old else ""
    if is_timing(metric):
        return relative.strip(" ()") or ("+" if delta > 0 else "-")
    sign = "+" if delta > 0 else "-"
    return f"{sign}{format_short(metric, abs(delta))}{relative}"
