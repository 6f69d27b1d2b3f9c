"""The pytest plugin: thin glue between pytest and runner / baseline / compare / reporting.

- The ``perfguard`` fixture is always available. Without ``--perfguard`` it runs the model
  once eager and once compiled and checks numerics (a fast local mode).
- With ``--perfguard`` (or ``--perfguard-update``) :class:`PerfguardPlugin` is registered:
  each test's measurements are compared with the baseline and a regressed test fails on
  its own (in ``pytest_runtest_makereport``); the controller writes the reports, and on
  update the baseline. xdist workers never write files: they send JSON through
  ``config.workeroutput``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from .baseline import Baseline, BaselineError, atomic_write, set_aside_unreadable
from .compare import Rules, judge, unique_hints
from .options import OPTIONS, RULE_MARKER_KEYS, base_rules, dest, resolve
from .record import Measurement
from .results import ResultEntry, RunResults

__version__ = "0.1.0"

PROFILE_OPTION_KEYS = {"backend", "mode", "dynamic", "fullgraph", "train", "name", "repeats",
                       "warmup", "rtol", "atol", "check_numerics", "loss", "numerics_exclude",
                       "compile_options", "inputs"}


@dataclass
class PerfguardSession:
    """Per-session state, kept in ``config.stash``."""

    settings: dict[str, Any]
    rootpath: Path
    baseline_path: Path
    report_dir: Path
    baseline: Baseline | None = None
    rules: Rules = field(default_factory=Rules)
    is_worker: bool = False
    entries: list[ResultEntry] = field(default_factory=list)
    #: Rules per measurement key (markers can change them per test).
    rules_by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    collected_ids: set[str] = field(default_factory=set)
    results: RunResults | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return bool(self.settings["perfguard"] or self.settings["perfguard_update"])

    @property
    def updating(self) -> bool:
        return bool(self.settings["perfguard_update"])

    def judge(self, measurement: Measurement, rules: Rules) -> ResultEntry:
        return ResultEntry(measurement, judge(self.baseline, measurement, rules))


session_key = pytest.StashKey[PerfguardSession]()
entries_key = pytest.StashKey[list[tuple[ResultEntry, Rules]]]()


# ----------------------------------------------------------------------------------------
# Options and configuration
# ----------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("perfguard", "perfguard: gate torch.compile fusion in CI")
    for option in OPTIONS:
        if option.kind == "bool":
            group.addoption(option.flag, action="store_true", dest=dest(option), default=None,
                            help=option.help)
            parser.addini(option.ini, option.help + " (ini)", type="bool", default=None)
        else:
            group.addoption(option.flag, action="store", dest=dest(option), default=None,
                            help=option.help)
            parser.addini(option.ini, option.help + " (ini)", type="string", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "perfguard(**options): per-test perfguard options: rules (bytes_tolerance, "
        "utilisation_tolerance, time, time_min_effect, time_alpha, strict) and profile "
        "options (backend, mode, dynamic, fullgraph, train, repeats, warmup, rtol, atol, "
        "check_numerics, loss, numerics_exclude, compile_options, inputs)",
    )
    try:
        settings = {o.ini: resolve(o, config.getoption(dest(o)), config.getini(o.ini))
                    for o in OPTIONS}
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    rootpath = Path(config.rootpath)
    session = PerfguardSession(
        settings=settings,
        rootpath=rootpath,
        baseline_path=_under_root(rootpath, settings["perfguard_baseline"]),
        report_dir=_under_root(rootpath, settings["perfguard_report"]),
        rules=base_rules(settings),
        is_worker=hasattr(config, "workerinput"),
    )
    config.stash[session_key] = session
    if not session.enabled:
        return
    try:
        session.baseline = Baseline.load(session.baseline_path)
    except BaselineError as exc:
        if not session.updating:
            raise pytest.UsageError(
                f"perfguard: {exc}\nFix or remove the file, or re-create it with "
                "--perfguard-update (the unreadable file is then kept aside)."
            ) from None
        if not session.is_worker:
            aside = set_aside_unreadable(session.baseline_path)
            session.messages.append(
                f"unreadable baseline moved to {aside} ({exc}); writing a new one"
            )
        session.baseline = Baseline(path=session.baseline_path)
    config.pluginmanager.register(PerfguardPlugin(session, config), "perfguard-session")


def _under_root(rootpath: Path, value: str) -> Path:
    path = Path(os.path.expandvars(os.path.expanduser(value)))
    return path if path.is_absolute() else rootpath / path


# ----------------------------------------------------------------------------------------
# The fixture
# ----------------------------------------------------------------------------------------


class Profiler:
    """What the ``perfguard`` fixture returns: call it with a model and its inputs."""

    def __init__(self, session: PerfguardSession, item: pytest.Item, marker: dict[str, Any],
                 trace_dir: Path | None) -> None:
        self._session = session
        self._item = item
        self._marker = marker
        self._names: set[str] = set()
        self._trace_dir = trace_dir

    def __call__(self, model: Any, *args: Any, kwargs: dict[str, Any] | None = None,
                 **options: Any) -> Measurement:
        __tracebackhide__ = True
        from .runner import ProfileOptions, measure

        unknown = set(options) - PROFILE_OPTION_KEYS
        if unknown:
            raise TypeError(
                f"perfguard() got unknown option(s) {', '.join(sorted(unknown))}; model "
                f"keyword inputs go in kwargs={{...}}. Options: {', '.join(sorted(PROFILE_OPTION_KEYS))}"
            )
        merged = {k: v for k, v in self._marker.items() if k in PROFILE_OPTION_KEYS}
        merged.update(options)
        profile_options = ProfileOptions(**merged)
        if profile_options.name in self._names:
            raise ValueError(
                f"perfguard: this test already measured name={profile_options.name!r}; "
                "give each call its own name=..."
            )
        self._names.add(profile_options.name)
        measurement = measure(
            model, args, dict(kwargs or {}), profile_options,
            test_id=self._item.nodeid, profile=self._session.enabled,
            trace_dir=self._trace_dir,
        )
        if self._session.enabled:
            rule_overrides = {k: v for k, v in self._marker.items() if k in RULE_MARKER_KEYS}
            rules = self._session.rules.updated(**rule_overrides)
            entry = self._session.judge(measurement, rules)
            self._item.stash.setdefault(entries_key, []).append((entry, rules))
            self._session.entries.append(entry)
            self._session.rules_by_key[measurement.key] = rules.__dict__.copy()
            _record_junit_properties(self._item, measurement)
        return measurement


def _record_junit_properties(item: pytest.Item, m: Measurement) -> None:
    prefix = "perfguard" if m.name == "default" else f"perfguard.{m.name}"
    for mode in ("eager", "compiled"):
        record = getattr(m, mode)
        for metric in ("kernel_launches", "bytes_moved", "flops"):
            item.user_properties.append((f"{prefix}.{mode}.{metric}", getattr(record, metric)))
    item.user_properties.append((f"{prefix}.compiled.graph_breaks", m.compiled.graph_breaks))
    item.user_properties.append((f"{prefix}.compiled.recompiles", m.compiled.recompiles))
    item.user_properties.append((f"{prefix}.fusion_ratio", m.fusion_ratio))


@pytest.fixture
def perfguard(request: pytest.FixtureRequest) -> Profiler:
    """Profile a model eager and under torch.compile: ``perfguard(model, x, train=False)``."""
    session = request.config.stash[session_key]
    marker: dict[str, Any] = {}
    for mark in reversed(list(request.node.iter_markers("perfguard"))):
        if mark.args:
            raise pytest.UsageError("@pytest.mark.perfguard takes keyword arguments only")
        marker.update(mark.kwargs)
    unknown = set(marker) - PROFILE_OPTION_KEYS - RULE_MARKER_KEYS
    if unknown:
        raise pytest.UsageError(
            f"@pytest.mark.perfguard: unknown option(s) {', '.join(sorted(unknown))}"
        )
    trace_dir = None
    if session.enabled and session.settings["perfguard_traces"]:
        trace_dir = session.report_dir / "traces" / _safe_name(request.node.nodeid)
    return Profiler(session, request.node, marker, trace_dir)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120] or "test"


# ----------------------------------------------------------------------------------------
# The gate, reports and baseline update (registered only with --perfguard)
# ----------------------------------------------------------------------------------------


class PerfguardPlugin:
    def __init__(self, session: PerfguardSession, config: pytest.Config) -> None:
        self.session = session
        self.config = config

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        outcome = yield
        report = outcome.get_result()
        if call.when != "call":
            return
        entries = item.stash.get(entries_key, [])
        if not entries:
            return
        lines, failures = [], []
        regressed = False
        for entry, rules in entries:
            lines.append(_entry_summary(entry))
            failure = self._failure(entry, rules)
            if failure:
                failures.append(failure)
                regressed = regressed or entry.verdict.fails(rules)
        report.sections.append(("perfguard", "\n".join(lines)))
        if failures and report.passed:
            report.outcome = "failed"
            report.longrepr = "\n\n".join(failures)
            if regressed:
                report.perfguard = "regressed"  # type: ignore[attr-defined]

    def _failure(self, entry: ResultEntry, rules: Rules) -> str | None:
        if self.session.updating:
            return None
        verdict = entry.verdict
        if verdict.fails(rules):
            return _failure_message(entry, strict=verdict.status == "improved")
        if self.session.settings["perfguard_require_baseline"] and verdict.status in (
            "new", "other-environment"
        ):
            return (f"perfguard: no baseline for {entry.measurement.key} in this environment "
                    f"({entry.measurement.environment.label()}) and "
                    "--perfguard-require-baseline is set. Record one with --perfguard-update.")
        return None

    def pytest_report_teststatus(self, report: pytest.TestReport) -> Any:
        if report.when == "call" and getattr(report, "perfguard", None) == "regressed":
            return "failed", "P", ("PERF REGRESSION", {"red": True})
        return None

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.session.collected_ids.update(item.nodeid for item in items)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.session.collected_ids.update(item.nodeid for item in items)

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: take a worker's measurements (JSON, never files)."""
        payload = getattr(node, "workeroutput", {}).get("perfguard")
        if not payload:
            return
        data = json.loads(payload)
        for item in data["entries"]:
            results = RunResults.from_dict({"schema": 1, "results": [item]}, source="xdist worker")
            self.session.entries.extend(results.entries)
        self.session.rules_by_key.update(data["rules"])
        self.session.collected_ids.update(data["collected"])

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        state = self.session
        if state.is_worker:
            self.config.workeroutput["perfguard"] = json.dumps({  # type: ignore[attr-defined]
                "entries": [{"measurement": e.measurement.to_dict(),
                             "verdict": e.verdict.to_dict()} for e in state.entries],
                "rules": state.rules_by_key,
                "collected": sorted(state.collected_ids),
            })
            return
        results = RunResults(
            entries=state.entries,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            tool_version=__version__,
            rules=state.rules.__dict__.copy(),
            baseline_path=str(state.baseline_path),
        )
        state.results = results
        try:
            self._write_reports(results)
            if state.updating:
                self._update_baseline(results)
        except (BaselineError, OSError) as exc:
            state.messages.append(f"ERROR: {exc}")
            if session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _write_reports(self, results: RunResults) -> None:
        from .reporting import render_html, render_markdown

        report_dir = self.session.report_dir
        try:
            report_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BaselineError(f"{report_dir}: cannot create report directory: {exc}") from exc
        atomic_write(report_dir / "results.json", results.dumps())
        markdown = render_markdown(results)
        atomic_write(report_dir / "report.md", markdown)
        links = _trace_links(report_dir)
        atomic_write(report_dir / "report.html", render_html(results, trace_links=links))
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(markdown + "\n")
        self.session.messages.append(f"report written to {report_dir}")

    def _update_baseline(self, results: RunResults) -> None:
        state = self.session
        baseline = state.baseline or Baseline(path=state.baseline_path)
        measurements = [e.measurement for e in results.entries]
        keep_time = {k for k, r in state.rules_by_key.items() if r.get("time")}
        baseline.update(measurements, keep_time_for=keep_time)
        pruned: list[str] = []
        if state.settings["perfguard_prune"]:
            for env_key in {m.environment.key() for m in measurements} or set(
                baseline.environments
            ):
                pruned += baseline.prune(env_key, state.collected_ids)
        baseline.save()
        state.messages.append(
            f"baseline updated: {len(measurements)} entr{'y' if len(measurements) == 1 else 'ies'}"
            f" written to {baseline.path}" + (f"; pruned {len(pruned)}: {', '.join(pruned)}"
                                               if pruned else "")
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from .reporting import render_terminal

        state = self.session
        if state.is_worker:
            return
        terminalreporter.write_sep("=", "perfguard")
        if state.results is not None and state.results.entries:
            for line in render_terminal(state.results,
                                        verbose=self.config.option.verbose > 0).splitlines():
                markup = {"red": True} if "regressed" in line else {}
                terminalreporter.write_line(line, **markup)
        else:
            terminalreporter.write_line("no test used the perfguard fixture")
        improved = [e for e in (state.results.entries if state.results else [])
                    if e.verdict.status == "improved"]
        if improved and not state.updating:
            terminalreporter.write_line(
                f"{len(improved)} test(s) improved beyond tolerance; accept with "
                "`pytest --perfguard --perfguard-update` or `perfguard update "
                f"{state.report_dir / 'results.json'}`"
            )
        for message in state.messages:
            terminalreporter.write_line(f"perfguard: {message}",
                                        red=message.startswith("ERROR"))


def _trace_links(report_dir: Path) -> dict[str, dict[str, str]]:
    links: dict[str, dict[str, str]] = {}
    traces = report_dir / "traces"
    if not traces.is_dir():
        return links
    for index_file in traces.glob("*/index.json"):
        try:
            data = json.loads(index_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for key, files in data.items():
            links[key] = {kind: str(Path("traces") / index_file.parent.name / name)
                          for kind, name in files.items()}
    return links


def _entry_summary(entry: ResultEntry) -> str:
    m = entry.measurement
    return (
        f"{m.key}: {entry.verdict.status}; compiled {m.compiled.describe('kernel_launches')} "
        f"launches, {m.compiled.describe('bytes_moved')} bytes, "
        f"{m.compiled.describe('graph_breaks')} graph breaks; eager "
        f"{m.eager.describe('kernel_launches')} launches"
    )


def _failure_message(entry: ResultEntry, *, strict: bool) -> str:
    m, verdict = entry.measurement, entry.verdict
    head = (f"perfguard: {m.key} improved beyond tolerance and --perfguard-strict is set"
            if strict else f"perfguard: {m.key} regressed against the baseline")
    lines = [head + f" ({m.environment.label()})"]
    changes = verdict.improvements if strict else verdict.regressions
    for change, hints in unique_hints(changes):
        lines.append(f"  {change.describe()}")
        lines.extend(f"    likely cause: {hint}" for hint in hints)
    lines.append("If this change is intended, accept it: pytest --perfguard --perfguard-update")
    return "\n".join(lines)
