"""Reporters: each turns a :class:`~pytest_perfguard.results.RunResults` into text.

Every function here is pure (``render(...) -> str``); the plugin and the CLI write the
files. All of them read one view model (:func:`.model.build_view`), so the terminal,
markdown and HTML reports show the same numbers in the same units. No torch is imported
by this package.
"""

from __future__ import annotations

from .export import FORMATS as EXPORT_FORMATS
from .export import export
from .html import render_html
from .markdown import SUMMARY_MAX_BYTES, render_markdown, render_markdown_summary
from .merge import merge_results
from .messages import describe_change, failure_message
from .model import ReportView, build_view
from .terminal import render_terminal

__all__ = [
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
    "render_markdown_summary",
    "render_terminal",
]
