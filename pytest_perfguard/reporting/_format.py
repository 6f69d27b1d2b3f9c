"""Formatting shared by the reporters: units, counts, escaping, stable ids. No torch, no I/O."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable
from functools import lru_cache

from ..metrics import Metric, lookup

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


def metric_value(metric: str, value: float | None) -> str:
    """A value of a :class:`~pytest_perfguard.compare.Change` metric in that metric's unit,
    as the catalogue (:mod:`..metrics`) gives it; ``metric`` in any spelling perfguard
    prints (``"compiled peak_memory"``, ``"memory_ratio"``)."""
    known = lookup(metric)
    return formatted(known, value) if known is not None else count(value)


def formatted(metric: Metric, value: float | None) -> str:
    """``value`` of ``metric`` in its unit, short: ``4.00 MiB``, ``1,024``, ``3.00x``."""
    return MISSING if value is None else _BY_UNIT[metric.unit](value)


_BY_UNIT: dict[str, Callable[[float], str]] = {
    "count": count, "bytes": human_bytes, "flops": human_flops, "flop_per_byte": intensity,
    "seconds": human_seconds, "ratio": ratio, "fraction": percent,
    "percent": lambda value: f"{value:.1f}%",
}


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
#: What a terminal acts on instead of showing: C0 and C1 control characters, DEL, the line
#: and paragraph separators, and the bidi controls that reorder the text after them.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_UNPRINTABLE_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    return ascii(match.group())[1:-1]  # "\x1b" -> "\\x1b", "\u202e" -> "\\u202e", "\n" -> "\\n"


def printable(text: str, *, multiline: bool = False) -> str:
    """``text`` safe to print on a terminal: every control character is shown escaped as
    Python writes it (``\\x1b``, ``\\r``, ``\\u202e``), so a test id or a commit cannot erase,
    recolour or reorder what perfguard prints. With ``multiline``, newlines are kept.

    Use it on every user-controlled string perfguard prints (test ids, names, commits,
    branches, environment labels, messages); ``one_line`` applies it too.
    """
    if text.isprintable():  # the common case: nothing to escape
        return text
    return (_UNPRINTABLE_BUT_NEWLINE if multiline else _UNPRINTABLE).sub(_escaped, text)


def one_line(text: str) -> str:
    """Collapse newlines (and the whitespace around them) and tabs to one space; show other
    control characters escaped (:func:`printable`)."""
    if text.isprintable():  # the common case: no newline or control character to handle
        return text.strip()
    return printable(_WHITESPACE_WITH_NEWLINE.sub(" ", text).replace("\t", " ").strip())


def truncate(text: str, width: int) -> str:
    """Shorten from the middle, keeping the file and the parametrize id readable."""
    if len(text) <= width:
        return text
    keep = width - 3
    head = keep // 2
    return text[:head] + "..." + text[len(text) - (keep - head):]


# Markdown: characters that start inline markup. Escaping ``[``/``]`` (and ``!``) stops links
# and images, ``|`` stops table cells, backticks stop code spans; ``<``/``>``/``&`` are
# HTML-escaped.
_MD_SPECIAL = str.maketrans({char: "\\" + char for char in "\\`*_[]|~!"})
#: What starts a block at the start of a line: a heading, a list item, a setext underline
#: or thematic break (``*`` and ``_`` are escaped everywhere).
_MD_LINE_START = re.compile(r"^(?:(#{1,6}|[-+]|\d{1,9}[.)])(?=\s|$)|[-=]+\s*$)")
#: ``@name`` (a user or team mention, or an e-mail address): GitHub notifies the user. A
#: zero-width space after the ``@`` (the HTML entity, which shows as nothing) stops that, as
#: Dependabot and Renovate do in the release notes they quote.
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")
NO_MENTION = "@&#8203;"


def md_escape(text: str) -> str:
    """User text made inert inside a GitHub-flavoured markdown paragraph, table cell or
    ``<code>`` element: one line, markup characters backslash-escaped (a heading or list
    marker at its start too), HTML escaped, ``@mentions`` neutralised, control characters
    shown escaped."""
    return _md_escape(str(text))


@lru_cache(maxsize=65536)
def _md_escape(text: str) -> str:
    # Cached: a report repeats the same kernel names, kinds, counts and units many times.
    escaped = html.escape(one_line(text), quote=False).translate(_MD_SPECIAL)
    if _MD_LINE_START.match(escaped):  # "1. x" -> "1\\. x", "# x" -> "\\# x"
        at = len(escaped.split(".", 1)[0].split(")", 1)[0]) if escaped[0].isdigit() else 0
        escaped = f"{escaped[:at]}\\{escaped[at:]}"
    return _MENTION.sub(NO_MENTION, escaped)


def html_inline(text: str) -> str:
    """User text made inert inside raw HTML that markdown does not parse (``<summary>``)."""
    escaped = html.escape(one_line(str(text)), quote=True).replace("`", "&#96;")
    return _MENTION.sub(NO_MENTION, escaped)
