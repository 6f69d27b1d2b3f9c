"""Peak memory of one model call, and what was alive at the peak.

Definition: the most bytes allocated by the call and alive at the same moment. Outputs
count (they are allocated by the call and alive when it returns); inputs and parameters do
not (allocated before it); with ``train=True`` the gradients the call allocates count.

CPU: the profiler's allocation events (``profile_memory=True``) of the call, in time order:
each allocation adds its bytes, each free of a block allocated *during the call* subtracts
them; the peak is the largest running sum. A free of a block allocated before the call (the
previous call's gradients when ``p.grad = None`` runs, an earlier output) is ignored, so
memory that existed before the call can never make the peak smaller. The CPU allocator
reports the bytes asked for, so the figure is exact and identical between runs.

CUDA: the caching allocator's own statistics around the call (``reset_peak_memory_stats``,
then the peak less the value before): ``requested_bytes``, the bytes asked for, as on CPU;
on a torch without it, ``allocated_bytes`` (``max_memory_allocated``), which counts blocks
rounded up to a multiple of 512 bytes (and a cached large block that is not split may hold
up to 1 MiB more than asked). The allocations listed at the peak are the profiler's CUDA
allocation events, whose sizes are those rounded blocks.

"Why": the allocations alive at the peak, largest first, each named by the op that made it:
the outermost aten kernel around it (as the kernel counter names kernels: ``aten::addmm``
inside ``aten::linear``), an inductor kernel, or the compiled graph whose wrapper allocated
the buffer (``compiled graph 0/0``: dynamo's compile id, see
``private.profiler.memory_trace``), with the compiled function's ``file:LINE``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..record import Allocation, ModeRecord
from .numerics import iter_tensors
from .private import Unavailable
from .private.aten import classify_op
from .private.profiler import AllocationEvent, MemoryTrace, TensorSighting, memory_trace

__all__ = [
    "TOP_ALLOCATIONS",
    "CudaPeak",
    "PeakMemory",
    "cuda_peak",
    "op_of",
    "output_shapes",
    "peak_memory",
    "record_peak",
]

#: How many of the allocations alive at the peak a record keeps.
TOP_ALLOCATIONS = 5

_COMPILED_GRAPH = "compiled graph "
_OUTSIDE = "(outside any op)"


@dataclass
class PeakMemory:
    """The peak of one call and the largest allocations alive at it."""

    peak_bytes: int
    allocations: list[Allocation] = field(default_factory=list)


def peak_memory(
    trace: MemoryTrace,
    device_type: str = "cpu",
    outputs: dict[int, tuple[str, int]] | None = None,
    top: int = TOP_ALLOCATIONS,
) -> PeakMemory:
    """The peak of the allocations on ``device_type`` in ``trace`` (one call, time order).

    ``outputs`` maps the storage address of each tensor the call returned to its shape text
    and storage bytes: it names the shapes of outputs, which no op saw as an input.
    """
    events = [e for e in trace.events if e.device == device_type]
    live: dict[int, int] = {}  # address -> index of its allocation event
    current = peak = 0
    peak_at = -1
    for index, event in enumerate(events):
        if event.bytes > 0:
            if event.address in live:  # a block reused without a recorded free
                current -= events[live.pop(event.address)].bytes
            live[event.address] = index
            current += event.bytes
            if current > peak:
                peak, peak_at = current, index
        elif event.bytes < 0 and event.address in live:
            current -= events[live.pop(event.address)].bytes
    if peak_at < 0:
        return PeakMemory(peak_bytes=0)
    alive = _alive_at(events, peak_at)
    # Largest first; equal sizes in the order they were allocated.
    alive.sort(key=lambda index: (-events[index].bytes, index))
    allocations = [
        Allocation(
            op=op_of(events[index].ops),
            bytes=events[index].bytes,
            shape=_shape(events, index, trace.sightings, outputs or {}),
            location=events[index].location,
        )
        for index in alive[:top]
    ]
    return PeakMemory(peak_bytes=peak, allocations=allocations)


def _alive_at(events: Sequence[AllocationEvent], peak_at: int) -> list[int]:
    """Indexes of the allocation events whose blocks are alive right after ``peak_at``."""
    live: dict[int, int] = {}
    for index in range(peak_at + 1):
        event = events[index]
        if event.bytes > 0:
            live[event.address] = index
        elif event.bytes < 0:
            live.pop(event.address, None)
    return list(live.values())


def _freed_at(events: Sequence[AllocationEvent], index: int) -> int | None:
    """Time the block allocated by ``events[index]`` was freed (None: alive at the end)."""
    address = events[index].address
    for event in events[index + 1:]:
        if event.address == address:
            return event.time_ns if event.bytes < 0 else None
    return None


def _shape(
    events: Sequence[AllocationEvent],
    index: int,
    sightings: Sequence[TensorSighting],
    outputs: dict[int, tuple[str, int]],
) -> str:
    """Shape text of the tensor in the block ``events[index]`` allocated, when known.

    Only a tensor whose bytes equal the block's is taken (not a view of part of it).
    """
    event = events[index]
    freed = _freed_at(events, index)
    for sighting in sightings:
        if sighting.time_ns < event.time_ns:
            continue
        if freed is not None and sighting.time_ns > freed:
            break
        if sighting.address == event.address and sighting.nbytes == event.bytes:
            return f"[{', '.join(str(s) for s in sighting.sizes)}] {sighting.dtype}"
    if freed is None and event.address in outputs:
        text, nbytes = outputs[event.address]
        if nbytes == event.bytes:
            return text
    return ""


def op_of(ops: Iterable[str]) -> str:
    """The op to name for an allocation made inside the events ``ops`` (outermost first).

    The outermost kernel (``aten::mul`` around the scalar wrapping in its ``aten::to``;
    ``aten::addmm`` under the composite ``aten::linear``), else an inductor kernel, else the
    innermost compiled graph, else the innermost event that is not bare allocation.
    """
    names = list(ops)
    for name in names:
        if classify_op(name) in ("kernel", "custom"):
            return name
    for name in reversed(names):
        if name.startswith(_COMPILED_GRAPH):
            return name
    for name in reversed(names):
        if classify_op(name) not in ("metadata", "view"):
            return name
    return names[-1] if names else _OUTSIDE


def output_shapes(tensors: Iterable[Any]) -> dict[int, tuple[str, int]]:
    """Storage address -> (shape text, storage bytes) of the tensors a call returned."""
    shapes: dict[int, tuple[str, int]] = {}
    for tensor in tensors:
        try:
            storage = tensor.untyped_storage()
            address, nbytes = int(storage.data_ptr()), int(storage.nbytes())
        except (AttributeError, RuntimeError):
            continue
        if address:
            sizes = ", ".join(str(s) for s in tensor.shape)
            dtype = str(tensor.dtype).removeprefix("torch.")
            shapes.setdefault(address, (f"[{sizes}] {dtype}", nbytes))
    return shapes


@dataclass
class CudaPeak:
    """The caching allocator's peak over a call, less what was allocated before it."""

    peak_bytes: int | None = None
    #: Which statistic gave it: "requested_bytes" (bytes asked for) or "allocated_bytes"
    #: (blocks, rounded up to 512 bytes), on a torch without the first.
    statistic: str = ""


@contextlib.contextmanager
def cuda_peak(device: torch.device) -> Iterator[CudaPeak]:
    """Measure the CUDA caching allocator's peak over the ``with`` body (no-op off CUDA).

    ``torch.cuda.reset_peak_memory_stats`` sets each peak to what is allocated now, so the
    peak after the call less the current value before it is the most the call added.
    ``requested_bytes`` (public in ``torch.cuda.memory_stats`` since torch 2.1) counts the
    bytes asked for, as the CPU figure does; ``max_memory_allocated`` counts blocks rounded
    up to 512 bytes, and a large block that is not split may hold up to 1 MiB more.
    """
    result = CudaPeak()
    if device.type != "cuda":
        yield result
        return
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_stats(device)
    torch.cuda.reset_peak_memory_stats(device)
    yield result
    torch.cuda.synchronize(device)
    after = torch.cuda.memory_stats(device)
    for statistic in ("requested_bytes", "allocated_bytes"):
        peak_key, current_key = f"{statistic}.all.peak", f"{statistic}.all.current"
        if peak_key in after and current_key in before:
            result.peak_bytes = int(after[peak_key]) - int(before[current_key])
            result.statistic = statistic
            return


def record_peak(
    record: ModeRecord,
    prof: Any,
    returned: Any,
    device: torch.device,
    cuda: CudaPeak,
) -> None:
    """Fill ``record.peak_memory`` and ``peak_allocations`` from one profiled call.

    ``prof`` is the ``torch.profiler.profile(profile_memory=True)`` that ran the call,
    ``returned`` what the call returned (still alive: it names the outputs' shapes),
    ``cuda`` the allocator peak taken around it on CUDA.
    """
    trace: MemoryTrace | None = None
    reason = ""
    try:
        trace = memory_trace(prof)
    except Unavailable as exc:
        reason = str(exc)
    outputs = output_shapes(t for _, t in iter_tensors(returned) if isinstance(t, torch.Tensor))
    found = peak_memory(trace, device.type, outputs) if trace is not None else None
    if device.type == "cuda":
        record.peak_memory = cuda.peak_bytes
        if cuda.peak_bytes is None:
            record.unavailable["peak_memory"] = "torch.cuda.memory_stats has no peak statistics"
    elif found is not None:
        record.peak_memory = found.peak_bytes
    else:
        record.unavailable["peak_memory"] = reason
    if found is not None:
        record.peak_allocations = found.allocations
