"""Count kernel launches in the profiler event rows (``events.py``) of one model call.

CPU: a kernel is an operator event that does work. The profiler records every operator on
the way down, so the event tree is walked from the top:

- an op that decomposes (CompositeImplicitAutograd, e.g. ``aten::linear``) is looked
  through: its children are examined instead;
- a view or metadata op (``aten::view``, ``aten::t``, ``aten::empty``...) is no kernel;
- any other op (``aten::mul``, ``aten::addmm``...) is one kernel, and its children (the
  scalar wrapping inside ``aten::mul``, the ``aten::copy_`` inside ``aten::addmm``) are
  part of it, not separate launches;
- inside a compiled graph (``## Call CompiledFxGraph ... ##``), inductor's generated C++
  kernels appear as events such as ``cpp_fused_add_mul_0`` (named by
  ``private.inductor.annotated_kernels``) or ``graph_0_cpp_fused_add_mul_0`` (with
  ``cpp.enable_kernel_profile``, used with ``cpp_wrapper``; inside a named call it is part
  of it); each is one kernel, next to extern kernels (aten ops).
- a user's custom op is looked through when its implementation runs kernels; otherwise it
  counts as one.

CUDA: every device activity event of the call: kernels, memcpy and memset; range
annotations that the profiler mirrors on the GPU timeline are skipped.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..record import Kernel
from .events import EventRow, children
from .private.aten import classify_op

COMPILED_GRAPH_PREFIX = "## Call CompiledFxGraph"
COMPILED_REGION_PREFIX = "Torch-Compiled Region"
_GENERATED_KERNEL = re.compile(r"^(graph_\d+_)?cpp_fused_|^(graph_\d+_)?cpp_|^triton_")
_GRAPH_PREFIX = re.compile(r"^graph_\d+_")
_REGION_ID = re.compile(r"Torch-Compiled Region:\s*(\d+/\d+)")


@dataclass
class KernelCount:
    launches: int = 0
    kernels: list[Kernel] = field(default_factory=list)
    #: Compile ids of the compiled regions that ran (``Torch-Compiled Region: 1/0``).
    compiled_regions: list[str] = field(default_factory=list)
    #: aten kernels that ran outside any compiled graph, with their input shapes and dtypes
    #: (for the byte estimate of eager code between graph breaks).
    outside_graph_ops: list[tuple[str, list[Any], list[Any]]] = field(default_factory=list)


def count_cpu_kernels(rows: list[EventRow]) -> KernelCount:
    """Count CPU kernels in the event rows of exactly one model call."""
    result = KernelCount()
    names: Counter[tuple[str, str]] = Counter()
    roots, kids = children(rows)

    def visit(index: int, in_graph: bool) -> int:
        """Returns how many kernels were counted in this subtree."""
        row = rows[index]
        name = row.name
        _note_region(name, result)
        below = kids.get(index, [])
        if name.startswith(COMPILED_GRAPH_PREFIX):
            return sum(visit(child, True) for child in below)
        if in_graph and _GENERATED_KERNEL.search(name):
            names[(normalize_kernel_name(name), "generated")] += 1
            return 1
        kind = classify_op(name)
        if kind == "kernel":
            names[(name, "aten")] += 1
            if not in_graph:
                result.outside_graph_ops.append((name, row.input_shapes, row.input_types))
            return 1
        if kind in ("view", "metadata"):
            return 0
        if kind == "custom":
            inner = sum(visit(child, in_graph) for child in below)
            if inner == 0:
                names[(name, "custom")] += 1
                return 1
            return inner
        # composite, or not an operator (a Python range, autograd node, compiled region)
        return sum(visit(child, in_graph) for child in below)

    result.launches = sum(visit(root, False) for root in roots)
    result.kernels = [
        Kernel(name=name, kind=kind, count=count) for (name, kind), count in sorted(names.items())
    ]
    return result


def _note_region(name: str, result: KernelCount) -> None:
    """Record the compile id of a ``Torch-Compiled Region: 1/0`` event."""
    if name.startswith(COMPILED_REGION_PREFIX):
        match = _REGION_ID.search(name)
        if match:
            result.compiled_regions.append(match.group(1))


def normalize_kernel_name(name: str) -> str:
    """Drop inductor's process-wide graph counter (``graph_3_cpp_fused_x_0`` ->
    ``cpp_fused_x_0``) so names do not depend on which tests ran before."""
    return _GRAPH_PREFIX.sub("", name)


def count_device_kernels(rows: list[EventRow]) -> KernelCount:
    """Count CUDA activity (kernels, memcpy, memset) in the event rows of one call."""
    result = KernelCount()
    counts: Counter[tuple[str, str]] = Counter()
    seconds: dict[tuple[str, str], float] = {}
    for row in rows:
        if not row.on_device:
            _note_region(row.name, result)
            continue
        if row.name.startswith("## ") or row.is_user_annotation:
            # Range annotations mirrored on the GPU timeline ("## Call CompiledFxGraph ##"
            # is a gpu_user_annotation spanning the graph's kernels), not launches.
            continue
        kind = device_event_kind(row.name)
        key = (row.name, kind)
        counts[key] += 1
        seconds[key] = seconds.get(key, 0.0) + row.dur_us / 1e6
    result.launches = sum(counts.values())
    result.kernels = [
        Kernel(name=name, kind=kind, count=count, device_seconds=seconds[(name, kind)])
        for (name, kind), count in sorted(counts.items())
    ]
    return result


def device_event_kind(name: str) -> str:
    lowered = name.lower()
    if lowered.startswith("memcpy"):
        return "memcpy"
    if lowered.startswith("memset"):
        return "memset"
    if name.startswith("triton_") or "cpp_fused" in name:
        return "generated"
    return "cuda"
