"""The report view model: every value a report shows, decided and formatted once.

:func:`build_view` turns a :class:`~pytest_perfguard.results.RunResults` into a
:class:`ReportView` of plain dataclasses holding presentation-ready text: units applied,
kernels and allocations sorted, hints de-duplicated, reasons that hold for a whole
environment lifted out of its tests, errored tests first. It also keeps the few raw
numbers the charts need. The terminal, markdown and HTML reporters only lay this out and
escape it for their medium, so they can never disagree about a number or its unit.

Text here is *not* escaped: each reporter escapes for its own medium (``md_escape`` and
``html_inline`` for markdown; the template's autoescape, ``html._table`` and ``_svg`` for HTML).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sized
from dataclasses import asdict, dataclass

from ..compare import STATUS_ORDER, Change, unique_hints
from ..metrics import CATALOGUE, CHARTS, DETAILS, MODES, SUMMARY, Metric, metrics_of
from ..record import MIN_TRUSTED_SAMPLES, Allocation, Environment, Kernel, Measurement, ModeRecord
from ..results import ResultEntry, RunResults, TestError
from ._format import (
    MISSING,
    anchor,
    count,
    formatted,
    human_bytes,
    human_seconds,
    human_si,
    metric_value,
    one_line,
    percent,
)
from .messages import describe_change

#: The status of a test that errored; it sorts before every verdict status.
ERRORED = "errored"

#: Largest tensors alive at the peak shown per mode (the record may hold more).
TOP_ALLOCATIONS = 5

#: An error message longer than this is cut (the full text is in pytest's own output).
ERROR_MESSAGE_CHARS = 8000

#: The summary row's metrics (:data:`..metrics.SUMMARY`), a field's two modes together.
SUMMARY_METRICS = [metrics_of(entry) for entry in SUMMARY]

#: The charts the HTML report draws as eager-against-compiled bars: those of one
#: deterministic field measured in both modes (chart id -> its eager and compiled metric).
BAR_CHARTS = {chart: metrics for chart in CHARTS
              if len(metrics := tuple(m for m in CATALOGUE if m.chart == chart)) == 2
              and metrics[0].field == metrics[1].field and metrics[0].deterministic}

#: Per field, the ratio of its two modes (``kernel_launches`` -> ``fusion_ratio``).
RATIOS = {metric.ratio_of: metric for metric in CATALOGUE if metric.ratio_of}


def arrow(*texts: str) -> str:
    """``eager → compiled``; one text as it is."""
    return " → ".join(texts)


@dataclass(frozen=True)
class Column:
    """A table column: its header, whether it holds numbers (right-aligned), and whether
    its cells are identifiers shown as code (kernel names, ops, shapes)."""

    header: str
    numeric: bool = False
    code: bool = False


@dataclass
class Table:
    """A titled table of text cells; ``note`` says what was left out, if anything."""

    title: str
    columns: list[Column]
    rows: list[list[str]]
    note: str = ""


@dataclass
class ChangeView:
    """One metric that moved against the baseline."""

    metric: str
    direction: str
    #: ``"344 MiB → 408 MiB (+18.6%)"``: the values in the metric's unit.
    values: str
    #: ``"compiled bytes_moved: baseline 360,720,384, current 427,829,248 (+18.6%)"``.
    exact: str
    #: Likely causes not already given under an earlier change of the same test.
    hints: list[str]
    relative: float | None
    increased: bool

    @property
    def text(self) -> str:
        """``"compiled bytes_moved: 344 MiB → 408 MiB (+18.6%)"``."""
        return f"{self.metric}: {self.values}"


@dataclass
class GraphBreakView:
    short: str
    reason: str
    location: str
    function: str


@dataclass
class NumericsView:
    """Compiled output against eager output, as short facts."""

    checked: bool
    ok: bool
    #: ``"ok"``, ``"mismatch"`` or ``"not checked"``.
    summary: str
    #: ``["max abs error 2.4e-06", "max rel error 1.1e-05", "atol 1e-05", ...]``.
    facts: list[str]
    #: Which output held the largest error (an identifier: reporters show it as code).
    where: str
    message: str

    @property
    def text(self) -> str:
        """The whole line as plain text."""
        if not self.checked:
            return f"not checked: {self.message}" if self.message else "not checked"
        parts = [self.summary, *self.facts]
        if self.where:
            parts.append(f"at {self.where}")
        if self.message:
            parts.append(self.message)
        return ", ".join(parts)


@dataclass
class RoofPoint:
    mode: str
    intensity: float
    flops_per_second: float


@dataclass
class DeviceRoof:
    peak_bytes_per_second: float
    peak_flops_per_second: float
    label: str


@dataclass
class TestView:
    """One measurement and its verdict, ready to show."""

    __test__ = False  # not a pytest test class, despite the name

    key: str
    #: The key, with the device when the report holds several environments.
    label: str
    #: The label without the file path (charts have little room).
    short_label: str
    #: A stable HTML id.
    anchor: str
    status: str
    #: Whether the verdict fails the test by its rules (a regression, or with
    #: ``require_baseline`` no baseline; with ``strict`` an improvement too).
    fails: bool
    note: str
    environment: str
    environment_key: str
    #: The text of each :data:`SUMMARY_METRICS` metric, by name.
    values: dict[str, str]
    changes: list[ChangeView]
    metrics: Table
    #: Why metrics are missing for this test only (reasons shared by its whole
    #: environment are in :attr:`ReportView.notes`).
    unavailable: list[str]
    kernels: list[Table]
    allocations: list[Table]
    graph_break_details: list[GraphBreakView]
    numerics: NumericsView
    gpu: list[Table]
    gpu_notes: list[str]
    #: Raw eager and compiled values per :data:`BAR_CHARTS` id, for the charts.
    chart_values: dict[str, tuple[float | None, float | None]]
    roof_points: list[RoofPoint]
    roofs: list[DeviceRoof]
    has_utilisation: bool

    @property
    def regressions(self) -> list[ChangeView]:
        return [c for c in self.changes if c.direction == "regressed"]

    @property
    def summary_cells(self) -> list[str]:
        """The cells of this test's row under :data:`SUMMARY_COLUMNS` after Test and Verdict."""
        return [arrow(*(self.values[m.name] for m in metrics)) for metrics in SUMMARY_METRICS]


def _summary_header(metrics: tuple[Metric, ...]) -> str:
    """``Kernel launches (eager → compiled)``, ``FLOPs (compiled)``, ``Graph breaks``."""
    first = metrics[0]
    if len(metrics) > 1 or len(metrics_of(first.field)) > 1:  # the modes shown, where there are two
        return f"{first.title} ({arrow(*(m.mode for m in metrics))})"
    return first.title


#: The summary table's columns (markdown and HTML): one row per test.
SUMMARY_COLUMNS = [Column("Test", code=True), Column("Verdict"),
                   *(Column(_summary_header(metrics), numeric=True)
                     for metrics in SUMMARY_METRICS)]


@dataclass
class ErrorView:
    """A test that errored, with its error."""

    test_id: str
    when: str
    #: The error's first non-empty line.
    summary: str
    #: The whole message (cut at :data:`ERROR_MESSAGE_CHARS`).
    message: str
    anchor: str

    @property
    def phase(self) -> str:
        """``"in setup"``, ``"during collection"``."""
        return "during collection" if self.when == "collect" else f"in {self.when}"


@dataclass
class EnvironmentView:
    key: str
    label: str
    fields: list[tuple[str, str]]


@dataclass
class ReportView:
    """A whole run, ready to show: errors first, then tests by verdict."""

    #: ``status -> count``: ``errored`` first when any test errored, then every verdict
    #: status in report order, zeros included.
    counts: dict[str, int]
    created: str
    tool_version: str
    baseline_path: str
    environments: list[EnvironmentView]
    #: Said once for the run: reasons a metric is missing from every test of an environment.
    notes: list[str]
    errors: list[ErrorView]
    tests: list[TestView]

    @property
    def headline(self) -> str:
        """``1 errored, 3 regressed, 1 improved, 0 new, 0 other-environment, 12 unchanged``."""
        return ", ".join(f"{n} {status}" for status, n in self.counts.items())

    @property
    def run_facts(self) -> list[str]:
        """``["7 measurements", "2 environments", "created ...", "perfguard 0.1.0"]``; the
        baseline path is left to the reporter (it is shown as code)."""
        facts = [plural(len(self.tests), "measurement"),
                 plural(len(self.environments), "environment")]
        if self.errors:
            facts.insert(1, plural(len(self.errors), "errored test"))
        if self.created:
            facts.append(f"created {self.created}")
        if self.tool_version:
            facts.append(f"perfguard {self.tool_version}")
        return facts

    def with_status(self, status: str) -> list[TestView]:
        return [test for test in self.tests if test.status == status]


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# --- building ----------------------------------------------------------------------------


def quiet(status: str, changes: Sized, fails: bool) -> bool:
    """Nothing to see: unchanged, or compared with another environment and no metric moved
    (after an upgrade that is most tests). Large reports summarise these."""
    return status in ("unchanged", "other-environment") and not changes and not fails


def build_view(results: RunResults, *, details: bool = True,
               unchanged_details: bool = True) -> ReportView:
    """The view of ``results``: pure, and the same for the same results.

    Without ``details`` the per-test tables (metrics, kernels, allocations, GPU) are left
    empty: the terminal summary does not show them, and for a thousand tests they are
    most of the work. Without ``unchanged_details`` they are left empty for unchanged tests
    only (the HTML report of a large run shows those as one row each).
    """
    entries = results.sorted_entries()
    # Environment.key() hashes the whole environment: once per entry, not per use.
    env_keys = [entry.measurement.environment.key() for entry in entries]
    envs: dict[str, Environment] = {}
    for entry, key in zip(entries, env_keys, strict=True):
        envs.setdefault(key, entry.measurement.environment)
    several = len(envs) > 1
    shared = _shared_unavailable(entries, env_keys)
    return ReportView(
        counts=_counts(results),
        created=results.created,
        tool_version=results.tool_version,
        baseline_path=results.baseline_path,
        environments=[EnvironmentView(key, env.label(), _environment_fields(env))
                      for key, env in envs.items()],
        notes=[_shared_note(envs[key].label() if several else "", reasons)
               for key, reasons in shared.items() if reasons],
        errors=[_error_view(error) for error in results.errors],
        tests=[_test_view(entry, key, several, shared[key],
                          details and (unchanged_details or not quiet(
                              entry.verdict.status, entry.verdict.changes, entry.verdict.fails)))
               for entry, key in zip(entries, env_keys, strict=True)],
    )


def _counts(results: RunResults) -> dict[str, int]:
    counter: Counter[str] = Counter(e.verdict.status for e in results.entries)
    counts = {ERRORED: len(results.errors)} if results.errors else {}
    counts.update({status: counter.pop(status, 0) for status in STATUS_ORDER})
    counts.update(sorted(counter.items()))
    return counts


def _environment_fields(env: Environment) -> list[tuple[str, str]]:
    data = asdict(env)
    inductor = data.pop("inductor", {})
    pairs = [(name.replace("_", " "), _field_text(value)) for name, value in data.items()]
    pairs.append(("inductor", ", ".join(f"{k}={v}" for k, v in sorted(inductor.items()))
                  or "defaults"))
    return pairs


def _field_text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "none"
    return str(value) if value not in ("", None) else MISSING


#: A dotted exception path at the start of an error line, up to its class name.
_EXCEPTION_PATH = re.compile(r"^(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*: )")


def _error_view(error: TestError) -> ErrorView:
    lines = [line for line in error.message.splitlines() if line.strip()]
    # ``pytest_perfguard.runner.ModelError: ...`` reads ``ModelError: ...``: the line is cut
    # to the terminal's width, and the module path would push the cause past the cut.
    summary = _EXCEPTION_PATH.sub(r"\1", one_line(lines[0])) if lines else "(no message)"
    message = error.message.rstrip()
    if len(message) > ERROR_MESSAGE_CHARS:
        cut = len(message) - ERROR_MESSAGE_CHARS
        message = f"{message[:ERROR_MESSAGE_CHARS]}\n... ({cut:,} more characters)"
    return ErrorView(error.test_id, error.when, summary, message,
                     anchor("error", error.test_id, error.when))


# An unavailable metric of one mode: (mode, metric) -> reason.
_Reasons = dict[tuple[str, str], str]


def _reasons(m: Measurement) -> _Reasons:
    return {(mode.mode, metric): reason for mode in (m.eager, m.compiled)
            for metric, reason in mode.unavailable.items()}


def _shared_unavailable(entries: list[ResultEntry], env_keys: list[str]) -> dict[str, _Reasons]:
    """Per environment key: the (mode, metric, reason) every one of its tests reports.

    On a CPU run each test says "no GPU" for NVML, utilisation and device time in both
    modes; that is a fact about the run, said once, not six times per test.
    """
    shared: dict[str, _Reasons] = {}
    for entry, key in zip(entries, env_keys, strict=True):
        reasons = _reasons(entry.measurement)
        if key not in shared:
            shared[key] = reasons
        else:
            shared[key] = {k: v for k, v in shared[key].items() if reasons.get(k) == v}
    return shared


def _metric_names(reasons: _Reasons, reason: str) -> list[str]:
    """The metrics missing for ``reason``, without the mode when both modes miss them."""
    by_metric: dict[str, set[str]] = {}
    for (mode, metric), why in reasons.items():
        if why == reason:
            by_metric.setdefault(metric, set()).add(mode)
    return sorted(metric if len(modes) > 1 else f"{next(iter(modes))} {metric}"
                  for metric, modes in by_metric.items())


def _shared_note(environment: str, reasons: _Reasons) -> str:
    """``"not measured: device_seconds, nvml, utilisation (no GPU: ...)"``, one clause per
    reason, prefixed with the environment when the report holds several."""
    clauses = [f"{', '.join(_metric_names(reasons, reason))} ({reason})"
               for reason in sorted(set(reasons.values()))]
    where = f" on {environment}" if environment else ""
    return f"Not measured{where}: " + "; ".join(clauses)


def _test_view(entry: ResultEntry, env_key: str, several: bool, shared: _Reasons,
               details: bool) -> TestView:
    m, verdict = entry.measurement, entry.verdict
    eager, compiled = m.eager, m.compiled
    env = m.environment
    short = m.key.split("::", 1)[1] if "::" in m.key else m.key
    roof_points, roofs = _roofline(m)
    return TestView(
        key=m.key,
        label=f"{m.key} @ {env.device_name}" if several else m.key,
        short_label=f"{short} ({env.device})" if several else short,
        anchor=anchor("test", m.key, env_key),
        status=verdict.status,
        fails=verdict.fails,
        note=verdict.note,
        environment=env.label(),
        environment_key=env_key,
        values={metric.name: _text(metric, m) for metrics in SUMMARY_METRICS
                for metric in metrics},
        changes=[_change_view(change, hints) for change, hints in unique_hints(verdict.changes)],
        metrics=_metric_table(m) if details else Table("Metrics", METRIC_COLUMNS, []),
        unavailable=[f"{mode} {metric}: {reason}"
                     for (mode, metric), reason in sorted(_reasons(m).items())
                     if shared.get((mode, metric)) != reason],
        kernels=[_kernel_table(mode) for mode in (compiled, eager) if details and mode.kernels],
        allocations=[_allocation_table(mode) for mode in (compiled, eager)
                     if details and mode.peak_allocations],
        graph_break_details=[GraphBreakView(g.summary, g.reason.strip(), g.location,
                                            g.function)
                             for g in compiled.graph_break_details],
        numerics=_numerics(m),
        gpu=_gpu_tables(m) if details else [],
        gpu_notes=[f"{mode.mode}: {mode.nvml.note}" for mode in (eager, compiled)
                   if mode.nvml is not None and mode.nvml.note],
        chart_values={chart: (eager_metric.read(m), compiled_metric.read(m))
                      for chart, (eager_metric, compiled_metric) in BAR_CHARTS.items()},
        roof_points=roof_points,
        roofs=roofs,
        has_utilisation=any(mode.utilisation is not None for mode in (eager, compiled)),
    )


def _text(metric: Metric, m: Measurement) -> str:
    """``metric``'s value in ``m`` as text; a median time with its spread. A ratio of timings
    (the speedup) is shown only when both are trustworthy: a ratio of a noisy timing (a 48x
    "speedup" of one stalled eager call) is no number."""
    if metric.spread:
        return _timing(getattr(m, metric.mode))
    value = metric.read(m)
    if value is not None and metric.ratio_of and not metric.deterministic \
            and not m.timing_trusted:
        return "n/a (noisy)"
    return formatted(metric, value)


def _change_view(change: Change, hints: list[str]) -> ChangeView:
    rel = change.relative
    suffix = f" ({rel:+.1%})" if rel is not None else ""
    values = (f"{metric_value(change.metric, change.baseline)} → "
              f"{metric_value(change.metric, change.current)}{suffix}")
    return ChangeView(change.metric, change.direction, values, describe_change(change), hints,
                      rel, (change.current or 0) > (change.baseline or 0))


METRIC_COLUMNS = [Column("Metric"), Column("Eager", numeric=True),
                  Column("Compiled", numeric=True), Column("Eager ÷ compiled", numeric=True)]


def _timing(mode: ModeRecord) -> str:
    if mode.time is None:
        return MISSING
    timing = mode.time
    noisy = " (noisy)" if timing.noisy else ""
    if len(timing.samples) < MIN_TRUSTED_SAMPLES:  # an IQR of one or two samples says nothing
        return f"{human_seconds(timing.median)}, {plural(len(timing.samples), 'sample')}{noisy}"
    return f"{human_seconds(timing.median)} ± {human_seconds(timing.iqr)} IQR{noisy}"


def _detail_row(field: str) -> tuple[str, str, list[Metric | None], Metric | None]:
    by_mode = {metric.mode: metric for metric in metrics_of(field)}
    return field, by_mode["compiled"].title, [by_mode.get(mode) for mode in MODES], \
        RATIOS.get(field)


#: The metric table's rows (:data:`..metrics.DETAILS`): field, title, each mode's metric (None
#: where the field is compiled only) and the ratio of the two modes, if any.
_DETAIL_ROWS = [_detail_row(field) for field in DETAILS]


def _metric_table(m: Measurement) -> Table:
    """A row per :data:`..metrics.DETAILS` field: eager, compiled (empty where the field is
    compiled only), and the ratio of the two; device time only where it was measured."""
    rows = []
    for field, title, by_mode, ratio in _DETAIL_ROWS:
        texts = [_text(metric, m) if metric else "" for metric in by_mode]
        if field == "device_seconds" and all(text == MISSING for text in texts):
            continue
        rows.append([title, *texts, f"{ratio.brief} {_text(ratio, m)}" if ratio else ""])
    return Table("Metrics", METRIC_COLUMNS, rows)


def _by_time_then_count(kernels: list[Kernel]) -> list[Kernel]:
    """Kernels that took the most device time first, then the most launched, then by name."""
    return sorted(kernels, key=lambda k: (-(k.device_seconds or 0.0), -k.count, k.name))


def _kernel_table(mode: ModeRecord) -> Table:
    columns = [Column("Kernel", code=True), Column("Kind"), Column("Count", numeric=True)]
    with_time = any(k.device_seconds is not None for k in mode.kernels)
    if with_time:
        columns.append(Column("Device time", numeric=True))
    rows = []
    for kernel in _by_time_then_count(mode.kernels):
        row = [kernel.name, kernel.kind, count(kernel.count)]
        if with_time:
            row.append(human_seconds(kernel.device_seconds))
        rows.append(row)
    title = f"{mode.mode.capitalize()} kernels ({len(mode.kernels)} distinct)"
    return Table(title, columns, rows)


def _by_size(allocations: list[Allocation]) -> list[Allocation]:
    return sorted(allocations, key=lambda a: (-a.bytes, a.op, a.shape))


def _allocation_table(mode: ModeRecord) -> Table:
    """The largest tensors alive at this mode's peak and the op that allocated each."""
    ordered = _by_size(mode.peak_allocations)
    shown = ordered[:TOP_ALLOCATIONS]
    rows = [[a.op, human_bytes(a.bytes), a.shape or MISSING] for a in shown]
    rest = ordered[TOP_ALLOCATIONS:]
    note = ""
    if rest:
        note = (f"{plural(len(rest), 'more tensor')} "
                f"({human_bytes(sum(a.bytes for a in rest))} in all) not shown")
    title = (f"{mode.mode.capitalize()}: largest tensors alive at the peak "
             f"({human_bytes(mode.peak_memory)})")
    columns = [Column("Allocated by", code=True), Column("Size", numeric=True),
               Column("Shape", code=True)]
    return Table(title, columns, rows, note)


def _numerics(m: Measurement) -> NumericsView:
    n = m.numerics
    if not n.checked:
        return NumericsView(False, True, "not checked", [], "", n.message)
    facts = []
    if n.max_abs_error is not None:
        facts.append(f"max abs error {n.max_abs_error:.3g}")
    if n.max_rel_error is not None:
        facts.append(f"max rel error {n.max_rel_error:.3g}")
    if n.atol is not None or n.rtol is not None:
        facts.append(f"atol {n.atol:.3g}" if n.atol is not None else f"atol {MISSING}")
        facts.append(f"rtol {n.rtol:.3g}" if n.rtol is not None else f"rtol {MISSING}")
    return NumericsView(True, n.ok, "ok" if n.ok else "mismatch", facts, n.where, n.message)


def _unit(value: float | None, unit: str) -> str:
    return MISSING if value is None else f"{value:.0f}{unit}"


def _gpu_tables(m: Measurement) -> list[Table]:
    modes = (m.eager, m.compiled)
    tables = []
    utilisation = [
        [mode.mode, human_seconds(u.device_seconds), human_si(u.achieved_bytes_per_second, "B/s"),
         percent(u.bandwidth_utilisation), human_si(u.achieved_flops_per_second, "FLOP/s"),
         percent(u.flop_utilisation), u.peak_source or MISSING]
        for mode in modes if (u := mode.utilisation) is not None
    ]
    if utilisation:
        columns = [Column("Mode"), *(Column(h, numeric=True) for h in (
            "Device time", "Bandwidth", "% of peak", "FLOP/s", "% of peak")), Column("Peaks from")]
        tables.append(Table("Utilisation", columns, utilisation))
    nvml = [
        [mode.mode, f"{s.samples} in {human_seconds(s.window_seconds)}",
         _unit(s.gpu_util_percent, "%"), _unit(s.memory_util_percent, "%"),
         human_bytes(s.memory_used_bytes), _unit(s.sm_clock_mhz, " MHz"),
         _unit(s.memory_clock_mhz, " MHz"), _unit(s.power_watts, " W"),
         _unit(s.temperature_c, " °C"), ", ".join(s.throttle_reasons) or "none"]
        for mode in modes if (s := mode.nvml) is not None
    ]
    if nvml:
        columns = [Column("Mode"), *(Column(h, numeric=True) for h in (
            "Samples", "GPU util", "Memory util", "Memory used", "SM clock", "Memory clock",
            "Power", "Temperature")), Column("Throttle")]
        tables.append(Table("NVML", columns, nvml))
    return tables


def _roofline(m: Measurement) -> tuple[list[RoofPoint], list[DeviceRoof]]:
    """This test's points under its device's roofs (GPU runs with utilisation data)."""
    points: list[RoofPoint] = []
    roofs: list[DeviceRoof] = []
    for mode in (m.eager, m.compiled):
        u = mode.utilisation
        ai = mode.arithmetic_intensity
        if u is None or not ai:
            continue
        achieved = u.achieved_flops_per_second
        if achieved is None and mode.flops and u.device_seconds:
            achieved = mode.flops / u.device_seconds
        if achieved:
            points.append(RoofPoint(mode.mode, ai, achieved))
        if u.peak_bytes_per_second and u.peak_flops_per_second:
            label = f"{m.environment.device_name}, {u.peak_source}".rstrip(", ")
            roofs.append(DeviceRoof(u.peak_bytes_per_second, u.peak_flops_per_second, label))
    return points, roofs
