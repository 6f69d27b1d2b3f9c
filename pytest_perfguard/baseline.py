"""The baseline store: ``.perfguard/baseline.json``. No torch.

Layout (schema 2), written in this order so that a change reads well in a pull request::

    {
      "schema": 2,
      "tool": "pytest-torch-perfguard",
      "environments": [                      <- sorted by fingerprint
        {
          "key": "859ec1a4ba7e",             <- Environment.key() of "environment"
          "label": "cpu (AVX2) · torch 2.13.0 · ...",
          "environment": {...},
          "entries": [                       <- sorted by (test_id, name)
            {"test_id": "tests/test_a.py::test_x", "name": "default", "train": false,
             "eager": {...}, "compiled": {...}, "numerics": {...}, ...},
            ...

An entry is identified by ``(test_id, name)`` kept as two fields, so no two tests can share
one (schema 1 joined them into one string key: ``test_c[x]`` measuring ``y[z]`` and
``test_c[x]::y[z]`` collided). Schema-1 files are read and rewritten as schema 2.

What is promised:

* **Validated**: every file read is checked against the declared schema (``schema.py``);
  every problem is a :class:`BaselineError` naming the file, the entry and the field. What
  is written is validated too, so nothing invalid is ever written.
* **Lossless**: :func:`update_baseline_file` holds a lock for its read-merge-write and
  re-reads the file under it, so concurrent updaters keep each other's entries.
* **Atomic**: a reader, or a crash at any instant, sees the old file or the new one whole.
  Writes go through symlinks, keep the file's mode, and clean up after killed writers.
* **Safe**: only a regular file is read, replaced or set aside: a directory, a device, a
  FIFO or a socket at the path (or at a symlink's end) is an error, left as it is. Files
  over 1 GiB, JSON nested over 64 deep and integers outside 64 bits are errors too.
* **Lean**: entries are kept as their validated JSON text and become :class:`Measurement`
  objects only when looked up; files are read in chunks and written in chunks.

Why not read the file whole (``json.loads``, or one pydantic ``validate_json``)? Measured on
``benchmarks/bench_store.py --tests 50000`` (a 252 MB baseline, a 373 MB results.json): a
whole read of the baseline peaks at 1,049 MB (``json.loads`` alone: 931 MB), twice the
500 MB target, and results.json cannot be held whole beside the entries either. Finding
each element by the JSON grammar instead (``JSONDecoder.raw_decode``) keeps the memory but
costs 2.2 s of CPU per 50,000 elements, which puts an update past its 10 s target. So
elements are found by the layout this module writes, which is only how they are found
fast: a file in any other layout (minified, hand-formatted) is read whole, with the same
result (``_files.read_document``).
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Container, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# schema.py (and pydantic with it) is imported by the functions that use it: every pytest
# run imports the plugin, and most never read a baseline.
from ._files import (
    INT_MAX,
    INT_MIN,
    InvalidNumber,
    NotLaidOut,
    Span,
    TooDeep,
    atomic_write_chunks,
    check_replaceable,
    locked,
    open_for_reading,
    read_document,
    resolve_target,
)
from .identity import Identity, display
from .record import Environment, Measurement

#: Version of the baseline file layout.
BASELINE_SCHEMA = 2
DEFAULT_BASELINE = Path(".perfguard") / "baseline.json"
TOOL = "pytest-torch-perfguard"
#: How long an update waits for another updater of the same file.
LOCK_TIMEOUT = 120.0
#: Where an entry's ``{`` stands in the file (how the lean reader finds entries).
_ENTRY_INDENT = 8


class BaselineError(Exception):
    """A baseline that cannot be read or written; the message names the file and problem
    (for an invalid entry: the entry, its environment and the field)."""


# ----------------------------------------------------------------------------------------
# Entries: validated JSON text until someone asks for a Measurement
# ----------------------------------------------------------------------------------------


def entry_text(measurement: Measurement, *, keep_time: bool = True,
               validated: bool = False) -> bytes:
    """A measurement's baseline entry as canonical JSON (indent 2, field order), validated
    (unless ``validated``: it was just read from a validated file and not changed since).

    ``keep_time=False`` drops what varies run to run and is not gated: the timings and their
    "unavailable" reason. Compile time and trace paths are always dropped. Raises
    ``ValidationError`` (locations start with ``measurement``).
    """
    from . import schema
    if not validated:
        schema.check_measurement(measurement)
    stored = measurement.for_baseline(keep_time=keep_time)
    return schema.adapter(Measurement).dump_json(stored, indent=2, exclude={"environment"})


class _EnvironmentKeys:
    """``Environment.key()`` remembered by value: hashing ``asdict`` is the costliest part of
    turning 50,000 measurements into entries, and they share a handful of environments."""

    def __init__(self) -> None:
        self._keys: dict[str, str] = {}

    def __call__(self, environment: Environment) -> str:
        text = repr(environment)
        if text not in self._keys:
            self._keys[text] = environment.key()
        return self._keys[text]


def _canonical(entry: Any) -> bytes:
    from . import schema
    return schema.adapter(schema.BaselineEntry).dump_json(entry, indent=2)


def _measurement(entry: Any, environment: Environment) -> Measurement:
    from . import schema
    return Measurement(environment=environment,
                       **{name: getattr(entry, name) for name in schema.ENTRY_FIELDS})


class EntryMap(MutableMapping[Identity, Measurement]):
    """The entries of one environment block, by ``(test_id, name)``.

    Entries read from a file stay validated JSON text (a few KB each, where a Measurement
    object takes several times that) until read through ``[]``; the Measurement is then
    kept, so that changes to it are saved.
    """

    def __init__(self, block: EnvironmentBlock) -> None:
        self._block = block
        self._items: dict[Identity, bytes | Measurement] = {}

    def __getitem__(self, identity: Identity) -> Measurement:
        from . import schema
        value = self._items[identity]
        if isinstance(value, bytes):
            entry = schema.adapter(schema.BaselineEntry).validate_json(value)
            value = self._items[identity] = _measurement(entry, self._block.environment)
        return value

    def __setitem__(self, identity: Identity, measurement: Measurement) -> None:
        if measurement.identity != identity:
            raise ValueError(f"entry {display(identity)} given the measurement of "
                             f"{measurement.key}")
        self._items[identity] = measurement

    def __delitem__(self, identity: Identity) -> None:
        del self._items[identity]

    def __contains__(self, identity: object) -> bool:
        return identity in self._items

    def __iter__(self) -> Iterator[Identity]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def set_text(self, identity: Identity, text: bytes) -> None:
        """Store an entry's canonical, already validated JSON text."""
        self._items[identity] = text

    def text(self, identity: Identity) -> bytes:
        """The entry's JSON text as it will be written (a kept Measurement is validated)."""
        value = self._items[identity]
        if isinstance(value, bytes):
            return value
        if value.environment.key() != self._block.environment.key():
            raise ValueError(f"holds a measurement of another environment "
                             f"({value.environment.key()})")
        return entry_text(value)


class EnvironmentBlock:
    """One environment and the entries measured in it."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.entries = EntryMap(self)
        #: The environment as the file held it, its label and its JSON text: written back
        #: as they were while the environment is unchanged, so that a field added to
        #: :class:`Environment` since (or a new label) does not rewrite every baseline.
        self.as_read: tuple[Environment, str, bytes] | None = None

    def header(self) -> tuple[str, bytes]:
        """The label and the environment's JSON text to write."""
        if self.as_read is not None and self.as_read[0] == self.environment:
            return self.as_read[1], self.as_read[2]
        from . import schema
        return (self.environment.label(),
                schema.adapter(Environment).dump_json(self.environment, indent=2))

    def __repr__(self) -> str:
        return f"EnvironmentBlock({self.environment.key()}, {len(self.entries)} entries)"


# ----------------------------------------------------------------------------------------
# Prune scope: which entries a run could have seen
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneScope:
    """What one run could see, to prune the entries of tests that no longer exist.

    ``paths``: the run's arguments as rootdir-relative node-id prefixes (``""`` for the whole
    rootdir, ``tests/``, ``tests/test_b.py``, ``tests/test_c.py::test_x``). ``collected``:
    the node ids the run collected (deselected ones included). An entry is pruned when its
    test is inside the paths and was not collected; entries of other paths are kept.
    """

    paths: tuple[str, ...]
    collected: frozenset[str]

    def __init__(self, paths: Iterable[str], collected: Iterable[str]) -> None:
        object.__setattr__(self, "paths", tuple(p.replace(os.sep, "/") for p in paths))
        object.__setattr__(self, "collected", frozenset(collected))

    def covers(self, test_id: str) -> bool:
        """Whether a run with these paths would have collected ``test_id``."""
        for scope in self.paths:
            scope = scope[2:] if scope.startswith("./") else scope
            if scope in ("", ".") or test_id == scope:
                return True
            if "::" in scope:
                if test_id.startswith((scope + "::", scope + "[")):
                    return True
            elif test_id.startswith((scope.rstrip("/") + "/", scope + "::")):
                return True
        return False

    def drops(self, test_id: str) -> bool:
        return test_id not in self.collected and self.covers(test_id)


# ----------------------------------------------------------------------------------------
# The baseline
# ----------------------------------------------------------------------------------------


@dataclass
class UpdateSummary:
    """What :func:`update_baseline_file` did."""

    #: The file written (a symlink's target when the baseline path is a link).
    path: Path
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    #: Entries in the file now, all environments.
    total: int = 0

    @property
    def written(self) -> int:
        return len(self.added) + len(self.replaced)


@dataclass
class Baseline:
    path: Path
    environments: dict[str, EnvironmentBlock] = field(default_factory=dict)

    # -- reading ---------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, *, missing_ok: bool = True) -> Baseline:
        """Read and validate a baseline file; a missing one is empty (unless not
        ``missing_ok``). Raises :class:`BaselineError`."""
        return _load(Path(path), missing_ok=missing_ok, replacing=None)

    def lookup(self, measurement: Measurement) -> Measurement | None:
        block = self.environments.get(measurement.environment.key())
        if block is None or measurement.identity not in block.entries:
            return None
        return block.entries[measurement.identity]

    def other_environment_labels(self, measurement: Measurement) -> list[str]:
        """Labels of other environments that hold an entry for this test."""
        own = measurement.environment.key()
        return sorted(
            block.environment.label()
            for key, block in self.environments.items()
            if key != own and measurement.identity in block.entries
        )

    @property
    def entry_count(self) -> int:
        return sum(len(block.entries) for block in self.environments.values())

    # -- changing (in memory) --------------------------------------------------------

    def block(self, environment: Environment, key: str | None = None) -> EnvironmentBlock:
        """The block of this environment (whose ``key()`` is ``key`` when given), created
        when missing."""
        key = key or environment.key()
        if key not in self.environments:
            self.environments[key] = EnvironmentBlock(environment)
        return self.environments[key]

    def update(self, measurements: Iterable[Measurement], *,
               keep_time_for: Container[Identity] | None = None) -> None:
        """Replace the entries of these measurements (in their own environment only).
        Timings are kept only for the identities in ``keep_time_for`` (time-gated tests)."""
        for m in measurements:
            text = _entry_text_or_error(m, self.path, keep_time_for)
            self.block(m.environment).entries.set_text(m.identity, text)

    def prune(self, scope: PruneScope, *, keep: Container[tuple[str, Identity]] = ()) -> list[str]:
        """Drop the entries ``scope`` says are gone (in every environment), except the
        ``(environment key, identity)`` pairs in ``keep``. Returns their display keys."""
        pruned: list[str] = []
        for env_key in list(self.environments):
            entries = self.environments[env_key].entries
            gone = [i for i in entries if scope.drops(i[0]) and (env_key, i) not in keep]
            for identity in gone:
                del entries[identity]
            pruned += map(display, gone)
            if not entries:
                del self.environments[env_key]
        return sorted(pruned)

    # -- writing ---------------------------------------------------------------------

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes, a piece at a time (each entry validated on the way)."""
        from . import schema
        yield (b'{\n  "schema": %d,\n  "tool": %s,\n  "environments": ['
               % (BASELINE_SCHEMA, _json(TOOL)))
        blocks = sorted(((b.environment.key(), b) for b in self.environments.values()
                         if b.entries), key=lambda kb: kb[0])
        for n, (key, block) in enumerate(blocks):
            try:
                schema.check_environment(block.environment)
            except schema.ValidationError as exc:
                raise BaselineError(f"{self.path}: environment {key}: cannot be written: "
                                    f"{schema.describe(exc, skip=1)}") from None
            label, environment = block.header()
            yield (b'%s\n    {\n      "key": %s,\n      "label": %s,\n      "environment": %s,'
                   b'\n      "entries": [' % (b"," if n else b"", _json(key), _json(label),
                                              _indent(environment, 6)))
            for i, identity in enumerate(sorted(block.entries)):
                try:
                    text = block.entries.text(identity)
                except schema.ValidationError as exc:
                    raise BaselineError(
                        f"{self.path}: entry {display(identity)} (environment {key}): cannot "
                        f"be written: {schema.describe(exc, skip=1)}") from None
                except ValueError as exc:
                    raise BaselineError(f"{self.path}: entry {display(identity)} "
                                        f"(environment {key}): {exc}") from None
                yield b"%s\n        %s" % (b"," if i else b"", _indent(text, 8))
            yield b"\n      ]\n    }"
        yield b"\n  ]\n}\n"

    def dumps(self) -> str:
        return b"".join(self.chunks()).decode()

    def save(self, *, lock_timeout: float = LOCK_TIMEOUT) -> Path:
        """Validate and write the whole baseline (under the file's lock), replacing the file.
        Use :func:`update_baseline_file` to merge into what the file holds now instead."""
        target = _replaceable_target(self.path)
        with _locked(target, self.path, lock_timeout):
            return self._write(target)

    def _write(self, target: Path) -> Path:
        """Write while holding the lock: temporary files of this baseline are all stale."""
        try:
            return atomic_write_chunks(target, self.chunks(), stale_after=0)
        except OSError as exc:
            raise BaselineError(f"{self.path}: cannot write here: {exc.strerror or exc}") from exc


def _json(value: str) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _indent(text: bytes, spaces: int) -> bytes:
    return text.replace(b"\n", b"\n" + b" " * spaces)


def _dedent(text: bytes, spaces: int) -> bytes:
    """An element's text as read from the file, without the indentation of its position."""
    margin = b" " * spaces
    return text.removeprefix(margin).replace(b"\n" + margin, b"\n")


def _entry_text_or_error(m: Measurement, path: Path, keep_time_for: Container[Identity] | None,
                         validated: bool = False) -> bytes:
    from . import schema
    try:
        return entry_text(m, keep_time=keep_time_for is not None and m.identity in keep_time_for,
                          validated=validated)
    except schema.ValidationError as exc:
        raise BaselineError(
            f"{path}: entry {display(m.identity)} (environment {_safe_key(m.environment)}): invalid "
            f"measurement, not written: {schema.describe(exc, skip=1)}") from None


def _safe_key(environment: Any) -> str:
    try:
        return str(environment.key())
    except Exception:  # an environment broken enough not to hash: the message says why
        return "?"


# ----------------------------------------------------------------------------------------
# The read-merge-write update
# ----------------------------------------------------------------------------------------


def update_baseline_file(
    path: str | Path,
    measurements: Iterable[Measurement],
    *,
    keep_time_for: Container[Identity] | None = None,
    prune: PruneScope | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
    validated: bool = False,
) -> UpdateSummary:
    """Merge ``measurements`` into the baseline file at ``path``, losing nothing.

    Every measurement is validated and turned into its entry first (an invalid one raises
    :class:`BaselineError` before anything is touched). Then, holding ``PATH.lock``, the file
    is read again (so entries another process wrote meanwhile are kept), the entries of these
    measurements replace theirs (in their own environment), ``prune`` drops entries of tests
    that are gone (never one written now), and the file is written atomically.
    ``keep_time_for``: identities whose timings stay in their entry (time-gated tests).
    ``measurements`` may be a generator: it is read once, one measurement at a time.
    ``validated``: they come straight from a validated read of results.json (``perfguard
    update``), so checking them again is skipped (a fifth of the time of a big update).
    Raises :class:`BaselineError` (unreadable or invalid file, lock timeout, write error).
    """
    path = Path(path)
    environments: dict[str, Environment] = {}
    new: dict[tuple[str, Identity], bytes] = {}
    environment_key = _EnvironmentKeys()
    for m in measurements:
        text = _entry_text_or_error(m, path, keep_time_for, validated)
        key = environment_key(m.environment)
        environments.setdefault(key, m.environment)
        new[(key, m.identity)] = text
    target = _replaceable_target(path)
    summary = UpdateSummary(path=target)
    with _locked(target, path, lock_timeout):
        baseline = _load(target, missing_ok=True, replacing=new, shown_as=path)
        for (key, identity), text in new.items():
            entries = baseline.block(environments[key], key).entries
            (summary.replaced if identity in entries else summary.added).append(display(identity))
            entries.set_text(identity, text)
        if prune is not None:
            summary.pruned = baseline.prune(prune, keep=new.keys())
        baseline.path = path
        baseline._write(target)
    summary.total = baseline.entry_count
    summary.added.sort()
    summary.replaced.sort()
    return summary


def _replaceable_target(path: Path) -> Path:
    """The file to replace (a symlink's target), checked before its lock file is made next
    to it: a directory, a device or a FIFO is never replaced."""
    target = resolve_target(path)
    try:
        check_replaceable(target)
    except OSError as exc:
        raise BaselineError(f"{path}: cannot write here: {exc.strerror or exc}") from None
    return target


class _locked:
    """The file's lock, with a :class:`BaselineError` when it cannot be had."""

    def __init__(self, target: Path, shown_as: Path, timeout: float) -> None:
        self._context = locked(target, timeout)
        self._shown_as = shown_as

    def __enter__(self) -> None:
        try:
            self._context.__enter__()
        except TimeoutError as exc:
            raise BaselineError(f"{self._shown_as}: cannot lock the baseline: {exc}") from None
        except OSError as exc:  # the folder cannot hold the lock file: nor the baseline
            raise BaselineError(f"{self._shown_as}: cannot write here: "
                                f"{exc.strerror or exc}") from None

    def __exit__(self, *exc_info: Any) -> None:
        self._context.__exit__(*exc_info)


def set_aside_unreadable(path: Path) -> Path:
    """Rename an unreadable baseline out of the way before an update replaces it (a
    symlink's target: the link stays, and the update writes through it). Raises
    :class:`BaselineError` for what is not a regular file (never moved) or cannot be moved."""
    unreadable = _replaceable_target(path)
    aside = unreadable.with_name(
        f"{unreadable.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        os.replace(unreadable, aside)
    except OSError as exc:
        raise BaselineError(f"{path}: cannot move the unreadable baseline aside: "
                            f"{exc.strerror or exc}") from None
    return aside


# ----------------------------------------------------------------------------------------
# Reading and validating a file
# ----------------------------------------------------------------------------------------


def _load(path: Path, *, missing_ok: bool,
          replacing: Container[tuple[str, Identity]] | None,
          shown_as: Path | None = None) -> Baseline:
    shown = shown_as or path
    try:
        handle = open_for_reading(path)
    except (FileNotFoundError, NotADirectoryError):
        if missing_ok:
            return Baseline(path=shown)
        raise BaselineError(f"{shown}: baseline file not found") from None
    except OSError as exc:
        raise BaselineError(f"{shown}: cannot read baseline: {exc.strerror or exc}") from exc
    with handle:
        try:
            return _parse(handle, shown, replacing)
        except OSError as exc:
            raise BaselineError(f"{shown}: cannot read baseline: {exc.strerror or exc}") from exc


def _parse(handle: IO[bytes], path: Path,
           replacing: Container[tuple[str, Identity]] | None) -> Baseline:
    try:
        return _Reader(handle, path, replacing).read(whole=False)
    except NotLaidOut:
        return _Reader(handle, path, replacing).read(whole=True)


class _Reader:
    """One pass over a baseline file: skeleton first, then entry by entry."""

    def __init__(self, handle: IO[bytes], path: Path,
                 replacing: Container[tuple[str, Identity]] | None) -> None:
        self.handle, self.path, self.replacing = handle, path, replacing

    def error(self, message: str) -> BaselineError:
        return BaselineError(f"{self.path}: {message}")

    def read(self, *, whole: bool) -> Baseline:
        if _blank(self.handle):
            raise self.error("baseline file is empty (truncated?)")
        try:
            document = read_document(self.handle, _ENTRY_INDENT, whole=whole)
        except json.JSONDecodeError as exc:
            raise self.error(
                f"baseline is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                f"{exc.colno}); the file may be truncated or hand-edited") from None
        except UnicodeDecodeError as exc:
            raise self.error(f"baseline is not valid JSON (not UTF-8 text: {exc.reason} at "
                             f"byte {exc.start})") from None
        except InvalidNumber as exc:
            raise self.error(f"baseline is not valid JSON: {exc}") from None
        except TooDeep as exc:
            raise self.error(f"baseline is {exc}") from None
        self.document = document
        data = document.value
        if not isinstance(data, dict) or "environments" not in data:
            raise self.error("not a perfguard baseline (no 'environments' object)")
        version = data.get("schema")
        if not isinstance(version, int) or isinstance(version, bool) or not (
                INT_MIN <= version <= INT_MAX):
            raise self.error("baseline has no valid 'schema' number")
        if version > BASELINE_SCHEMA:
            raise self.error(f"baseline schema {version} is newer than this perfguard "
                             f"understands ({BASELINE_SCHEMA}); upgrade pytest-torch-perfguard")
        if version < 1:
            raise self.error(f"baseline schema {version} is not one perfguard wrote")
        baseline = Baseline(path=self.path)
        if version == 1:
            self._read_v1(data, baseline)
        else:
            self._read_v2(data, baseline)
        if document.bad_number:
            raise self.error(f"baseline is not valid JSON: {document.bad_number}")
        return baseline

    def _header(self, cls: Any, data: dict[str, Any]) -> Any:
        """Validate everything but the entries (big; validated one by one after)."""
        from . import schema
        environments = data.get("environments")
        slim = dict(data)
        if isinstance(environments, list):
            slim["environments"] = [
                {**b, "entries": [None] * len(b["entries"])}
                if isinstance(b, dict) and isinstance(b.get("entries"), list) else b
                for b in environments]
        elif isinstance(environments, dict):
            slim["environments"] = {
                k: {**b, "entries": dict.fromkeys(b["entries"])}
                if isinstance(b, dict) and isinstance(b.get("entries"), dict) else b
                for k, b in environments.items()}
        text = json.dumps(self.document.resolve(slim), ensure_ascii=False)
        try:
            return schema.validate_element(cls, text, constants=False)
        except schema.ValidationError as exc:
            raise self.error(schema.describe(exc)) from None

    def _read_v2(self, data: dict[str, Any], baseline: Baseline) -> None:
        from . import schema
        header = self._header(schema.BaselineV2, data)
        for n, block_header in enumerate(header["environments"]):
            environment, key = block_header["environment"], block_header["key"]
            self._check_key(environment, key, f"environments[{n}]")
            if key in baseline.environments:
                raise self.error(f"environment {key} appears twice")
            entries = baseline.block(environment, key).entries
            # (A block is itself a span in a file indented otherwise: read it whole.)
            block = self.document.resolve_span(data["environments"][n])
            baseline.environments[key].as_read = (
                copy.deepcopy(environment), block_header.get("label") or environment.label(),
                json.dumps(self.document.resolve(block["environment"]), indent=2,
                           ensure_ascii=False).encode())
            for i, value in enumerate(block["entries"]):
                text = self.document.element(value)
                where = f"environments[{n}].entries[{i}]"
                if self.replacing is not None:
                    identity = schema.identity_of(text)
                    if identity is not None and (key, identity) in self.replacing:
                        self._check_twice(entries, identity, key)
                        entries.set_text(identity, b"")  # the caller sets its new text
                        continue
                entry = self._entry(schema.BaselineEntry, text, key, where)
                identity = (entry.test_id, entry.name)
                self._check_twice(entries, identity, key)
                # An entry read from the layout this module writes keeps its text byte for
                # byte (an update changes only the lines of what it changed); any other
                # (hand-formatted) entry is written the canonical way.
                entries.set_text(identity, _dedent(text, _ENTRY_INDENT)
                                 if isinstance(value, Span) else _canonical(entry))

    def _read_v1(self, data: dict[str, Any], baseline: Baseline) -> None:
        from . import schema
        header = self._header(schema.BaselineV1, data)
        for key, block_header in header["environments"].items():
            environment = block_header["environment"]
            self._check_key(environment, key, f"environment block {key!r}")
            entries = baseline.block(environment).entries
            block = self.document.resolve_span(data["environments"][key])
            for old_key, value in block["entries"].items():
                text = self.document.element(value)
                try:
                    m = schema.read_measurement(text)
                except schema.ValidationError as exc:
                    raise self.error(f"entry {old_key} (environment {key}): "
                                     f"{schema.describe(exc, skip=1)}") from None
                if m.environment.key() != key:
                    raise self.error(f"entry {old_key} (environment {key}) was measured in "
                                     f"environment {m.environment.key()}")
                self._check_twice(entries, m.identity, key)
                entries.set_text(m.identity, entry_text(m))

    def _entry(self, cls: Any, text: bytes, key: str, where: str) -> Any:
        from . import schema
        try:
            return schema.validate_element(cls, text, constants=self.document.laid_out)
        except schema.ValidationError as exc:
            raise self.error(f"entry {self._name(text, where)} (environment {key}): "
                             f"{schema.describe(exc)}") from None
        except InvalidNumber as exc:
            raise self.error(f"entry {self._name(text, where)} (environment {key}): "
                             f"{exc}") from None

    def _name(self, text: bytes, where: str) -> str:
        from . import schema
        identity = schema.identity_of(text)
        return display(identity) if identity else where

    def _check_key(self, environment: Environment, key: str, where: str) -> None:
        if environment.key() != key:
            raise self.error(f"{where}: environment block {key!r} does not match its "
                             f"fingerprint ({environment.key()}); was it edited by hand?")

    def _check_twice(self, entries: EntryMap, identity: Identity, key: str) -> None:
        if identity in entries:
            raise self.error(f"entry {display(identity)} appears twice in environment {key}")


def _blank(handle: IO[bytes]) -> bool:
    """Whether the file holds nothing but whitespace (an emptied or truncated file)."""
    handle.seek(0)
    while chunk := handle.read(1 << 16):
        if chunk.strip():
            return False
    return True
