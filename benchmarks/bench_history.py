"""How the history database scales: 100,000 runs x 50 tests (about 80 million values).

    python benchmarks/bench_history.py [--runs 100000] [--tests 50] [--repeat 3]
                                       [--db PATH] [--keep]

Builds the database once (the schema and the first run through the store itself, the rest
with bulk ``INSERT ... SELECT`` in one transaction: deterministic metrics as step functions
that change every ~20,000 runs, graph breaks and recompiles never, timings random), then
times what users run against it, best of ``--repeat``:

- appending one run of 50 measurements (open, append, close): budget 0.5 s
- ``show`` of one metric over every commit (all 100,000 lines formatted): budget 1 s
- ``first-change`` of a metric that changed recently, and of one that never changed
  (the worst case: the whole history is read): budget 1 s
- ``report``: the trend HTML and the markdown summary of the last 50 runs: budget 5 s

and the same commands end to end as ``perfguard`` processes (Python start-up included).
Prints each time and its ratio to the budget; exits 1 when one is over budget. No torch.
With ``--db PATH --keep`` the database is kept and reused by the next run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pytest_perfguard.compare import Verdict
from pytest_perfguard.history.query import first_change, show
from pytest_perfguard.history.report import collect, render_history_html, render_history_markdown
from pytest_perfguard.history.store import HistoryStore, RunInfo
from pytest_perfguard.record import Environment, Measurement, ModeRecord, Numerics, Timing
from pytest_perfguard.results import ResultEntry, RunResults

BUDGETS = {"append": 0.5, "show": 1.0, "first-change": 1.0, "report": 5.0}
CPU = Environment(python="3.11", torch="2.13.0+cpu", triton="", device="cpu",
                  device_name="cpu (AVX2)", backend="inductor", mode="default", dynamic="auto",
                  fullgraph=False)
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def measurement(test: int, rng: random.Random) -> Measurement:
    """A CPU measurement with every metric a pytest run records (16 values)."""
    def mode(name: str, launches: int) -> ModeRecord:
        record = ModeRecord(mode=name, kernel_launches=launches, bytes_moved=launches * 2**20,
                            flops=launches * 10**6,
                            time=Timing([rng.uniform(1e-3, 2e-3) for _ in range(20)]))
        if name == "compiled":
            record.graphs, record.graph_breaks, record.recompiles = 1, 0, 0
            record.compile_seconds = rng.uniform(1, 5)
        record.peak_memory = launches * 2**22  # type: ignore[attr-defined]
        return record

    return Measurement(test_id=f"tests/test_models_{test // 10}.py::test_model[{test:02d}]",
                       name="default", train=test % 2 == 0, environment=CPU,
                       eager=mode("eager", 10 + test % 7), compiled=mode("compiled", 3),
                       numerics=Numerics(checked=True))


def one_run(tests: int, seed: int) -> RunResults:
    rng = random.Random(seed)
    return RunResults(
        entries=[ResultEntry(m, Verdict(key=m.key, status="unchanged"))
                 for m in (measurement(t, rng) for t in range(tests))],
        created=(START + timedelta(minutes=10 * seed)).isoformat(timespec="seconds"),
        tool_version="bench")


def sha(number: int) -> str:
    """A commit id that looks like git's."""
    return hashlib.sha1(str(number).encode()).hexdigest()


def _iso(run_id: int) -> str:
    return (START + timedelta(minutes=10 * run_id)).isoformat(timespec="seconds")


def build(path: Path, runs: int, tests: int) -> None:
    """The schema and run 1 through the store; runs 2..N in bulk, one transaction."""
    started = time.perf_counter()
    with HistoryStore.open(path, create=True) as store:
        store.append(one_run(tests, 1), RunInfo(commit=sha(1), branch="main"))
    import sqlite3

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA cache_size = -262144")  # 256 MiB while building
    # A fixture, not what is measured: no journal while filling, WAL again afterwards.
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT INTO runs (id, commit_sha, branch, dirty, created, recorded, tool_version, "
        "source, fingerprint) VALUES (?, ?, 'main', 0, ?, ?, 'bench', 'bench', ?)",
        ((i, sha(i), _iso(i), _iso(i), f"bench-{i}") for i in range(2, runs + 1)))
    db.execute("INSERT INTO measurements (run, test, environment, status, train) "
               "SELECT r.id, m.test, m.environment, m.status, m.train FROM runs r "
               "CROSS JOIN measurements m WHERE m.run = 1 AND r.id > 1 ORDER BY r.id")
    # Deterministic metrics: a step every ~20,000 runs (staggered per series); graph breaks
    # and recompiles never change; timings are random.
    db.execute(
        "INSERT INTO metric_values (series, run, value) "
        "SELECT s.id, r.id, CASE "
        "WHEN s.metric LIKE '%time%' OR s.metric LIKE '%seconds' "
        "  THEN 0.001 + (abs(random()) % 1000000) / 1e9 "
        "WHEN s.metric LIKE '%graph_breaks' OR s.metric LIKE '%recompiles' THEN 0 "
        "ELSE v.value + (r.id + s.id * 997) / 20000 END "
        "FROM series s JOIN metric_values v ON v.series = s.id AND v.run = 1 "
        "CROSS JOIN runs r WHERE r.id > 1 ORDER BY s.id, r.id")
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.execute("PRAGMA journal_mode = WAL")
    (values,) = db.execute("SELECT count(*) FROM metric_values").fetchone()
    db.close()
    print(f"built {path}: {runs:,} runs x {tests} tests = {values:,} values, "
          f"{path.stat().st_size / 2**20:,.0f} MiB in {time.perf_counter() - started:.0f} s",
          flush=True)


def best(repeat: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--tests", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", type=Path, help="database to build or reuse")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    folder = None
    if args.db is None:
        folder = tempfile.mkdtemp(prefix="perfguard-bench-history-")
        args.db = Path(folder) / "history.sqlite"
    if not args.db.exists():
        build(args.db, args.runs, args.tests)
    else:
        print(f"reusing {args.db} ({args.db.stat().st_size / 2**20:,.0f} MiB)")

    key = one_run(args.tests, 1).entries[7].measurement.key
    timings: dict[str, float] = {}
    lines: dict[str, int] = {}
    latest = args.runs
    with HistoryStore.open(args.db) as store:
        latest = max(latest, store.run_count())
    seeds = iter(range(latest + 1, latest + 1000))

    def append() -> None:
        seed = next(seeds)
        with HistoryStore.open(args.db, create=True) as store:
            store.append(one_run(args.tests, seed), RunInfo(commit=sha(seed), branch="main"))

    def show_all() -> None:
        with HistoryStore.open(args.db) as store:
            text = show(store, key, "compiled.kernel_launches")
        lines["show"] = text.count("\n")

    def first(metric: str) -> Callable[[], None]:
        def run() -> None:
            with HistoryStore.open(args.db) as store:
                answer = first_change(store, key, metric)
            lines[metric] = answer.exit_code
        return run

    def report() -> None:
        with HistoryStore.open(args.db) as store:
            view = collect(store, last=50, current=one_run(args.tests, 7))
        html = render_history_html(view)
        render_history_markdown(view)
        lines["report"] = len(html)

    timings["append"] = best(args.repeat, append)
    timings["show"] = best(args.repeat, show_all)
    timings["first-change"] = best(args.repeat, first("compiled.kernel_launches"))
    timings["first-change (never changed)"] = best(args.repeat, first("compiled.graph_breaks"))
    timings["report"] = best(args.repeat, report)

    env = dict(os.environ)
    cli = [sys.executable, "-m", "pytest_perfguard.cli", "history"]
    db = str(args.db)
    commands = {
        "show": [*cli, "show", key, "--db", db],
        "first-change": [*cli, "first-change", key, "compiled.kernel_launches", "--db", db],
        "first-change (never changed)": [*cli, "first-change", key, "compiled.graph_breaks",
                                         "--db", db],
        "report": [*cli, "report", "--html", str(args.db.with_suffix(".html")), "--markdown",
                   str(args.db.with_suffix(".md")), "--db", db],
    }
    process: dict[str, float] = {}
    for name, command in commands.items():
        def run(command: list[str] = command) -> None:
            subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=False)
        process[name] = best(args.repeat, run)

    over = False
    print(f"\n{'operation':<30} {'in-process':>11} {'perfguard process':>18} {'budget':>7} "
          f"{'ratio':>6}")
    for name, seconds in timings.items():
        budget = BUDGETS[name.split(" (")[0]]
        slowest = max(seconds, process.get(name, 0.0))
        over = over or slowest > budget
        shown = f"{process[name]:.3f} s" if name in process else "-"
        print(f"{name:<30} {seconds:>9.3f} s {shown:>18} {budget:>5.1f} s {slowest / budget:>6.2f}")
    print(f"\nshow printed {lines['show']:,} lines; first-change exit codes: "
          f"{lines['compiled.kernel_launches']} (changed), {lines['compiled.graph_breaks']} "
          f"(never changed); report HTML {lines['report'] / 2**20:.1f} MiB")
    print("ratio = the slower of in-process and process time / budget (under 1.00 is within "
          "budget). Timings on a shared machine are noisy.")
    if folder and not args.keep:
        for path in Path(folder).iterdir():
            path.unlink()
        os.rmdir(folder)
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
