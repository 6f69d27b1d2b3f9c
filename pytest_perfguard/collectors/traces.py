"""Artifacts for digging into one measurement (``--perfguard-traces``): the Chrome/Perfetto
trace of the profiled compiled call and the code inductor generated.

The folder is chosen by the plugin (a sanitised, unique name under the report directory);
the file names here are fixed, so no user text reaches the file system. The paths travel in
the measurement (``Measurement.traces``), not through an index file.
"""

from __future__ import annotations

from pathlib import Path

TRACE_FILE = "trace.json"
CODE_FILE = "code.py"


def trace_file(trace_dir: Path | None) -> Path | None:
    """Where the profiled compiled call's Chrome trace goes (the folder is created)."""
    if trace_dir is None:
        return None
    trace_dir.mkdir(parents=True, exist_ok=True)
    return trace_dir / TRACE_FILE


def save_code(trace_dir: Path, codes: list[str]) -> dict[str, str]:
    """Write the generated code next to the trace; returns kind -> path of what exists."""
    trace_dir.mkdir(parents=True, exist_ok=True)
    code = trace_dir / CODE_FILE
    code.write_text("\n\n# ---- next graph ----\n\n".join(codes) or "# no code captured\n",
                    encoding="utf-8")
    files = {"code": str(code)}
    if (trace_dir / TRACE_FILE).exists():
        files["trace"] = str(trace_dir / TRACE_FILE)
    return files
