"""How long this process's threads waited for a CPU: tells a clean timed call from a stalled one.

Why: on a small machine (2 cores here, and on most CI runners) ATen and inductor's C++ kernels
run each parallel region on a team of OpenMP threads, one per core, and a region ends only when
every thread of the team has run. While anything else is runnable on the machine (another
process, a compile, a second xdist worker), a team member sits in the run queue and the whole
call waits a scheduler time slice for it: a 0.12 ms MLP call then takes 40-100 ms, in eager and
compiled mode alike, the symptom of the ~40 ms "first measured test" timings (reproduced here
whenever another process ran; never with the process alone on the machine, cold or warm).

Linux counts, per thread, the time spent runnable but not running (``run_delay``, the second
field of ``/proc/<pid>/task/<tid>/schedstat``, in nanoseconds). Summed over this process's
threads around one call, it is ~0 for a clean call (at most a few microseconds measured here)
and about the call's whole wall time for a stalled one, so the timer can drop stalled samples
and take new ones. Elsewhere (macOS, Windows, a kernel without schedstat) it is unavailable
and every sample is kept, as before.
"""

from __future__ import annotations

import os
from pathlib import Path

_TASK_DIR = Path("/proc/self/task")


def _read_run_delay_ns(task: str) -> int | None:
    try:
        with open(f"/proc/self/task/{task}/schedstat", "rb") as handle:
            fields = handle.read().split()
        return int(fields[1])
    except (OSError, IndexError, ValueError):
        return None  # the thread ended between listing and reading, or no schedstat


class RunQueueWait:
    """Cumulative seconds this process's threads have waited for a CPU, where the OS says."""

    def __init__(self) -> None:
        self.available = _TASK_DIR.is_dir() and _read_run_delay_ns(str(os.getpid())) is not None
        self.unavailable_reason = None if self.available else (
            "per-thread scheduler statistics (/proc/self/task/*/schedstat) are not available here")

    def seconds(self) -> float:
        """Total run-queue wait of all live threads (0.0 where unavailable)."""
        if not self.available:
            return 0.0
        total = 0
        for task in os.listdir(_TASK_DIR):
            delay = _read_run_delay_ns(task)
            if delay is not None:
                total += delay
        return total / 1e9


#: A sample is stalled when its threads waited for a CPU longer than this share of its wall
#: time (plus a small floor for the wake-up latency of a parallel region). Measured on a
#: loaded 2-core VM: clean 0.1 ms calls waited at most 7 us; stalled ones 100-135% of wall.
STALL_SHARE = 0.10
STALL_FLOOR_S = 20e-6


def stalled(wall_s: float, waited_s: float) -> bool:
    """Did this call spend a real part of its wall time waiting for a CPU?"""
    return waited_s > STALL_SHARE * wall_s + STALL_FLOOR_S
