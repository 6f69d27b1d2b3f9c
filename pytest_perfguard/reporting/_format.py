"""Formatting shared by the reporters: units, counts, escaping, stable ids. No torch, no I/O."""

from __future__ import annotations

import hashlib
import html
import re
from collections import Counter

from ..compare import STATUS_ORDER, Change
from ..record import Environment, Measurement
from ..results import ResultEntry, RunResults

#: Placeholder for a metric that was not measured (the reason is shown where there is room).
MISSING = "n/a"

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_SI_PREFIXES = ("", "k", "M", "G", "T", "P", "E")


def human_bytes(value: float | None) -> str:
    """``4194304`` -> ``"4.00 MiB"`` (binary units, three significant digits)."""
    if value is None:
        return MISSING
    size = float(value)
    unit = 0
    while abs(size) >= 1024 and unit < len(_BYTE_UNITS) - 1:
        size /= 1024
        unit += 1
    if unit == 0:
        return f"{int(size)} B"
    return f"{_three_digits(size)} {_BYTE_UNITS[unit]}"


def human_si(value: float | None, unit: str = "") -> str:
    """``268435456`` -> ``"268 M"`` + unit (decimal prefixes, three significant digits)."""
    if value is None:
        return MISSING
    size = float(value)
    prefix = 0
    while abs(size) >= 1000 and prefix < len(_SI_PREFIXES) - 1:
        size /= 1000
        prefix += 1
    if prefix == 0 and float(value).is_integer():
        text = f"{int(value)}"
    else:
        text = _three_digits(size)
    return f"{text} {_SI_PREFIXES[prefix]}{unit}".rstrip()


def human_flops(value: float | None) -> str:
    return human_si(value, "FLOP")


def human_seconds(value: float | None) -> str:
    """``0.00123`` -> ``"1.23 ms"`` (ASCII ``us`` so every terminal can show it)."""
    if value is None:
        return MISSING
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if abs(value) >= scale:
            return f"{_three_digits(value / scale)} {unit}"
    return f"{_three_digits(value / 1e-9)} ns"


def count(value: float | None) -> str:
    """An exact count with thousands separators."""
    if value is None:
        return MISSING
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4g}"


def ratio(value: float | None) -> str:
    """``3.0`` -> ``"3.00x"``."""
    return MISSING if value is None else f"{value:.2f}x"


def percent(value: float | None) -> str:
    """``0.613`` -> ``"61.3%"``."""
    return MISSING if value is None else f"{value:.1%}"


def _three_digits(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def intensity(value: float | None) -> str:
    """Arithmetic intensity: ``80.3 FLOP/B``, ``1,365 FLOP/B``."""
    if value is None:
        return MISSING
    return f"{value:,.0f} FLOP/B" if value >= 1000 else f"{value:.3g} FLOP/B"


def metric_value(metric: str, value: float | None) -> str:
    """A value of a :class:`Change` metric in that metric's unit."""
    if value is None:
        return MISSING
    if "bytes" in metric:
        return human_bytes(value)
    if "utilisation" in metric:
        return percent(value)
    if "percent" in metric:
        return f"{value:.1f}%"
    if "time" in metric:
        return human_seconds(value)
    if "ratio" in metric:
        return ratio(value)
    return count(value)


def change_text(change: Change, arrow: str = "->") -> str:
    """``compiled bytes_moved: 4.00 MiB -> 6.00 MiB (+50.0%)``."""
    rel = change.relative
    suffix = f" ({rel:+.1%})" if rel is not None else ""
    return (
        f"{change.metric}: {metric_value(change.metric, change.baseline)} {arrow} "
        f"{metric_value(change.metric, change.current)}{suffix}"
    )


def status_counts(results: RunResults) -> dict[str, int]:
    """How many entries have each verdict status, every known status present, report order."""
    counter: Counter[str] = Counter(e.verdict.status for e in results.entries)
    counts = {status: counter.pop(status, 0) for status in STATUS_ORDER}
    counts.update(sorted(counter.items()))
    return counts


def headline(results: RunResults) -> str:
    """``3 regressed, 1 improved, 0 new, 0 other-environment, 12 unchanged``."""
    return ", ".join(f"{n} {status}" for status, n in status_counts(results).items())


def environments(results: RunResults) -> dict[str, Environment]:
    """The distinct environments of a run, by key, in first-seen order."""
    found: dict[str, Environment] = {}
    for entry in results.entries:
        found.setdefault(entry.measurement.environment.key(), entry.measurement.environment)
    return found


def entry_label(entry: ResultEntry, several_environments: bool) -> str:
    """The measurement key, with its device when one report holds several environments."""
    key = entry.measurement.key
    if several_environments:
        return f"{key} @ {entry.measurement.environment.device_name}"
    return key


def short_label(entry: ResultEntry, several_environments: bool) -> str:
    """The key without its file path (charts have little room): ``test_mlp[a]::backward``."""
    key = entry.measurement.key
    short = key.split("::", 1)[1] if "::" in key else key
    if several_environments:
        return f"{short} ({entry.measurement.environment.device})"
    return short


def entry_id(measurement: Measurement) -> str:
    """An HTML id that stays the same for the same test and environment across runs."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", measurement.key).lower()[:48].strip("-")
    digest = hashlib.sha1(
        f"{measurement.key}\0{measurement.environment.key()}".encode()
    ).hexdigest()[:8]
    return f"test-{slug}-{digest}" if slug else f"test-{digest}"


def speedup_text(measurement: Measurement) -> str:
    """Eager/compiled median time ratio, flagged when either timing is noisy."""
    speedup = measurement.speedup
    if speedup is None:
        return MISSING
    timings = (measurement.eager.time, measurement.compiled.time)
    noisy = any(t is not None and t.noisy for t in timings)
    return f"{speedup:.2f}x (noisy)" if noisy else f"{speedup:.2f}x"


_WHITESPACE_WITH_NEWLINE = re.compile(r"\s*[\r\n\u2028\u2029\v\f]+\s*")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def one_line(text: str) -> str:
    """Collapse newlines (and the whitespace around them) to one space; drop control chars."""
    return _CONTROL.sub("", _WHITESPACE_WITH_NEWLINE.sub(" ", text)).strip()


def truncate(text: str, width: int) -> str:
    """Shorten from the middle, keeping the file and the parametrize id readable."""
    if len(text) <= width:
        return text
    keep = width - 3
    head = keep // 2
    return text[:head] + "..." + text[len(text) - (keep - head):]


# Markdown: characters that start inline markup. Escaping ``[``/``]`` stops links, ``|``
# stops table cells, backticks stop code spans; ``<``/``>``/``&`` are HTML-escaped.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(text: str) -> str:
    """User text made inert inside a GitHub-flavoured markdown paragraph or table cell."""
    escaped = html.escape(one_line(str(text)), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", escaped)


def html_inline(text: str) -> str:
    """User text made inert inside raw HTML that markdown does not parse (``<summary>``)."""
    return html.escape(one_line(str(text)), quote=True).replace("`", "&#96;")
