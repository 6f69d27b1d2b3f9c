"""How long the reporters take on a large run: 1,000 synthetic tests.

    python benchmarks/bench_report.py [--tests 1000] [--repeat 2]

Prints the best-of-``repeat`` time of each reporter (markdown, the bounded job summary,
HTML, terminal, results.json, both exporters) and the total against the 5 s budget a CI
job can spend on reports, then the job summary's size against GitHub's 1 MiB limit for
$GITHUB_STEP_SUMMARY (for this run, and for one where every test regressed). Exits with
status 1 when the total is over budget or a summary is over the limit. No torch needed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tests", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)

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
    fits = True
    for label, run in (("this run", results), ("every test regressed", all_regressed(results))):
        full = len(render_markdown(run).encode())
        summary = len(render_markdown_summary(run).encode())
        fits = fits and summary <= GITHUB_SUMMARY_LIMIT
        print(f"  {label:22} report.md {full / 1e6:6.2f} MB, summary {summary:>9,} bytes "
              f"({summary / GITHUB_SUMMARY_LIMIT:.0%} of the limit)")
    return 0 if total <= BUDGET_SECONDS and fits else 1


if __name__ == "__main__":
    sys.exit(main())
