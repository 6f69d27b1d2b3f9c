"""``results.json``: every measurement of a run with its verdict. No torch.

Reports are rendered from this document alone, so a report can be rebuilt later, and
``perfguard update`` promotes it to the baseline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compare import STATUS_ORDER, Verdict
from .record import Measurement
from .settings import Rules

#: Version of the results.json layout (documented in README "results.json").
RESULTS_SCHEMA = 1


class ResultsError(ValueError):
    """A results file that cannot be read; the message names the file and the problem."""


@dataclass
class ResultEntry:
    measurement: Measurement
    verdict: Verdict


@dataclass
class TestError:
    """A test that errored (in collection, setup, call or teardown), with its error.

    A test that errors before it measures anything has no :class:`ResultEntry`; without
    this record it would be missing from every report.
    """

    __test__ = False  # not a pytest test class, despite the name

    test_id: str
    when: str  # "setup"|"call"|"teardown"|"collect"
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"test_id": self.test_id, "when": self.when, "message": self.message}

    @classmethod
    def from_dict(cls, data: Any) -> TestError:
        if not isinstance(data, dict):
            raise TypeError(f"an error entry must be an object, not {type(data).__name__}")
        return cls(test_id=str(data["test_id"]), when=str(data["when"]),
                   message=str(data.get("message", "")))


@dataclass
class RunResults:
    entries: list[ResultEntry] = field(default_factory=list)
    #: ISO-8601 time the run finished (UTC).
    created: str = ""
    tool_version: str = ""
    #: The session's rules (each verdict carries the rules that made it: markers differ).
    rules: dict[str, Any] = field(default_factory=dict)
    baseline_path: str = ""
    #: Tests that errored; reports list them first. Results files without the key
    #: (written before it existed) read as no errors.
    errors: list[TestError] = field(default_factory=list)

    def sorted_entries(self) -> list[ResultEntry]:
        """Regressions first, then improvements, new, other-environment, unchanged; by key."""
        return sorted(
            self.entries,
            key=lambda e: (STATUS_ORDER.get(e.verdict.status, 99), e.measurement.key),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": RESULTS_SCHEMA,
            "tool": "pytest-torch-perfguard",
            "tool_version": self.tool_version,
            "created": self.created,
            "rules": self.rules,
            "baseline_path": self.baseline_path,
            "results": [
                {"measurement": e.measurement.to_dict(), "verdict": e.verdict.to_dict()}
                for e in self.sorted_entries()
            ],
            "errors": [error.to_dict() for error in self.errors],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Any, source: str = "<results>") -> RunResults:
        if not isinstance(data, dict) or "results" not in data:
            raise ResultsError(f"{source}: not a perfguard results file (no 'results' list)")
        schema = data.get("schema")
        if not isinstance(schema, int):
            raise ResultsError(f"{source}: missing or invalid 'schema'")
        if schema > RESULTS_SCHEMA:
            raise ResultsError(
                f"{source}: results schema {schema} is newer than this perfguard "
                f"understands ({RESULTS_SCHEMA}); upgrade pytest-torch-perfguard"
            )
        try:
            # Files written before verdicts carried their rules: the run's rules apply.
            run_rules = Rules.from_dict(data.get("rules") or {}, f"{source}: rules")
            entries = [
                ResultEntry(Measurement.from_dict(r["measurement"]),
                            Verdict.from_dict(r["verdict"], default_rules=run_rules,
                                              source=source))
                for r in data["results"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultsError(f"{source}: malformed result entry: {exc!r}") from exc
        raw_errors = data.get("errors", [])
        if not isinstance(raw_errors, list):
            raise ResultsError(f"{source}: 'errors' must be a list")
        try:
            errors = [TestError.from_dict(item) for item in raw_errors]
        except (KeyError, TypeError) as exc:
            raise ResultsError(f"{source}: malformed error entry: {exc!r}") from exc
        return cls(
            entries=entries,
            errors=errors,
            created=str(data.get("created", "")),
            tool_version=str(data.get("tool_version", "")),
            rules=dict(data.get("rules", {})),
            baseline_path=str(data.get("baseline_path", "")),
        )

    @classmethod
    def load(cls, path: str | Path) -> RunResults:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ResultsError(f"{path}: cannot read results file: {exc.strerror or exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ResultsError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        return cls.from_dict(data, source=str(path))
