"""Trend charts for the history report: inline SVG written by hand, no scripts.

A chart has one x position per run (oldest left), one line per metric, optional IQR
bands, points linked to their commit, and a dashed marker at every step (a run where a
deterministic metric took a new value). Every label is escaped here, and a link is kept
only when it is http(s), so commit messages, branch names and test ids cannot inject
markup.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from ..reporting._svg import WIDTH, nice_ceiling, svg_open

HEIGHT = 250
LEFT, RIGHT, TOP, BOTTOM = 86, 24, 44, 46
#: Least horizontal room (px) between two commit labels on the x axis.
LABEL_SPACING = 64
STEP_COLOUR = "#c62828"


@dataclass
class Column:
    """One x position: a recorded run, or the current (unrecorded) one."""

    label: str
    title: str
    href: str | None
    commit: str
    current: bool = False


@dataclass
class Line:
    name: str
    colour: str
    values: list[float | None]
    #: Half-widths of a band around each value (the IQR band of a timing), or None.
    band: list[float | None] | None = None
    #: Draw as a step function (deterministic metrics) rather than a polyline.
    steps: bool = True


@dataclass
class Step:
    index: int
    commit: str
    text: str


#: An http(s) URL of the characters RFC 3986 allows (no space, quote, ``<>``, ``|``,
#: backslash or backtick, nothing outside ASCII).
_SAFE_URL = re.compile(r"^https?://[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+$", re.IGNORECASE)


def safe_url(url: str | None) -> str | None:
    """``url`` when it is a plain http(s) URL, else None (shown as text, not a link).

    In markdown, also encode its parentheses (:func:`markdown_url`): a ``)`` ends a link.
    """
    if url and _SAFE_URL.match(url.strip()):
        return url.strip()
    return None


def markdown_url(url: str) -> str:
    """A :func:`safe_url` made safe as a markdown link's destination: ``(`` and ``)``
    percent-encoded, so a URL cannot close the link and start markup after it."""
    return url.replace("(", "%28").replace(")", "%29")


def trend_chart(chart_id: str, title: str, columns: Sequence[Column], lines: Sequence[Line],
                value_text: Callable[[float | None], str], *, steps: Sequence[Step] = (),
                binary: bool = False) -> str:
    """An SVG line chart of ``lines`` over ``columns``."""
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    count = len(columns)
    pitch = plot_width / max(count, 1)

    def x_of(index: int) -> float:
        return LEFT + pitch * (index + 0.5)

    highs = [value + (half or 0.0)
             for line in lines
             for value, half in zip(line.values, line.band or [None] * len(line.values),
                                    strict=True)
             if value is not None]
    axis_max = nice_ceiling(max(highs, default=1.0) or 1.0, binary=binary)

    def y_of(value: float) -> float:
        return TOP + plot_height * (1 - max(0.0, value) / axis_max)

    desc = (f"{', '.join(line.name for line in lines)} over {count} runs, oldest left"
            + (f"; {len(steps)} step(s) marked" if steps else ""))
    out = svg_open(chart_id, HEIGHT, title, desc, css="chart trend")
    x = float(LEFT)
    for line in lines:
        out.append(f'<rect x="{x:.1f}" y="12" width="12" height="12" fill="{line.colour}"/>')
        out.append(f'<text x="{x + 16:.1f}" y="22">{escape(line.name)}</text>')
        x += 30 + 7 * len(line.name)
    bottom = TOP + plot_height
    for i in range(5):
        tick = axis_max * i / 4
        y = y_of(tick)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                   f'stroke="{"#333" if i == 0 else "#e6e6e6"}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">'
                   f"{escape(value_text(tick) if tick else '0')}</text>")
    every = max(1, round(LABEL_SPACING / pitch)) if count else 1
    for index, column in enumerate(columns):
        if index % every and index != count - 1:
            continue
        cx = x_of(index)
        weight = ' font-weight="bold"' if column.current else ""
        out.append(f'<text class="commit-label" x="{cx:.1f}" y="{bottom + 16}" '
                   f'text-anchor="middle" fill="#555"{weight}>{escape(column.label)}</text>')
    for step in steps:
        sx = x_of(step.index) - pitch / 2
        out.append(f'<g class="step" data-commit="{escape(step.commit)}">'
                   f"<title>{escape(step.text)}</title>"
                   f'<line x1="{sx:.1f}" y1="{TOP - 6}" x2="{sx:.1f}" y2="{bottom}" '
                   f'stroke="{STEP_COLOUR}" stroke-dasharray="4 3"/>'
                   f'<text x="{sx + 3:.1f}" y="{TOP - 8}" fill="{STEP_COLOUR}" '
                   f'font-size="11">{escape(step.commit[:7])}</text></g>')
    for line in lines:
        out += _line(line, x_of, y_of, pitch)
    for line in lines:
        for index, value in enumerate(line.values):
            if value is None or index >= count:
                continue
            column = columns[index]
            text = f"{column.title}: {line.name} {value_text(value)}"
            if line.band and line.band[index] is not None:
                text += f" (IQR {value_text(2 * (line.band[index] or 0.0))})"
            shape = "current-point" if column.current else "point"
            fill = "#fff" if column.current else line.colour
            circle = (f'<circle class="{shape}" data-commit="{escape(column.commit)}" '
                      f'cx="{x_of(index):.1f}" cy="{y_of(value):.1f}" r="3.5" fill="{fill}" '
                      f'stroke="{line.colour}" stroke-width="1.5">'
                      f"<title>{escape(text)}</title></circle>")
            href = safe_url(column.href)
            out.append(f'<a href="{escape(href)}">{circle}</a>' if href else circle)
    if not any(v is not None for line in lines for v in line.values):
        out.append(f'<text x="{WIDTH / 2:.0f}" y="{TOP + plot_height / 2:.0f}" '
                   'text-anchor="middle" fill="#888">no values in these runs</text>')
    out.append("</svg>")
    return "\n".join(out)


def _line(line: Line, x_of: Callable[[int], float], y_of: Callable[[float], float],
          pitch: float) -> list[str]:
    """The band (if any) and the path of one line; gaps where a run has no value."""
    out: list[str] = []
    segments: list[list[int]] = [[]]
    for index, value in enumerate(line.values):
        if value is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append(index)
    for segment in (s for s in segments if s):
        if line.band:
            upper = [(x_of(i), y_of(_v(line, i) + (line.band[i] or 0.0))) for i in segment]
            lower = [(x_of(i), y_of(_v(line, i) - (line.band[i] or 0.0))) for i in segment]
            if len(segment) == 1:
                x, _ = upper[0]
                upper = [(x - 3, upper[0][1]), (x + 3, upper[0][1])]
                lower = [(x - 3, lower[0][1]), (x + 3, lower[0][1])]
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in upper + lower[::-1])
            out.append(f'<polygon class="band" points="{points}" fill="{line.colour}" '
                       'fill-opacity="0.22" stroke="none"/>')
        commands: list[str] = []
        for position, index in enumerate(segment):
            x, y = x_of(index), y_of(_v(line, index))
            if position == 0:
                commands.append(f"M{x:.1f},{y:.1f}")
            elif line.steps:
                commands.append(f"H{x - pitch / 2:.1f}V{y:.1f}H{x:.1f}")
            else:
                commands.append(f"L{x:.1f},{y:.1f}")
        out.append(f'<path d="{"".join(commands)}" fill="none" stroke="{line.colour}" '
                   'stroke-width="2"/>')
    return out


def _v(line: Line, index: int) -> float:
    value = line.values[index]
    assert value is not None
    return value
