"""Does perfguard's reported time agree with a plain timing of the same calls?

Timing truth is shown here, not asserted by a test: a wall-time relation depends on the
machine's load (``test_measured_time_agrees_with_plain_timing`` failed in a fresh-clone
``.ci/run`` on a loaded machine, 0.83 ms measured vs 0.27 ms plain). For a three-layer MLP
like the example project's (0.1 ms a call on a 2-core VM) it prints, eager and compiled:
the median of 200 plain calls (and how many of them stalled: threads waited for a CPU),
then ``measure()``'s median, sample count and ``noisy`` flag, without time gating (the small
budget) and with it (``repeats`` clean calls). With ``--burst`` the process is pinned to one
CPU for 1.5 s as the timed calls start, so the OpenMP team's threads share a core and every
parallel region stalls: the gated timer should wait the burst out.

    python benchmarks/bench_timing.py [--burst]

Read it as: medians within a small factor of the plain ones, or marked noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_perfguard.collectors import timing  # noqa: E402
from pytest_perfguard.collectors.cpu_wait import RunQueueWait, stalled  # noqa: E402
from pytest_perfguard.runner import ProfileOptions, measure  # noqa: E402


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(128, 256)
        self.fc2 = torch.nn.Linear(256, 256)
        self.fc3 = torch.nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.fc1(x))
        return self.fc3(F.gelu(self.fc2(x)) * 0.5 + x.mean())


def plain_medians(model: Any, x: torch.Tensor, calls: int = 200) -> tuple[list[float], int]:
    """Medians of plain calls, eager then compiled, and how many calls stalled."""
    waits = RunQueueWait()
    compiled = torch.compile(model)
    medians, stalls = [], 0
    with torch.no_grad():
        for fn in (model, compiled):
            for _ in range(3):
                fn(x)
            samples = []
            for _ in range(calls):
                waited = waits.seconds()
                start = time.perf_counter()
                fn(x)
                samples.append(time.perf_counter() - start)
                stalls += waits.available and stalled(samples[-1], waits.seconds() - waited)
            medians.append(statistics.median(samples))
    return medians, stalls


def pin_process(cpus: set[int]) -> None:
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), cpus)
        except OSError:
            pass  # the thread ended meanwhile


def with_burst() -> None:
    """Pin the process to one CPU for 1.5 s whenever the timed calls start."""
    cpus = os.sched_getaffinity(0)
    timed = timing.time_interleaved

    def burst_then_time(*args: Any, **kwargs: Any) -> None:
        pin_process({min(cpus)})
        release = threading.Timer(1.5, pin_process, args=(cpus,))
        release.start()
        try:
            timed(*args, **kwargs)
        finally:
            release.cancel()
            pin_process(cpus)

    timing.time_interleaved = burst_then_time  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="pin to one CPU as timing starts")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, x = MLP().eval(), torch.randn(32, 128)
    if args.burst:
        with_burst()
    rows = []
    for full in (False, True):
        result = measure(model, (x,), {}, ProfileOptions(repeats=20, full_timing=full),
                         test_id="bench")
        rows.append(("full" if full else "budget", result))
    (eager_plain, compiled_plain), stalls = plain_medians(model, x)
    print(f"plain: eager {eager_plain * 1e3:.3f} ms, compiled {compiled_plain * 1e3:.3f} ms "
          f"({stalls} of 400 calls stalled)")
    for label, result in rows:
        for mode, plain in (("eager", eager_plain), ("compiled", compiled_plain)):
            timing = getattr(result, mode).time
            print(f"{label:8} {mode:8} median {timing.median * 1e3:.3f} ms "
                  f"({timing.median / plain:.2f}x plain), {len(timing.samples)} samples, "
                  f"noisy={timing.noisy}")


if __name__ == "__main__":
    main()
