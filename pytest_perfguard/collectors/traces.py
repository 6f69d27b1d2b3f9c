"""Artifacts for digging into one measurement (``--perfguard-traces``): the Chrome/Perfetto
trace of the profiled compiled call, the code inductor generated, and each mode's profiler
events as a plain table (``<mode>.events.json``).

The folder is chosen by the plugin (a sanitised, unique name under the report directory);
the file names here are fixed, so no user text reaches the file system. The paths travel in
the measurement (``Measurement.traces``), not through an index file.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .events import EventRow

TRACE_FILE = "trace.json"
CODE_FILE = "code.py"
EVENTS_SUFFIX = "events.json"


def trace_file(trace_dir: Path | None) -> Path | None:
    """Where the profiled compiled call's Chrome trace goes (the folder is created)."""
    if trace_dir is None:
        return None
    trace_dir.mkdir(parents=True, exist_ok=True)
    return trace_dir / TRACE_FILE


def save_rows(trace_dir: Path, mode: str, rows: list[EventRow]) -> None:
    """The profiled call's events as the plain table (``events.py``): ``<mode>.events.json``,
    the format ``tests/data`` keeps recorded GPU traces in, for replaying them on a CPU."""
    trace_dir.mkdir(parents=True, exist_ok=True)
    (trace_dir / f"{mode}.{EVENTS_SUFFIX}").write_text(
        json.dumps([dataclasses.asdict(row) for row in rows]), encoding="utf-8")


def save_code(trace_dir: Path, codes: list[str]) -> dict[str, str]:
    """Write the generated code next to the trace; returns kind -> path of what exists."""
    trace_dir.mkdir(parents=True, exist_ok=True)
    code = trace_dir / CODE_FILE
    code.write_text("\n\n# ---- next graph ----\n\n".join(codes) or "# no code captured\n",
                    encoding="utf-8")
    files = {"code": str(code)}
    if (trace_dir / TRACE_FILE).exists():
        files["trace"] = str(trace_dir / TRACE_FILE)
    for mode in ("eager", "compiled"):
        if (trace_dir / f"{mode}.{EVENTS_SUFFIX}").exists():
            files[f"{mode} events"] = str(trace_dir / f"{mode}.{EVENTS_SUFFIX}")
    return files
