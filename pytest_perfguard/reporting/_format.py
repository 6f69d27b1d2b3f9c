"""Formatting shared by the reporters: units, counts, escaping, stable ids. No torch, no I/O."""

from __future__ import annotations

import hashlib
import html
import re
from functools import lru_cache

#: Placeholder for a metric that was not measured (the reason is shown where there is room).
MISSING = "n/a"

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_SI_PREFIXES = ("", "k", "M", "G", "T", "P", "E")


def human_bytes(value: float | None) -> str:
    """``4194304`` -> ``"4.00 MiB"`` (binary units, three significant digits)."""
    if value is None:
        return MISSING
    size, unit = _scaled(float(value), 1024, len(_BYTE_UNITS))
    if unit == 0:
        return f"{int(size)} B"
    return f"{_three_digits(size)} {_BYTE_UNITS[unit]}"


def human_si(value: float | None, unit: str = "") -> str:
    """``268435456`` -> ``"268 M"`` + unit (decimal prefixes, three significant digits)."""
    if value is None:
        return MISSING
    size, prefix = _scaled(float(value), 1000, len(_SI_PREFIXES))
    if prefix == 0 and float(value).is_integer():
        text = f"{int(value)}"
    else:
        text = _three_digits(size)
    return f"{text} {_SI_PREFIXES[prefix]}{unit}".rstrip()


def _scaled(size: float, base: int, units: int) -> tuple[float, int]:
    """``size`` divided by ``base`` until it is below ``base`` (at most ``units - 1`` times)."""
    unit = 0
    while abs(size) >= base and unit < units - 1:
        size /= base
        unit += 1
    return size, unit


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
    if isinstance(value, int) or value.is_integer():
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


#: Change metrics (the name after any "eager "/"compiled " prefix) measured in bytes.
BYTE_METRICS = frozenset({"bytes_moved", "peak_memory", "memory_used_bytes"})


def metric_value(metric: str, value: float | None) -> str:
    """A value of a :class:`~pytest_perfguard.compare.Change` metric in that metric's unit.

    ``metric`` is a change's metric name such as ``"compiled peak_memory"`` or
    ``"memory_ratio"``; the unit follows from the name after the mode.
    """
    if value is None:
        return MISSING
    name = metric.rsplit(" ", 1)[-1]
    if name in BYTE_METRICS or "bytes" in name:
        return human_bytes(value)
    if "utilisation" in name:
        return percent(value)
    if "percent" in name:
        return f"{value:.1f}%"
    if "time" in name:
        return human_seconds(value)
    if name.endswith("ratio") or name == "speedup":
        return ratio(value)
    return count(value)


def anchor(kind: str, *identity: str) -> str:
    """An HTML id that stays the same for the same thing across runs.

    ``anchor("test", key, environment_key)`` -> ``test-tests-test-x-py-test-y-1a2b3c4d``: a
    readable slug of the first part and a digest of all of them (ids stay unique when two
    keys slug alike).
    """
    slug = re.sub(r"[^A-Za-z0-9]+", "-", identity[0]).lower()[:48].strip("-")
    digest = hashlib.sha1("\0".join(identity).encode()).hexdigest()[:8]
    return f"{kind}-{slug}-{digest}" if slug else f"{kind}-{digest}"


_WHITESPACE_WITH_NEWLINE = re.compile(r"\s*[\r\n\u2028\u2029\v\f]+\s*")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def one_line(text: str) -> str:
    """Collapse newlines (and the whitespace around them) to one space; drop control chars."""
    if text.isprintable():  # the common case: no newline or control character to handle
        return text.strip()
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
_MD_SPECIAL = str.maketrans({char: "\\" + char for char in "\\`*_[]|~"})


def md_escape(text: str) -> str:
    """User text made inert inside a GitHub-flavoured markdown paragraph or table cell."""
    return _md_escape(str(text))


@lru_cache(maxsize=65536)
def _md_escape(text: str) -> str:
    # Cached: a report repeats the same kernel names, kinds, counts and units many times.
    return html.escape(one_line(text), quote=False).translate(_MD_SPECIAL)


def html_inline(text: str) -> str:
    """User text made inert inside raw HTML that markdown does not parse (``<summary>``)."""
    return html.escape(one_line(str(text)), quote=True).replace("`", "&#96;")
