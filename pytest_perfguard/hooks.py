"""Hooks a project can implement in its ``conftest.py`` to extend perfguard without forking.

Modelled on pytest-benchmark's ``pytest_benchmark_update_machine_info`` and
``pytest_benchmark_update_json``.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec
def pytest_perfguard_environment(config: pytest.Config) -> dict[str, str] | None:  # type: ignore[empty-body]
    """Extra facts about this machine that measurements depend on (e.g. a driver version).

    Return a dict of short strings; every implementation's dict is merged into each
    measurement's ``environment.extra``, which is part of the environment fingerprint: a
    baseline entry recorded with other values is never compared with this run.
    """


@pytest.hookspec
def pytest_perfguard_update_json(config: pytest.Config, results: dict[str, Any]) -> None:
    """Change or extend the results.json document (``results``, a dict) before it is written.

    The document is validated when read back: add fields, don't change perfguard's own.
    """
