"""The pytest plugin: thin glue between pytest and runner / baseline / compare / reporting.

- The ``perfguard`` fixture (:mod:`pytest_perfguard.fixture`) is always available and only
  measures. Without ``--perfguard`` it runs the model once eager and once compiled and
  checks numerics (a fast local mode).
- With ``--perfguard`` (or ``--perfguard-update``) :class:`PerfguardPlugin` is registered.
  Each measurement is judged (:func:`~pytest_perfguard.compare.judge`, with the rules of
  its test) when its test's report is made; a failing verdict fails that test on its own.
  The judged entries travel on the test's report, so under pytest-xdist they reach the
  controller as each test finishes (a worker that crashes later loses nothing), and the
  controller alone writes files: the baseline first (on update), then the reports.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from . import __version__, fixture
from ._files import atomic_write
from .baseline import (
    Baseline,
    BaselineError,
    PruneScope,
    set_aside_unreadable,
    update_baseline_file,
)
from .compare import judge
from .devices import give_worker_a_card
from .fixture import FixtureSettings, measured_key, settings_key
from .history import HistoryError, check_history, record_session
from .metrics import BY_NAME
from .results import RESULTS_SCHEMA, ResultEntry, ResultsError, RunResults, TestError
from .settings import (
    Rules,
    SessionSettings,
    SettingError,
    add_pytest_options,
    marker_help,
    resolve_pytest_settings,
)


@dataclass
class PerfguardSession:
    """Per-session state, kept in ``config.stash``."""

    settings: SessionSettings
    rules: Rules
    rootpath: Path
    baseline_path: Path
    report_dir: Path
    baseline: Baseline | None = None
    is_worker: bool = False
    #: Judged measurements, gathered from test reports (on the controller).
    entries: list[ResultEntry] = field(default_factory=list)
    errors: list[TestError] = field(default_factory=list)
    #: Without xdist: the entries a test's report stands for, from making the report to
    #: logging it (in one process they need no JSON round trip).
    judged: dict[str, list[ResultEntry]] = field(default_factory=dict)
    #: Node ids with entries or errors above: a rerun of one of them replaces them.
    reported_ids: set[str] = field(default_factory=set)
    #: Node ids this run collected (deselected ones included): what prune may judge.
    collected_ids: set[str] = field(default_factory=set)
    results: RunResults | None = None
    messages: list[str] = field(default_factory=list)
    #: What ``pytest_perfguard_environment`` implementations add to every fingerprint.
    environment_extra: dict[str, str] = field(default_factory=dict)


#: Report attributes that carry judged entries / an error to the controller (JSON text).
_ENTRIES_ATTR = "perfguard_entries"
_ERROR_ATTR = "perfguard_error"


# ----------------------------------------------------------------------------------------
# Options and configuration
# ----------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    add_pytest_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", marker_help())
    try:
        settings, rules = resolve_pytest_settings(config)
    except SettingError as exc:
        raise pytest.UsageError(str(exc)) from None
    rootpath = Path(config.rootpath)
    session = PerfguardSession(
        settings=settings,
        rules=rules,
        rootpath=rootpath,
        baseline_path=_under_root(rootpath, settings.baseline),
        report_dir=_under_root(rootpath, settings.report),
        is_worker=hasattr(config, "workerinput"),
    )
    # The fixture is a plugin of its own: it is there with or without --perfguard (and
    # gone with ``-p no:perfguard``, as this module is never loaded then).
    config.pluginmanager.register(fixture, "perfguard-fixture")
    config.stash[settings_key] = FixtureSettings(rules)
    if not settings.active or config.getoption("collectonly"):
        return  # a collection-only run measures nothing and touches no file
    if session.is_worker:  # one GPU per xdist worker where the runner has several
        card = give_worker_a_card(str(config.workerinput.get("workerid", "")))  # type: ignore[attr-defined]
        if isinstance(card, str):
            warnings.warn(pytest.PytestWarning(f"perfguard: {card}"), stacklevel=1)
    for extra in config.hook.pytest_perfguard_environment(config=config):
        if not isinstance(extra, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
            raise pytest.UsageError("perfguard: pytest_perfguard_environment must return a "
                                    f"dict of strings, got {extra!r}")
        session.environment_extra.update(extra)
    library_names: list[str] = []  # their versions are recorded, not keyed
    for names in config.hook.pytest_perfguard_libraries(config=config):
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise pytest.UsageError("perfguard: pytest_perfguard_libraries must return a "
                                    f"list of distribution names, got {names!r}")
        library_names.extend(names)
    try:
        session.baseline = Baseline.load(session.baseline_path)
    except BaselineError as exc:
        if not settings.update:
            raise pytest.UsageError(
                f"perfguard: {exc}\nFix or remove the file, or re-create it with "
                "--perfguard-update (the unreadable file is then kept aside)."
            ) from None
        if not session.is_worker:
            try:  # (a directory, a device, a FIFO is never moved: an error instead)
                aside = set_aside_unreadable(session.baseline_path)
            except BaselineError as error:
                raise pytest.UsageError(f"perfguard: {error}") from None
            session.messages.append(
                f"unreadable baseline moved to {aside} ({exc}); writing a new one"
            )
        session.baseline = Baseline(path=session.baseline_path)
    if settings.history_record and not session.is_worker:
        try:  # an unusable history database stops the run before its tests, not after
            check_history(_under_root(rootpath, settings.history))
        except HistoryError as exc:
            raise pytest.UsageError(f"perfguard: {exc}") from None
    config.stash[settings_key] = FixtureSettings(
        rules, profile=True, environment_extra=dict(session.environment_extra),
        library_names=tuple(library_names),
        traces_dir=session.report_dir / "traces" if settings.traces else None)
    config.pluginmanager.register(PerfguardPlugin(session, config), "perfguard-session")


def _under_root(rootpath: Path, value: str) -> Path:
    path = Path(os.path.expandvars(os.path.expanduser(value)))
    return path if path.is_absolute() else rootpath / path


# ----------------------------------------------------------------------------------------
# The gate, reports and baseline update (registered only with --perfguard)
# ----------------------------------------------------------------------------------------


class PerfguardPlugin:
    def __init__(self, session: PerfguardSession, config: pytest.Config) -> None:
        self.session = session
        self.config = config

    def pytest_report_header(self) -> list[str]:
        return [] if self.session.is_worker else header_lines(self.session)

    # -- per test: judge, fail, and send the entries on the report -------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Each attempt (pytest-rerunfailures runs a test again) starts with no measurements."""
        item.stash[measured_key] = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        from .codec import dump, dump_measurement, dump_verdict
        from .reporting import failure_message

        outcome = yield
        report = outcome.get_result()
        measured = item.stash.get(measured_key, []) if call.when == "call" else []
        if not measured:
            if report.failed and "perfguard" in getattr(item, "fixturenames", ()) and (
                call.when != "teardown" or not item.stash.get(measured_key, [])
            ):
                setattr(report, _ERROR_ATTR, json.dumps(dump(
                    TestError(item.nodeid, call.when, _short_error(report)))))
            return
        from .schema import ValidationError, check_measurement, describe

        try:  # validated where it is made: an invalid value fails this test, here
            for m, _ in measured:
                check_measurement(m)
        except ValidationError as exc:
            problem = f"{m.key}: {describe(exc, skip=1)}"
            report.outcome = "failed"
            report.longrepr = f"perfguard: cannot record this test's measurement: {problem}"
            setattr(report, _ERROR_ATTR, json.dumps(dump(
                TestError(item.nodeid, call.when, f"invalid measurement: {problem}"))))
            return
        entries = [ResultEntry(m, judge(self.session.baseline, m, rules)) for m, rules in measured]
        if self.session.is_worker:  # to the controller, which validates what it receives
            setattr(report, _ENTRIES_ATTR, json.dumps([
                {"measurement": dump_measurement(e.measurement),
                 "verdict": dump_verdict(e.verdict)} for e in entries]))
        else:
            self.session.judged[item.nodeid] = entries
        report.sections.append(("perfguard", "\n".join(_entry_summary(e) for e in entries)))
        if self.session.settings.update:
            return
        failing = [e for e in entries if e.verdict.fails]
        if failing and report.passed:
            report.outcome = "failed"
            report.longrepr = "\n\n".join(failure_message(e) for e in failing)
            if any(e.verdict.status == "regressed" for e in failing):
                report.perfguard = "regressed"

    def _results_of(self, payload: list[dict[str, Any]], source: str) -> RunResults:
        from .codec import dump

        return RunResults.validate({"schema": RESULTS_SCHEMA, "rules": dump(self.session.rules),
                                    "results": payload}, source=source)

    def pytest_report_teststatus(self, report: pytest.TestReport) -> Any:
        if report.when == "call" and report.failed and \
                getattr(report, "perfguard", None) == "regressed":
            return "failed", "P", ("PERF REGRESSION", {"red": True})
        return None

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        """A test runs again (pytest-rerunfailures): its last attempt replaces the earlier."""
        state = self.session
        if state.is_worker or nodeid not in state.reported_ids:
            return
        state.entries = [e for e in state.entries if e.measurement.test_id != nodeid]
        state.errors = [e for e in state.errors if e.test_id != nodeid]
        state.reported_ids.discard(nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Controller (or a run without xdist): take the entries a test's report carries."""
        if self.session.is_worker:
            return
        judged = self.session.judged.pop(report.nodeid, None) if report.when == "call" else None
        if judged:
            self.session.reported_ids.add(report.nodeid)
            self.session.entries.extend(judged)
        payload = getattr(report, _ENTRIES_ATTR, None)
        if payload:
            self.session.reported_ids.add(report.nodeid)
            try:
                results = self._results_of(json.loads(payload), f"report of {report.nodeid}")
            except (ResultsError, ValueError) as exc:  # checked on the worker already
                self.session.errors.append(TestError(report.nodeid, report.when, str(exc)))
            else:
                self.session.entries.extend(results.entries)
        error = getattr(report, _ERROR_ATTR, None)
        if error:
            self.session.reported_ids.add(report.nodeid)
            self.session.errors.append(TestError(**json.loads(error)))  # written just above

    # -- what the run could see (for prune) ------------------------------------------

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.session.collected_ids.update(item.nodeid for item in items)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.session.collected_ids.update(item.nodeid for item in items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """xdist controller: the node ids a worker collected (after deselection)."""
        self.session.collected_ids.update(ids)

    # -- end of the run: baseline first, then reports ---------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from .codec import dump

        state = self.session
        if state.is_worker:
            return
        results = RunResults(
            entries=state.entries,
            errors=state.errors,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            tool_version=__version__,
            rules=dump(state.rules),
            baseline_path=str(state.baseline_path),
        )
        state.results = results
        if state.settings.update:
            if exitstatus == pytest.ExitCode.INTERRUPTED:
                state.messages.append(
                    f"ERROR: the run was interrupted: baseline NOT updated ({len(state.entries)} "
                    "measurement(s) discarded); rerun to update it")
            else:
                try:
                    self._update_baseline(results)
                except (BaselineError, OSError) as exc:
                    state.messages.append(f"ERROR: baseline not updated: {exc}")
                    if session.exitstatus == 0:
                        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if state.settings.history_record:
            try:
                state.messages.append(record_session(
                    results, _under_root(state.rootpath, state.settings.history),
                    cwd=state.rootpath, ignore=[state.report_dir, state.baseline_path]))
            except (HistoryError, OSError) as exc:
                state.messages.append(f"ERROR: history not recorded: {exc}")
                if session.exitstatus == 0:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self._write_reports(results)

    def _write_reports(self, results: RunResults) -> None:
        """Reports are artifacts: one that cannot be written is a warning, nothing more."""
        from .reporting import render_html, render_markdown, render_markdown_summary

        report_dir = self.session.report_dir
        try:
            report_dir.mkdir(parents=True, exist_ok=True)
            document = results.document()
            self.config.hook.pytest_perfguard_update_json(config=self.config, results=document)
            atomic_write(report_dir / "results.json",
                         json.dumps(document, indent=2, sort_keys=True) + "\n")
            atomic_write(report_dir / "report.md", render_markdown(results))
            links = {e.measurement.key: {kind: os.path.relpath(path, report_dir)
                                         for kind, path in e.measurement.traces.items()}
                     for e in results.entries if e.measurement.traces}
            atomic_write(report_dir / "report.html", render_html(results, trace_links=links))
            self.session.messages.append(f"report written to {report_dir}")
        except OSError as exc:  # (a FileError naming the file, or the folder's mkdir)
            self.session.messages.append(f"WARNING: report not written: {exc}")
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            try:
                with open(summary, "a", encoding="utf-8") as handle:
                    handle.write(render_markdown_summary(results) + "\n")
            except OSError as exc:
                self.session.messages.append(
                    f"WARNING: job summary not written to GITHUB_STEP_SUMMARY={summary}: "
                    f"{exc.strerror or exc}")

    def _update_baseline(self, results: RunResults) -> None:
        state = self.session
        keep_time = {e.measurement.identity for e in results.entries if e.verdict.rules.time}
        summary = update_baseline_file(
            state.baseline_path, [e.measurement for e in results.entries],
            keep_time_for=keep_time, prune=self._prune_scope() if state.settings.prune else None)
        written, pruned = summary.written, summary.pruned
        state.messages.append(
            f"baseline updated: {written} entr{'y' if written == 1 else 'ies'}"
            f" written to {state.baseline_path}" + (f"; pruned {len(pruned)}: {', '.join(pruned)}"
                                                    if pruned else "")
        )

    def _prune_scope(self) -> PruneScope | None:
        """What this run could have seen (inside its paths), for prune; None: prune nothing."""
        option = self.config.option
        if getattr(option, "dist", "no") != "no" and (option.keyword or option.markexpr):
            self.session.messages.append(
                "not pruning: with xdist and -k/-m the deselected tests are not visible")
            return None
        scopes = run_scopes(self.config.args, Path(self.config.invocation_params.dir),
                            self.session.rootpath)
        return PruneScope(scopes, self.session.collected_ids)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from .reporting import render_terminal

        state = self.session
        if state.is_worker:
            return
        terminalreporter.write_sep("=", "perfguard")
        if state.results is not None and (state.results.entries or state.errors):
            for line in render_terminal(state.results,
                                        verbose=self.config.option.verbose > 0).splitlines():
                markup = {"red": True} if "regressed" in line else {}
                terminalreporter.write_line(line, **markup)
        else:
            terminalreporter.write_line("no test used the perfguard fixture")
        improved = [e for e in (state.results.entries if state.results else [])
                    if e.verdict.status == "improved"]
        if improved and not state.settings.update:
            terminalreporter.write_line(
                f"{len(improved)} test(s) improved beyond tolerance; accept with "
                "`pytest --perfguard --perfguard-update` or `perfguard update "
                f"{state.report_dir / 'results.json'}`"
            )
        for message in state.messages:
            terminalreporter.write_line(f"perfguard: {message}",
                                        red=message.startswith(("ERROR", "WARNING")))


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hooks

    pluginmanager.add_hookspecs(hooks)


def run_scopes(args: list[str], invocation_dir: Path, rootpath: Path) -> list[str]:
    """The run's arguments as rootdir-relative node-id prefixes (``tests/test_b.py``,
    ``tests/``, ``tests/test_c.py::test_x``); an argument outside the rootdir is dropped."""
    scopes = []
    for arg in args:
        path_part, sep, rest = arg.partition("::")
        try:
            rel = (invocation_dir / path_part).resolve().relative_to(rootpath.resolve())
        except ValueError:
            continue
        text = rel.as_posix()
        text = "" if text == "." else text
        scopes.append(f"{text}::{rest}" if sep else text)
    return scopes


def header_lines(state: PerfguardSession) -> list[str]:
    """What the run does, for pytest's header: the baseline file, the environment known
    before any test runs, and what is gated. Reads no torch (its version comes from the
    installed package's metadata)."""
    from .reporting._format import printable

    path = state.baseline_path
    shown = path.relative_to(state.rootpath) if path.is_relative_to(state.rootpath) else path
    baseline = state.baseline
    if baseline is None or not path.exists():
        held = "no file yet" if state.settings.update else "no file yet: every test is new"
    else:
        entries, environments = baseline.entry_count, len(baseline.environments)
        held = (f"{entries} entr{'y' if entries == 1 else 'ies'}, {environments} "
                f"environment{'' if environments == 1 else 's'}")
    doing = "recording the baseline to" if state.settings.update else "gating against"
    lines = [printable(f"perfguard: {doing} {shown} ({held}); {_versions()}")]
    if not state.settings.update:
        lines.append(f"perfguard: gated: {gated_metrics(state.rules)}")
    return lines


def _versions() -> str:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    try:
        torch = version("torch")
    except PackageNotFoundError:
        torch = "not installed"
    return f"torch {torch}, python {platform.python_version()}"


def gated_metrics(rules: Rules) -> str:
    """``compiled kernel_launches, ..., compiled bytes_moved (tol 1%)``, then the rules
    switched on (``strict``): what a test's verdict follows under ``rules``."""
    from .compare import CHECKS, RelativeCheck, TimeCheck

    parts = []
    for check in CHECKS:
        if not check.enabled(rules) or (isinstance(check, TimeCheck) and not rules.time):
            continue
        tolerance = (f" (tol {check.tolerance(rules) * 100:g}%)"
                     if isinstance(check, RelativeCheck) else "")
        parts.append(check.metric + tolerance)
    switches = [name for name in ("strict", "require_baseline", "across_environments")
                if getattr(rules, name)]
    return ", ".join(parts) + (f"; rules: {', '.join(switches)}" if switches else "")


def _short_error(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return str(crash.message).strip()
    text = str(report.longrepr or "").strip().splitlines()
    return text[-1] if text else f"{report.when} failed"


def _entry_summary(entry: ResultEntry) -> str:
    """``KEY: regressed; compiled 5 launches, 4096 bytes, 1 graph breaks; eager 7 launches``."""
    from .reporting._format import printable

    m = entry.measurement

    def said(mode: str, *fields: str) -> str:
        return f"{mode} " + ", ".join(f"{getattr(m, mode).describe(field)} "
                                      f"{BY_NAME[f'{mode}.{field}'].brief}" for field in fields)

    return (f"{printable(m.key)}: {entry.verdict.status}; "
            f"{said('compiled', 'kernel_launches', 'bytes_moved', 'graph_breaks')}; "
            f"{said('eager', 'kernel_launches')}")


__all__ = ["PerfguardPlugin", "PerfguardSession", "run_scopes"]
