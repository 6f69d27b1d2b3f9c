"""``results.json``: every measurement of a run with its verdict. No torch.

Reports are rendered from this document alone, so a report can be rebuilt later, and
``perfguard update`` promotes it to the baseline.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import IO, Annotated, Any, NamedTuple

from ._files import INT_MAX, Document, InvalidNumber, NotLaidOut, TooDeep, open_for_reading, read_document
from .compare import STATUS_ORDER, Verdict
from .identity import display
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

    def document(self) -> dict[str, Any]:
        """The results.json document as JSON values (what ``pytest_perfguard_update_json``
        receives): the run's fields, then every result with its derived values, sorted."""
        from . import codec

        return {
            "schema": RESULTS_SCHEMA,
            "tool": "pytest-torch-perfguard",
            "tool_version": self.tool_version,
            "created": self.created,
            "rules": self.rules,
            "baseline_path": self.baseline_path,
            "results": [{"measurement": codec.dump_measurement(e.measurement),
                         "verdict": codec.dump_verdict(e.verdict)}
                        for e in self.sorted_entries()],
            "errors": [codec.dump(error) for error in self.errors],
        }

    def dumps(self) -> str:
        return json.dumps(self.document(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def validate(cls, document: Any, source: str = "<results>") -> RunResults:
        """Validate a results document that is already parsed (sent by an xdist worker, or
        built in memory). Raises :class:`ResultsError` naming the result and the field."""
        return _Reader(Document(io.BytesIO(b""), document, laid_out=False), source).collect()

    @classmethod
    def load(cls, path: str | Path) -> RunResults:
        """Read and validate a results.json file. Raises :class:`ResultsError`."""
        with open_results(path) as reader:
            return reader.collect()


# ----------------------------------------------------------------------------------------
# Reading and validating (schema.py validates; the types of this file are declared here)
# ----------------------------------------------------------------------------------------


class _Types(NamedTuple):
    item: Any
    header: Any


@functools.cache
def _schema() -> _Types:
    """The declared types of results.json: one result, and the document without its results
    (validated one by one). Built on first use: pydantic is imported then, not by every
    pytest run. Unknown fields are ignored (derived values, a project's own fields)."""
    from pydantic import BeforeValidator
    from typing_extensions import NotRequired, TypedDict

    from . import schema

    item = make_dataclass("ResultItem", [
        ("measurement", Measurement),
        ("verdict", Annotated[Verdict, BeforeValidator(_verdict_rules)])])
    header = TypedDict("header", {  # noqa: UP013 (pydantic resolves these types at once)
        "schema": int, "results": list[Any], "tool": NotRequired[str],
        "tool_version": NotRequired[str], "created": NotRequired[str],
        "rules": NotRequired[Rules], "baseline_path": NotRequired[str],
        "errors": NotRequired[list[TestError]]})
    header.__name__ = "ResultsHeader"
    for cls in (item, header):
        cls.__module__ = __name__
        setattr(cls, "__pydantic_config__", schema.EXTRAS_IGNORED)  # noqa: B010
    return _Types(item, header)


#: Rules already validated, by their JSON form: the verdicts of one run share a few (Rules
#: are frozen, so sharing one is safe), and validating 50,000 copies cost seconds.
_RULES_SEEN: dict[Hashable, Rules] = {}


def _verdict_rules(value: Any, info: Any) -> Any:
    """A verdict's rules, validated once per distinct value; a verdict written before
    verdicts carried their rules is judged by the run's rules (``context["run_rules"]``)."""
    if not isinstance(value, dict):
        return value
    rules = value.get("rules", (info.context or {}).get("run_rules", {}))
    if not isinstance(rules, dict):
        return value
    try:
        seen: Hashable = tuple(sorted(rules.items()))
        hash(seen)
    except TypeError:  # a list or an object where a rule's value should be: invalid anyway
        seen = json.dumps(rules, sort_keys=True)
    if seen not in _RULES_SEEN:
        from . import schema

        text = json.dumps(rules)
        validated = schema.adapter(schema.RulesDoc).validate_json(f'{{"rules": {text}}}').rules
        if len(_RULES_SEEN) > 256:
            _RULES_SEEN.clear()
        _RULES_SEEN[seen] = validated
    return {**value, "rules": _RULES_SEEN[seen]}


#: Where a result's ``{`` stands in the file perfguard writes (how the lean reader finds it).
_ITEM_INDENT = 4


@contextlib.contextmanager
def open_results(path: str | Path) -> Iterator[_Reader]:
    """Open a results file for reading one result at a time (``reader.header`` holds the
    rest of the document, validated; ``reader.entries()`` yields validated entries)."""
    path = Path(path)
    try:
        handle = open_for_reading(path)
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read results file: {exc.strerror or exc}") from exc
    with handle:
        try:
            try:
                reader = _Reader(_read(handle, str(path), whole=False), str(path))
            except NotLaidOut:  # a layout that fooled the lean reader: read it whole
                reader = _Reader(_read(handle, str(path), whole=True), str(path))
            yield reader
        except OSError as exc:
            raise ResultsError(f"{path}: cannot read results file: {exc.strerror or exc}") from exc


def _read(handle: IO[bytes], source: str, *, whole: bool) -> Document:
    try:
        return read_document(handle, _ITEM_INDENT, whole=whole)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{source}: not valid JSON (not UTF-8 text: {exc.reason} at byte "
                           f"{exc.start})") from None
    except InvalidNumber as exc:
        raise ResultsError(f"{source}: not valid JSON: {exc}") from None
    except TooDeep as exc:
        raise ResultsError(f"{source}: {exc}") from None


class _Reader:
    """A results document: its header validated now, its results one at a time."""

    def __init__(self, document: Document, source: str) -> None:
        self.document, self.source = document, source
        self.header = self._header()

    def error(self, message: str) -> ResultsError:
        return ResultsError(f"{self.source}: {message}")

    def _header(self) -> RunResults:
        from . import codec, schema  # (and pydantic) on first use: every run imports this

        data = self.document.value
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            raise self.error("not a perfguard results file (no 'results' list)")
        version = data.get("schema")
        if isinstance(version, int) and not isinstance(version, bool) and (
                RESULTS_SCHEMA < version <= INT_MAX):
            raise self.error(f"results schema {version} is newer than this perfguard "
                             f"understands ({RESULTS_SCHEMA}); upgrade pytest-torch-perfguard")
        slim = {**data, "results": [None] * len(data["results"])}
        try:
            header = schema.validate_element(
                _schema().header, json.dumps(self.document.resolve(slim), ensure_ascii=False),
                constants=False)
        except schema.ValidationError as exc:
            raise self.error(schema.describe(exc)) from None
        rules = header.get("rules")
        self.context = {"run_rules": codec.dump(rules) if rules is not None else {}}
        return RunResults(
            created=header.get("created", ""),
            tool_version=header.get("tool_version", ""),
            rules=self.context["run_rules"],
            baseline_path=header.get("baseline_path", ""),
            errors=header.get("errors", []),
        )

    def entries(self) -> Iterator[ResultEntry]:
        """The validated results, in file order, read one at a time."""
        done = 0
        try:
            for value in self.document.value["results"]:
                yield self._entry(value, done)
                done += 1
        except NotLaidOut:
            # The layout fooled the lean reader (a hand-formatted file): read the file whole
            # (which reports real JSON errors) and go on after the results already given.
            self.document = _read(self.document.handle, self.source, whole=True)
            self.header = self._header()
            for index, value in enumerate(self.document.value["results"][done:], done):
                yield self._entry(value, index)
        if self.document.bad_number:
            raise self.error(f"not valid JSON: {self.document.bad_number}")

    def collect(self) -> RunResults:
        results = self.header
        results.entries = list(self.entries())
        return results

    def _entry(self, value: Any, index: int) -> ResultEntry:
        from . import schema

        text = self.document.element(value)
        try:
            item = schema.validate_element(_schema().item, text, self.context,
                                           constants=self.document.laid_out)
        except schema.ValidationError as exc:
            raise self.error(f"result {index} ({_name(text)}): {schema.describe(exc)}") from None
        except InvalidNumber as exc:
            raise self.error(f"result {index} ({_name(text)}): {exc}") from None
        return ResultEntry(item.measurement, item.verdict)


def _name(text: bytes) -> str:
    """A result's test as people read it, for messages (best effort: it may be invalid)."""
    try:
        measurement = json.loads(text)["measurement"]
        test_id, name = measurement["test_id"], measurement.get("name", "default")
    except Exception:  # the message is about whatever is wrong; this only names the result
        return "unnamed"
    if not isinstance(test_id, str):
        return "unnamed"
    return display((test_id, name if isinstance(name, str) else "default"))
