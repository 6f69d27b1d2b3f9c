"""The baseline store under faults and hostile input: nothing lost, nothing crashes.

Each test reproduces a failure of the store as it was (issue 10) through what users run:
``perfguard update/compare/show/report`` (in-process through ``cli.main`` where only the
exit code and the message matter, as real processes where crashes and races matter) and
``pytest --perfguard``.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pytest_perfguard import _files
from pytest_perfguard._files import atomic_write
from pytest_perfguard.baseline import (
    Baseline,
    BaselineError,
    PruneScope,
    update_baseline_file,
)
from pytest_perfguard.cli import main
from pytest_perfguard.codec import dump, dump_measurement, load_measurement
from pytest_perfguard.compare import Change, Verdict
from pytest_perfguard.metrics import CATALOGUE
from pytest_perfguard.record import (
    Environment,
    Kernel,
    Measurement,
    ModeRecord,
    Numerics,
    Timing,
)
from pytest_perfguard.results import ResultEntry, RunResults
from pytest_perfguard.settings import Rules

ENV = Environment(python="3.11.9", torch="2.13.0+cpu", triton="", device="cpu",
                  device_name="cpu (AVX2)", backend="inductor", mode="default", dynamic="auto",
                  fullgraph=False, inductor={"freezing": "False"})


def measurement(test_id: str, name: str = "default", launches: int = 1,
                env: Environment = ENV) -> Measurement:
    """A measurement shaped like ``x * 2 + 1`` on 4096 floats: eager mul and add (two
    kernels, 4 x 16 KiB moved), compiled one fused kernel (read 16 KiB, write 16 KiB)."""
    eager = ModeRecord(mode="eager", kernel_launches=2,
                       kernels=[Kernel("aten::mul", "aten"), Kernel("aten::add", "aten")],
                       bytes_moved=65_536, flops=8192, time=Timing([1e-4, 1.1e-4, 1.2e-4]))
    compiled = ModeRecord(mode="compiled", kernel_launches=launches,
                          kernels=[Kernel("cpp_fused_add_mul_0", "generated", launches)],
                          bytes_moved=32_768, flops=8192, graphs=1, graph_breaks=0,
                          recompiles=0, compile_seconds=2.5, time=Timing([5e-5, 6e-5, 7e-5]),
                          unavailable={"device_seconds": "no GPU: this run was on the CPU"})
    return Measurement(test_id=test_id, name=name, train=False, environment=env, eager=eager,
                       compiled=compiled, numerics=Numerics(checked=True, max_abs_error=0.0))


def results_text(measurements: list[Measurement], status: str = "new") -> str:
    """results.json as a run writes it."""
    return RunResults(
        entries=[ResultEntry(m, Verdict(m.key, status)) for m in measurements],  # type: ignore[arg-type]
        created="2025-11-26T14:40:00+00:00", tool_version="0.2.0", rules=dump(Rules()),
        baseline_path=".perfguard/baseline.json").dumps()


def write_results(path: Path, measurements: list[Measurement]) -> Path:
    path.write_text(results_text(measurements))
    return path


def v1_text(measurements: list[Measurement]) -> str:
    """A schema-1 baseline, byte for byte as perfguard 0.1 wrote it (entries keyed by one
    joined string, each a whole measurement in its results.json form)."""
    environments: dict[str, Any] = {}
    for m in measurements:
        block = environments.setdefault(m.environment.key(), {
            "label": m.environment.label(), "environment": asdict(m.environment), "entries": {}})
        block["entries"][m.key] = dump_measurement(m)
    return json.dumps({"schema": 1, "tool": "pytest-torch-perfguard",
                       "environments": environments}, indent=2, sort_keys=True) + "\n"


def cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


def record(baseline: Path, measurements: list[Measurement]) -> None:
    """Record measurements in a baseline the way users do: ``perfguard update``."""
    results = baseline.with_name(f"{baseline.name}-setup-results.json")
    write_results(results, measurements)
    assert cli("update", results, "--baseline", baseline) == 0
    results.unlink()


def entries_of(path: Path) -> dict[tuple[str, str], Measurement]:
    """What a baseline file holds, by (test_id, name)."""
    baseline = Baseline.load(path, missing_ok=False)
    return {(m.test_id, m.name): m for block in baseline.environments.values()
            for m in block.entries.values()}


# ----------------------------------------------------------------------------------------
# Identity: node id and name kept apart
# ----------------------------------------------------------------------------------------


def test_colliding_keys_are_two_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Both read "t.py::test_c[x]::y[z]" as one joined key; in schema 1 the second entry
    # overwrote the first, and the next run failed falsely.
    named = measurement("t.py::test_c[x]", name="y[z]", launches=1)
    plain = measurement("t.py::test_c[x]::y[z]", launches=3)
    assert named.key == plain.key
    results = write_results(tmp_path / "results.json", [named, plain])
    baseline = tmp_path / "baseline.json"
    assert cli("update", results, "--baseline", baseline) == 0
    stored = entries_of(baseline)
    assert stored[("t.py::test_c[x]", "y[z]")].compiled.kernel_launches == 1
    assert stored[("t.py::test_c[x]::y[z]", "default")].compiled.kernel_launches == 3
    capsys.readouterr()
    assert cli("compare", baseline, results) == 0, capsys.readouterr()
    assert "0 regressed, 0 improved, 0 new, 0 other-environment, 2 unchanged" in (
        capsys.readouterr().out)


def test_schema_1_is_read_and_rewritten_as_schema_2(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    old = [measurement(f"tests/test_a.py::test_{i}", launches=i + 1) for i in range(3)]
    baseline.write_text(v1_text(old))
    assert {i: m.compiled.kernel_launches for i, m in entries_of(baseline).items()} == {
        (f"tests/test_a.py::test_{i}", "default"): i + 1 for i in range(3)}
    results = write_results(tmp_path / "results.json", [measurement("tests/test_b.py::test_new")])
    assert cli("update", results, "--baseline", baseline) == 0
    data = json.loads(baseline.read_text())
    assert data["schema"] == 2
    (block,) = data["environments"]
    assert block["key"] == ENV.key()
    assert [(e["test_id"], e["name"]) for e in block["entries"]] == [
        ("tests/test_a.py::test_0", "default"), ("tests/test_a.py::test_1", "default"),
        ("tests/test_a.py::test_2", "default"), ("tests/test_b.py::test_new", "default")]


# ----------------------------------------------------------------------------------------
# Concurrency and crashes
# ----------------------------------------------------------------------------------------

UPDATER = """
import os, sys, time
from pytest_perfguard.cli import main          # imported before the start signal
gate = sys.argv[1]
while not os.path.exists(gate):
    time.sleep(0.001)
sys.exit(main(["update", sys.argv[2], "--baseline", sys.argv[3]]))
"""


@pytest.mark.parametrize("attempt", range(3))
def test_two_concurrent_updaters_keep_each_others_entries(tmp_path: Path, attempt: int) -> None:
    # Two `perfguard update` commands on different tests, started at the same instant.
    # Each used to read the file at start and write it whole at the end: one run's entries
    # were gone, and both exited 0.
    baseline = tmp_path / "baseline.json"
    kept = [measurement(f"tests/test_kept.py::test_{i}") for i in range(5)]
    record(baseline, kept)
    ours = [measurement(f"tests/test_a.py::test_{i}") for i in range(400)]
    theirs = [measurement(f"tests/test_b.py::test_{i}") for i in range(400)]
    gate = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", UPDATER, str(gate),
                               str(write_results(tmp_path / f"{side}.json", ms)), str(baseline)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for side, ms in (("a", ours), ("b", theirs))]
    time.sleep(1.5)  # both have imported perfguard and wait at the gate
    gate.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out + err
    assert set(entries_of(baseline)) == {(m.test_id, m.name) for m in kept + ours + theirs}


#: Runs `perfguard update` in a child that SIGKILLs itself at its Nth file-system call
#: (os.open/write/fsync/fchmod/close/replace/unlink: every step of lock, write and rename).
KILLER = """
import os, signal, sys
kill_at, results, baseline = int(sys.argv[1]), sys.argv[2], sys.argv[3]
from pytest_perfguard.cli import main
try:
    from pytest_perfguard import _files
    _files.CHUNK_SIZE = 4096   # many writes: many points to die at
except ImportError:
    pass
calls = 0
def hook(name):
    real = getattr(os, name)
    def call(*args, **kwargs):
        global calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    setattr(os, name, call)
for name in ("open", "write", "fsync", "fchmod", "close", "replace", "rename", "unlink"):
    hook(name)
code = main(["update", results, "--baseline", baseline])
print("calls", calls)
sys.exit(code)
"""


def test_sigkill_at_20_points_leaves_the_old_or_the_new_baseline_whole(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    record(baseline, [measurement(f"tests/test_a.py::test_{i}", launches=1)
                                    for i in range(40)])
    old = baseline.read_bytes()
    results = write_results(tmp_path / "results.json", [
        measurement(f"tests/test_a.py::test_{i}", launches=2) for i in range(0, 40, 2)] + [
        measurement(f"tests/test_b.py::test_{i}") for i in range(20)])

    def run(kill_at: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", KILLER, str(kill_at), str(results),
                               str(baseline)], capture_output=True, text=True, timeout=300)

    reference = run(0)  # never killed: the new baseline, and how many calls it takes
    assert reference.returncode == 0, reference.stderr
    new = baseline.read_bytes()
    calls = int(reference.stdout.split("calls")[-1])
    assert calls >= 20 and new != old
    points = sorted({1 + (calls - 1) * k // 19 for k in range(20)})
    assert len(points) == 20
    outcomes = []
    for point in points:
        baseline.write_bytes(old)
        killed = run(point)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stdout, killed.stderr)
        now = baseline.read_bytes()
        assert now in (old, new), f"killed at call {point} of {calls}: a third baseline"
        Baseline.load(baseline, missing_ok=False)  # whole and valid
        left = list(tmp_path.glob(".baseline.json.*.tmp"))
        outcomes.append(("new" if now == new else "old") + ("+temp" if left else ""))
    # Both sides were hit, and some kills fell while the temporary file was being written.
    assert outcomes[0] == "old" and outcomes[-1] == "new", outcomes
    assert "old+temp" in outcomes, outcomes
    # What killed writers left is removed by the next update (each run above removed the
    # previous one's; this checks the last).
    if not list(tmp_path.glob(".baseline.json.*.tmp")):
        baseline.write_bytes(old)
        run(points[outcomes.index("old+temp")])
    assert list(tmp_path.glob(".baseline.json.*.tmp"))
    baseline.write_bytes(old)
    assert run(0).returncode == 0
    assert list(tmp_path.glob(".baseline.json.*.tmp")) == []
    assert baseline.read_bytes() == new


def test_interrupted_write_leaves_the_old_file_and_no_temp(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "baseline.json"
    update_baseline_file(path, [measurement("t.py::test_old")])
    before = path.read_bytes()

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt  # Ctrl-C in the middle of the write

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        update_baseline_file(path, [measurement("t.py::test_new")])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline.json", "baseline.json.lock"]


# ----------------------------------------------------------------------------------------
# Links, modes, temporary files
# ----------------------------------------------------------------------------------------


def test_update_writes_through_a_symlink(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "baseline.json"
    shared.parent.mkdir()
    record(shared, [measurement("t.py::test_old")])
    link = tmp_path / "project" / ".perfguard" / "baseline.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(shared)
    results = write_results(tmp_path / "results.json", [measurement("t.py::test_new")])
    assert cli("update", results, "--baseline", link) == 0
    assert link.is_symlink() and link.resolve() == shared.resolve()
    assert set(entries_of(shared)) == {("t.py::test_old", "default"),
                                       ("t.py::test_new", "default")}


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_follow_the_umask_and_existing_modes_stay(tmp_path: Path, umask: int,
                                                            expected: int) -> None:
    results = write_results(tmp_path / "results.json", [measurement("t.py::test_x")])
    baseline, report = tmp_path / "baseline.json", tmp_path / "report.md"
    old_umask = os.umask(umask)
    try:
        assert cli("update", results, "--baseline", baseline) == 0
        atomic_write(report, "# report\n")
        assert stat.S_IMODE(baseline.stat().st_mode) == expected
        assert stat.S_IMODE(report.stat().st_mode) == expected
        baseline.chmod(0o640)
        report.chmod(0o604)
        assert cli("update", results, "--baseline", baseline) == 0
        atomic_write(report, "# report 2\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(baseline.stat().st_mode) == 0o640
    assert stat.S_IMODE(report.stat().st_mode) == 0o604


def test_temporary_files_of_killed_writers_are_removed(tmp_path: Path) -> None:
    baseline, report = tmp_path / "baseline.json", tmp_path / "report.md"
    hour_ago = time.time() - 3600
    stale = [tmp_path / ".baseline.json.4242-deadbeef.tmp", tmp_path / ".report.md.1-aa.tmp"]
    fresh = tmp_path / ".report.md.2-bb.tmp"  # a report writer at work right now
    for path in [*stale, fresh]:
        path.write_text("half")
    os.utime(stale[1], (hour_ago, hour_ago))
    record(baseline, [measurement("t.py::test_x")])
    atomic_write(report, "# report\n")
    # The baseline's lock is held while it is written: every temp file of it is stale. A
    # report has no lock: only temp files older than a minute are taken for dead.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".report.md.2-bb.tmp", "baseline.json", "baseline.json.lock", "report.md"]


# ----------------------------------------------------------------------------------------
# Prune: only what the run could have seen
# ----------------------------------------------------------------------------------------


def test_prune_drops_only_uncollected_tests_inside_the_run_s_paths(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    update_baseline_file(baseline, [measurement(t) for t in (
        "tests/test_a.py::test_1", "tests/test_a.py::test_2",
        "tests/test_b.py::test_1", "tests/test_b.py::test_gone",
        "tests/sub/test_c.py::test_p[1]", "tests/sub/test_c.py::test_p[2]")])
    # `pytest tests/test_b.py tests/sub/test_c.py::test_p` collected these:
    scope = PruneScope(["tests/test_b.py", "tests/sub/test_c.py::test_p"],
                       {"tests/test_b.py::test_1", "tests/sub/test_c.py::test_p[1]"})
    assert not scope.covers("tests/test_a.py::test_1")
    assert scope.covers("tests/sub/test_c.py::test_p[2]")
    assert not scope.covers("tests/test_b.pyx::test_1")
    summary = update_baseline_file(baseline, [measurement("tests/test_b.py::test_1")],
                                   prune=scope)
    assert summary.pruned == ["tests/sub/test_c.py::test_p[2]", "tests/test_b.py::test_gone"]
    assert set(entries_of(baseline)) == {
        ("tests/test_a.py::test_1", "default"), ("tests/test_a.py::test_2", "default"),
        ("tests/test_b.py::test_1", "default"), ("tests/sub/test_c.py::test_p[1]", "default")}
    # A run over the whole rootdir prunes everything it did not collect, but never what it
    # has just measured.
    summary = update_baseline_file(baseline, [measurement("tests/test_z.py::test_new")],
                                   prune=PruneScope([""], {"tests/test_a.py::test_1"}))
    assert set(entries_of(baseline)) == {("tests/test_a.py::test_1", "default"),
                                         ("tests/test_z.py::test_new", "default")}


# ----------------------------------------------------------------------------------------
# Every file read is validated
# ----------------------------------------------------------------------------------------


def baseline_text() -> str:
    """A valid baseline holding ``measurement("tests/test_a.py::test_x")``."""
    baseline = Baseline(path=Path("baseline.json"))
    baseline.update([measurement("tests/test_a.py::test_x")])
    return baseline.dumps()


def _edit(*path_and_value: Any, delete: bool = False) -> Any:
    """A baseline with one value set (or deleted), written in the layout perfguard writes
    (``json.dumps(indent=2)`` of the same order); ``float("nan")`` is written as NaN."""
    *path, value = path_and_value if not delete else (*path_and_value, None)

    def make() -> str:
        data = json.loads(baseline_text())
        target = data
        for key in path[:-1]:
            target = target[key]
        if delete:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return json.dumps(data, indent=2, ensure_ascii=False)
    return make


def _text(old: str, new: str) -> Any:
    def make() -> str:
        text = baseline_text()
        assert old in text, old
        return text.replace(old, new, 1)
    return make


E0 = ("environments", 0)
X = (*E0, "entries", 0)
ENTRY = "entry tests/test_a.py::test_x (environment "

BAD_BASELINES = {
    # a value wrong inside an entry: the message names the entry and the field
    "nan": (_edit(*X, "compiled", "bytes_moved", float("nan")),
            [ENTRY, "compiled.bytes_moved: Input should be a valid integer (got nan)"]),
    "nan float field": (_edit(*X, "numerics", "max_abs_error", float("nan")),
                        [ENTRY, "numerics.max_abs_error: Input should be a finite number"]),
    "infinity": (_edit(*X, "numerics", "max_abs_error", float("inf")),
                 [ENTRY, "numerics.max_abs_error: Input should be a finite number"]),
    "1e400": (_text('"max_abs_error": null', '"max_abs_error": 1e400'),
              [ENTRY, "numerics.max_abs_error: Input should be a finite number"]),
    "abc": (_edit(*X, "compiled", "kernel_launches", "abc"),
            [ENTRY, "compiled.kernel_launches: Input should be a valid integer (got 'abc')"]),
    "float count": (_edit(*X, "compiled", "kernel_launches", 1.5),
                    [ENTRY, "compiled.kernel_launches: Input should be a valid integer"]),
    "negative": (_edit(*X, "compiled", "kernel_launches", -3),
                 [ENTRY, "compiled.kernel_launches: Input should be greater than or equal to 0"]),
    "negative kernel count": (_edit(*X, "eager", "kernels", 0, "count", -1),
                              [ENTRY, "eager.kernels[0].count: Input should be greater than"]),
    "bool as int": (_edit(*X, "compiled", "graphs", True),
                    [ENTRY, "compiled.graphs: Input should be a valid integer (got True)"]),
    "int as bool": (_edit(*X, "train", 0), [ENTRY, "train: Input should be a valid boolean (got 0)"]),
    "kernels object": (_edit(*X, "eager", "kernels", {}),
                       [ENTRY, "eager.kernels: Input should be a valid array (got an object)"]),
    "empty samples": (_edit(*X, "compiled", "time", {"samples": []}),
                      [ENTRY, "compiled.time.samples: List should have at least 1 item"]),
    "negative sample": (_edit(*X, "compiled", "time", {"samples": [-1.0]}),
                        [ENTRY, "compiled.time.samples[0]: Input should be greater than or equal"]),
    "typo field": (_text('"recompiles": 0', '"recompile": 0'),
                   [ENTRY, "compiled.recompile: unknown field"]),
    "missing name": (_edit(*X, "name", delete=True),
                     ["entry environments[0].entries[0] (environment ",
                      "name: required field is missing"]),
    "entry not an object": (_edit(*E0, "entries", [1]),
                            ["entry environments[0].entries[0] (environment ",
                             "Input should be an object"]),
    "entries object (v2)": (_edit(*E0, "entries", {}),
                            ["environments[0].entries: Input should be a valid array (got an object)"]),
    "entries list (v1)": (lambda: json.dumps({"schema": 1, "environments": {ENV.key(): {
        "environment": asdict(ENV), "entries": []}}}),
        [f"environments.{ENV.key()}.entries: Input should be an object (got a list)"]),
    "v1 entry nan": (lambda: v1_text([measurement("t.py::test_v1")]).replace(
        '"bytes_moved": 32768', '"bytes_moved": NaN', 1),
        ["entry t.py::test_v1 (environment ", "compiled.bytes_moved: Input should be"]),
    "environments string": (lambda: '{"schema": 2, "environments": "x"}',
                            ["environments: Input should be a valid array (got 'x')"]),
    "environment wrong type": (_edit(*E0, "environment", "fullgraph", "no"),
                               ["environments[0].environment.fullgraph: Input should be a valid "
                                "boolean (got 'no')"]),
    "key mismatch": (_edit(*E0, "key", "0123456789ab"),
                     ["environment block '0123456789ab' does not match its fingerprint"]),
    "duplicate entry": (lambda: _edit(*E0, "entries", 2 * json.loads(baseline_text())[
        "environments"][0]["entries"])(),
        ["entry tests/test_a.py::test_x appears twice in environment"]),
    "duplicate environment": (lambda: _edit("environments", 2 * json.loads(baseline_text())[
        "environments"])(), [f"environment {ENV.key()} appears twice"]),
    "nan outside fields": (_edit("tool", float("nan")), ["tool: Input should be a valid string"]),
    "nan in an ignored place": (_edit("comment", [float("nan")]), ["comment: unknown field"]),
    "schema string": (_edit("schema", "2"), ["baseline has no valid 'schema' number"]),
    "schema newer": (_edit("schema", 3), ["baseline schema 3 is newer than this perfguard"]),
    "lone surrogate": (_text('"test_id": "tests/test_a.py::test_x"', '"test_id": "\\ud800"'),
                       ["entry \\ud800 (environment ", "Invalid JSON"]),
    "random bytes": (lambda: bytes(range(256)), ["baseline is not valid JSON"]),
    "truncated": (lambda: baseline_text()[:700], ["baseline is not valid JSON"]),
    "empty": (lambda: "\n \n", ["baseline file is empty (truncated?)"]),
    "list": (lambda: "[1, 2]", ["not a perfguard baseline"]),
}


@pytest.mark.parametrize("case", list(BAD_BASELINES))
def test_invalid_baselines_are_clear_errors(tmp_path: Path, case: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    make, expected = BAD_BASELINES[case]
    baseline = tmp_path / "baseline.json"
    content = make()
    baseline.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = baseline.read_bytes()
    results = write_results(tmp_path / "results.json", [measurement("tests/test_b.py::test_y")])
    for command in (["show", baseline], ["compare", baseline, results],
                    ["update", results, "--baseline", baseline]):
        assert cli(*command) == 2, command
        err = capsys.readouterr().err
        assert err.startswith(f"perfguard: error: {baseline}: "), err
        for part in expected:
            assert part in err, (command, err)
        assert "Traceback" not in err
    assert baseline.read_bytes() == before  # nothing written over a file that cannot be read


def test_update_repairs_the_invalid_entry_it_replaces(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """An update re-measures what is broken: an entry it replaces is read for its identity
    only. (A NaN used to crash the HTML report, so not even --perfguard-update could fix it.)"""
    baseline = tmp_path / "baseline.json"
    baseline.write_text(_edit(*X, "compiled", "bytes_moved", float("nan"))())
    results = write_results(tmp_path / "results.json", [measurement("tests/test_a.py::test_x")])
    assert cli("show", baseline) == 2
    assert cli("update", results, "--baseline", baseline) == 0, capsys.readouterr().err
    assert entries_of(baseline)[("tests/test_a.py::test_x", "default")].compiled.bytes_moved == (
        32_768)


def test_the_same_file_minified_or_hand_formatted_reads_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lean reader finds entries by their layout; any other layout is read whole, and a
    layout that fools it (an entry's ``{`` line, but ``}`` elsewhere) falls back too."""
    path = tmp_path / "baseline.json"
    update_baseline_file(path, [measurement(f"t.py::test_{i}", launches=i) for i in range(30)])
    expected = {i: m.compiled.kernel_launches for i, m in entries_of(path).items()}
    layouts = {
        "minified": json.dumps(json.loads(path.read_text())),
        "indent 4": json.dumps(json.loads(path.read_text()), indent=4),
        "fooled": path.read_text().replace('\n        }', '}\n        ', 1),
    }
    for name, text in layouts.items():
        path.write_text(text)
        assert {i: m.compiled.kernel_launches for i, m in entries_of(path).items()} == expected, name
    # Chunks so small that every needle straddles a chunk boundary somewhere.
    path.write_text(layouts["minified"])
    update_baseline_file(path, [])
    for size in (7, 64, 1000):
        monkeypatch.setattr(_files, "CHUNK_SIZE", size)
        assert {i: m.compiled.kernel_launches for i, m in entries_of(path).items()} == expected


def test_results_in_any_layout_read_the_same(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    ms = [measurement(f"t.py::test_{i}", launches=i) for i in range(20)]
    original = RunResults(entries=[ResultEntry(m, Verdict(m.key, "regressed", [
        Change("compiled kernel_launches", 1, m.compiled.kernel_launches, "regressed",
               ["kernel appeared: cpp_fused_add_mul_0"])])) for m in ms]).dumps()
    path.write_text(original)
    expected = RunResults.load(path).dumps()
    data = json.loads(original)
    layouts = {
        "minified": json.dumps(data),
        "indent 4": json.dumps(data, indent=4),
        "indent 1": json.dumps(data, indent=1),
        "fooled": original.replace("\n    }", "}\n    ", 1),
    }
    for name, text in layouts.items():
        path.write_text(text)
        assert RunResults.load(path).dumps() == expected, name


def _results_with(change: Any) -> str:
    data = json.loads(results_text([measurement("tests/test_a.py::test_x")]))
    change(data)
    return json.dumps(data, indent=2, sort_keys=True)


def _set(*path_and_value: Any) -> Any:
    *path, value = path_and_value

    def change(data: Any) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value
    return lambda: _results_with(change)


def _delete(*path: Any) -> Any:
    def change(data: Any) -> None:
        for key in path[:-1]:
            data = data[key]
        del data[path[-1]]
    return lambda: _results_with(change)


R0 = ("results", 0)
M = (*R0, "measurement")
RESULT = "result 0 (tests/test_a.py::test_x): "

BAD_RESULTS = {
    "list": (lambda: "[]", "not a perfguard results file (no 'results' list)"),
    "string": (lambda: '"results"', "not a perfguard results file"),
    "null": (lambda: "null", "not a perfguard results file"),
    "number": (lambda: "42", "not a perfguard results file"),
    "no results": (lambda: '{"schema": 1}', "not a perfguard results file"),
    "results object": (_set("results", {}), "not a perfguard results file"),
    "results string": (_set("results", "x"), "not a perfguard results file"),
    "no schema": (_delete("schema"), "schema: required field is missing"),
    "schema string": (_set("schema", "1"), "schema: Input should be a valid integer"),
    "schema newer": (_set("schema", 99), "results schema 99 is newer than this perfguard"),
    "schema bool": (_set("schema", True), "schema: Input should be a valid integer"),
    "result number": (_set("results", [1]), "result 0 (unnamed): Input should be an object"),
    "result list": (_set("results", [[]]), "result 0 (unnamed): Input should be an object"),
    "result empty": (_set("results", [{}]), "measurement: required field is missing"),
    "no measurement": (_delete(*R0, "measurement"), "measurement: required field is missing"),
    "no verdict": (_delete(*R0, "verdict"), RESULT + "verdict: required field is missing"),
    "verdict string": (_set(*R0, "verdict", "unchanged"), RESULT + "verdict: Input should be an"),
    "verdict status": (_set(*R0, "verdict", "status", "bogus"), RESULT + "verdict.status: Input"),
    "verdict status number": (_set(*R0, "verdict", "status", 3), RESULT + "verdict.status: Input"),
    "changes object": (_set(*R0, "verdict", "changes", {}), RESULT + "verdict.changes: Input"),
    "change value": (_set(*R0, "verdict", "changes", [
        {"metric": "x", "baseline": "abc", "current": 1, "direction": "regressed"}]),
        RESULT + "verdict.changes[0].baseline: Input should be a valid number"),
    "verdict rules nan": (_set(*R0, "verdict", "rules", "bytes_tolerance", float("nan")),
                          RESULT + "verdict.rules.bytes_tolerance: Input should be a finite"),
    "verdict rules range": (_set(*R0, "verdict", "rules", "time_alpha", 5.0),
                            RESULT + "verdict.rules: Value error, Rules: time_alpha must be at most 1"),
    "measurement list": (_set(*M, []), "result 0 (unnamed): measurement: Input should be an object"),
    "test_id number": (_set(*M, "test_id", 3), "measurement.test_id: Input should be a valid string"),
    "name null": (_set(*M, "name", None), RESULT + "measurement.name: Input should be a valid str"),
    "train string": (_set(*M, "train", "yes"), RESULT + "measurement.train: Input should be a valid"),
    "no environment": (_delete(*M, "environment"), RESULT + "measurement.environment: required"),
    "fullgraph string": (_set(*M, "environment", "fullgraph", "no"),
                         RESULT + "measurement.environment.fullgraph: Input should be a valid"),
    "inductor value": (_set(*M, "environment", "inductor", {"a": 1}),
                       RESULT + "measurement.environment.inductor.a: Input should be a valid str"),
    "eager null": (_set(*M, "eager", None), RESULT + "measurement.eager: Input should be an"),
    "launches abc": (_set(*M, "eager", "kernel_launches", "abc"),
                     RESULT + "measurement.eager.kernel_launches: Input should be a valid integer"),
    "launches negative": (_set(*M, "compiled", "kernel_launches", -1),
                          RESULT + "measurement.compiled.kernel_launches: Input should be greater"),
    "launches float": (_set(*M, "compiled", "kernel_launches", 2.5),
                       RESULT + "measurement.compiled.kernel_launches: Input should be a valid int"),
    "bytes nan": (_set(*M, "compiled", "bytes_moved", float("nan")),
                  RESULT + "measurement.compiled.bytes_moved: Input should be a valid integer"),
    "bytes infinity": (_set(*M, "compiled", "bytes_moved", float("inf")),
                       RESULT + "measurement.compiled.bytes_moved: Input should be a valid int"),
    "bytes 1e400": (lambda: _results_with(lambda d: None).replace(
        '"bytes_moved": 32768', '"bytes_moved": 1e400'),
        RESULT + "measurement.compiled.bytes_moved: Input should be a valid integer"),
    "kernels object": (_set(*M, "compiled", "kernels", {}),
                       RESULT + "measurement.compiled.kernels: Input should be a valid array"),
    "kernel count string": (_set(*M, "compiled", "kernels", 0, "count", "1"),
                            RESULT + "measurement.compiled.kernels[0].count: Input should be"),
    "samples empty": (_set(*M, "compiled", "time", "samples", []),
                      RESULT + "measurement.compiled.time.samples: List should have at least 1"),
    "samples text": (_set(*M, "compiled", "time", "samples", ["a"]),
                     RESULT + "measurement.compiled.time.samples[0]: Input should be a valid number"),
    "unavailable list": (_set(*M, "compiled", "unavailable", []),
                         RESULT + "measurement.compiled.unavailable: Input should be an object"),
    "numerics nan": (_set(*M, "numerics", "max_abs_error", float("nan")),
                     RESULT + "measurement.numerics.max_abs_error: Input should be a finite"),
    "graph break reason": (_set(*M, "compiled", "graph_break_details", [{"reason": 1}]),
                           RESULT + "measurement.compiled.graph_break_details[0].reason: Input"),
    "rules not an object": (_set("rules", [1]), "rules: Input should be an object"),
    "rules nan": (_set("rules", "bytes_tolerance", float("nan")),
                  "rules.bytes_tolerance: Input should be a finite number"),
    "created number": (_set("created", 5), "created: Input should be a valid string (got 5)"),
    "nan in an extra field": (_set("comment", float("nan")),
                              "not valid JSON: NaN is not a number JSON allows"),
    "lone surrogate": (_set(*M, "test_id", "\ud800"), "result 0 (\\ud800): Invalid JSON"),
    "random bytes": (lambda: bytes(range(256)), "not valid JSON"),
    "truncated": (lambda: results_text([measurement("t.py::test_x")])[:900], "not valid JSON"),
    "empty": (lambda: "", "not valid JSON"),
}


@pytest.mark.parametrize("case", list(BAD_RESULTS))
def test_invalid_results_files_are_clear_errors(tmp_path: Path, case: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    make, expected = BAD_RESULTS[case]
    results = tmp_path / "results.json"
    content = make()
    results.write_bytes(content if isinstance(content, bytes) else content.encode())
    baseline = tmp_path / "baseline.json"
    record(baseline, [measurement("tests/test_a.py::test_x")])
    before = baseline.read_bytes()
    for command in (["update", results, "--baseline", baseline], ["compare", baseline, results],
                    ["report", results, "--markdown", tmp_path / "r.md"],
                    ["export", results, "--format", "bencher"]):
        assert cli(*command) == 2, command
        err = capsys.readouterr().err
        assert err.startswith(f"perfguard: error: {results}: "), (command, err)
        assert expected in err, (command, err)
        assert "Traceback" not in err
    assert baseline.read_bytes() == before  # nothing invalid is written
    assert not (tmp_path / "r.md").exists()


def test_nothing_invalid_is_written(tmp_path: Path) -> None:
    """A measurement built in memory with a NaN (a collector's bug) is refused, naming it."""
    baseline = tmp_path / "baseline.json"
    update_baseline_file(baseline, [measurement("t.py::test_ok")])
    before = baseline.read_bytes()
    broken = measurement("t.py::test_broken")
    broken.compiled.bytes_moved = float("nan")  # type: ignore[assignment]
    with pytest.raises(BaselineError, match=r"entry t\.py::test_broken \(environment "
                                            r"\w+\): invalid measurement, not written: "
                                            r"compiled\.bytes_moved: Input should be a valid "
                                            r"integer \(got nan\)"):
        update_baseline_file(baseline, [measurement("t.py::test_new"), broken])
    assert baseline.read_bytes() == before
    loaded = Baseline.load(baseline)
    loaded.lookup(measurement("t.py::test_ok")).eager.kernel_launches = -1  # type: ignore[union-attr]
    with pytest.raises(BaselineError, match="eager.kernel_launches: Input should be greater"):
        loaded.save()
    assert baseline.read_bytes() == before


# ----------------------------------------------------------------------------------------
# End to end: the gate with a NaN in its baseline
# ----------------------------------------------------------------------------------------


def test_pytest_with_a_nan_baseline_is_a_usage_error_naming_file_entry_field(
        pytester: pytest.Pytester) -> None:
    # x * 2 + 1 on 4096 floats: one fused kernel compiled. With NaN for its compiled
    # kernel_launches the gate used to compare nothing and pass (and the HTML report crashed).
    pytester.makepyfile(test_x=textwrap.dedent("""
        import torch

        def test_x(perfguard):
            perfguard(lambda x: x * 2 + 1, torch.ones(4096))
    """))
    result = pytester.runpytest("--perfguard", "--perfguard-update")
    result.assert_outcomes(passed=1)
    path = pytester.path / ".perfguard" / "baseline.json"
    stored = path.read_text()
    assert '"kernel_launches": 1,' in stored
    compiled_at = stored.index('"compiled": {')
    path.write_text(stored[:compiled_at] + stored[compiled_at:].replace(
        '"kernel_launches": 1,', '"kernel_launches": NaN,', 1))
    result = pytester.runpytest("--perfguard")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f"*perfguard: {path}: entry test_x.py::test_x (environment *): "
        "compiled.kernel_launches: Input should be a valid integer (got nan)*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_the_codec_reads_back_what_it_writes_and_adds_derived_values_for_consumers() -> None:
    """One codec: pydantic dumps the record, results.json's derived values are added in one
    place (the ratios are the catalogue's modeless metrics), and the validating reader
    ignores them; fields added after record schema 1 are left out while empty."""
    m = measurement("t.py::test_x[a]", name="fwd", launches=3)
    data = dump_measurement(m)
    assert load_measurement(data) == m
    assert load_measurement(json.dumps(data)) == m
    assert (data["schema"], data["key"], data["environment_key"]) == (
        1, "t.py::test_x[a]::fwd", m.environment.key())
    assert set(data["derived"]) == {metric.name for metric in CATALOGUE if not metric.mode} | {
        "eager_arithmetic_intensity", "compiled_arithmetic_intensity"}
    assert data["derived"]["fusion_ratio"] == 2 / 3
    assert data["compiled"]["time"]["median"] == 6e-5
    assert "shapes" not in data and "card" not in data["environment"]
    with pytest.raises(ValidationError, match="compiled.kernel_launches"):
        load_measurement({**data, "compiled": {**data["compiled"], "kernel_launches": -1}})
