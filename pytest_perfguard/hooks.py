"""Hooks a project can implement in its ``conftest.py`` to extend perfguard without forking.

Modelled on pytest-benchmark's ``pytest_benchmark_update_machine_info`` and
``pytest_benchmark_update_json``.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec
def pytest_perfguard_environment(config: pytest.Config) -> dict[str, str] | None:
    """Extra facts about this machine that measurements depend on (e.g. a driver version).

    Return a dict of short strings; every implementation's dict is merged into each
    measurement's ``environment.extra``, which is part of the environment fingerprint: a
    baseline entry recorded with other values is another environment's, compared with this
    run only as the nearest environment (report-only unless the rule
    ``across_environments`` is on).
    """


@pytest.hookspec
def pytest_perfguard_update_json(config: pytest.Config, results: dict[str, Any]) -> None:
    """Change or extend the results.json document (``results``, a dict) before it is written.

    The document is validated when read back: add fields, don't change perfguard's own.
    """


@pytest.hookspec
def pytest_perfguard_libraries(config: pytest.Config) -> list[str] | None:
    """Distributions whose installed versions shape this project's graphs (e.g.
    ``["diffusers", "timm"]``).

    Their versions are recorded in each measurement's ``environment.libraries`` (as
    ``transformers``'s is) and shown, but not keyed: a baseline recorded with other versions
    is still compared. To key on a version, return it from ``pytest_perfguard_environment``.
    """
