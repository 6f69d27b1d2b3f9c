"""The allocation events of a profiled call, from the profiler's raw event tree.

Private APIs: ``prof.profiler.kineto_results.experimental_event_tree()``,
``torch._C._profiler._EventType`` and the nodes' ``extra_fields``
(``_ExtraFields_Allocation``, ``_ExtraFields_TorchOp``), and the profiler event names of
compiled code (``## Call CompiledFxGraph``, ``Torch-Compiled Region: 1/0``).
Checked on torch 2.11-2.13.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from . import Unavailable
from .dynamo import latest_compiles, user_location


@dataclass(frozen=True)
class AllocationEvent:
    """One allocation (``bytes`` > 0) or free (``bytes`` < 0) the profiler recorded."""

    time_ns: int
    #: Address of the block: pairs a free with its allocation.
    address: int
    bytes: int
    #: "cpu", "cuda", ... (the allocator's device type).
    device: str
    #: Names of the events around it, outermost first (``("aten::mul",)``; empty when the
    #: allocation happened outside any op, e.g. Python wrapping a scalar argument). A
    #: compiled graph's call is named by :func:`memory_trace`, not by its hash.
    ops: tuple[str, ...]
    #: ``path:LINE`` where the compiled function that allocated it starts, where known.
    location: str = ""


@dataclass(frozen=True)
class TensorSighting:
    """A tensor an op received as input, seen while shapes were recorded."""

    time_ns: int
    #: Address of the tensor's storage (equals its block's address).
    address: int
    sizes: tuple[int, ...]
    dtype: str
    #: Bytes of ``sizes`` in ``dtype`` (a contiguous tensor of that shape).
    nbytes: int


@dataclass
class MemoryTrace:
    """A profiled call's allocations and frees in time order, and the tensors ops saw."""

    events: list[AllocationEvent] = field(default_factory=list)
    sightings: list[TensorSighting] = field(default_factory=list)


def memory_trace(prof: Any) -> MemoryTrace:
    """Read the allocation events of a ``torch.profiler.profile(profile_memory=True)`` run.

    ``prof.events()`` (public) sums each op's allocations and frees into one number and so
    loses the order inside an op (a compiled graph is one op); the raw event tree keeps each
    allocation with its address, size, time and enclosing op:
    ``prof.profiler.kineto_results.experimental_event_tree()`` whose nodes have ``name``,
    ``start_time_ns``, ``children`` and ``extra_fields`` (``_ExtraFields_Allocation``:
    ``ptr``, ``alloc_size`` (negative for a free), ``device``; ``_ExtraFields_TorchOp``:
    ``inputs``, ``_TensorMetadata`` with ``storage_data_ptr``, ``sizes``, ``dtype`` when
    ``record_shapes``). torch's own ``torch.profiler._memory_profiler`` reads the same tree.
    Checked on torch 2.11-2.13. Raises :class:`Unavailable` when it is missing.

    A compiled graph's call, ``## Call CompiledFxGraph <hash> ##`` in the profiler (the hash
    is inductor's cache key: it changes with torch, inductor settings and paths), is named
    ``compiled graph 1/0`` after the innermost ``Torch-Compiled Region: 1/0`` around it
    (dynamo's compile id: frame 1, first compile), with that frame's ``file:LINE`` as the
    allocation's location; a call outside any region (a backward graph, run by autograd) is
    ``compiled graph #N``, numbered in the order such graphs are first called.
    """
    try:
        result = prof.profiler.kineto_results
        roots = result.experimental_event_tree()
        from torch._C._profiler import _EventType
    except (AttributeError, ImportError, RuntimeError) as exc:
        raise Unavailable(f"this torch's profiler has no allocation event tree ({exc})") from exc
    allocation_type = getattr(_EventType, "Allocation", None)
    torch_op_type = getattr(_EventType, "TorchOp", None)
    if allocation_type is None:
        raise Unavailable("this torch's profiler records no allocation events")
    trace = MemoryTrace()
    graphs = _GraphNames()
    stack: list[tuple[Any, tuple[str, ...], str]] = [(root, (), "") for root in reversed(roots)]
    while stack:
        node, outer, location = stack.pop()
        tag = getattr(node, "tag", None)
        extra = node.extra_fields
        if tag == allocation_type:
            trace.events.append(AllocationEvent(
                time_ns=int(node.start_time_ns), address=int(extra.ptr),
                bytes=int(extra.alloc_size), device=str(extra.device.type), ops=outer,
                location=location))
            continue
        if tag == torch_op_type:
            _note_inputs(trace.sightings, int(node.start_time_ns), getattr(extra, "inputs", ()))
        name, location = graphs.name(str(node.name), outer, location)
        inner = (*outer, name)
        stack.extend((child, inner, location) for child in reversed(node.children))
    # A stable sort: events at the same nanosecond keep the tree's order.
    trace.events.sort(key=lambda e: e.time_ns)
    trace.sightings.sort(key=lambda s: s.time_ns)
    return trace


_GRAPH_CALL = "## Call CompiledFxGraph"
_COMPILED_REGION = "Torch-Compiled Region: "


class _GraphNames:
    """Stable names for compiled graphs' calls in one profiled call (see :func:`memory_trace`)."""

    def __init__(self) -> None:
        self.unplaced: dict[str, str] = {}
        self.locations: dict[str, str] | None = None

    def name(self, event: str, outer: tuple[str, ...], location: str) -> tuple[str, str]:
        """(the event's name, the location of what runs inside it)."""
        if not event.startswith(_GRAPH_CALL):
            return event, location
        region = next((o.removeprefix(_COMPILED_REGION) for o in reversed(outer)
                       if o.startswith(_COMPILED_REGION)), None)
        if region is None:
            number = self.unplaced.setdefault(event, f"#{len(self.unplaced) + 1}")
            return f"compiled graph {number}", location
        return f"compiled graph {region}", self._location(region)

    def _location(self, compile_id: str) -> str:
        if self.locations is None:
            self.locations = {cid: user_location(str(m.co_filename), int(m.co_firstlineno or 0))
                              for cid, m in latest_compiles().items()}
        return self.locations.get(compile_id, "")


def _note_inputs(sightings: list[TensorSighting], time_ns: int, inputs: Any) -> None:
    for value in inputs or ():
        for item in value if isinstance(value, list) else (value,):
            address = getattr(item, "storage_data_ptr", None)
            sizes = getattr(item, "sizes", None)
            dtype = getattr(item, "dtype", None)
            if not address or sizes is None or not isinstance(dtype, torch.dtype):
                continue
            elements = 1
            for size in sizes:
                elements *= int(size)
            sightings.append(TensorSighting(
                time_ns=time_ns, address=int(address), sizes=tuple(int(s) for s in sizes),
                dtype=str(dtype).removeprefix("torch."),
                nbytes=elements * dtype.itemsize))
