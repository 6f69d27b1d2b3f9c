"""The baseline store: ``.perfguard/baseline.json``. No torch.

One block per environment (keyed by the environment fingerprint), one entry per measured
test inside it, JSON with sorted keys so a change reads well in a pull-request diff.
Writes are atomic (temporary file, fsync, rename): an interrupted update leaves the old
file whole. A file that cannot be read is never overwritten silently.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .record import Environment, Measurement

#: Version of the baseline file layout.
BASELINE_SCHEMA = 1
DEFAULT_BASELINE = Path(".perfguard") / "baseline.json"


class BaselineError(Exception):
    """A baseline that cannot be read or written; the message names the file and problem."""


@dataclass
class EnvironmentBlock:
    environment: Environment
    entries: dict[str, Measurement] = field(default_factory=dict)


@dataclass
class Baseline:
    path: Path
    environments: dict[str, EnvironmentBlock] = field(default_factory=dict)
    #: False when the file did not exist.
    existed: bool = False

    # -- reading ---------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, *, missing_ok: bool = True) -> Baseline:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            if missing_ok:
                return cls(path=path)
            raise BaselineError(f"{path}: baseline file not found") from None
        except OSError as exc:
            raise BaselineError(f"{path}: cannot read baseline: {exc.strerror or exc}") from exc
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, path: Path) -> Baseline:
        if not text.strip():
            raise BaselineError(f"{path}: baseline file is empty (truncated?)")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BaselineError(
                f"{path}: baseline is not valid JSON ({exc.msg} at line {exc.lineno}, "
                f"column {exc.colno}); the file may be truncated or hand-edited"
            ) from exc
        if not isinstance(data, dict) or "environments" not in data:
            raise BaselineError(f"{path}: not a perfguard baseline (no 'environments' object)")
        schema = data.get("schema")
        if not isinstance(schema, int):
            raise BaselineError(f"{path}: baseline has no valid 'schema' number")
        if schema > BASELINE_SCHEMA:
            raise BaselineError(
                f"{path}: baseline schema {schema} is newer than this perfguard understands "
                f"({BASELINE_SCHEMA}); upgrade pytest-torch-perfguard"
            )
        baseline = cls(path=path, existed=True)
        environments = data["environments"]
        if not isinstance(environments, dict):
            raise BaselineError(f"{path}: 'environments' must be an object")
        for env_key, block in environments.items():
            try:
                env = Environment(**block["environment"])
                entries = {
                    key: Measurement.from_dict(entry) for key, entry in block["entries"].items()
                }
            except (KeyError, TypeError, ValueError) as exc:
                raise BaselineError(
                    f"{path}: malformed entry in environment {env_key!r}: {exc!r}"
                ) from exc
            if env.key() != env_key:
                raise BaselineError(
                    f"{path}: environment block {env_key!r} does not match its fingerprint "
                    f"({env.key()}); was it edited by hand?"
                )
            baseline.environments[env_key] = EnvironmentBlock(env, entries)
        return baseline

    def lookup(self, measurement: Measurement) -> Measurement | None:
        block = self.environments.get(measurement.environment.key())
        return None if block is None else block.entries.get(measurement.key)

    def other_environment_labels(self, measurement: Measurement) -> list[str]:
        """Labels of other environments that hold an entry for this test."""
        own = measurement.environment.key()
        return sorted(
            block.environment.label()
            for key, block in self.environments.items()
            if key != own and measurement.key in block.entries
        )

    # -- updating --------------------------------------------------------------------

    def update(self, measurements: list[Measurement], *, keep_time_for: set[str] | None = None) -> None:
        """Replace the entries of these measurements (in their own environment only)."""
        for m in measurements:
            block = self.environments.setdefault(
                m.environment.key(), EnvironmentBlock(m.environment)
            )
            block.entries[m.key] = _for_baseline(m, keep_time=m.key in (keep_time_for or set()))

    def prune(self, environment_key: str, existing_test_ids: set[str]) -> list[str]:
        """Drop entries of tests that no longer exist (in one environment). Returns their keys."""
        block = self.environments.get(environment_key)
        if block is None:
            return []
        gone = [k for k, m in block.entries.items() if m.test_id not in existing_test_ids]
        for key in gone:
            del block.entries[key]
        if not block.entries:
            del self.environments[environment_key]
        return sorted(gone)

    def dumps(self) -> str:
        data: dict[str, Any] = {
            "schema": BASELINE_SCHEMA,
            "tool": "pytest-torch-perfguard",
            "environments": {
                key: {
                    "label": block.environment.label(),
                    "environment": _asdict(block.environment),
                    "entries": {k: m.to_dict() for k, m in block.entries.items()},
                }
                for key, block in self.environments.items()
            },
        }
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def save(self) -> None:
        atomic_write(self.path, self.dumps())


def _asdict(env: Environment) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(env)


def _for_baseline(m: Measurement, *, keep_time: bool) -> Measurement:
    """Drop what varies run to run (timings unless gated, compile time) from an entry."""
    copy = deepcopy(m)
    for record in (copy.eager, copy.compiled):
        record.compile_seconds = None
        if not keep_time:
            record.time = None
            record.unavailable.pop("time", None)
    return copy


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, whole."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise BaselineError(f"{path}: cannot write here: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise BaselineError(f"{path}: cannot write: {exc.strerror or exc}") from exc
        raise


def set_aside_unreadable(path: Path) -> Path:
    """Rename an unreadable baseline out of the way before an update replaces it."""
    target = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, target)
    return target
