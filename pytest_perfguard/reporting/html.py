"""The HTML report: one self-contained file that works offline.

Python prepares plain view data and the SVG charts (:mod:`._svg`); the Jinja2 template
``templates/report.html.j2`` lays them out with autoescape on. No CDN, no external
stylesheet, script or font; a Content-Security-Policy in the page forbids any fetch, and
the one tiny inline script (the status filter) is allowed by its hash only.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import jinja2
from markupsafe import Markup

from ..compare import unique_hints
from ..record import Environment, Measurement, ModeRecord
from ..results import ResultEntry, RunResults
from . import _svg
from ._format import (
    MISSING,
    change_text,
    count,
    entry_id,
    entry_label,
    environments,
    human_bytes,
    human_flops,
    human_seconds,
    human_si,
    intensity,
    one_line,
    percent,
    ratio,
    short_label,
    speedup_text,
    status_counts,
)

#: How many tests a bar chart shows at most (regressed first, then the largest values).
CHART_ROWS = 40

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


@dataclass
class _ChangeView:
    direction: str
    text: str
    hints: list[str]


@dataclass
class _EntryView:
    id: str
    label: str
    status: str
    note: str
    speedup: str
    summary: dict[str, str]
    changes: list[_ChangeView]
    metrics: list[tuple[str, str, str]]
    unavailable: list[str]
    kernels: list[tuple[str, list[tuple[str, str, str, str]], bool]]
    graph_breaks: list[dict[str, str]]
    numerics: str
    numerics_ok: bool
    utilisation: list[tuple[str, ...]]
    nvml: list[tuple[str, ...]]
    nvml_notes: list[str]
    environment: str
    environment_key: str
    links: list[tuple[str, str]] = field(default_factory=list)


def render_html(
    results: RunResults, *, trace_links: dict[str, dict[str, str]] | None = None
) -> str:
    """Render ``results`` as one self-contained HTML page.

    ``trace_links`` maps a measurement key to ``{label: relative path}`` (for example
    ``{"trace": "traces/x.json", "code": "traces/x.py"}``); each becomes a link in that
    test's section. Links with a URL scheme other than http(s) are dropped.
    """
    trace_links = trace_links or {}
    envs = environments(results)
    several = len(envs) > 1
    entries = results.sorted_entries()
    views = [_entry_view(entry, several, trace_links.get(entry.measurement.key, {}))
             for entry in entries]
    script_hash = base64.b64encode(hashlib.sha256(FILTER_SCRIPT.encode()).digest()).decode()
    return _template().render(
        results=results,
        counts=status_counts(results),
        entries=views,
        environments=[(key, env.label(), _env_fields(env)) for key, env in envs.items()],
        charts=_charts(entries, several),
        roofline_missing=_roofline_missing(entries),
        script=Markup(FILTER_SCRIPT),
        script_hash=script_hash,
    )


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pytest_perfguard.reporting", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("report.html.j2")


def _env_fields(env: Environment) -> list[tuple[str, str]]:
    data = asdict(env)
    inductor = data.pop("inductor", {})
    pairs = [(name, str(value)) for name, value in data.items()]
    pairs.append(("inductor", ", ".join(f"{k}={v}" for k, v in sorted(inductor.items()))
                  or "defaults"))
    return pairs


def _safe_href(href: str) -> str | None:
    href = href.strip()
    if not href or (_SCHEME.match(href) and not href.lower().startswith(("http:", "https:"))):
        return None
    return href


def _entry_view(entry: ResultEntry, several: bool, links: dict[str, str]) -> _EntryView:
    m, verdict = entry.measurement, entry.verdict
    eager, compiled = m.eager, m.compiled
    safe_links = [(label, href) for label, raw in links.items()
                  if (href := _safe_href(raw)) is not None]
    return _EntryView(
        id=entry_id(m),
        label=entry_label(entry, several),
        status=verdict.status,
        note=verdict.note,
        speedup=speedup_text(m),
        summary={
            "launches": f"{count(eager.kernel_launches)} → {count(compiled.kernel_launches)}",
            "bytes": f"{human_bytes(eager.bytes_moved)} → {human_bytes(compiled.bytes_moved)}",
            "flops": human_flops(compiled.flops),
            "fusion": ratio(m.fusion_ratio),
            "traffic": ratio(m.traffic_ratio),
            "breaks": count(compiled.graph_breaks),
            "recompiles": count(compiled.recompiles),
        },
        changes=[_ChangeView(c.direction, change_text(c, "→"), hints)
                 for c, hints in unique_hints(verdict.changes)],
        metrics=_metrics(m),
        unavailable=[f"{mode.mode} {metric}: {reason}" for mode in (eager, compiled)
                     for metric, reason in sorted(mode.unavailable.items())],
        kernels=[_kernels(mode) for mode in (compiled, eager) if mode.kernels],
        graph_breaks=[
            {"short": g.short_reason, "reason": g.reason.strip(), "location": g.location,
             "function": g.function}
            for g in compiled.graph_break_details
        ],
        numerics=_numerics_text(m),
        numerics_ok=(not m.numerics.checked) or m.numerics.ok,
        utilisation=_utilisation_rows(m),
        nvml=_nvml_rows(m),
        nvml_notes=[f"{mode.mode}: {mode.nvml.note}" for mode in (eager, compiled)
                    if mode.nvml is not None and mode.nvml.note],
        environment=m.environment.label(),
        environment_key=m.environment.key(),
        links=safe_links,
    )


def _metrics(m: Measurement) -> list[tuple[str, str, str]]:
    eager, compiled = m.eager, m.compiled

    def timing(mode: ModeRecord) -> str:
        if mode.time is None:
            return MISSING
        noisy = " (noisy)" if mode.time.noisy else ""
        return f"{human_seconds(mode.time.median)} ± {human_seconds(mode.time.iqr)}{noisy}"

    rows = [
        ("Kernel launches", count(eager.kernel_launches), count(compiled.kernel_launches)),
        ("Bytes moved", human_bytes(eager.bytes_moved), human_bytes(compiled.bytes_moved)),
        ("FLOPs", human_flops(eager.flops), human_flops(compiled.flops)),
        ("Arithmetic intensity", intensity(eager.arithmetic_intensity),
         intensity(compiled.arithmetic_intensity)),
        ("Median time (± IQR)", timing(eager), timing(compiled)),
        ("Graphs", "", count(compiled.graphs)),
        ("Graph breaks", "", count(compiled.graph_breaks)),
        ("Recompiles", "", count(compiled.recompiles)),
        ("Compile time", "", human_seconds(compiled.compile_seconds)),
    ]
    if eager.device_seconds is not None or compiled.device_seconds is not None:
        rows.append(("Device time", human_seconds(eager.device_seconds),
                     human_seconds(compiled.device_seconds)))
    return rows


def _kernels(mode: ModeRecord) -> tuple[str, list[tuple[str, str, str, str]], bool]:
    with_time = any(k.device_seconds is not None for k in mode.kernels)
    ordered = sorted(mode.kernels, key=lambda k: (-(k.device_seconds or 0.0), -k.count, k.name))
    rows = [(k.name, k.kind, count(k.count), human_seconds(k.device_seconds)) for k in ordered]
    return mode.mode, rows, with_time


def _numerics_text(m: Measurement) -> str:
    n = m.numerics
    if not n.checked:
        return "not checked" + (f": {n.message}" if n.message else "")
    parts = ["ok" if n.ok else "mismatch"]
    if n.max_abs_error is not None:
        parts.append(f"max abs error {n.max_abs_error:.3g}")
    if n.max_rel_error is not None:
        parts.append(f"max rel error {n.max_rel_error:.3g}")
    if n.where:
        parts.append(f"at {n.where}")
    if n.atol is not None:
        parts.append(f"atol {n.atol:.3g}")
    if n.rtol is not None:
        parts.append(f"rtol {n.rtol:.3g}")
    if n.message:
        parts.append(n.message)
    return ", ".join(parts)


def _utilisation_rows(m: Measurement) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for mode in (m.eager, m.compiled):
        u = mode.utilisation
        if u is None:
            continue
        rows.append((
            mode.mode,
            human_seconds(u.device_seconds),
            human_si(u.achieved_bytes_per_second, "B/s"),
            percent(u.bandwidth_utilisation),
            human_si(u.achieved_flops_per_second, "FLOP/s"),
            percent(u.flop_utilisation),
            u.peak_source or MISSING,
        ))
    return rows


def _unit(value: float | None, unit: str) -> str:
    return MISSING if value is None else f"{value:.0f}{unit}"


def _nvml_rows(m: Measurement) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for mode in (m.eager, m.compiled):
        s = mode.nvml
        if s is None:
            continue
        rows.append((
            mode.mode,
            f"{s.samples} in {human_seconds(s.window_seconds)}",
            _unit(s.gpu_util_percent, "%"),
            _unit(s.memory_util_percent, "%"),
            human_bytes(s.memory_used_bytes),
            _unit(s.sm_clock_mhz, " MHz"),
            _unit(s.memory_clock_mhz, " MHz"),
            _unit(s.power_watts, " W"),
            _unit(s.temperature_c, " °C"),
            ", ".join(s.throttle_reasons) or "none",
        ))
    return rows


# --- charts -------------------------------------------------------------------------------


def _chart_rows(entries: list[ResultEntry], value: str) -> tuple[list[ResultEntry], str]:
    """At most CHART_ROWS entries: regressed ones first, then by the larger eager/compiled."""
    if len(entries) <= CHART_ROWS:
        return entries, ""

    def size(entry: ResultEntry) -> float:
        m = entry.measurement
        return max(getattr(m.eager, value) or 0, getattr(m.compiled, value) or 0)

    chosen = sorted(entries, key=lambda e: (e.verdict.status != "regressed", -size(e)))
    chosen = chosen[:CHART_ROWS]
    keep = {id(e) for e in chosen}
    return ([e for e in entries if id(e) in keep],
            f"showing {CHART_ROWS} of {len(entries)} tests: regressed first, then largest")


def _charts(entries: list[ResultEntry], several: bool) -> dict[str, Markup]:
    charts: dict[str, Markup] = {}
    if not entries:
        return charts
    for chart_id, title, value, fmt in (
        ("chart-launches", "Kernel launches per call", "kernel_launches", count),
        ("chart-bytes", "Bytes moved per call", "bytes_moved", human_bytes),
    ):
        shown, note = _chart_rows(entries, value)
        rows = [
            _svg.BarRow(
                label=one_line(short_label(e, several)),
                title=one_line(entry_label(e, several)),
                eager=getattr(e.measurement.eager, value),
                compiled=getattr(e.measurement.compiled, value),
                highlight=e.verdict.status == "regressed",
            )
            for e in shown
        ]
        charts[chart_id] = Markup(_svg.grouped_bars(
            chart_id, title, rows, fmt, note=note, binary=value == "bytes_moved"))

    change_rows = [
        _svg.ChangeRow(
            label=one_line(f"{short_label(e, several)} · {c.metric}"),
            title=one_line(f"{entry_label(e, several)} · {c.metric}"),
            relative=c.relative,
            increased=(c.current or 0) > (c.baseline or 0),
            direction=c.direction,
            text=change_text(c, "→").split(": ", 1)[1],
        )
        for e in entries
        for c in e.verdict.changes
    ]
    if change_rows:
        note = ""
        if len(change_rows) > CHART_ROWS:
            note = f"showing {CHART_ROWS} of {len(change_rows)} changes, regressions first"
            change_rows = sorted(change_rows, key=lambda r: r.direction != "regressed")
            change_rows = change_rows[:CHART_ROWS]
        charts["chart-changes"] = Markup(_svg.change_bars(
            "chart-changes", "Change against the baseline", change_rows, note=note))

    points, roofs = _roofline_data(entries, several)
    if points:
        charts["chart-roofline"] = Markup(_svg.roofline(
            "chart-roofline", "Roofline: achieved FLOP/s against arithmetic intensity",
            points, roofs))
    return charts


def _roofline_missing(entries: list[ResultEntry]) -> str:
    """Why there is no roofline (shown in its place)."""
    modes = [mode for e in entries for mode in (e.measurement.eager, e.measurement.compiled)]
    if not any(mode.utilisation is not None for mode in modes):
        return ("No GPU utilisation data in these results, so no roofline is drawn: it needs "
                "device time and the device's peak bandwidth and FLOP/s, which only a CUDA "
                "run records.")
    return ("GPU utilisation data is present, but no measurement has both FLOPs and bytes "
            "moved, so there is nothing to place on a roofline.")


def _roofline_data(
    entries: list[ResultEntry], several: bool
) -> tuple[list[_svg.RoofPoint], list[_svg.Roof]]:
    points: list[_svg.RoofPoint] = []
    roofs: dict[tuple[float, float], _svg.Roof] = {}
    for entry in entries:
        m = entry.measurement
        for mode in (m.eager, m.compiled):
            u = mode.utilisation
            ai = mode.arithmetic_intensity
            if u is None or not ai:
                continue
            achieved = u.achieved_flops_per_second
            if achieved is None and mode.flops and u.device_seconds:
                achieved = mode.flops / u.device_seconds
            if achieved:
                points.append(_svg.RoofPoint(
                    one_line(short_label(entry, several)), one_line(entry_label(entry, several)),
                    mode.mode, ai, achieved))
            if u.peak_bytes_per_second and u.peak_flops_per_second:
                pair = (u.peak_bytes_per_second, u.peak_flops_per_second)
                label = f"{m.environment.device_name}, {u.peak_source}".rstrip(", ")
                roofs.setdefault(pair, _svg.Roof(*pair, label=label))
    return points, list(roofs.values())[:3]
