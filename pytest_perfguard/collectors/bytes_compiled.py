"""Bytes moved by a compiled call: inductor's own count for each graph that ran, plus an
estimate for eager ops between graphs (after a graph break).

Inductor's count (``GraphLowering.count_bytes()``: each scheduler node's read/write buffer
sizes, what pytorch's ``test/inductor/test_perf.py`` asserts) arrives per compile id through
``private.inductor_bytes.capture_inductor_bytes``; which graphs ran in the profiled call comes from
the ``Torch-Compiled Region: <id>`` events the kernel counter noted, one per execution.
"""

from __future__ import annotations

from typing import Any

from ..record import KernelBytes, ModeRecord
from .kernels import KernelCount
from .private.dynamo import CompileRecorder
from .private.inductor import measurement_cache_dir

_DTYPE_BYTES: dict[str, int] = {
    "float": 4, "double": 8, "c10::Half": 2, "c10::BFloat16": 2, "Half": 2, "BFloat16": 2,
    "long int": 8, "int": 4, "short int": 2, "signed char": 1, "unsigned char": 1, "bool": 1,
    "c10::complex<float>": 8, "c10::complex<double>": 16,
}


def estimate_op_bytes(shapes: list[Any], dtypes: list[Any]) -> int:
    """Bytes of an eager op between compiled graphs, from the profiler's recorded inputs:
    every tensor input read once, and one output the size of the first tensor input."""
    sizes = []
    for shape, dtype in zip(shapes, dtypes, strict=False):
        if isinstance(shape, list) and shape and all(isinstance(d, int) for d in shape):
            elements = 1
            for d in shape:
                elements *= d
            sizes.append(elements * _DTYPE_BYTES.get(str(dtype), 4))
        elif shape == [] and str(dtype) in _DTYPE_BYTES and dtype != "Scalar":
            sizes.append(_DTYPE_BYTES[str(dtype)])
    return sum(sizes) + (sizes[0] if sizes else 0)


def compiled_bytes(recorder: CompileRecorder, counted: KernelCount, backend: str
                   ) -> tuple[int | None, str | None]:
    """(bytes moved, None), or (None, why it is unavailable) - never a silent 0."""
    if recorder.bytes_unavailable:
        return None, recorder.bytes_unavailable
    ran = set(counted.compiled_regions)
    if ran and not recorder.bytes_by_compile_id:
        return None, (f"backend {backend!r} reported no inductor byte counts"
                      if backend != "inductor"
                      else "inductor reported no byte counts for the compiled graphs")
    missing = sorted(r for r in ran if r not in recorder.bytes_by_compile_id
                     and any(g.compile_id == r for g in recorder.graphs))
    if missing:
        return None, f"no inductor byte count for compiled graph(s) {', '.join(missing)}"
    # Once per execution: a graph that runs twice in one call (a block repeated after a
    # graph break reuses the same compiled code) moves its bytes twice.
    total = sum(recorder.bytes_by_compile_id.get(r, 0) for r in counted.compiled_regions)
    total += sum(estimate_op_bytes(shapes, dtypes)
                 for _, shapes, dtypes in counted.outside_graph_ops)
    return total, None


#: How many of the compiled kernels that move the most bytes a measurement keeps.
BYTES_BREAKDOWN_SIZE = 10


def record_bytes_breakdown(
    eager_record: ModeRecord, compiled_record: ModeRecord, recorder: CompileRecorder
) -> None:
    """Where compiled code moves more bytes than eager: its largest kernels by bytes (the
    scheduler nodes of the graphs compiled on the first call, inductor's own count)."""
    if (eager_record.bytes_moved is None or compiled_record.bytes_moved is None
            or compiled_record.bytes_moved <= eager_record.bytes_moved):
        return
    first_ids = {g.compile_id for g in recorder.graphs if not g.after_first_call}
    unlisted = sorted(i for i in first_ids if recorder.bytes_by_compile_id.get(i)
                      and not recorder.nodes_by_compile_id.get(i))
    if unlisted:
        compiled_record.unavailable["bytes_breakdown"] = (
            f"no kernel list for compiled graph(s) {', '.join(unlisted)} (an inductor cache "
            "entry written without it; clear "
            f"{measurement_cache_dir() or 'the inductor cache'})")
        return
    nodes = [KernelBytes(kernel=n.kernel, bytes=n.bytes, ops=list(n.ops), reads=list(n.reads),
                         writes=list(n.writes), graph=compile_id)
             for compile_id, found in sorted(recorder.nodes_by_compile_id.items())
             if compile_id in first_ids for n in found]
    nodes.sort(key=lambda k: (-k.bytes, k.graph, k.kernel, k.writes))
    compiled_record.bytes_breakdown = nodes[:BYTES_BREAKDOWN_SIZE]
