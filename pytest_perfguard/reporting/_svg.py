"""Inline SVG charts for the HTML report, written by hand: no plotting library, no scripts.

Each function takes plain numbers and labels and returns an ``<svg>`` string with
``class="chart"``, the given id, ``role="img"``, a ``<title>`` and a ``<desc>``. Every label
is HTML-escaped here, so user text (test ids, kernel names) cannot inject markup.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from ._format import _scaled, human_si, truncate
from .model import DeviceRoof

WIDTH = 880
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
EAGER_COLOUR = "#7b8fc7"
COMPILED_COLOUR = "#f08a4b"
DIRECTION_COLOURS = {"regressed": "#c62828", "improved": "#2e7d32", "changed": "#8a8a8a"}
LABEL_WIDTH = 300
LABEL_CHARS = 40


@dataclass
class BarRow:
    """One test in a grouped bar chart: its label and its eager and compiled values."""

    label: str
    title: str
    eager: float | None
    compiled: float | None
    highlight: bool = False


@dataclass
class ChangeRow:
    """One changed metric: label, relative change (None: baseline 0), colour, value text."""

    label: str
    title: str
    relative: float | None
    increased: bool
    direction: str
    text: str


@dataclass
class RoofPoint:
    label: str
    title: str
    mode: str
    intensity: float
    flops_per_second: float


def svg_open(chart_id: str, height: float, title: str, desc: str,
             css: str = "chart") -> list[str]:
    """An ``<svg>`` element's opening tag with its ``<title>`` and ``<desc>``."""
    cid = escape(chart_id)
    return [
        f'<svg class="{css}" id="{cid}" role="img" aria-labelledby="{cid}-title {cid}-desc" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" width="{WIDTH}" height="{height:.0f}" '
        f'font-family="{escape(FONT)}" font-size="12" '
        f'style="max-width:100%;height:auto">',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(desc)}</desc>',
    ]


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> list[str]:
    out = []
    for name, colour in items:
        out.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{x + 16:.1f}" y="{y + 1:.1f}">{escape(name)}</text>')
        x += 24 + 7.5 * len(name)
    return out


def nice_ceiling(value: float, *, binary: bool = False) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= value (a linear axis maximum).

    With ``binary`` the steps are taken in the 1024-power unit the value is shown in
    (``human_bytes``), so the ticks read 125 MiB, 250 MiB, ... rather than 119 MiB.
    """
    if value <= 0:
        return 1.0
    if binary:
        unit = 1024.0 ** max(0, math.floor(math.log(value, 1024)))
        return unit * nice_ceiling(value / unit)
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-12):
            return step * power
    return 10 * power


def _vertical_gridline(x: float, top: float, bottom: float, label: str,
                       stroke: str = "#e3e3e3") -> list[str]:
    """A vertical gridline from ``top`` to ``bottom`` with its (escaped) label under it."""
    return [f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="{stroke}"/>',
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" fill="#555">'
            f"{escape(label)}</text>"]


#: On a log axis, the smallest value drawn still gets a bar this long (pixels), so that a
#: value equal to the axis minimum is visible, and a zero is told apart from it.
STUB = 8.0


@dataclass
class LogAxis:
    """A logarithmic axis from ``low`` to ``high`` with labelled ticks.

    A bar chart of eager against compiled bytes for a transformer and a resnet spans three
    or more orders of magnitude: on a linear axis the small models' bars are invisible. On
    a log axis every bar is readable, tests keep their order by size, and the same
    eager/compiled ratio is the same gap on every row, so a 2x fusion reads alike on a
    small and on a large model. Per-row normalised bars would also make every row
    readable, but they draw a 100 KiB test and a 100 MiB test alike and stop answering
    "which test moves the most"; here each bar also prints its value.
    """

    low: float
    high: float
    ticks: list[tuple[float, str]]

    def position(self, value: float, width: float) -> float:
        """Pixels from the axis origin to ``value`` (> 0) on an axis ``width`` long."""
        span = math.log(self.high) - math.log(self.low)
        return STUB + (width - STUB) * (math.log(value) - math.log(self.low)) / span


def log_axis(values: Sequence[float], *, binary: bool = False) -> LogAxis:
    """A log axis covering the positive ``values``.

    ``binary`` (bytes): ticks at powers of two, every 1, 2, 5 or 10 doublings so there
    are at most 8, labelled ``1 KiB``, ``32 KiB``, ``1 MiB``. Otherwise ticks at powers of
    ten, with 2x and 5x between them when the values span two decades or less.
    """
    positive = [v for v in values if v > 0]
    if not positive:
        positive = [1.0]
    if binary:
        lo, hi = math.floor(math.log2(min(positive))), math.ceil(math.log2(max(positive)))
        for step in (1, 2, 5, 10, 20):
            floor, ceiling = lo // step * step, -(-hi // step) * step
            if ceiling == floor:
                ceiling += step
            if (ceiling - floor) // step <= 7:
                break
        ticks = [(2.0**e, _binary_label(e)) for e in range(floor, ceiling + 1, step)]
        return LogAxis(2.0**floor, 2.0**ceiling, ticks)
    lo = math.floor(math.log10(min(positive)))
    hi = max(math.ceil(math.log10(max(positive))), lo + 1)
    mantissas = (1, 2, 5) if hi - lo <= 2 else (1,)
    values = [m * 10.0**e for e in range(lo, hi) for m in mantissas] + [10.0**hi]
    # End at the first tick at or above the largest value (20, not 100, for 14).
    values = values[: next(i for i, v in enumerate(values) if v >= max(positive)) + 1]
    if len(values) == 1:
        values.append(values[0] * (2 if mantissas != (1,) else 10))
    return LogAxis(values[0], values[-1], [(v, _decimal_label(v)) for v in values])


_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def _binary_label(exponent: int) -> str:
    """``2**exponent`` bytes: ``512 B``, ``32 KiB``, ``1 GiB``."""
    unit = min(max(exponent, 0) // 10, len(_BINARY_UNITS) - 1)
    return f"{2.0 ** (exponent - 10 * unit):g} {_BINARY_UNITS[unit]}"


_SI_PREFIXES = ("", "k", "M", "G", "T", "P", "E")


def _decimal_label(value: float) -> str:
    """``1``, ``20``, ``500``, ``10k``, ``1M``, ``0.1``."""
    if value < 1:
        return f"{value:g}"
    size, prefix = _scaled(value, 1000, len(_SI_PREFIXES))
    return f"{size:g}{_SI_PREFIXES[prefix]}"


def grouped_bars(
    chart_id: str,
    title: str,
    rows: Sequence[BarRow],
    value_text: Callable[[float | None], str],
    *,
    note: str = "",
    binary: bool = False,
) -> str:
    """Horizontal bars on a log axis (see :class:`LogAxis`), eager above compiled, one
    group per test, each bar with its value printed at its end."""
    row_height, bar, top, bottom = 30, 11, 44, 44
    plot_left = LABEL_WIDTH
    plot_width = WIDTH - plot_left - 110
    height = top + row_height * len(rows) + bottom
    axis = log_axis([v for row in rows for v in (row.eager, row.compiled) if v is not None],
                    binary=binary)
    desc = (f"{len(rows)} tests; eager and compiled {title.lower()}, on a logarithmic axis. "
            f"{note}").strip()
    out = svg_open(chart_id, height, title, desc)
    out += _legend(plot_left, 18, [("eager", EAGER_COLOUR), ("compiled", COMPILED_COLOUR)])
    if note:
        out.append(f'<text x="{WIDTH - 8}" y="19" text-anchor="end" fill="#555">'
                   f"{escape(note)}</text>")
    axis_y = top + row_height * len(rows)
    for tick, label in axis.ticks:
        out += _vertical_gridline(plot_left + axis.position(tick, plot_width), top - 6, axis_y,
                                  label)
    out.append(f'<text x="{plot_left + plot_width:.1f}" y="{axis_y + 34}" text-anchor="end" '
               f'fill="#555" class="axis-note">log scale</text>')
    for index, row in enumerate(rows):
        y = top + index * row_height
        colour = ' fill="#c62828" font-weight="bold"' if row.highlight else ""  # regressed
        out.append(f"<g><title>{escape(row.title)}: eager {escape(value_text(row.eager))}, "
                   f"compiled {escape(value_text(row.compiled))}</title>")
        out.append(
            f'<text class="row-label" x="{plot_left - 8}" y="{y + 18}" text-anchor="end"{colour}>'
            f"{escape(truncate(row.label, LABEL_CHARS))}</text>"
        )
        for offset, value, fill in ((3, row.eager, EAGER_COLOUR), (3 + bar + 1, row.compiled,
                                                                     COMPILED_COLOUR)):
            if value is None or value <= 0:
                out.append(f'<text x="{plot_left + 4}" y="{y + offset + 9}" fill="#888" '
                           f'font-size="11">{escape(value_text(value))}</text>')
                continue
            length = axis.position(value, plot_width)
            out.append(
                f'<rect x="{plot_left}" y="{y + offset}" width="{length:.1f}" height="{bar}" '
                f'fill="{fill}"/>'
            )
            out.append(
                f'<text x="{plot_left + length + 4:.1f}" y="{y + offset + 9}" font-size="11">'
                f"{escape(value_text(value))}</text>"
            )
        out.append("</g>")
    out.append(
        f'<line x1="{plot_left}" y1="{top - 6}" x2="{plot_left}" y2="{axis_y}" stroke="#333"/>'
    )
    out.append("</svg>")
    return "\n".join(out)


#: Relative changes beyond this are drawn at this length (the text shows the real value).
CHANGE_CAP = 2.0


def change_bars(chart_id: str, title: str, rows: Sequence[ChangeRow], *, note: str = "") -> str:
    """Diverging bars of relative change against the baseline, coloured by verdict."""
    row_height, top, bottom = 24, 44, 30
    plot_left = LABEL_WIDTH + 70  # "test · metric" labels are longer than test names
    plot_width = WIDTH - plot_left - 190
    centre = plot_left + plot_width / 2
    height = top + row_height * len(rows) + bottom
    magnitudes = [abs(r.relative) for r in rows if r.relative is not None]
    scale_max = min(CHANGE_CAP, nice_ceiling(max(magnitudes, default=0.1)))
    desc = f"Relative change of {len(rows)} metrics against the baseline. {note}".strip()
    out = svg_open(chart_id, height, title, desc)
    out += _legend(plot_left, 18, [(name, DIRECTION_COLOURS[name]) for name in DIRECTION_COLOURS])
    if note:
        out.append(f'<text x="{WIDTH - 8}" y="19" text-anchor="end" fill="#555">'
                   f"{escape(note)}</text>")
    axis_y = top + row_height * len(rows)
    for i in range(-2, 3):
        out += _vertical_gridline(centre + plot_width / 2 * i / 2, top - 6, axis_y,
                                  f"{scale_max * i / 2:+.0%}", "#333" if i == 0 else "#e3e3e3")
    for index, row in enumerate(rows):
        y = top + index * row_height
        relative = row.relative
        if relative is None:  # baseline was 0: any change is "infinitely" large
            relative = scale_max if row.increased else -scale_max
        clipped = max(-scale_max, min(scale_max, relative))
        length = plot_width / 2 * abs(clipped) / scale_max
        x = centre if clipped >= 0 else centre - length
        colour = DIRECTION_COLOURS.get(row.direction, DIRECTION_COLOURS["changed"])
        out.append(f"<g><title>{escape(row.title)}: {escape(row.text)}</title>")
        out.append(f'<text class="row-label" x="{plot_left - 8}" y="{y + 16}" '
                   f'text-anchor="end">{escape(truncate(row.label, LABEL_CHARS + 12))}</text>')
        out.append(f'<rect x="{x:.1f}" y="{y + 5}" width="{max(length, 1.5):.1f}" height="14" '
                   f'fill="{colour}"/>')
        out.append(f'<text x="{plot_left + plot_width + 8}" y="{y + 16}" font-size="11">'
                   f"{escape(row.text)}</text>")
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def _decade_label(power: int, unit: str) -> str:
    """``10^power`` as a short tick label: ``0.1``, ``1000``, ``1e6``, ``100 TFLOP/s``."""
    if unit:
        prefixes = ("", "k", "M", "G", "T", "P", "E")
        index = min(max(power // 3, 0), len(prefixes) - 1)
        mantissa = 10 ** (power - 3 * index) if power >= 0 else 10.0**power
        return f"{mantissa:g} {prefixes[index]}{unit}"
    if -3 <= power < 0:
        return f"{10.0**power:g}"
    if 0 <= power <= 3:
        return f"{10**power}"
    return f"1e{power}"


#: Up to this many points, each compiled point is labelled with its test name.
POINT_LABELS_UP_TO = 16


def roofline(chart_id: str, title: str, points: Sequence[RoofPoint], roofs: Sequence[DeviceRoof]) -> str:
    """Arithmetic intensity (log x) against achieved FLOP/s (log y) under the device roofs."""
    height, left, right, top, bottom = 460, 104, 24, 40, 52
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    xs = [p.intensity for p in points] + [r.peak_flops_per_second / r.peak_bytes_per_second
                                          for r in roofs]
    ys = [p.flops_per_second for p in points] + [r.peak_flops_per_second for r in roofs]
    x_lo = math.floor(math.log10(min(xs))) - 1
    x_hi = math.ceil(math.log10(max(xs))) + 1
    y_lo = math.floor(math.log10(min(ys))) - 1
    y_hi = math.ceil(math.log10(max(ys) * 1.5))

    def sx(value: float) -> float:
        return left + plot_w * (math.log10(value) - x_lo) / (x_hi - x_lo)

    def sy(value: float) -> float:
        return top + plot_h * (1 - (math.log10(value) - y_lo) / (y_hi - y_lo))

    desc = (f"Roofline: {len(points)} measurements; arithmetic intensity in FLOP per byte "
            f"(log scale) against achieved FLOP/s (log scale), under the peak bandwidth "
            f"slope and the peak FLOP/s roof.")
    out = svg_open(chart_id, height, title, desc)
    out += _legend(left, 20, [("eager", EAGER_COLOUR), ("compiled", COMPILED_COLOUR),
                              ("device roof", "#333")])
    for power in range(x_lo, x_hi + 1):
        out += _vertical_gridline(sx(10.0**power), top, top + plot_h, _decade_label(power, ""))
    for power in range(y_lo, y_hi + 1):
        y = sy(10.0**power)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                   f'stroke="#e3e3e3"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">'
                   f'{escape(_decade_label(power, "FLOP/s"))}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
               f'stroke="#333"/>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 10}" text-anchor="middle">'
               f"arithmetic intensity (FLOP per byte moved, log)</text>")
    out.append(f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">achieved FLOP/s (log)</text>')
    x_min, x_max = 10.0**x_lo, 10.0**x_hi
    y_min = 10.0**y_lo
    labelled_bandwidths: set[float] = set()
    for roof in roofs:
        bandwidth, peak = roof.peak_bytes_per_second, roof.peak_flops_per_second
        ridge = peak / bandwidth
        start = max(x_min, y_min / bandwidth)
        path = (f"M{sx(start):.1f},{sy(bandwidth * start):.1f} "
                f"L{sx(ridge):.1f},{sy(peak):.1f} L{sx(x_max):.1f},{sy(peak):.1f}")
        out.append(f'<path d="{path}" fill="none" stroke="#333" stroke-width="2">'
                   f"<title>{escape(roof.label)}</title></path>")
        out.append(f'<text x="{sx(x_max) - 4:.1f}" y="{sy(peak) - 6:.1f}" text-anchor="end">'
                   f'peak {escape(human_si(peak, "FLOP/s"))} ({escape(roof.label)})</text>')
        if bandwidth not in labelled_bandwidths:
            labelled_bandwidths.add(bandwidth)
            label_x = max(start * 3, ridge / 30)
            out.append(f'<text x="{sx(label_x) + 8:.1f}" y="{sy(bandwidth * label_x) + 16:.1f}">'
                       f'peak {escape(human_si(bandwidth, "B/s"))}</text>')
    for point in points:
        colour = EAGER_COLOUR if point.mode == "eager" else COMPILED_COLOUR
        x, y = sx(point.intensity), sy(point.flops_per_second)
        out.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{colour}" stroke="#222" '
            f'class="roof-point"><title>{escape(point.title)} ({escape(point.mode)}): '
            f"{point.intensity:.3g} FLOP/B, "
            f"{escape(human_si(point.flops_per_second, 'FLOP/s'))}</title></circle>"
        )
        if len(points) <= POINT_LABELS_UP_TO and point.mode == "compiled":
            out.append(f'<text x="{x + 9:.1f}" y="{y + 4:.1f}" font-size="11" fill="#333">'
                       f"{escape(truncate(point.label, 36))}</text>")
    out.append("</svg>")
    return "\n".join(out)
