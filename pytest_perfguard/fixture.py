"""The ``perfguard`` fixture: it measures, and leaves judging to the plugin's hooks.

The fixture never sees the session. The plugin puts what it needs in ``config.stash``
(:class:`FixtureSettings`, under :data:`settings_key`), and the fixture hands each
measurement, with the rules of its test, to the test item (``item.stash[measured_key]``),
where the plugin's report hook judges it. Without ``--perfguard`` the fixture still runs
the model once eager and once compiled and checks numerics (a fast local mode).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .metrics import BY_NAME, JUNIT
from .record import Measurement
from .settings import ProfileOptions, Rules, SettingError, profile_options, split_marker


@dataclass(frozen=True)
class FixtureSettings:
    """What the fixture needs from the run, set by the plugin in ``pytest_configure``."""

    #: The run's rules; a test's ``@pytest.mark.perfguard`` keys are applied on top.
    rules: Rules
    #: ``--perfguard`` or ``--perfguard-update``: profile, and keep the measurements.
    profile: bool = False
    #: Where each measurement's traces go (``--perfguard-traces``), else None.
    traces_dir: Path | None = None
    #: What ``pytest_perfguard_environment`` implementations add to every fingerprint.
    environment_extra: Mapping[str, str] = field(default_factory=dict)
    #: Distributions ``pytest_perfguard_libraries`` names: their versions are recorded.
    library_names: tuple[str, ...] = ()


settings_key = pytest.StashKey[FixtureSettings]()
#: The measurements a test made, with the rules of that test.
measured_key = pytest.StashKey[list[tuple[Measurement, Rules]]]()


class Profiler:
    """What the ``perfguard`` fixture returns: call it with a model and its inputs."""

    def __init__(self, settings: FixtureSettings, item: pytest.Item, rules: Rules,
                 marker_options: dict[str, Any]) -> None:
        self._settings = settings
        self._item = item
        self._rules = rules
        self._marker_options = marker_options
        self._names: set[str] = set()

    def __call__(self, model: Any, *args: Any, kwargs: dict[str, Any] | None = None,
                 **options: Any) -> Measurement:
        __tracebackhide__ = True
        from .runner import measure

        nodeid = self._item.nodeid
        unknown = sorted(set(options) - {f.name for f in dataclasses.fields(ProfileOptions)})
        if unknown:
            pytest.fail(f"perfguard: perfguard() in {nodeid} got unknown option(s) "
                        f"{', '.join(unknown)}; the model's keyword inputs go in kwargs={{...}}",
                        pytrace=False)
        try:
            chosen = profile_options({**self._marker_options, **options},
                                     f"perfguard() in {nodeid}")
        except SettingError as exc:
            raise pytest.fail.Exception(f"perfguard: {exc}", pytrace=False) from None
        if chosen.full_timing is None:  # a gated wall time needs its full sample
            chosen = dataclasses.replace(chosen, full_timing=self._rules.time)
        if kwargs is not None and not isinstance(kwargs, dict):
            pytest.fail(f"perfguard: perfguard() in {nodeid}: kwargs must be a dict of the "
                        f"model's keyword inputs, got {type(kwargs).__name__}", pytrace=False)
        if chosen.name in self._names:
            pytest.fail(f"perfguard: {nodeid} already measured name={chosen.name!r}; give each "
                        "call its own name=...", pytrace=False)
        self._names.add(chosen.name)
        settings = self._settings
        trace_dir = None
        if settings.profile and settings.traces_dir is not None:
            trace_dir = settings.traces_dir / trace_folder_name(nodeid, chosen.name)
        measurement = measure(
            model, args, dict(kwargs or {}), chosen, test_id=nodeid,
            profile=settings.profile, trace_dir=trace_dir,
        )
        if settings.profile:
            if settings.environment_extra:
                measurement.environment.extra.update(settings.environment_extra)
            if settings.library_names:
                from .collectors.environment import library_versions

                measurement.environment.libraries.update(
                    library_versions(settings.library_names))
            self._item.stash.setdefault(measured_key, []).append((measurement, self._rules))
            _record_junit_properties(self._item, measurement)
        return measurement


def trace_folder_name(test_id: str, name: str) -> str:
    """A folder name for one measurement's traces: readable, never a path, never shared.

    Test ids and measurement names are the user's text (``name="../../x"``, ``a/b`` vs
    ``a:b``): keep letters, digits, ``._-``, cut to 80 characters, and add a hash of the
    exact (test id, name) pair so no two measurements share a folder.
    """
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{test_id}-{name}").strip("._-")[:80]
    digest = hashlib.sha256(json.dumps([test_id, name]).encode()).hexdigest()[:10]
    return f"{readable or 'test'}-{digest}"


#: The catalogue metrics each measurement adds to junit XML as ``perfguard.<name>``.


def _record_junit_properties(item: pytest.Item, m: Measurement) -> None:
    prefix = "perfguard" if m.name == "default" else f"perfguard.{m.name}"
    for name in JUNIT:
        item.user_properties.append((f"{prefix}.{name}", BY_NAME[name].read(m)))


@pytest.fixture
def perfguard(request: pytest.FixtureRequest) -> Profiler:
    """Profile a model eager and under torch.compile: ``perfguard(model, x, train=False)``."""
    settings = request.config.stash[settings_key]
    marker: dict[str, Any] = {}
    for mark in reversed(list(request.node.iter_markers("perfguard"))):
        if mark.args:
            pytest.fail(f"perfguard: @pytest.mark.perfguard on {request.node.nodeid} takes "
                        "keyword arguments only", pytrace=False)
        marker.update(mark.kwargs)
    try:
        rules, options = split_marker(marker, settings.rules,
                                      f"@pytest.mark.perfguard on {request.node.nodeid}")
    except SettingError as exc:
        raise pytest.fail.Exception(f"perfguard: {exc}", pytrace=False) from None
    return Profiler(settings, request.node, rules, options)


__all__ = ["FixtureSettings", "Profiler", "measured_key", "perfguard", "settings_key",
           "trace_folder_name"]
