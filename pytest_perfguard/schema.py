"""The declared schema of perfguard's files, and the one way they are validated. No torch.

The schema is the dataclasses themselves: the records (``record.py``) and the rules
(``settings.py``); ``results.py`` declares results.json's types (with the verdict of
``compare.py``) where that file is read, so that this module imports nothing above the
records and the store can import it without a circle. pydantic validates JSON text
straight into them, strictly: a count must be a JSON integer (not ``"3"``, ``3.0`` or
``true``), a switch ``true``/``false`` (not ``1``), every number finite (``NaN``,
``Infinity`` and ``1e400`` are errors), every integer within 64 bits (``10**400`` is an
error: it would overflow the float arithmetic of comparisons and reports), and within the
bounds the annotations declare (``Count`` >= 0). A field added to a record dataclass is
validated, read and written with no change here.

Two strictness levels:

* the baseline (:data:`BaselineEntry`) is written by perfguard alone: an unknown field is an
  error (a typo, or a newer perfguard's field that an update would otherwise drop);
* ``results.json`` (its types in ``results.py``) carries derived values (``fusion_ratio``,
  a timing's ``median``, ...) and a project's own fields (``pytest_perfguard_update_json``):
  unknown fields are ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import sys
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import (  # ValidationError is re-exported for the modules that import this lazily
    ConfigDict,
    TypeAdapter,
    ValidationError,
    with_config,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from typing_extensions import NotRequired, TypedDict

from ._files import INT_MAX, INT_MIN, NotLaidOut, loads, shorten_digits
from .record import Environment, Measurement
from .settings import Rules

#: What perfguard writes itself: unknown fields are errors, and instances are re-checked.
EXACT = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid",
                   revalidate_instances="always")
#: What carries derived values and a project's additions: unknown fields are ignored.
EXTRAS_IGNORED = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")


def _without_field(cls: type, drop: str, name: str) -> type:
    """A dataclass with every field of ``cls`` (same types, defaults and order) but ``drop``."""
    hints = typing.get_type_hints(cls, include_extras=True)
    specs: list[tuple[str, Any, Any]] = []
    for f in dataclasses.fields(cls):
        if f.name == drop:
            continue
        if f.default is not dataclasses.MISSING:
            spec = dataclasses.field(default=f.default)
        elif f.default_factory is not dataclasses.MISSING:
            spec = dataclasses.field(default_factory=f.default_factory)
        else:
            spec = dataclasses.field()
        specs.append((f.name, hints[f.name], spec))
    made = dataclasses.make_dataclass(name, specs)
    made.__module__ = __name__
    made.__pydantic_config__ = EXACT  # type: ignore[attr-defined]
    return made


#: One baseline entry: a :class:`Measurement` without its environment (the environment block
#: it sits in holds that once). Generated, so it follows ``Measurement``'s fields.
BaselineEntry = _without_field(Measurement, "environment", "BaselineEntry")
ENTRY_FIELDS = tuple(f.name for f in dataclasses.fields(BaselineEntry))


@with_config(EXTRAS_IGNORED)
@dataclasses.dataclass
class RulesDoc:
    """``{"rules": {...}}``: the rules of a run or of a verdict."""

    rules: Rules


@with_config(EXACT)
class BlockV2(TypedDict):
    key: str
    label: NotRequired[str]
    environment: Environment
    entries: list[Any]


@with_config(EXACT)
class BaselineV2(TypedDict):
    """Baseline schema 2: environments in a list, each with its entries in a list."""

    schema: int
    tool: NotRequired[str]
    environments: list[BlockV2]


@with_config(EXTRAS_IGNORED)
class BlockV1(TypedDict):
    label: NotRequired[str]
    environment: Environment
    entries: dict[str, Any]


@with_config(EXTRAS_IGNORED)
class BaselineV1(TypedDict):
    """Baseline schema 1: environments and entries keyed by strings (read, never written)."""

    schema: int
    environments: dict[str, BlockV1]


@with_config(EXTRAS_IGNORED)
class Identity(TypedDict):
    """Just what a baseline entry is keyed by."""

    test_id: str
    name: str


@with_config(EXACT)
@dataclasses.dataclass
class _MeasurementCheck:
    measurement: Measurement


@with_config(EXACT)
@dataclasses.dataclass
class _EnvironmentCheck:
    environment: Environment


@with_config(EXTRAS_IGNORED)
@dataclasses.dataclass
class _MeasurementWithExtras:
    measurement: Measurement


@functools.cache
def adapter(cls: Any) -> TypeAdapter[Any]:
    """The (cached) validator of one schema type; built on first use, not at import.

    Forward references (``from __future__ import annotations``) are resolved in this
    module's namespace and that of the module defining ``cls``, not in whatever frame
    happened to ask first: under pytest-xdist a first use from another module's frame left the adapter
    "not fully defined" for the rest of the process.
    """
    module = sys.modules.get(getattr(cls, "__module__", __name__))
    # Not ``sys.modules[__name__]``: pytester's in-process runs take modules imported
    # during the run out of sys.modules again, while this module lives on.
    built = TypeAdapter(cls)
    built.rebuild(force=True, raise_errors=True,
                  _types_namespace={**globals(), **(vars(module) if module else {})})
    return built


def check_measurement(measurement: Measurement) -> None:
    """Re-validate a measurement built in memory (by a collector, or edited) before it is
    written. Raises ``ValidationError`` (locations start with ``measurement``)."""
    adapter(_MeasurementCheck).validate_python(_MeasurementCheck(measurement))


def check_environment(environment: Environment) -> None:
    adapter(_EnvironmentCheck).validate_python(_EnvironmentCheck(environment))


def read_measurement(data: bytes) -> Measurement:
    """A measurement in its results.json form (``codec.dump_measurement``; a schema-1
    baseline entry is that form too), derived values ignored."""
    wrapped = b'{"measurement": ' + data + b"}"
    return validate_element(_MeasurementWithExtras, wrapped, constants=False).measurement


def validate_element(cls: Any, data: str | bytes, context: Mapping[str, Any] | None = None, *,
                     constants: bool = True) -> Any:
    """Validate one element's JSON text as ``cls``.

    ``constants``: the text was cut from a file by the lean reader (not encoded by this
    process). Raises ``ValidationError`` (a NaN, an infinity or an integer outside 64 bits
    in a field is one, naming the field), :class:`~pytest_perfguard._files.InvalidNumber`
    for a NaN or an infinity anywhere else, and :class:`~pytest_perfguard._files.NotLaidOut`
    when cut text is not JSON (the lean reader cut it wrongly, or the file is broken: the
    caller reads it whole).
    """
    try:
        value = adapter(cls).validate_json(data, context=context)
    except ValidationError as exc:
        if constants and any(error["type"] == "json_invalid" for error in exc.errors()):
            raise NotLaidOut from None
        raise
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _LONG_INTEGER in raw.translate(_DIGITS):
        _check_integers(cls, raw)
    if constants and (b"NaN" in raw or b"Infinity" in raw):
        loads(raw)  # raises on a NaN token outside the fields; "NaN" in a string is fine
    return value


#: Digits become ``0``, a ``.`` stays, anything else becomes a space: then 19 digits after a
#: space are maybe an integer outside 64 bits, not a fraction's digits (rare: then
#: :func:`_check_integers` parses the text to see). A regular expression took 30 times as long.
_DIGITS = bytes(c if c == ord(".") else ord("0") if chr(c).isdigit() and c < 128 else ord(" ")
                for c in range(256))
_LONG_INTEGER = b" " + b"0" * 19


@dataclasses.dataclass(frozen=True)
class _OutOfRange:
    literal: str


def _flag_out_of_range(literal: str) -> int | _OutOfRange:
    in_range = len(literal.lstrip("-")) <= 19 and INT_MIN <= int(literal) <= INT_MAX
    return 0 if in_range else _OutOfRange(literal)


def _check_integers(cls: Any, data: bytes) -> None:
    """Raise a ``ValidationError`` naming the field of an integer outside 64 bits (pydantic
    reads any integer; a count of ``10**400`` would overflow a report's float arithmetic)."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), json.loads(
        data, parse_int=_flag_out_of_range))]
    while stack:
        location, value = stack.pop()
        if isinstance(value, _OutOfRange):
            raise ValidationError.from_exception_data(getattr(cls, "__name__", "value"), [
                InitErrorDetails(type=PydanticCustomError(
                    "int_out_of_range", "Input should be an integer within 64 bits"),
                    loc=location, input=shorten_digits(value.literal))])
        if isinstance(value, dict):
            stack.extend((location + (key,), item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((location + (index,), item) for index, item in enumerate(value))


#: An entry as perfguard writes it starts with its identity: read just that (an update
#: replacing 50,000 entries spent a second parsing them whole).
_IDENTITY_FIRST = re.compile(
    rb'\A\s*\{\s*"test_id"\s*:\s*("(?:[^"\\\n]|\\.)*")\s*,'
    rb'\s*"name"\s*:\s*("(?:[^"\\\n]|\\.)*")\s*[,}]')


def identity_of(data: bytes) -> tuple[str, str] | None:
    """``(test_id, name)`` of an entry's JSON text, or None when it has none."""
    first = _IDENTITY_FIRST.match(data)
    if first:
        return (json.loads(first.group(1)), json.loads(first.group(2)))
    try:
        found = adapter(Identity).validate_json(data)
    except ValidationError:
        return None
    return (found["test_id"], found["name"])


def describe(exc: ValidationError, *, skip: int = 0, limit: int = 3) -> str:
    """The errors as ``field.path: problem`` (the first ``skip`` location parts dropped)."""
    errors = _merge_union_members(exc.errors(include_url=False))
    parts = [": ".join(filter(None, (_location(e["loc"][skip:]), _problem(e))))
             for e in errors[:limit]]
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


#: How pydantic tags the members of a union like ``int | float`` in an error's location.
_UNION_MEMBERS = {"int", "float", "str", "bool"}


def _merge_union_members(errors: list[Any]) -> list[Any]:
    """One error per field for a value that fits no member of ``int | float``: pydantic
    reports one per member (``baseline.int: ...; baseline.float: ...``); the last says it."""
    merged: dict[tuple[Any, ...], Any] = {}
    for error in errors:
        loc = tuple(error["loc"])
        if loc and loc[-1] in _UNION_MEMBERS:
            error = {**error, "loc": loc[:-1]}
        merged[tuple(error["loc"])] = error
    return list(merged.values())


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _problem(error: Any) -> str:
    kind = error["type"]
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return "unknown field (a typo, or written by a newer perfguard?)"
    if kind in ("missing", "missing_argument"):
        return "required field is missing"
    message = str(error["msg"])
    value = error.get("input")
    if isinstance(value, (str, int, float, bool)) or value is None:
        shown = repr(value)
        message += f" (got {shown[:60] + '...' if len(shown) > 60 else shown})"
    elif isinstance(value, (list, dict)):
        message += f" (got {'a list' if isinstance(value, list) else 'an object'})"
    return message
