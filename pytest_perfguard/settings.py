"""Every setting perfguard reads, defined once as dataclass fields. No torch.

Three typed objects, resolved once and then passed around:

- :class:`SessionSettings`: what a run does (``--perfguard``, ``--perfguard-update``, paths).
- :class:`Rules`: how a measurement is judged. Each rule is a command-line flag, an ini key,
  a ``@pytest.mark.perfguard(...)`` key and a ``perfguard compare`` flag; the verdict carries
  the rules that made it into results.json, so every later reader reaches the same verdict.
- :class:`ProfileOptions`: how one ``perfguard(model, ...)`` call measures (also marker keys).

The flags, ini keys, marker keys, help texts and the validation of every value are generated
from the fields below (their type annotations and ``metadata``), so they cannot drift apart.
Precedence: a test's marker, then the command line, then the ini file, then the default.
"""

from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any


class SettingError(ValueError):
    """A setting with a bad value; the message names the setting, where it came from and why."""


def _setting(default: Any, help: str, *, minimum: float | None = 0, maximum: float | None = None,
             flag: str | None = None, expects: str | None = None) -> Any:
    """A dataclass field with the metadata the generators read.

    A number field (int or float) declares its ``maximum`` here: a flag, an ini key, a marker
    key and a call argument are all checked against these bounds (``coerce``).
    """
    meta = {"help": help, "minimum": minimum, "maximum": maximum, "flag": flag,
            "expects": expects}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


# ----------------------------------------------------------------------------------------
# The settings
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionSettings:
    """What a pytest run does; read once in ``pytest_configure``."""

    enabled: bool = _setting(False, "profile tests that use the perfguard fixture and gate them "
                             "against the baseline", flag="--perfguard")
    update: bool = _setting(False, "measure and write the measurements as the new baseline (no "
                            "test fails on a regression)")
    baseline: str = _setting(".perfguard/baseline.json", "baseline file, relative to the rootdir")
    report: str = _setting(".perfguard/report", "directory for results.json, report.md and "
                           "report.html, relative to the rootdir")
    prune: bool = _setting(False, "with --perfguard-update: drop baseline entries of tests that "
                           "no longer exist in the paths this run collected")
    traces: bool = _setting(False, "save a Chrome/Perfetto trace and the generated code of each "
                            "compiled run next to the report")
    history_record: bool = _setting(False, "append this run (commit, branch, every metric and "
                                    "verdict) to the history database")
    history: str = _setting(".perfguard/history.sqlite", "history database, relative to the "
                            "rootdir")

    def __post_init__(self) -> None:
        validate(self)

    @property
    def active(self) -> bool:
        """Measuring at all: ``--perfguard`` or ``--perfguard-update``."""
        return self.enabled or self.update


@dataclass(frozen=True)
class Rules:
    """How a measurement is judged against its baseline entry."""

    bytes_tolerance: float = _setting(0.01, "allowed relative growth of compiled bytes moved",
                                      maximum=100)
    memory_tolerance: float = _setting(0.01, "allowed relative growth of compiled peak memory",
                                       maximum=100)
    utilisation_tolerance: float = _setting(0.10, "allowed relative drop of GPU bandwidth/FLOP "
                                            "utilisation", maximum=1)
    time: bool = _setting(False, "gate on wall time too (off by default: shared runners are "
                          "noisy)")
    time_min_effect: float = _setting(0.10, "with time gating: the smallest relative slowdown "
                                      "of the median that counts", maximum=100)
    time_alpha: float = _setting(0.01, "with time gating: significance level of the "
                                 "Mann-Whitney U test", maximum=1)
    strict: bool = _setting(False, "fail tests whose improvements beyond tolerance were not "
                            "accepted into the baseline (a ratchet)")
    require_baseline: bool = _setting(False, "fail tests that have no baseline entry for this "
                                      "environment")
    nvml: bool = _setting(False, "gate on NVML's sampled GPU utilisation too (off by default: "
                          "it moved by up to 60 percent between identical H100 runs)")
    across_environments: bool = _setting(False, "gate a test that has no baseline entry in this "
                                         "environment against the nearest recorded environment "
                                         "of the same device kind (default: report only)")

    def __post_init__(self) -> None:
        validate(self)

    def replace(self, **overrides: Any) -> Rules:
        return dataclasses.replace(self, **overrides)


@dataclass(frozen=True)
class ProfileOptions:
    """Options of one ``perfguard(model, ...)`` call (and ``@pytest.mark.perfguard`` keys)."""

    backend: str = _setting("inductor", "torch.compile backend")
    mode: str | None = _setting(None, "torch.compile mode")
    dynamic: bool | None = _setting(None, "torch.compile dynamic")
    fullgraph: bool = _setting(False, "torch.compile fullgraph")
    train: bool = _setting(False, "measure forward + backward instead of inference")
    name: str = _setting("default", "name of this measurement (a test may measure several)")
    repeats: int = _setting(20, "timed calls per mode", minimum=1, maximum=10_000)
    warmup: int = _setting(2, "calls per mode before measuring", minimum=1, maximum=1_000)
    full_timing: bool | None = _setting(
        None, "time `repeats` clean calls per mode, waiting out bursts of load (default: only "
        "when wall time is gated; else a few calls within a small bounded budget)")
    rtol: float | None = _setting(None, "relative tolerance of the numerics check",
                                  maximum=1_000)
    atol: float | None = _setting(None, "absolute tolerance of the numerics check",
                                  maximum=1_000_000)
    check_numerics: bool = _setting(True, "compare compiled outputs with eager outputs")
    loss: Callable[[Any], Any] | None = _setting(
        None, "with train=True: output -> the scalar tensor to backpropagate (default: the "
        "output's loss, a scalar output, else every output that requires grad, with ones)")
    numerics_exclude: Sequence[str] = _setting(
        (), "output names (at any depth) or paths left out of the numerics check",
        expects="a list of output names or paths, e.g. numerics_exclude=['past_key_values']")
    compile_options: dict[str, Any] | None = _setting(
        None, "passed to torch.compile(options=...), e.g. {'freezing': True}")
    inputs: Sequence[Any] | None = _setting(
        None, "several input sets in one measurement: tuples, dicts, tensors or Inputs(...)")

    def __post_init__(self) -> None:
        validate(self)
        if self.loss is not None and not self.train:
            raise SettingError("ProfileOptions: loss= is used with train=True only")


# ----------------------------------------------------------------------------------------
# Validation, generated from the annotations
# ----------------------------------------------------------------------------------------

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    # Cached: resolving string annotations costs ~0.4 ms, paid for every Rules read back
    # from results.json (50,000 results: 20 s) without the cache.
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _split_optional(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def _shown(value: Any) -> str:
    """``repr(value)``, cut short: a 10**400 in a marker is not worth 400 characters."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"


def allowed_range(f: dataclasses.Field[Any]) -> str:
    """A number field's bounds as text: ``0 to 100``, ``at least 1``."""
    minimum, maximum = f.metadata.get("minimum"), f.metadata.get("maximum")
    if maximum is None:
        return "" if minimum is None else f"at least {minimum:,}"
    return f"at most {maximum:,}" if minimum is None else f"{minimum:,} to {maximum:,}"


@functools.cache
def _adapter(f: dataclasses.Field[Any], hint: Any, strict: bool) -> Any:
    """pydantic's validator of one field: its type, with the bounds of its metadata, every
    number finite, every string and list item non-empty; a ``Sequence`` is a list or a tuple
    (not a string). Strict for Python values, lax (``"0.5"``, ``"yes"``) for text.
    pydantic is imported here, on first use: most pytest runs set no option at all."""
    from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter

    base, optional = _split_optional(hint)
    if base in (int, float):
        base = Annotated[base, Field(ge=f.metadata.get("minimum"), le=f.metadata.get("maximum"))]
    elif base is str:
        base = Annotated[str, Field(min_length=1)]
    elif typing.get_origin(base) is collections.abc.Sequence:
        (item,) = typing.get_args(base)
        text = item is str
        item = Annotated[str, Field(min_length=1)] if text else item
        base = Annotated[list[item] | tuple[item, ...],  # type: ignore[valid-type]
                         AfterValidator(tuple if text else list)]
    config = ConfigDict(strict=strict, allow_inf_nan=False, arbitrary_types_allowed=True)
    return TypeAdapter(base | None if optional else base, config=config)


#: What a value of each plain type must be, as an error message says it (also where pytest's
#: own conversion of an ini value refused it).
_EXPECTED = {bool: "true or false", int: "a whole number", float: "a number",
             str: "a non-empty string"}


def _requirement(f: dataclasses.Field[Any], base: Any, kind: str, value: Any) -> tuple[str, str]:
    """What a value of field ``f`` must be, for pydantic's error ``kind``, in the field's own
    terms (its bounds; its ``expects`` text for a list), and the allowed range where a
    number is out of it."""
    allowed = f" (allowed: {allowed_range(f)})"
    if kind == "float_type" and type(value) is int:  # an int beyond a float's range: 10**400
        kind = "less_than_equal" if value > 0 else "greater_than_equal"
    if kind == "finite_number":
        return "a finite number", allowed
    if kind == "greater_than_equal":
        return f"at least {f.metadata['minimum']:,}", allowed
    if kind == "less_than_equal":
        return f"at most {f.metadata['maximum']:,}", allowed
    if base in _EXPECTED:
        return _EXPECTED[base], ""
    if typing.get_origin(base) is collections.abc.Callable:
        return "a callable", ""
    if typing.get_origin(base) is dict:
        return "a dict with string keys", ""
    return f.metadata.get("expects") or "a list", ""


def coerce(f: dataclasses.Field[Any], hint: Any, value: Any, *, from_text: bool) -> Any:
    """``value`` converted to the field's type and checked against its bounds (pydantic).

    ``from_text``: the value came from the command line or an ini file, so ``"0.5"`` and
    ``"true"`` are accepted; Python values (markers, fixture calls) must have the right type.
    Raises ``ValueError`` with the reason: ``must be at most 100, got '1000' (allowed: 0 to
    100)``.
    """
    base, optional = _split_optional(hint)
    if from_text and isinstance(value, str):
        if optional and value.strip().lower() == "none":
            return None
        value = value if base is str else value.strip()
    if value is None and not optional:
        raise ValueError("must not be None")
    from pydantic import ValidationError

    try:
        return _adapter(f, hint, not from_text).validate_python(value)
    except ValidationError as exc:
        what, allowed = _requirement(f, base, exc.errors()[0]["type"], value)
    raise ValueError(f"must be {what}, got {_shown(value)}{allowed}")


def validate(instance: Any, source: str | None = None) -> None:
    """Check every field of a settings dataclass; ``SettingError`` names the first bad one."""
    cls = type(instance)
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        if value is f.default:  # declared here, so valid (and pydantic need not be imported)
            continue
        try:
            coerce(f, hints[f.name], value, from_text=False)
        except ValueError as exc:
            raise SettingError(f"{source or cls.__name__}: {f.name} {exc}") from None


def build(cls: type, values: Mapping[str, Any], source: str, *, from_text: bool = False,
          base: Any = None) -> Any:
    """An instance of ``cls`` (``base`` with ``values`` applied), every value validated.

    Errors name the source, the key and the problem: ``SettingError``.
    """
    hints = _hints(cls)
    fields_by_name = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields_by_name))
    if unknown:
        raise SettingError(
            f"{source}: unknown option(s) {', '.join(unknown)}; known: "
            f"{', '.join(sorted(fields_by_name))}"
        )
    converted = {}
    for name, value in values.items():
        try:
            converted[name] = coerce(fields_by_name[name], hints[name], value, from_text=from_text)
        except ValueError as exc:
            raise SettingError(f"{source}: {name} {exc}") from None
    if base is not None:
        return dataclasses.replace(base, **converted)
    return cls(**converted)


# ----------------------------------------------------------------------------------------
# Generators: pytest flags and ini keys, marker help, CLI flags
# ----------------------------------------------------------------------------------------


def flag_of(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("flag") or "--perfguard-" + f.name.replace("_", "-")


def ini_of(f: dataclasses.Field[Any]) -> str:
    return flag_of(f).lstrip("-").replace("-", "_")


def dest_of(f: dataclasses.Field[Any]) -> str:
    return "perfguard_opt_" + f.name if f.metadata.get("flag") else ini_of(f)


def _option_fields() -> Iterable[tuple[type, dataclasses.Field[Any]]]:
    for cls in (SessionSettings, Rules):
        for f in dataclasses.fields(cls):
            yield cls, f


def _default_text(f: dataclasses.Field[Any]) -> str:
    if f.default is False:
        return ""
    bounds = allowed_range(f) if isinstance(f.default, (int, float)) and \
        not isinstance(f.default, bool) else ""
    return f" (default: {f.default}" + (f"; allowed: {bounds})" if bounds else ")")


def add_pytest_options(parser: Any) -> None:
    """Register every session setting and rule as a flag and an ini key (pytest's Parser)."""
    group = parser.getgroup("perfguard", "perfguard: gate torch.compile fusion in CI")
    for cls, f in _option_fields():
        base, _ = _split_optional(_hints(cls)[f.name])
        text = f.metadata["help"] + _default_text(f)
        if base is bool:
            group.addoption(flag_of(f), action=argparse.BooleanOptionalAction, default=None,
                            dest=dest_of(f), help=text)
        else:
            group.addoption(flag_of(f), action="store", default=None, dest=dest_of(f),
                            metavar=f.name.upper(), help=text)
        # None: not set (a set "false" or 0 must still win over the command line's absence).
        parser.addini(ini_of(f), text, type=_ini_type(base), default=None)


def _ini_type(base: Any) -> str:
    """The ini type pytest converts the value to (and ``pytest --help`` shows): ``bool``,
    ``int`` and ``float`` (pytest 8.4 and later), else ``string``."""
    import pytest

    if base is bool:
        return "bool"
    if base in (int, float) and pytest.version_tuple[:2] >= (8, 4):
        return str(base.__name__)
    return "string"


def resolve_pytest_settings(config: Any) -> tuple[SessionSettings, Rules]:
    """Command line first, then the ini file, then the defaults; every value validated."""
    import pytest

    resolved: dict[type, dict[str, Any]] = {SessionSettings: {}, Rules: {}}
    for cls, f in _option_fields():
        cli_value = config.getoption(dest_of(f))
        try:
            ini_value = config.getini(ini_of(f))
        except (ValueError, TypeError, pytest.UsageError) as exc:  # pytest refused its type
            if cli_value is not None:
                ini_value = None  # the command line wins; the bad ini value is not used
            else:
                base, _ = _split_optional(_hints(cls)[f.name])
                expected = f"must be {_EXPECTED[base]}" if base in _EXPECTED else "has a bad value"
                raise SettingError(f"perfguard: bad value for ini {ini_of(f)}: {expected} "
                                   f"({exc})") from None
        if cli_value is not None:
            value, where = cli_value, flag_of(f)
        elif ini_value not in (None, "", []):
            value, where = ini_value, f"ini {ini_of(f)}"
        else:
            continue
        try:
            resolved[cls][f.name] = coerce(f, _hints(cls)[f.name], value, from_text=True)
        except ValueError as exc:
            raise SettingError(f"perfguard: bad value for {where}: {exc}") from None
    return SessionSettings(**resolved[SessionSettings]), Rules(**resolved[Rules])


MARKER_CLASSES = (Rules, ProfileOptions)


def marker_help() -> str:
    """The ``perfguard`` marker's line for ``pytest --markers``, from the fields."""
    parts = []
    for cls in MARKER_CLASSES:
        keys = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls))
        parts.append(f"{'rules' if cls is Rules else 'profile options'} ({keys})")
    return "perfguard(**options): per-test perfguard settings: " + "; ".join(parts)


def split_marker(values: Mapping[str, Any], base_rules: Rules, source: str
                 ) -> tuple[Rules, dict[str, Any]]:
    """A marker's keys as (the test's rules, the profile options it sets). Validated."""
    rule_names = {f.name for f in dataclasses.fields(Rules)}
    profile_names = {f.name for f in dataclasses.fields(ProfileOptions)}
    unknown = sorted(set(values) - rule_names - profile_names)
    if unknown:
        raise SettingError(f"{source}: unknown option(s) {', '.join(unknown)}; rules: "
                           f"{', '.join(sorted(rule_names))}; profile options: "
                           f"{', '.join(sorted(profile_names))}")
    rules = build(Rules, {k: v for k, v in values.items() if k in rule_names}, source,
                  base=base_rules)
    profile = {k: v for k, v in values.items() if k in profile_names}
    build(ProfileOptions, profile, source)  # validate now: a bad marker fails early
    return rules, profile


def add_cli_rule_arguments(parser: argparse.ArgumentParser) -> None:
    """``perfguard compare`` flags for every rule (``--bytes-tolerance``, ``--strict``...)."""
    hints = _hints(Rules)
    for f in dataclasses.fields(Rules):
        flag = "--" + f.name.replace("_", "-")
        base, _ = _split_optional(hints[f.name])
        bounds = "" if base is bool else f"; allowed: {allowed_range(f)}"
        help_text = f.metadata["help"] + f" (default: the rule each result was judged with{bounds})"
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                dest="rule_" + f.name, help=help_text)
        else:
            parser.add_argument(flag, default=None, dest="rule_" + f.name, metavar="X",
                                help=help_text)


def cli_rule_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The rules given on the ``perfguard`` command line, validated (text in, typed out)."""
    hints = _hints(Rules)
    overrides = {}
    for f in dataclasses.fields(Rules):
        value = getattr(args, "rule_" + f.name, None)
        if value is None:
            continue
        try:
            overrides[f.name] = coerce(f, hints[f.name], value, from_text=True)
        except ValueError as exc:
            raise SettingError(f"--{f.name.replace('_', '-')} {exc}") from None
    return overrides


def profile_options(values: Mapping[str, Any], source: str) -> ProfileOptions:
    """Validated :class:`ProfileOptions` from a marker's and a call's keys."""
    return typing.cast(ProfileOptions, build(ProfileOptions, values, source))


__all__ = [
    "ProfileOptions",
    "Rules",
    "SessionSettings",
    "SettingError",
    "add_cli_rule_arguments",
    "add_pytest_options",
    "build",
    "cli_rule_overrides",
    "marker_help",
    "profile_options",
    "resolve_pytest_settings",
    "split_marker",
]
