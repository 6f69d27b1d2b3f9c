"""Option definitions, written once: each command-line flag has an ini twin.

The command line wins over the ini file; a test's ``@pytest.mark.perfguard(...)`` wins over
both for that test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .compare import Rules


@dataclass(frozen=True)
class Option:
    flag: str
    ini: str
    help: str
    kind: str = "bool"  # "bool", "string", "float", "path"
    default: Any = None


OPTIONS: tuple[Option, ...] = (
    Option("--perfguard", "perfguard", "profile tests that use the perfguard fixture and gate "
           "them against the baseline", default=False),
    Option("--perfguard-update", "perfguard_update", "measure and write the measurements as "
           "the new baseline (no test fails on a regression)", default=False),
    Option("--perfguard-baseline", "perfguard_baseline", "baseline file (default: "
           ".perfguard/baseline.json under the rootdir)", kind="path",
           default=".perfguard/baseline.json"),
    Option("--perfguard-report", "perfguard_report", "directory for results.json, report.md "
           "and report.html (default: .perfguard/report under the rootdir)", kind="path",
           default=".perfguard/report"),
    Option("--perfguard-strict", "perfguard_strict", "fail tests whose improvements beyond "
           "tolerance were not accepted into the baseline", default=False),
    Option("--perfguard-require-baseline", "perfguard_require_baseline", "fail tests that "
           "have no baseline entry for this environment", default=False),
    Option("--perfguard-prune", "perfguard_prune", "with --perfguard-update: drop baseline "
           "entries of tests that no longer exist", default=False),
    Option("--perfguard-traces", "perfguard_traces", "save a Chrome/Perfetto trace and the "
           "generated code of each compiled run next to the report", default=False),
    Option("--perfguard-time", "perfguard_time", "gate on wall time too (off by default: "
           "shared runners are noisy)", default=False),
    Option("--perfguard-bytes-tolerance", "perfguard_bytes_tolerance", "allowed relative "
           "growth of compiled bytes moved (default 0.01)", kind="float", default=0.01),
    Option("--perfguard-utilisation-tolerance", "perfguard_utilisation_tolerance", "allowed "
           "relative drop of utilisation (default 0.10)", kind="float", default=0.10),
    Option("--perfguard-history-record", "perfguard_history_record", "append this run (commit, "
           "branch, every metric and verdict) to the history database", default=False),
    Option("--perfguard-history", "perfguard_history", "history database (default: "
           ".perfguard/history.sqlite under the rootdir)", kind="path",
           default=".perfguard/history.sqlite"),
)

#: Marker keywords that change the comparison rules of one test.
RULE_MARKER_KEYS = {"bytes_tolerance", "utilisation_tolerance", "time", "time_min_effect",
                    "time_alpha", "strict", "nvml"}


def dest(option: Option) -> str:
    return option.flag.lstrip("-").replace("-", "_")


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def resolve(option: Option, cli_value: Any, ini_value: Any) -> Any:
    """Command line first, then ini, then the default; converted to the option's kind."""
    value = cli_value if cli_value not in (None, False) else None
    if value is None and ini_value not in (None, "", []):
        value = ini_value
    if value is None:
        return option.default
    try:
        if option.kind == "bool":
            return parse_bool(value)
        if option.kind == "float":
            number = float(value)
            if number < 0:
                raise ValueError("must not be negative")
            return number
        return str(value)
    except ValueError as exc:
        raise ValueError(f"perfguard: bad value for {option.flag} / {option.ini}: {exc}") from None


def base_rules(settings: dict[str, Any]) -> Rules:
    return Rules(
        bytes_tolerance=settings["perfguard_bytes_tolerance"],
        utilisation_tolerance=settings["perfguard_utilisation_tolerance"],
        time=settings["perfguard_time"],
        strict=settings["perfguard_strict"],
    )
