"""Count kernel launches from a torch.profiler run of one model call.

CPU: a kernel is an operator event that does work. The profiler records every operator on
the way down, so the event tree is walked from the top:

- an op that decomposes (CompositeImplicitAutograd, e.g. ``aten::linear``) is looked
  through: its children are examined instead;
- a view or metadata op (``aten::view``, ``aten::t``, ``aten::empty``...) is no kernel;
- any other op (``aten::mul``, ``aten::addmm``...) is one kernel, and its children (the
  scalar wrapping inside ``aten::mul``, the ``aten::copy_`` inside ``aten::addmm``) are
  part of it, not separate launches;
- inside a compiled graph (``## Call CompiledFxGraph ... ##``), inductor's generated C++
  kernels appear as events such as ``graph_0_cpp_fused_add_mul_0`` (with
  ``cpp.enable_kernel_profile``); each is one kernel, next to extern kernels (aten ops).
- a user's custom op is looked through when its implementation runs kernels; otherwise it
  counts as one.

CUDA: every device activity event of the call: kernels, memcpy and memset; range
annotations that the profiler mirrors on the GPU timeline are skipped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..record import Kernel
from ._torch_private import classify_op

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


class _Node:
    __slots__ = ("name", "children", "shapes", "dtypes")

    def __init__(self, name: str, shapes: Any = None, dtypes: Any = None) -> None:
        self.name = name
        self.children: list[_Node] = []
        self.shapes = shapes
        self.dtypes = dtypes


def _build_tree(events: Iterable[Any]) -> list[_Node]:
    """Rebuild the CPU event tree from profiler FunctionEvents (``cpu_parent`` links)."""
    nodes: dict[int, _Node] = {}
    order: list[tuple[Any, _Node]] = []
    for event in events:
        if _is_device_event(event):
            continue
        node = _Node(
            event.name,
            getattr(event, "input_shapes", None),
            getattr(event, "input_type", None) or getattr(event, "input_dtypes", None),
        )
        nodes[id(event)] = node
        order.append((event, node))
    roots: list[_Node] = []
    for event, node in order:
        parent = getattr(event, "cpu_parent", None)
        if parent is not None and id(parent) in nodes:
            nodes[id(parent)].children.append(node)
        else:
            roots.append(node)
    return roots


def _is_device_event(event: Any) -> bool:
    device_type = getattr(event, "device_type", None)
    return device_type is not None and "CPU" not in str(device_type)


def count_cpu_kernels(events: Iterable[Any]) -> KernelCount:
    """Count CPU kernels in profiler events of exactly one model call."""
    result = KernelCount()
    names: Counter[tuple[str, str]] = Counter()

    def visit(node: _Node, in_graph: bool) -> int:
        """Returns how many kernels were counted in this subtree."""
        name = node.name
        _note_region(name, result)
        if name.startswith(COMPILED_GRAPH_PREFIX):
            return sum(visit(child, True) for child in node.children)
        if in_graph and _GENERATED_KERNEL.search(name):
            names[(normalize_kernel_name(name), "generated")] += 1
            return 1
        kind = classify_op(name)
        if kind == "kernel":
            names[(name, "aten")] += 1
            if not in_graph:
                result.outside_graph_ops.append((name, node.shapes or [], node.dtypes or []))
            return 1
        if kind in ("view", "metadata"):
            return 0
        if kind == "custom":
            inner = sum(visit(child, in_graph) for child in node.children)
            if inner == 0:
                names[(name, "custom")] += 1
                return 1
            return inner
        # composite, or not an operator (a Python range, autograd node, compiled region)
        return sum(visit(child, in_graph) for child in node.children)

    total = sum(visit(root, False) for root in _build_tree(events))
    result.launches = total
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


def count_device_kernels(events: Iterable[Any]) -> KernelCount:
    """Count CUDA activity (kernels, memcpy, memset) in profiler events of one call."""
    result = KernelCount()
    counts: Counter[tuple[str, str]] = Counter()
    seconds: dict[tuple[str, str], float] = {}
    for event in events:
        if not _is_device_event(event):
            _note_region(event.name, result)
            continue
        if event.name.startswith("## ") or getattr(event, "is_user_annotation", False):
            # Range annotations mirrored on the GPU timeline ("## Call CompiledFxGraph ##"
            # is a gpu_user_annotation spanning the graph's kernels), not launches.
            continue
        kind = device_event_kind(event.name)
        key = (event.name, kind)
        counts[key] += 1
        seconds[key] = seconds.get(key, 0.0) + _device_seconds(event)
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


def _device_seconds(event: Any) -> float:
    time_range = getattr(event, "time_range", None)
    if time_range is not None:
        return float(time_range.elapsed_us()) / 1e6
    return float(getattr(event, "device_time", 0.0)) / 1e6
