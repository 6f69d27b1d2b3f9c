"""Hostile paths and input (issue 19, items 1 and 5): perfguard reads and replaces only
regular files, and refuses input too big, too deep or with numbers out of range, each with
a one-line error naming the file, never a traceback, a hang or a replaced device.

Everything runs the way users run it: the ``perfguard`` CLI and ``pytest --perfguard`` in
subprocesses, on real files, FIFOs, symlinks and devices.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from report_factory import cpu_run

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX file types")

DEEP = 100_000


def perfguard(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI as users run it; 20 s is ample (a FIFO read would block until the timeout)."""
    return subprocess.run([sys.executable, "-m", "pytest_perfguard.cli", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=20)


def assert_clear_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 2 with one ``perfguard: error:`` line holding every needle; no traceback."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("perfguard: error: "), done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def snapshot(path: Path) -> tuple[int, int, int, int]:
    """What must not change about a path we refuse to touch (lstat: the link itself)."""
    st = path.lstat()
    return (st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    path = tmp_path / "results.json"
    path.write_text(cpu_run().dumps())
    return path


def with_count(results: Path, value: str) -> Path:
    """``results`` with the first result's compiled kernel_launches written as ``value``."""
    data = json.loads(results.read_text())
    data["results"][0]["measurement"]["compiled"]["kernel_launches"] = 0
    text = json.dumps(data, indent=2, sort_keys=True).replace(
        '"kernel_launches": 0', f'"kernel_launches": {value}', 1)
    path = results.with_name(f"count-{len(value)}.json")
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------------------
# Writing: only regular files are replaced
# ----------------------------------------------------------------------------------------


def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def link_to_null(tmp_path: Path) -> Path:
    path = tmp_path / "null-link"
    path.symlink_to(os.devnull)
    return path


def directory(tmp_path: Path) -> Path:
    path = tmp_path / "folder"
    path.mkdir()
    (path / "keep.txt").write_text("precious")
    return path


TARGETS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "fifo": (fifo, "a FIFO (named pipe), not a regular file"),
    "symlink to /dev/null": (link_to_null, "a character device, not a regular file"),
    "directory": (directory, "a directory, not a regular file"),
}


@pytest.fixture(autouse=True)
def dev_null_stays() -> object:
    """Whatever a test does, /dev/null is still the character device after it."""
    yield
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.parametrize("kind", TARGETS)
@pytest.mark.parametrize("option", ["--html", "--markdown"])
def test_report_refuses_a_target_that_is_not_a_regular_file(
        tmp_path: Path, results: Path, kind: str, option: str) -> None:
    make, problem = TARGETS[kind]
    target = make(tmp_path)
    before = snapshot(target)
    done = perfguard("report", results, option, target, cwd=tmp_path)
    assert_clear_error(done, f"{target}: cannot write here: {problem}")
    assert snapshot(target) == before
    if kind == "directory":
        assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("kind", TARGETS)
def test_update_refuses_a_baseline_that_is_not_a_regular_file(
        tmp_path: Path, results: Path, kind: str) -> None:
    make, problem = TARGETS[kind]
    target = make(tmp_path)
    before = snapshot(target)
    done = perfguard("update", results, "--baseline", target, cwd=tmp_path)
    assert_clear_error(done, f"{target}: cannot write here: {problem}")
    assert snapshot(target) == before
    if kind == "directory":
        assert [p.name for p in target.iterdir()] == ["keep.txt"]
    # Refused before the lock: no stray lock file next to it (nor next to /dev/null).
    assert not list(tmp_path.glob("*.lock"))
    assert not Path(os.devnull + ".lock").exists()


def test_a_symlink_to_a_regular_file_is_written_through(tmp_path: Path, results: Path) -> None:
    real = tmp_path / "real.md"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.md"
    link.symlink_to(real)
    done = perfguard("report", results, "--markdown", link, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and "old" != real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


# ----------------------------------------------------------------------------------------
# Reading: only regular files, bounded in size, depth and numbers
# ----------------------------------------------------------------------------------------


def deep(tmp_path: Path) -> Path:
    path = tmp_path / "deep.json"
    path.write_text('{"schema": 1, "results": [' + "[" * DEEP + "]" * DEEP + "]}")
    return path


def huge_sparse(tmp_path: Path) -> Path:
    path = tmp_path / "huge.json"
    with open(path, "wb") as handle:  # sparse: no disk used
        handle.truncate((1 << 30) + 1)
    return path


INPUTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "nested 100,000 deep": (deep, "JSON nested deeper than 64 levels, the most perfguard reads"),
    "/dev/zero": (lambda _: Path("/dev/zero"), "a character device, not a regular file"),
    "fifo": (fifo, "a FIFO (named pipe), not a regular file"),
    "directory": (directory, "a directory, not a regular file"),
    "over 1 GiB": (huge_sparse, "larger than 1024 MiB, the most perfguard reads"),
}

COMMANDS: dict[str, Callable[[Path, Path], tuple[str | Path, ...]]] = {
    "report": lambda bad, ok: ("report", bad, "--markdown", "out.md"),
    "compare": lambda bad, ok: ("compare", ok, bad),
    "update": lambda bad, ok: ("update", bad, "--baseline", "baseline.json"),
    "history add": lambda bad, ok: ("history", "add", bad, "--commit", "abc123", "--db",
                                    "history.sqlite"),
}


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("command", COMMANDS)
def test_hostile_results_files_are_clear_errors(
        tmp_path: Path, results: Path, command: str, kind: str) -> None:
    make, problem = INPUTS[kind]
    bad = make(tmp_path)
    baseline = tmp_path / "good-baseline.json"
    assert perfguard("update", results, "--baseline", baseline, cwd=tmp_path).returncode == 0
    before = snapshot(bad)
    done = perfguard(*COMMANDS[command](bad, baseline), cwd=tmp_path)
    assert_clear_error(done, f"{bad}: ", problem)
    assert snapshot(bad) == before
    assert not (tmp_path / "out.md").exists() and not (tmp_path / "baseline.json").exists()


@pytest.mark.parametrize("kind", INPUTS)
def test_hostile_baseline_files_are_clear_errors(tmp_path: Path, kind: str) -> None:
    make, problem = INPUTS[kind]
    bad = make(tmp_path)
    done = perfguard("show", bad, cwd=tmp_path)
    assert_clear_error(done, f"{bad}: ", problem)


@pytest.mark.parametrize("value, shown", [
    (str(10**400), "100000000000...(401 digits)"),
    (str(10**30), "100000000000...(31 digits)"),
    (str(1 << 63), str(1 << 63)),
])
@pytest.mark.parametrize("command", COMMANDS)
def test_integers_beyond_64_bits_name_the_field(
        tmp_path: Path, results: Path, command: str, value: str, shown: str) -> None:
    bad = with_count(results, value)
    baseline = tmp_path / "good-baseline.json"
    assert perfguard("update", results, "--baseline", baseline, cwd=tmp_path).returncode == 0
    done = perfguard(*COMMANDS[command](bad, baseline), cwd=tmp_path)
    assert_clear_error(done, f"{bad}: result 0 (", "measurement.compiled.kernel_launches: "
                       f"Input should be an integer within 64 bits (got '{shown}')")
    assert not (tmp_path / "baseline.json").exists()


def test_an_integer_python_cannot_read_is_a_clear_error(tmp_path: Path, results: Path) -> None:
    """5,000 digits: past what Python converts (4,300), so named by value, not by field."""
    bad = with_count(results, "9" * 5000)
    done = perfguard("report", bad, "--markdown", "out.md", cwd=tmp_path)
    assert_clear_error(done, f"{bad}: not valid JSON: the integer 999999999999...(5000 "
                             "digits) is out of range (numbers in perfguard's files fit in 64 bits)")


def test_the_largest_64_bit_count_is_accepted(tmp_path: Path, results: Path) -> None:
    good = with_count(results, str((1 << 63) - 1))
    for args in (("report", good, "--markdown", "out.md"),
                 ("update", good, "--baseline", "baseline.json")):
        done = perfguard(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert f"{(1 << 63) - 1}" in (tmp_path / "baseline.json").read_text()


def test_hand_formatted_files_are_checked_the_same(tmp_path: Path, results: Path) -> None:
    """Minified files take the whole-document path: the same errors, the same fields."""
    bad = with_count(results, str(10**400))
    bad.write_text(json.dumps(json.loads(bad.read_text())))
    done = perfguard("report", bad, "--markdown", "out.md", cwd=tmp_path)
    assert_clear_error(done, "measurement.compiled.kernel_launches: Input should be an integer "
                             "within 64 bits")
    flat = tmp_path / "flat-deep.json"
    flat.write_text('{"schema": 1, "results": [' + "[" * 65 + "]" * 65 + "]}")
    assert_clear_error(perfguard("report", flat, "--markdown", "out.md", cwd=tmp_path),
                       "JSON nested deeper than 64 levels")


# ----------------------------------------------------------------------------------------
# pytest --perfguard: the baseline path
# ----------------------------------------------------------------------------------------

TEST_FILE = "import torch\n\ndef test_x(perfguard):\n    perfguard(torch.sin, torch.ones(8))\n"


@pytest.mark.parametrize("kind", TARGETS)
@pytest.mark.parametrize("update", [False, True])
def test_plugin_refuses_a_baseline_path_that_is_not_a_regular_file(
        pytester: pytest.Pytester, kind: str, update: bool) -> None:
    pytester.makepyfile(test_x=TEST_FILE)
    make, problem = TARGETS[kind]
    target = make(pytester.path)
    before = snapshot(target)
    result = pytester.runpytest("--perfguard", f"--perfguard-baseline={target}",
                                *(["--perfguard-update"] if update else []))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*perfguard: {target}: *{problem}*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert snapshot(target) == before
    if kind == "directory":
        assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert not list(pytester.path.glob("*.unreadable-*"))


@pytest.mark.parametrize("content, problem", [
    ('{"schema": 2, "environments": [' + "[" * DEEP + "]" * DEEP + "]}",
     "baseline is JSON nested deeper than 64 levels"),
    ('{"schema": ' + str(10**400) + ', "environments": []}',
     "baseline has no valid 'schema' number"),
])
def test_plugin_refuses_a_hostile_baseline_file(
        pytester: pytest.Pytester, content: str, problem: str) -> None:
    pytester.makepyfile(test_x=TEST_FILE)
    path = pytester.path / ".perfguard" / "baseline.json"
    path.parent.mkdir()
    path.write_text(content)
    result = pytester.runpytest("--perfguard")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*perfguard: {path}: {problem}*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert path.read_text() == content


def test_plugin_sets_aside_the_file_behind_a_symlink(pytester: pytest.Pytester) -> None:
    """A link to a corrupt baseline: the file it points to is set aside, the link stays and
    the new baseline is written through it."""
    pytester.makepyfile(test_x=TEST_FILE)
    real = pytester.path / "store" / "baseline.json"
    real.parent.mkdir()
    real.write_text('{"schema": 2, "environments": [')
    link = pytester.path / "baseline-link.json"
    link.symlink_to(real)
    result = pytester.runpytest("--perfguard", "--perfguard-update",
                                f"--perfguard-baseline={link}")
    result.assert_outcomes(passed=1)
    (aside,) = real.parent.glob("baseline.json.unreadable-*")
    assert aside.read_text() == '{"schema": 2, "environments": ['
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert "test_x.py::test_x" in real.read_text()
