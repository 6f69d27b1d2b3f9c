"""Reporters: each turns a :class:`~pytest_perfguard.results.RunResults` into text.

Every function here is pure (``render(...) -> str``); the plugin and the CLI write the
files. All of them read one view model (:func:`.model.build_view`), so the terminal,
markdown and HTML reports show the same numbers in the same units. No torch is imported
by this package.
"""

from __future__ import annotations

import importlib
from typing import Any

# Light (no Jinja2, no tabulate), and eager on purpose: the submodule shares the function's
# name, so a lazy lookup could hand out the module instead of the function.
from .export import FORMATS as EXPORT_FORMATS
from .export import export

#: Public name -> the submodule that defines it. Loaded on first use (PEP 562), so a
#: command that needs one reporter does not import Jinja2 and tabulate for all of them.
_EXPORTS = {
    "render_html": ("html", "render_html"),
    "SUMMARY_MAX_BYTES": ("markdown", "SUMMARY_MAX_BYTES"),
    "COMMENT_MAX_CHARS": ("markdown", "COMMENT_MAX_CHARS"),
    "render_markdown_comment": ("markdown", "render_markdown_comment"),
    "render_markdown": ("markdown", "render_markdown"),
    "render_markdown_summary": ("markdown", "render_markdown_summary"),
    "merge_results": ("merge", "merge_results"),
    "describe_change": ("messages", "describe_change"),
    "failure_message": ("messages", "failure_message"),
    "ReportView": ("model", "ReportView"),
    "build_view": ("model", "build_view"),
    "render_terminal": ("terminal", "render_terminal"),
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value
    return value


__all__ = [
    "COMMENT_MAX_CHARS",
    "EXPORT_FORMATS",
    "SUMMARY_MAX_BYTES",
    "ReportView",
    "build_view",
    "describe_change",
    "export",
    "failure_message",
    "merge_results",
    "render_html",
    "render_markdown",
    "render_markdown_comment",
    "render_markdown_summary",
    "render_terminal",
]
