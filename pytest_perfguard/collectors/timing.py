"""Per-call wall time of the two modes, taken alternately, with calls that waited for a
CPU dropped and retaken within a bounded budget (``cpu_wait.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from ..record import ModeRecord, Timing
from .cpu_wait import RunQueueWait, stalled

#: Wall time not gated (the default): the time is a reported number only, so take at most
#: this many clean calls per mode, within about this much wall time in all.
UNGATED_CALLS = 5
UNGATED_BUDGET_S = 0.1
#: ... and while a mode has no clean call yet (a burst of load), up to this long.
UNGATED_MAX_S = 0.3
#: Wall time gated: ``repeats`` clean calls per mode; stalled calls (see
#: ``collectors/cpu_wait.py``) are retaken for up to this long beyond the first ``repeats``
#: pairs, to wait out a burst of load on the machine.
GATED_WAIT_S = 5.0


def time_interleaved(
    eager: Callable[[], Any],
    compiled: Callable[[], Any],
    device: torch.device,
    repeats: int,
    eager_record: ModeRecord,
    compiled_record: ModeRecord,
    *,
    full: bool = False,
) -> None:
    """Per-call wall time, eager and compiled alternating (as PyTorch's dashboard does).

    On the CPU a call whose threads waited for a CPU (another process ran) is not a sample
    of the model: it is dropped and retaken, within a bounded budget. With ``full``
    ``repeats`` clean samples per mode are wanted and a burst of load is waited out for up
    to :data:`GATED_WAIT_S`; without it (the default) at most :data:`UNGATED_CALLS` per mode
    within :data:`UNGATED_BUDGET_S` (:data:`UNGATED_MAX_S` while a mode has no clean call).
    If the machine stays loaded throughout, the first samples taken are kept as they are
    (no more than ``repeats`` of them, as asked for; they usually come out ``noisy``).
    """
    clock = "cuda-events" if device.type == "cuda" else "perf_counter"
    wanted = repeats if full else min(repeats, UNGATED_CALLS)
    waits = RunQueueWait() if device.type == "cpu" else None
    if waits is not None and not waits.available:
        waits = None  # not Linux: every sample is kept
    clean: dict[str, list[float]] = {"eager": [], "compiled": []}
    everything: dict[str, list[float]] = {"eager": [], "compiled": []}
    start = time.perf_counter()
    deadline: float | None = None if full else start + UNGATED_BUDGET_S
    pairs = 0
    while min(len(clean["eager"]), len(clean["compiled"])) < wanted:
        for label, call in (("eager", eager), ("compiled", compiled)):
            waited_before = waits.seconds() if waits is not None else 0.0
            sample = _time_one(call, device)
            everything[label].append(sample)
            if waits is None or not stalled(sample, waits.seconds() - waited_before):
                clean[label].append(sample)
        pairs += 1
        now = time.perf_counter()
        if deadline is None and pairs >= repeats:
            deadline = now + GATED_WAIT_S  # gated: all repeats taken, now wait out stalls
        if deadline is not None and now >= deadline:
            if full or (clean["eager"] and clean["compiled"]) or now >= start + UNGATED_MAX_S:
                break
    for label, record in (("eager", eager_record), ("compiled", compiled_record)):
        samples = (clean[label] or everything[label])[:wanted]
        record.time = Timing(samples=samples, clock=clock)


def _time_one(call: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        from .peaks import cuda_event_seconds

        return cuda_event_seconds(torch, call)
    start = time.perf_counter()
    call()
    return time.perf_counter() - start

