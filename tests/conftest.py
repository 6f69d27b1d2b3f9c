"""Shared helpers for perfguard's own tests (pytester runs the plugin as users do)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def load_results(pytester: pytest.Pytester) -> dict[str, Any]:
    """results.json written by a pytester run, keyed by measurement key."""
    path = Path(pytester.path) / ".perfguard" / "report" / "results.json"
    data = json.loads(path.read_text())
    return {r["measurement"]["key"]: r for r in data["results"]}


@pytest.fixture
def results_of():
    return load_results

#: The zoo is a project of its own, run in a subprocess by test_real_models.py.
collect_ignore = ["zoo"]
