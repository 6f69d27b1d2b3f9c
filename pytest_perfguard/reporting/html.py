"""The HTML report: one self-contained file that works offline.

The view model (:mod:`.model`) holds every value; this module draws the SVG charts
(:mod:`._svg`) from it and the Jinja2 template ``templates/report.html.j2`` lays both out
with autoescape on. No CDN, no external stylesheet, script or font; a
Content-Security-Policy in the page forbids any fetch, and the one tiny inline script
(the status filter) is allowed by its hash only.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache, partial
from html import escape

import jinja2
from markupsafe import Markup

from ..metrics import CHARTS
from ..results import RunResults
from . import _svg
from ._format import MISSING, formatted, one_line
from .model import BAR_CHARTS, SUMMARY_COLUMNS, DeviceRoof, Table, TestView, build_view, quiet

#: How many tests a bar chart shows at most (regressed first, then the largest values).
CHART_ROWS = 40

#: The page stays bounded however many tests a run has: every changed or errored test is
#: shown in full, but unchanged tests get detail blocks only while a run has at most
#: UNCHANGED_DETAILS of them; beyond that each is one row of the summary table, for the
#: first UNCHANGED_ROWS of them, and the rest are only counted (results.json has them all).
UNCHANGED_DETAILS = 50
UNCHANGED_ROWS = 500

#: The status filter; its sha256 goes into the page's Content-Security-Policy.
FILTER_SCRIPT = """
(function () {
  var select = document.getElementById("status-filter");
  if (!select) { return; }
  select.addEventListener("change", function () {
    var wanted = select.value;
    var entries = document.querySelectorAll(".test-entry, .summary-row");
    for (var i = 0; i < entries.length; i++) {
      var status = entries[i].getAttribute("data-status");
      entries[i].hidden = wanted !== "all" && status !== wanted;
    }
  });
})();
""".strip()

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def render_html(
    results: RunResults, *, trace_links: dict[str, dict[str, str]] | None = None
) -> str:
    """Render ``results`` as one self-contained HTML page.

    ``trace_links`` maps a measurement key to ``{label: relative path}`` (for example
    ``{"trace": "traces/x.json", "code": "traces/x.py"}``); each becomes a link in that
    test's section. Links with a URL scheme other than http(s) are dropped.
    """
    trace_links = trace_links or {}
    unchanged = sum(1 for entry in results.entries
                    if quiet(entry.verdict.status, entry.verdict.changes, entry.verdict.fails))
    unchanged_details = unchanged <= UNCHANGED_DETAILS
    view = build_view(results, unchanged_details=unchanged_details)
    quiet_tests = [t for t in view.tests if quiet(t.status, t.changes, t.fails)]
    listed_unchanged = {id(t) for t in quiet_tests[:UNCHANGED_ROWS]}
    quiet_ids = {id(t) for t in quiet_tests}
    detailed = [t for t in view.tests if unchanged_details or id(t) not in quiet_ids]
    rows = [t for t in view.tests if id(t) not in quiet_ids or id(t) in listed_unchanged]
    links = {test.key: [(label, href) for label, raw in trace_links.get(test.key, {}).items()
                        if (href := _safe_href(raw)) is not None]
             for test in detailed}
    script_hash = base64.b64encode(hashlib.sha256(FILTER_SCRIPT.encode()).digest()).decode()
    return _template().render(
        view=view,
        rows=rows,
        detailed=detailed,
        detail_anchors={t.anchor for t in detailed},
        unchanged_note=_unchanged_note(unchanged, unchanged_details),
        links=links,
        summary_columns=SUMMARY_COLUMNS,
        bar_charts=[(f"chart-{chart}", f"{CHARTS[chart].title}, eager vs compiled "
                     f"({CHARTS[chart].lower}; log scale)",
                     f"No {metric.words} in these results: they were measured without it.")
                    for chart, (metric, _) in BAR_CHARTS.items()],
        charts=_charts(view.tests, detailed),
        roofline_missing=_roofline_missing(view.tests),
        script=Markup(FILTER_SCRIPT),
        script_hash=script_hash,
    )


def _unchanged_note(unchanged: int, details: bool) -> str:
    """What the page leaves out of the unchanged tests, if anything."""
    if details:
        return ""
    listed = min(unchanged, UNCHANGED_ROWS)
    note = (f"{unchanged:,} unchanged tests (or compared with another environment and "
            f"unchanged): more than {UNCHANGED_DETAILS}, so they are shown "
            f"without detail blocks")
    if listed < unchanged:
        note += (f", and only the first {listed:,} are listed; the other "
                 f"{unchanged - listed:,} are counted here and are in results.json")
    return note + "."


def jinja_environment(package: str) -> jinja2.Environment:
    """The one Jinja2 setup of every HTML page perfguard writes: autoescaping (user-controlled
    test ids, kernel names and graph-break reasons cannot inject markup), strict undefined."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja_environment("pytest_perfguard.reporting")
    env.globals["table"] = _table
    return env.get_template("report.html.j2")


def _table(table: Table, css_class: str, caption: bool = False) -> Markup:
    """A :class:`~.model.Table` as an HTML table, every cell escaped here.

    Written in Python rather than as a template macro: a thousand tests have some 100,000
    cells, and a Jinja loop over them was most of the report's rendering time.
    """
    out = [f'<table class="{escape(css_class)}">']
    if caption:
        out.append(f"<caption>{escape(table.title)}</caption>")
    out.append("<thead><tr>" + "".join(
        f'<th class="num">{escape(c.header)}</th>' if c.numeric else f"<th>{escape(c.header)}</th>"
        for c in table.columns) + "</tr></thead>")
    out.append("<tbody>")
    opening = ['<td class="num">' if c.numeric else "<td>" for c in table.columns]
    for row in table.rows:
        cells = []
        for column, start, value in zip(table.columns, opening, row, strict=True):
            text = _escape_cell(value)
            if column.code and value != MISSING:
                text = f"<code>{text}</code>"
            cells.append(f"{start}{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody>")
    out.append("</table>")
    if table.note:
        out.append(f'<p class="note">{escape(table.note)}</p>')
    return Markup("\n".join(out))


@lru_cache(maxsize=65536)
def _escape_cell(text: str) -> str:
    # Cached: kernel names, kinds, counts and sizes repeat across a report's tests.
    return escape(text, quote=True)


def _safe_href(href: str) -> str | None:
    href = href.strip()
    if not href or (_SCHEME.match(href) and not href.lower().startswith(("http:", "https:"))):
        return None
    return href


# --- charts -------------------------------------------------------------------------------


def _chart_rows(tests: list[TestView], chart: str) -> tuple[list[TestView], str]:
    """At most CHART_ROWS tests: regressed ones first, then by the larger eager/compiled."""
    if len(tests) <= CHART_ROWS:
        return tests, ""

    def size(test: TestView) -> float:
        return max(value or 0 for value in test.chart_values[chart])

    chosen = sorted(tests, key=lambda t: (t.status != "regressed", -size(t)))[:CHART_ROWS]
    keep = {id(t) for t in chosen}
    return ([t for t in tests if id(t) in keep],
            f"showing {CHART_ROWS} of {len(tests)} tests: regressed first, then largest")


def _charts(tests: list[TestView], detailed: list[TestView]) -> dict[str, Markup]:
    """The charts: bar charts over ``tests`` (capped at CHART_ROWS), changes and the
    roofline over the ``detailed`` tests only (those the page shows in full)."""
    charts: dict[str, Markup] = {}
    if not tests:
        return charts
    for chart, (metric, _) in BAR_CHARTS.items():
        measured = [t for t in tests if any(v is not None for v in t.chart_values[chart])]
        if not measured:
            continue
        shown, note = _chart_rows(measured, chart)
        rows = [
            _svg.BarRow(label=one_line(t.short_label), title=one_line(t.label),
                        eager=t.chart_values[chart][0], compiled=t.chart_values[chart][1],
                        highlight=t.status == "regressed")
            for t in shown
        ]
        charts[f"chart-{chart}"] = Markup(_svg.grouped_bars(
            f"chart-{chart}", CHARTS[chart].title, rows, partial(formatted, metric), note=note,
            binary=metric.unit == "bytes"))

    change_rows = [
        _svg.ChangeRow(
            label=one_line(f"{t.short_label} · {c.metric}"),
            title=one_line(f"{t.label} · {c.metric}"),
            relative=c.relative,
            increased=c.increased,
            direction=c.direction,
            text=c.values,
        )
        for t in detailed
        for c in t.changes
    ]
    if change_rows:
        note = ""
        if len(change_rows) > CHART_ROWS:
            note = f"showing {CHART_ROWS} of {len(change_rows)} changes, regressions first"
            change_rows = sorted(change_rows, key=lambda r: r.direction != "regressed")
            change_rows = change_rows[:CHART_ROWS]
        charts["chart-changes"] = Markup(_svg.change_bars(
            "chart-changes", "Change against the baseline", change_rows, note=note))

    points = [_svg.RoofPoint(one_line(t.short_label), one_line(t.label), p.mode, p.intensity,
                             p.flops_per_second)
              for t in detailed for p in t.roof_points]
    roofs: dict[tuple[float, float], DeviceRoof] = {}
    for t in detailed:
        for roof in t.roofs:
            roofs.setdefault((roof.peak_bytes_per_second, roof.peak_flops_per_second), roof)
    if points:
        charts["chart-roofline"] = Markup(_svg.roofline(
            "chart-roofline", "Roofline: achieved FLOP/s against arithmetic intensity", points,
            list(roofs.values())[:3]))
    return charts


def _roofline_missing(tests: list[TestView]) -> str:
    """Why there is no roofline (shown in its place)."""
    if not any(t.has_utilisation for t in tests):
        return ("No GPU utilisation data in these results, so no roofline is drawn: it needs "
                "device time and the device's peak bandwidth and FLOP/s, which only a CUDA "
                "run records.")
    return ("GPU utilisation data is present, but no measurement has both FLOPs and bytes "
            "moved, so there is nothing to place on a roofline.")
