"""Metric values as text, in each metric's unit (shared by ``show``, ``first-change`` and the
reports). Kept apart from :mod:`.metrics` so that recording a run does not import the
reporting package."""

from __future__ import annotations

from ..reporting._format import count, human_bytes, human_seconds, percent
from .metrics import field_of, is_timing


def _format(metric: str, value: float | None, *, short: bool) -> str:
    if value is None:
        return "n/a"
    name = field_of(metric)
    if name.startswith("time") or name.endswith("_seconds"):
        return human_seconds(value)
    if "utilisation" in name:
        return percent(value)
    if "bytes" in name or "memory" in name:
        if short:
            return human_bytes(value)
        return f"{count(value)} B ({human_bytes(value)})" if abs(value) >= 1024 else \
            f"{count(value)} B"
    return count(value)


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
    if is_timing(metric) or "utilisation" in field_of(metric):
        return relative.strip(" ()") or ("+" if delta > 0 else "-")
    sign = "+" if delta > 0 else "-"
    return f"{sign}{format_short(metric, abs(delta))}{relative}"
