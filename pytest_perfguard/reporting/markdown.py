"""The GitHub-flavoured markdown report (job summary, PR comment).

Every piece of user-controlled text (test ids, parametrize ids, kernel names, graph-break
reasons, file paths) goes through :func:`md_escape` in markdown context or
:func:`html_inline` inside raw HTML (``<summary>``), so it can neither split a table cell
nor inject markup.
"""

from __future__ import annotations

from ..compare import unique_hints
from ..record import Environment, Kernel, Measurement, ModeRecord
from ..results import ResultEntry, RunResults
from ._format import (
    MISSING,
    change_text,
    count,
    entry_label,
    environments,
    headline,
    html_inline,
    human_bytes,
    human_flops,
    human_seconds,
    human_si,
    intensity,
    md_escape,
    percent,
    ratio,
    speedup_text,
)


def render_markdown(results: RunResults) -> str:
    """Render ``results`` as GitHub-flavoured markdown, regressions first."""
    if not results.entries:
        return "## perfguard: no measurements\n"
    envs = environments(results)
    several = len(envs) > 1
    entries = results.sorted_entries()
    out: list[str] = [f"## perfguard: {headline(results)}", ""]
    out += [_run_line(results, len(envs)), ""]
    out += _summary_table(entries, several)
    out += ["", "### Details", ""]
    for entry in entries:
        out += _details(entry, several)
    out += ["### Environments", ""]
    out += _environment_table(envs)
    return "\n".join(out) + "\n"


def _code(text: str) -> str:
    # An HTML <code> element rather than a backtick span: its content is still parsed as
    # markdown, so the backslash escapes work and a backtick in the text cannot end it.
    return f"<code>{md_escape(text)}</code>"


def _run_line(results: RunResults, environment_count: int) -> str:
    parts = [
        f"{len(results.entries)} measurement{'s' if len(results.entries) != 1 else ''}",
        f"{environment_count} environment{'s' if environment_count != 1 else ''}",
    ]
    if results.created:
        parts.append(f"created {md_escape(results.created)}")
    if results.tool_version:
        parts.append(f"perfguard {md_escape(results.tool_version)}")
    if results.baseline_path:
        parts.append(f"baseline {_code(results.baseline_path)}")
    return " · ".join(parts)


def _arrow(eager: str, compiled: str) -> str:
    return f"{eager} → {compiled}"


def _status(status: str) -> str:
    return f"**{status}**" if status == "regressed" else status


def _summary_table(entries: list[ResultEntry], several: bool) -> list[str]:
    lines = [
        "| Test | Verdict | Kernel launches (eager → compiled) | Bytes moved (eager → compiled) "
        "| FLOPs (compiled) | Fusion | Traffic | Graph breaks | Recompiles | Speedup |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in entries:
        m = entry.measurement
        cells = [
            _code(entry_label(entry, several)),
            _status(entry.verdict.status),
            _arrow(count(m.eager.kernel_launches), count(m.compiled.kernel_launches)),
            _arrow(human_bytes(m.eager.bytes_moved), human_bytes(m.compiled.bytes_moved)),
            human_flops(m.compiled.flops),
            ratio(m.fusion_ratio),
            ratio(m.traffic_ratio),
            count(m.compiled.graph_breaks),
            count(m.compiled.recompiles),
            speedup_text(m),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _details(entry: ResultEntry, several: bool) -> list[str]:
    m, verdict = entry.measurement, entry.verdict
    out = [
        f"<details><summary><b>{html_inline(verdict.status)}</b> · "
        f"<code>{html_inline(entry_label(entry, several))}</code></summary>",
        "",
    ]
    out += _changes(entry)
    out += _metric_table(m)
    for mode in (m.compiled, m.eager):
        out += _kernel_table(mode)
    out += _graph_breaks(m.compiled)
    out += _numerics(m)
    out += _gpu(m)
    env = m.environment
    out += [f"**Environment:** {md_escape(env.label())} (key {_code(env.key())})", ""]
    out += ["</details>", ""]
    return out


def _changes(entry: ResultEntry) -> list[str]:
    verdict = entry.verdict
    out = []
    if verdict.note:
        out += [f"_{md_escape(verdict.note)}_", ""]
    if not verdict.changes:
        if verdict.status == "new":
            out += ["New measurement: no baseline to compare with.", ""]
        elif verdict.status == "unchanged":
            out += ["No metric moved against the baseline.", ""]
        return out
    out.append("**Changes against the baseline**")
    out.append("")
    for change, hints in unique_hints(verdict.changes):
        out.append(f"- {_status(change.direction)} {md_escape(change_text(change, '→'))}")
        out.extend(f"  - hint: {md_escape(hint)}" for hint in hints)
    out.append("")
    return out


def _metric_table(m: Measurement) -> list[str]:
    eager, compiled = m.eager, m.compiled

    def row(name: str, eager_text: str, compiled_text: str) -> str:
        return f"| {name} | {eager_text} | {compiled_text} |"

    def time_text(mode: ModeRecord) -> str:
        if mode.time is None:
            return MISSING
        noisy = " (noisy)" if mode.time.noisy else ""
        return (
            f"{human_seconds(mode.time.median)} ± {human_seconds(mode.time.iqr)} IQR"
            f"{noisy}"
        )

    out = [
        "| Metric | Eager | Compiled |",
        "|---|---:|---:|",
        row("Kernel launches", count(eager.kernel_launches), count(compiled.kernel_launches)),
        row("Bytes moved", human_bytes(eager.bytes_moved), human_bytes(compiled.bytes_moved)),
        row("FLOPs", human_flops(eager.flops), human_flops(compiled.flops)),
        row(
            "Arithmetic intensity",
            intensity(eager.arithmetic_intensity),
            intensity(compiled.arithmetic_intensity),
        ),
        row("Median time", time_text(eager), time_text(compiled)),
        row("Graphs", "", count(compiled.graphs)),
        row("Graph breaks", "", count(compiled.graph_breaks)),
        row("Recompiles", "", count(compiled.recompiles)),
        row("Compile time", "", human_seconds(compiled.compile_seconds)),
    ]
    if eager.device_seconds is not None or compiled.device_seconds is not None:
        out.append(
            row(
                "Device time",
                human_seconds(eager.device_seconds),
                human_seconds(compiled.device_seconds),
            )
        )
    out.append("")
    unavailable = [
        f"{mode.mode} {metric}: {reason}"
        for mode in (eager, compiled)
        for metric, reason in sorted(mode.unavailable.items())
    ]
    if unavailable:
        out.append("Unavailable: " + "; ".join(md_escape(text) for text in unavailable))
        out.append("")
    return out


def _kernel_table(mode: ModeRecord) -> list[str]:
    if not mode.kernels:
        return []
    with_time = any(k.device_seconds is not None for k in mode.kernels)
    header = "| Kernel | Kind | Count |" + (" Device time |" if with_time else "")
    rule = "|---|---|---:|" + ("---:|" if with_time else "")
    out = [f"**{mode.mode.capitalize()} kernels** ({len(mode.kernels)} distinct)", "", header, rule]
    for kernel in _by_time_then_count(mode.kernels):
        cells = [_code(kernel.name), md_escape(kernel.kind), count(kernel.count)]
        if with_time:
            cells.append(human_seconds(kernel.device_seconds))
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    return out


def _by_time_then_count(kernels: list[Kernel]) -> list[Kernel]:
    return sorted(kernels, key=lambda k: (-(k.device_seconds or 0.0), -k.count, k.name))


def _graph_breaks(compiled: ModeRecord) -> list[str]:
    if not compiled.graph_break_details:
        return []
    out = ["**Graph breaks**", ""]
    for number, brk in enumerate(compiled.graph_break_details, start=1):
        where = _code(brk.location) if brk.location else "unknown location"
        function = f" in {_code(brk.function)}" if brk.function else ""
        out.append(f"{number}. {md_escape(brk.short_reason)} at {where}{function}")
    out.append("")
    return out


def _numerics(m: Measurement) -> list[str]:
    n = m.numerics
    if not n.checked:
        text = "not checked" + (f": {md_escape(n.message)}" if n.message else "")
        return [f"**Numerics:** {text}", ""]
    parts = ["ok" if n.ok else "**mismatch**"]
    if n.max_abs_error is not None:
        parts.append(f"max abs error {n.max_abs_error:.3g}")
    if n.max_rel_error is not None:
        parts.append(f"max rel error {n.max_rel_error:.3g}")
    if n.where:
        parts.append(f"at {_code(n.where)}")
    if n.atol is not None or n.rtol is not None:
        parts.append(f"atol {n.atol:.3g}" if n.atol is not None else "atol n/a")
        parts.append(f"rtol {n.rtol:.3g}" if n.rtol is not None else "rtol n/a")
    if n.message:
        parts.append(md_escape(n.message))
    return [f"**Numerics:** {', '.join(parts)}", ""]


def _gpu(m: Measurement) -> list[str]:
    out: list[str] = []
    modes = [m.eager, m.compiled]
    if any(mode.utilisation is not None for mode in modes):
        out += [
            "**Utilisation**",
            "",
            "| Mode | Device time | Bandwidth | % of peak | FLOP/s | % of peak | Peaks from |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for mode in modes:
            u = mode.utilisation
            if u is None:
                continue
            out.append(
                f"| {mode.mode} | {human_seconds(u.device_seconds)} "
                f"| {human_si(u.achieved_bytes_per_second, 'B/s')} "
                f"| {percent(u.bandwidth_utilisation)} "
                f"| {human_si(u.achieved_flops_per_second, 'FLOP/s')} "
                f"| {percent(u.flop_utilisation)} | {md_escape(u.peak_source) or MISSING} |"
            )
        out.append("")
    if any(mode.nvml is not None for mode in modes):
        out += [
            "**NVML**",
            "",
            "| Mode | Samples | GPU util | Memory util | Memory used | SM clock | Memory clock "
            "| Power | Temperature | Throttle |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for mode in modes:
            s = mode.nvml
            if s is None:
                continue
            out.append(
                f"| {mode.mode} | {s.samples} in {human_seconds(s.window_seconds)} "
                f"| {_unit(s.gpu_util_percent, '%')} | {_unit(s.memory_util_percent, '%')} "
                f"| {human_bytes(s.memory_used_bytes)} | {_unit(s.sm_clock_mhz, ' MHz')} "
                f"| {_unit(s.memory_clock_mhz, ' MHz')} | {_unit(s.power_watts, ' W')} "
                f"| {_unit(s.temperature_c, ' °C')} "
                f"| {md_escape(', '.join(s.throttle_reasons)) or 'none'} |"
            )
        notes = [f"{mode.mode}: {mode.nvml.note}" for mode in modes if mode.nvml and mode.nvml.note]
        out.append("")
        if notes:
            out += ["NVML notes: " + "; ".join(md_escape(n) for n in notes), ""]
    return out


def _unit(value: float | None, unit: str) -> str:
    return MISSING if value is None else f"{value:.0f}{unit}"


def _environment_table(envs: dict[str, Environment]) -> list[str]:
    out = [
        "| Key | Device | Python | torch | triton | Backend / mode | Dynamic | Fullgraph "
        "| Inductor settings |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, env in envs.items():
        inductor = ", ".join(f"{k}={v}" for k, v in sorted(env.inductor.items()))
        cells = [
            _code(key),
            md_escape(env.device_name),
            md_escape(env.python),
            md_escape(env.torch),
            md_escape(env.triton) or MISSING,
            md_escape(f"{env.backend} / {env.mode}"),
            md_escape(env.dynamic),
            "yes" if env.fullgraph else "no",
            md_escape(inductor) or "defaults",
        ]
        out.append("| " + " | ".join(cells) + " |")
    return out
