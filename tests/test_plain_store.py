"""The store as issue 17 leaves it: no import circle, baselines rewritten without churn,
report writing apart from the baseline, and the recorded files still read.

Baselines are read and written the way users do it (``perfguard`` as a subprocess or
``cli.main``, ``Baseline.load``/``save`` for the round trip); the import graph is read from
the package's own source.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_perfguard
from pytest_perfguard._files import FileError, atomic_write
from pytest_perfguard.baseline import Baseline, update_baseline_file
from pytest_perfguard.compare import Verdict
from pytest_perfguard.results import ResultEntry, RunResults

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_BASELINE = ROOT / "example_project" / ".perfguard" / "baseline.json"
GOLDEN_RESULTS = ROOT / "tests" / "golden" / "results.json"


def perfguard(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_perfguard.cli", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


# ----------------------------------------------------------------------------------------
# No import circle
# ----------------------------------------------------------------------------------------


def _imports() -> dict[str, set[str]]:
    """Every module of the package and the package modules it imports anywhere in its
    source (module level, in functions, under ``TYPE_CHECKING``)."""
    package = Path(pytest_perfguard.__file__).parent
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        base = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                parent = base.split(".")
                module = node.module or ""
                if node.level:
                    parent = parent[:len(parent) - (node.level - 1)]
                    module = ".".join(parent + ([module] if module else []))
                targets = [f"{module}.{alias.name}" for alias in node.names] + [module]
            for target in targets:
                if target in modules and target != name and not name.startswith(target + "."):
                    found.add(target)
                    break
        graph[name] = found
    return graph


def test_the_package_has_no_import_circle() -> None:
    """baseline -> schema -> compare -> baseline was a circle (schema imported the verdict
    and the results' error record; results imported ``baseline.display``)."""
    graph = _imports()
    assert "pytest_perfguard.baseline" in graph and "pytest_perfguard.schema" in graph

    def reaches(start: str, goal: str) -> list[str] | None:
        stack, seen = [(start, [start])], {start}
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == goal:
                    return [*path, nxt]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
        return None

    circles = [path for name in sorted(graph) if (path := reaches(name, name))]
    assert circles == [], "import circles: " + "; ".join(" -> ".join(c) for c in circles)


# ----------------------------------------------------------------------------------------
# Rewritten unchanged, a baseline stays byte for byte what it was
# ----------------------------------------------------------------------------------------


def test_the_example_baseline_reads_and_round_trips_byte_for_byte(tmp_path: Path) -> None:
    """A field added to Environment since the file was written (``libraries``, ``card``)
    used to appear in every baseline on its next save."""
    path = tmp_path / "baseline.json"
    shutil.copyfile(EXAMPLE_BASELINE, path)
    original = path.read_bytes()
    shown = perfguard("show", path, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "test_models.py" in shown.stdout

    baseline = Baseline.load(path, missing_ok=False)
    assert baseline.entry_count > 0
    baseline.save()
    assert path.read_bytes() == original
    update_baseline_file(path, [])  # what an update with nothing new does
    assert path.read_bytes() == original


def test_an_update_leaves_the_environment_block_as_the_file_had_it(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    shutil.copyfile(EXAMPLE_BASELINE, path)
    before = json.loads(path.read_text(encoding="utf-8"))["environments"]
    (block,) = Baseline.load(path).environments.values()
    identity = sorted(block.entries)[0]
    measurement = block.entries[identity]
    measurement.test_id = "tests/test_models.py::test_added"
    results = tmp_path / "results.json"
    results.write_text(RunResults(entries=[ResultEntry(measurement, Verdict(measurement.key,
                                                                            "new"))]).dumps())

    done = perfguard("update", results, "--baseline", path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    after = json.loads(path.read_text(encoding="utf-8"))["environments"]
    assert [{k: v for k, v in b.items() if k != "entries"} for b in after] == [
        {k: v for k, v in b.items() if k != "entries"} for b in before]
    assert len(after[0]["entries"]) == len(before[0]["entries"]) + 1
    assert "tests/test_models.py::test_added" in {e["test_id"] for e in after[0]["entries"]}


def test_recorded_results_still_update_a_baseline(tmp_path: Path) -> None:
    """The golden results.json (schema 1 results, as a run writes them) reads, updates a
    new baseline and compares clean against it."""
    path = tmp_path / "baseline.json"
    done = perfguard("update", GOLDEN_RESULTS, "--baseline", path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = len(RunResults.load(GOLDEN_RESULTS).entries)
    assert Baseline.load(path, missing_ok=False).entry_count == expected > 0
    compared = perfguard("compare", path, GOLDEN_RESULTS, cwd=tmp_path)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert f"{expected} unchanged" in compared.stdout


# ----------------------------------------------------------------------------------------
# Reports are written apart from the baseline
# ----------------------------------------------------------------------------------------


def test_a_report_that_cannot_be_written_is_an_os_error_naming_the_file(tmp_path: Path) -> None:
    """Report writing used to raise the baseline's error type (``BaselineError``)."""
    folder = tmp_path / "report.md"
    folder.mkdir()
    with pytest.raises(FileError, match=r"report\.md: cannot write here: a directory") as caught:
        atomic_write(folder, "# report\n")
    assert isinstance(caught.value, OSError)
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]
