"""Reporters: each turns a :class:`~pytest_perfguard.results.RunResults` into text.

Every function here is pure (``render(...) -> str``); the plugin and the CLI write the
files. No torch is imported by this package.
"""

from __future__ import annotations

from ._interim import describe_change, failure_message, render_markdown_summary
from .export import FORMATS as EXPORT_FORMATS
from .export import export
from .html import render_html
from .markdown import render_markdown
from .merge import merge_results
from .terminal import render_terminal

__all__ = [
    "EXPORT_FORMATS",
    "describe_change",
    "failure_message",
    "render_markdown_summary",
    "export",
    "merge_results",
    "render_html",
    "render_markdown",
    "render_terminal",
]
