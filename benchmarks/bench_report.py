"""How long the reporters take on a large run, and how big the bounded pages get.

    python benchmarks/bench_report.py [--tests 1000] [--repeat 2]
        [--scale-tests 5000] [--history-runs 100] [--history-tests 1000]
        [--compare-with DIR] [--no-scale]

Prints the best-of-``repeat`` time of each reporter (markdown, the bounded job summary,
HTML, terminal, results.json, both exporters) for ``--tests`` synthetic tests and the total
against the 5 s budget a CI job can spend on reports, then the job summary's size against
GitHub's 1 MiB limit for $GITHUB_STEP_SUMMARY (for this run, and for one where every test
regressed), and the pull-request comment's against its 60,000-character bound.

Then, at scale, each in a fresh process (so its peak memory is its own): report.html and
the comment for ``--scale-tests`` tests, and the history page (``perfguard history report
--html``) of ``--history-runs`` runs x ``--history-tests`` tests: bytes, seconds and peak
RSS. ``--compare-with DIR`` measures the same with the package found in DIR (an older
version: ``git archive REV pytest_perfguard | tar -x -C DIR``) and prints the ratios.
Exits with status 1 when the total is over budget or a summary or comment is over its
limit. No torch needed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from pytest_perfguard.compare import Change, Rules, Verdict
from pytest_perfguard.record import (
    Allocation,
    Environment,
    GraphBreak,
    Kernel,
    Measurement,
    ModeRecord,
    Numerics,
    NvmlSummary,
    Timing,
    Utilisation,
)
from pytest_perfguard.reporting import (
    export,
    render_html,
    render_markdown,
    render_markdown_summary,
    render_terminal,
)
from pytest_perfguard.results import ResultEntry, RunResults, TestError

BUDGET_SECONDS = 5.0

#: GitHub refuses a job summary larger than this.
GITHUB_SUMMARY_LIMIT = 1024 * 1024

#: The pull-request comment's bound (GitHub refuses more than 65,536 characters).
COMMENT_LIMIT = 60_000

CPU = Environment(python="3.11.9", torch="2.13.0+cpu", triton="", device="cpu",
                  device_name="cpu (AVX2)", backend="inductor", mode="default", dynamic="auto",
                  fullgraph=False)
GPU = Environment(python="3.11.9", torch="2.13.0+cu128", triton="3.5.0", device="cuda",
                  device_name="NVIDIA H100 80GB HBM3", backend="inductor", mode="max-autotune",
                  dynamic="auto", fullgraph=False)
OPS = ("addmm", "mm", "gelu", "add", "mul", "native_layer_norm", "softmax", "relu", "sum",
       "convolution", "native_batch_norm", "bmm", "_scaled_dot_product_flash_attention")


def _timing(rng: random.Random, median: float) -> Timing:
    return Timing([round(median * rng.uniform(0.95, 1.08), 9) for _ in range(20)])


def _mode(rng: random.Random, mode: str, kernels: int, bytes_moved: int, flops: int,
          gpu: bool) -> ModeRecord:
    names = [f"aten::{rng.choice(OPS)}_{i}" if mode == "eager" else
             f"{'triton' if gpu else 'cpp'}_fused_{rng.choice(OPS)}_{i}" for i in range(kernels)]
    record = ModeRecord(
        mode=mode,
        kernel_launches=kernels + rng.randint(0, 3),
        kernels=[Kernel(name, "aten" if mode == "eager" else "generated", rng.randint(1, 3),
                        rng.uniform(1e-6, 1e-4) if gpu else None) for name in names],
        bytes_moved=bytes_moved,
        flops=flops,
        time=_timing(rng, rng.uniform(1e-4, 5e-2)),
    )
    # Peak memory: a few large tensors alive at once, sizes over three orders of magnitude.
    record.peak_allocations = [
        Allocation(f"aten::{rng.choice(OPS)}", rng.randint(1 << 12, bytes_moved // 4 + (1 << 12)),
                   f"[{rng.randint(1, 64)}, {rng.randint(64, 4096)}] float32")
        for _ in range(rng.randint(2, 8))
    ]
    record.peak_memory = sum(a.bytes for a in record.peak_allocations)
    if gpu:
        seconds = rng.uniform(5e-5, 5e-3)
        record.device_seconds = seconds
        record.utilisation = Utilisation(seconds, bytes_moved / seconds, flops / seconds,
                                         3.35e12, 989.4e12, "datasheet:H100 SXM fp16")
        record.nvml = NvmlSummary(samples=40, window_seconds=0.4, gpu_util_percent=95.0,
                                  memory_util_percent=60.0, memory_used_bytes=2 << 30,
                                  sm_clock_mhz=1980.0, power_watts=600.0, temperature_c=57.0)
    return record


def synthetic_results(tests: int = 1000, seed: int = 0) -> RunResults:
    """A deterministic large run: 10-40 kernels per mode, a quarter of the tests on a GPU,
    2% regressed (with graph-break hints), 3% improved, 5% new, the rest unchanged, and
    one test in 200 errored; CPU records say "no GPU" like the runner's."""
    rng = random.Random(seed)
    entries = []
    for index in range(tests):
        gpu = index % 4 == 3
        eager_kernels = rng.randint(10, 40)
        compiled_kernels = max(1, eager_kernels // rng.randint(2, 6))
        eager_bytes = rng.randint(1 << 20, 1 << 30)
        flops = rng.randint(0, 1 << 36)
        breaks = rng.choice((0, 0, 0, 1, 2))
        compiled_bytes = eager_bytes // rng.randint(2, 4)
        eager = _mode(rng, "eager", eager_kernels, eager_bytes, flops, gpu)
        compiled = _mode(rng, "compiled", compiled_kernels, compiled_bytes, flops, gpu)
        if not gpu:
            for record in (eager, compiled):
                record.unavailable.update(dict.fromkeys(
                    ("nvml", "utilisation", "device_seconds"), "no GPU: this run was on the CPU"))
        compiled.graphs, compiled.graph_breaks, compiled.recompiles = breaks + 1, breaks, 0
        compiled.compile_seconds = rng.uniform(0.5, 40)
        compiled.graph_break_details = [
            GraphBreak(f"Unsupported Tensor.item() call\n  from user code line {b}",
                       f"tests/test_suite_{index // 50}.py:{10 + b}", "forward")
            for b in range(breaks)
        ]
        measurement = Measurement(
            test_id=f"tests/test_suite_{index // 50}.py::test_model[{index}-fp32-batch{index % 8}]",
            name="default" if index % 5 else "backward",
            train=index % 5 == 0,
            environment=GPU if gpu else CPU,
            eager=eager,
            compiled=compiled,
            numerics=Numerics(checked=True, ok=True, max_abs_error=1e-6, max_rel_error=1e-5,
                              atol=1e-5, rtol=1.3e-6),
        )
        roll = rng.random()
        hint = f"new graph break at tests/test_suite_{index // 50}.py:10: Unsupported call"
        if roll < 0.02:
            verdict = Verdict(measurement.key, "regressed", [
                Change("compiled kernel_launches", compiled_kernels - 1, compiled_kernels,
                       "regressed", [hint, f"kernel appeared: cpp_fused_add_{index}"]),
                Change("graph_breaks", 0, max(breaks, 1), "regressed", [hint]),
            ])
        elif roll < 0.05:
            verdict = Verdict(measurement.key, "improved", [
                Change("compiled bytes_moved", compiled_bytes * 2, compiled_bytes, "improved")])
        elif roll < 0.10:
            verdict = Verdict(measurement.key, "new")
        else:
            verdict = Verdict(measurement.key, "unchanged")
        entries.append(ResultEntry(measurement, verdict))
    errors = [TestError(f"tests/test_suite_{i // 50}.py::test_broken[{i}]", "setup",
                        "RuntimeError: fixture failed\n" + "  traceback line\n" * 40)
              for i in range(0, tests, 200)]
    return RunResults(entries=entries, created="2025-11-26T14:40:00+00:00",
                      tool_version="0.1.0", rules=asdict(Rules()),
                      baseline_path=".perfguard/baseline.json", errors=errors)


def all_regressed(results: RunResults) -> RunResults:
    """The same run with every test regressed: the worst case for the job summary."""
    entries = []
    for entry in results.entries:
        m = entry.measurement
        hint = f"new graph break at {m.test_id.split('::')[0]}:10: Unsupported call"
        entries.append(ResultEntry(m, Verdict(m.key, "regressed", [
            Change("compiled kernel_launches", 1, m.compiled.kernel_launches, "regressed",
                   [hint, f"kernel appeared: cpp_fused_add_{m.key}"]),
            Change("compiled peak_memory", 1 << 20, m.compiled.peak_memory, "regressed", [hint]),
        ])))
    return RunResults(entries=entries, created=results.created, errors=results.errors)


def best_of(repeat: int, render: Callable[[], str]) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = len(render())
        best = min(best, time.perf_counter() - start)
    return best, size


def _peak_rss() -> int:
    """This process's peak resident memory, in bytes (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _measure(what: str, size: int, runs: int) -> dict[str, float]:
    """In this (fresh) process: build the input, render ``what``, report bytes, seconds and
    peak RSS as JSON. Uses only what every version of the package has."""
    if what == "history":
        from bench_history import build  # the history benchmark's bulk builder

        from pytest_perfguard.history.report import collect, render_history_html
        from pytest_perfguard.history.store import HistoryStore

        with tempfile.TemporaryDirectory() as folder:
            db = Path(folder) / "history.sqlite"
            build(db, runs, size)
            before = _peak_rss()
            start = time.perf_counter()
            with HistoryStore.open(db) as store:
                text = render_history_html(collect(store, last=runs))
    else:
        results = synthetic_results(size)
        before = _peak_rss()
        start = time.perf_counter()
        if what == "html":
            text = render_html(results)
        else:  # imported here: --compare-with measures versions that have no comment
            from pytest_perfguard.reporting.markdown import render_markdown_comment

            text = render_markdown_comment(results)
    seconds = time.perf_counter() - start
    return {"bytes": len(text.encode()), "chars": len(text), "seconds": seconds,
            "peak_rss": _peak_rss(), "rss_before": before}


def _child(what: str, size: int, runs: int, package: str | None) -> dict[str, float]:
    env = dict(os.environ)
    path = [str(Path(__file__).parent)] + ([package] if package else [])
    env["PYTHONPATH"] = os.pathsep.join(path + [env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, __file__, "--measure", what, str(size), str(runs)],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measuring {what} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def scale(args: argparse.Namespace) -> bool:
    """The bounded pages at scale; False when the comment is over its bound."""
    print("\nat scale (each in a fresh process; peak RSS includes building the input)")
    cases = [("report.html", "html", args.scale_tests, 0,
              f"{args.scale_tests:,} tests"),
             ("PR comment", "comment", args.scale_tests, 0, f"{args.scale_tests:,} tests"),
             ("history.html", "history", args.history_tests, args.history_runs,
              f"{args.history_runs} runs x {args.history_tests:,} tests")]
    fits = True
    for label, what, size, runs, of in cases:
        now = _child(what, size, runs, None)
        line = (f"  {label:13} {of:26} {now['bytes'] / 1e6:8.2f} MB {now['seconds']:7.2f} s "
                f"peak RSS {now['peak_rss'] / 2**20:7.0f} MiB "
                f"(+{(now['peak_rss'] - now['rss_before']) / 2**20:.0f} rendering)")
        if what == "comment":
            fits = fits and now["chars"] <= COMMENT_LIMIT
            line += f", {now['chars']:,.0f} characters"
        elif args.compare_with:
            old = _child(what, size, runs, args.compare_with)
            line += (f"\n  {'':13} {'before (' + args.compare_with + ')':26} "
                     f"{old['bytes'] / 1e6:8.2f} MB {old['seconds']:7.2f} s peak RSS "
                     f"{old['peak_rss'] / 2**20:7.0f} MiB: now {now['bytes'] / old['bytes']:.1%}"
                     f" of the size, {now['seconds'] / old['seconds']:.1%} of the time")
        print(line, flush=True)
    return fits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tests", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--scale-tests", type=int, default=5000)
    parser.add_argument("--history-runs", type=int, default=100)
    parser.add_argument("--history-tests", type=int, default=1000)
    parser.add_argument("--compare-with", metavar="DIR",
                        help="also measure the package found in DIR, for the ratios")
    parser.add_argument("--no-scale", action="store_true", help="skip the measures at scale")
    parser.add_argument("--measure", nargs=3, metavar=("WHAT", "SIZE", "RUNS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        what, size, runs = args.measure
        print(json.dumps(_measure(what, int(size), int(runs))))
        return 0

    start = time.perf_counter()
    results = synthetic_results(args.tests)
    print(f"built {args.tests} synthetic measurements in {time.perf_counter() - start:.2f} s")

    reporters: dict[str, Callable[[], str]] = {
        "markdown": lambda: render_markdown(results),
        "markdown job summary": lambda: render_markdown_summary(results),
        "html": lambda: render_html(results),
        "terminal": lambda: render_terminal(results),
        "terminal -v": lambda: render_terminal(results, verbose=True),
        "json (results.dumps)": results.dumps,
        "export github-action-benchmark": lambda: export(results, "github-action-benchmark"),
        "export bencher": lambda: export(results, "bencher"),
    }
    total = 0.0
    print(f"{'reporter':32} {'seconds':>8} {'output':>10}")
    for name, render in reporters.items():
        seconds, size = best_of(args.repeat, render)
        total += seconds
        print(f"{name:32} {seconds:8.3f} {size / 1e6:8.2f} MB")
    ratio = total / BUDGET_SECONDS
    print(f"{'total':32} {total:8.3f}   {ratio:.0%} of the {BUDGET_SECONDS:.0f} s budget "
          f"({'ok' if total <= BUDGET_SECONDS else 'OVER BUDGET'})")

    print(f"\njob summary ($GITHUB_STEP_SUMMARY, GitHub's limit {GITHUB_SUMMARY_LIMIT:,} bytes)")
    from pytest_perfguard.reporting.markdown import render_markdown_comment

    fits = True
    for label, run in (("this run", results), ("every test regressed", all_regressed(results))):
        full = len(render_markdown(run).encode())
        summary = len(render_markdown_summary(run).encode())
        comment = len(render_markdown_comment(run))
        fits = fits and summary <= GITHUB_SUMMARY_LIMIT and comment <= COMMENT_LIMIT
        print(f"  {label:22} report.md {full / 1e6:6.2f} MB, summary {summary:>9,} bytes "
              f"({summary / GITHUB_SUMMARY_LIMIT:.0%} of the limit), PR comment "
              f"{comment:,} characters")
    if not args.no_scale:
        fits = scale(args) and fits
    return 0 if total <= BUDGET_SECONDS and fits else 1


if __name__ == "__main__":
    sys.exit(main())
