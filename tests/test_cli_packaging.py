"""The ``perfguard`` command's surface (``--version``, help, ``report --summary``) and the
package a user installs (license, metadata, what the sdist carries).

The CLI runs as users run it, ``python -m pytest_perfguard.cli`` in a subprocess. The
packaging checks build the sdist and the wheel with this interpreter's setuptools into a
temporary folder (no network: the build backend is already installed).
"""

from __future__ import annotations

import argparse
import dataclasses
import email
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from report_factory import cpu_run, gpu_run, mlp_block_regressed

import pytest_perfguard
from pytest_perfguard.cli import _parser
from pytest_perfguard.reporting import merge_results, render_markdown_summary
from pytest_perfguard.results import RunResults

ROOT = Path(__file__).resolve().parents[1]


def perfguard(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_perfguard.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)


# ---- --version and help -----------------------------------------------------------------


def test_version_is_the_installed_distribution_version() -> None:
    done = perfguard("--version")
    assert done.returncode == 0, done.stderr
    version = importlib.metadata.version("pytest-torch-perfguard")
    assert done.stdout.strip() == f"perfguard {version}"
    assert pytest_perfguard.__version__ == version


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parser and every (sub)command's parser below it."""
    found = [parser]
    for action in parser._actions:  # argparse keeps no public list of an parser's arguments
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += _subparsers(sub)
    return found


def test_every_argument_has_help() -> None:
    missing = [f"{parser.prog}: {action.dest}"
               for parser in _subparsers(_parser()) for action in parser._actions
               if not action.help and not isinstance(action, argparse._SubParsersAction)]
    assert not missing, "arguments without help: " + ", ".join(missing)


COMMANDS = [[], ["update"], ["compare"], ["show"], ["report"], ["export"], ["history"],
            ["history", "add"], ["history", "show"], ["history", "first-change"],
            ["history", "report"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "perfguard")
def test_help_is_plain_text(command: list[str]) -> None:
    done = perfguard(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: perfguard")
    # reStructuredText from docstrings has no place in a terminal.
    for markup in ("``", ":func:", ":class:", ":data:", "~pytest_perfguard"):
        assert markup not in done.stdout, f"{markup!r} in perfguard {' '.join(command)} --help"


# ---- perfguard report --summary -----------------------------------------------------------


def _shards(tmp_path: Path, *runs: RunResults) -> list[str]:
    paths = []
    for index, run in enumerate(runs):
        path = tmp_path / f"shard-{index}" / "results.json"
        path.parent.mkdir()
        path.write_text(run.dumps(), encoding="utf-8")
        paths.append(str(path))
    return paths


def test_report_summary_merges_shards_into_the_plugins_job_summary(tmp_path: Path) -> None:
    """Several results files (a sharded CI run) give one job summary, the same text the
    plugin writes for one run, appended after what earlier steps wrote."""
    shards = _shards(tmp_path, cpu_run(), gpu_run())
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier steps' summary\n", encoding="utf-8")
    done = perfguard("report", *shards, "--summary", str(summary))
    assert done.returncode == 0, done.stderr
    assert f"appended the job summary to {summary}" in done.stdout
    merged = merge_results([RunResults.load(path) for path in shards])
    expected = render_markdown_summary(merged)
    assert summary.read_text(encoding="utf-8") == "earlier steps' summary\n" + expected + "\n"
    # Both shards are in it: the CPU shard's regression and errors, the GPU shard's tests.
    assert "### Regressed tests (1)" in expected and "### Errored tests (2)" in expected
    assert "test\\_mlp\\_block" in expected  # markdown-escaped
    assert "3 unchanged" in expected  # the GPU shard's two tests and one CPU test


def test_report_summary_stays_bounded_for_many_shards(tmp_path: Path) -> None:
    """Three shards of 500 regressed tests each (1.5 MB in full): the summary keeps under
    GitHub's limit and says how many tests it left out."""
    template = mlp_block_regressed()
    runs = []
    for shard in range(3):
        entries = []
        for index in range(500):
            test_id = f"tests/test_shard{shard}.py::test_block[{index}-{'x' * 200}]"
            measurement = dataclasses.replace(template.measurement, test_id=test_id)
            entries.append(dataclasses.replace(template, measurement=measurement))
        runs.append(dataclasses.replace(cpu_run(), entries=entries, errors=[]))
    summary = tmp_path / "summary.md"
    done = perfguard("report", *_shards(tmp_path, *runs), "--summary", str(summary))
    assert done.returncode == 0, done.stderr
    text = summary.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 1_000_000 + 1
    assert "### Regressed tests (1500)" in text
    assert re.search(r"\.\.\. and \d+ more regressed tests not shown", text)


def test_report_needs_an_output(tmp_path: Path) -> None:
    shards = _shards(tmp_path, gpu_run())
    done = perfguard("report", *shards)
    assert done.returncode == 2
    assert done.stderr.strip() == ("perfguard: error: report: give --html FILE, --markdown FILE, "
                                   "--summary FILE and/or --comment FILE")


def test_report_summary_into_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    shards = _shards(tmp_path, gpu_run())
    target = tmp_path / "no-such-folder" / "summary.md"
    done = perfguard("report", *shards, "--summary", str(target))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"perfguard: error: cannot append the job summary to "
                                   f"{target}: No such file or directory")
    assert "Traceback" not in done.stderr


# ---- Packaging ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist built from a copy of this checkout, and the wheel built from that sdist
    (as pip builds from an sdist), all in a temporary folder: nothing lands in the checkout."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "report",
        "traces", "*.lock", "history.sqlite*"))
    out = work / "dist"
    sdist = _build(source, "build_sdist", out)
    with tarfile.open(sdist) as archive:
        # the data filter (refuses links and paths out of the folder) where this Python has it
        extra: dict[str, str] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(work / "unpacked", **extra)  # type: ignore[arg-type]
    unpacked = work / "unpacked" / sdist.name.removesuffix(".tar.gz")
    return {"sdist": sdist, "wheel": _build(unpacked, "build_wheel", out)}


def _build(source: Path, hook: str, out: Path) -> Path:
    script = f"import sys; from setuptools import build_meta; print(build_meta.{hook}(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", script, str(out)], cwd=source,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


def _wheel_metadata(wheel: Path) -> tuple[list[str], email.message.Message]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        return names, email.message_from_bytes(archive.read(metadata))


def test_wheel_carries_the_license_and_complete_metadata(built: dict[str, Path]) -> None:
    names, meta = _wheel_metadata(built["wheel"])
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License")
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    classifiers = meta.get_all("Classifier")
    for classifier in ("Typing :: Typed", "Framework :: Pytest",
                       "Programming Language :: Python :: 3.10",
                       "Programming Language :: Python :: 3.11",
                       "Programming Language :: Python :: 3.12"):
        assert classifier in classifiers
    # The deprecated License :: classifiers conflict with an SPDX expression.
    assert not [c for c in classifiers if c.startswith("License ::")]
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Homepage", "Issues", "Changelog"} <= set(urls)
    assert "pytest_perfguard/py.typed" in names
    assert meta["Version"] == pytest_perfguard.__version__


def test_sdist_carries_the_license_and_what_its_tests_need(built: dict[str, Path]) -> None:
    with tarfile.open(built["sdist"]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    # The tests read the workflows, the example project and the README besides tests/.
    tracked = subprocess.run(["git", "ls-files", "tests", "example_project", ".github"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    needed = {"LICENSE", "README.md", "pyproject.toml", *tracked}
    assert not needed - names, f"missing from the sdist: {sorted(needed - names)[:20]}"
