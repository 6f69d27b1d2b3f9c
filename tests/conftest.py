"""Shared helpers for perfguard's own tests (pytester runs the plugin as users do)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def load_results(pytester: pytest.Pytester) -> dict[str, Any]:
    """results.json written by a pytester run, keyed by measurement key."""
    path = Path(pytester.path) / ".perfguard" / "report" / "results.json"
    data = json.loads(path.read_text())
    return {r["measurement"]["key"]: r for r in data["results"]}


@pytest.fixture(scope="session", autouse=True)
def warm_compile_cache() -> Iterator[None]:
    """perfguard's own inductor cache folder, warm between runs and tests, as a user has it.

    pytester points HOME at each test's new temporary folder, which would make perfguard's
    default folder (``~/.cache/perfguard/inductor``) a new, cold one for every test: each
    run compiled every kernel from scratch. The real one is named here, before any test
    moves HOME; tests about the cache itself set their own folder.
    """
    from pytest_perfguard.collectors.private.inductor import CACHE_DIR_ENV, perfguard_cache_dir

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_DIR_ENV, str(perfguard_cache_dir()))
        yield


@pytest.fixture
def results_of():
    return load_results

#: The zoo is a project of its own, run in a subprocess by test_real_models.py.
collect_ignore = ["zoo"]
