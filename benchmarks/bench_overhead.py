"""What perfguard costs on top of the work any compile check does, and how it scales.

1. Overhead: for each example model, side by side in one process,
   bare   = eager warm-up + torch.compile's first call + the same interleaved timed calls
   perfguard = runner.measure() (all of the above plus profiling, byte and FLOP counting)
   each timed in a fresh child process (best of 2), and prints (perfguard - bare) / bare
   against the 25% target.
2. Scaling: a stack of N GPT blocks (N = 6, 12, 24), one eager call profiled: prints the
   profiler event count and the time perfguard's analysis takes (event tree walk + dispatch
   byte counting), per 1,000 events: flat per-event cost means linear growth.

    python benchmarks/bench_overhead.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "example_project"))

from tinymodels import MLP, GPTBlock, SmallConvNet  # noqa: E402

from pytest_perfguard.collectors._torch_private import (  # noqa: E402
    measurement_compile_config,
    reset_dynamo,
)
from pytest_perfguard.collectors.bytes_eager import ByteCounter  # noqa: E402
from pytest_perfguard.collectors.kernels import count_cpu_kernels  # noqa: E402
from pytest_perfguard.runner import ProfileOptions, measure  # noqa: E402

REPEATS, WARMUP = 20, 2


def bare(model: torch.nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    reset_dynamo()
    compiled = torch.compile(model)
    # Same compile caches as perfguard (FX-graph cache off): with it on, a cache hit for
    # the MLP aborted torch 2.13's CPU build here ("corrupted size vs. prev_size").
    with measurement_compile_config(), torch.no_grad():
        for _ in range(WARMUP):
            model(x)
        for _ in range(WARMUP):
            compiled(x)
        for _ in range(REPEATS):
            model(x)
            compiled(x)
    return time.perf_counter() - start


def with_perfguard(model: torch.nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    measure(model, (x,), {}, ProfileOptions(repeats=REPEATS, warmup=WARMUP), test_id="bench")
    return time.perf_counter() - start


def _case(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "mlp": lambda: (MLP().eval(), torch.randn(32, 128)),
        "gpt_block": lambda: (GPTBlock().eval(), torch.randn(4, 32, 64)),
        "convnet": lambda: (SmallConvNet().eval(), torch.randn(4, 3, 32, 32)),
    }[name]()


def _one(side: str, name: str) -> None:
    """Child process: time one side once (a fresh process per sample: repeated
    compile/reset cycles of some models crashed torch 2.13's CPU build in one process)."""
    model, x = _case(name)
    print(f"SECONDS {(bare if side == 'bare' else with_perfguard)(model, x):.4f}")


def _sample(side: str, name: str) -> float:
    import subprocess

    out = subprocess.run([sys.executable, __file__, "--one", side, name], capture_output=True,
                         text=True, check=True).stdout
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("SECONDS")))


def overhead() -> None:
    print("model        bare (s)  perfguard (s)  overhead  target <= 25%")
    for name in ("mlp", "gpt_block", "convnet"):
        _sample("bare", name)  # warm inductor's on-disk code cache for both sides
        b = min(_sample("bare", name) for _ in range(2))
        p = min(_sample("perfguard", name) for _ in range(2))
        ratio = (p - b) / b
        print(f"{name:<12} {b:8.2f}  {p:13.2f}  {ratio:8.1%}  {'ok' if ratio <= 0.25 else 'OVER'}",
              flush=True)


def scaling() -> None:
    from torch.profiler import ProfilerActivity, profile

    print("\nblocks  events  kernels  walk (ms)  bytes pass (ms)  us per 1k events (walk)")
    for blocks in (6, 12, 24):
        model = torch.nn.Sequential(*[GPTBlock() for _ in range(blocks)]).eval()
        x = torch.randn(2, 32, 64)
        with torch.no_grad():
            model(x)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                model(x)
            events = list(prof.events())
            start = time.perf_counter()
            counted = count_cpu_kernels(events)
            walk = time.perf_counter() - start
            start = time.perf_counter()
            bare_start = time.perf_counter()
            model(x)
            bare_call = time.perf_counter() - bare_start
            start = time.perf_counter()
            with ByteCounter():
                model(x)
            byte_pass = time.perf_counter() - start - bare_call
        print(f"{blocks:6d}  {len(events):6d}  {counted.launches:7d}  {walk * 1e3:9.1f}  "
              f"{byte_pass * 1e3:15.1f}  {walk * 1e9 / len(events):10.1f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        _one(sys.argv[2], sys.argv[3])
    else:
        overhead()
        scaling()
