"""Inductor's byte count of each compiled graph, and the kernels it is made of.

Private APIs: the ``torch._inductor.compile_fx.__inductor_metrics`` artifact log ("Graph
Metrics": ``num_bytes_accessed``, ``nodes_num_elem``), the scheduler nodes it carries
(``BaseSchedulerNode.get_read_write_buffers_sizes``, ``read_writes``, ``origins``), and
``torch._inductor.metrics.CachedMetricsHelper.get_deltas`` / ``apply_deltas`` (what a cache
hit replays). Checked on torch 2.11-2.13.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from .dynamo import CompileRecorder, NodeBytes, current_compile_id
from .inductor import cache_replays_bytes, measurement_cache_dir


class _InductorMetricsHandler(logging.Handler):
    """Receives inductor's "Graph Metrics" record (one per compiled graph, fwd and bwd)."""

    def __init__(self, recorder: CompileRecorder) -> None:
        super().__init__(level=logging.INFO)
        self.recorder = recorder

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        payload = args[0] if isinstance(args, tuple) and args else args
        if not isinstance(payload, dict) or "num_bytes_accessed" not in payload:
            return
        compile_id = current_compile_id() or "?"
        nodes = [_node_bytes(node, elements) for node, elements in payload.get("nodes_num_elem", [])]
        with self.recorder._lock:
            self.recorder.bytes_by_compile_id[compile_id] = self.recorder.bytes_by_compile_id.get(
                compile_id, 0
            ) + int(payload["num_bytes_accessed"])
            self.recorder.nodes_by_compile_id.setdefault(compile_id, []).extend(nodes)
            self.recorder.pending_nodes[compile_id] = nodes


def _node_bytes(node: Any, elements: int) -> NodeBytes:
    """Describe one inductor scheduler node (``BaseSchedulerNode``): its bytes as
    ``GraphLowering.count_bytes`` counts them (``get_read_write_buffers_sizes()``; the log
    carries them divided by 4), the extern kernel it calls, the aten ops it came from
    (``origins`` of its IR nodes) and the buffers it reads and writes (torch 2.11-2.13)."""
    try:
        size = int(node.get_read_write_buffers_sizes())
    except Exception:
        size = int(elements) * 4
    kernel = "generated"
    ops: set[str] = set()
    reads: list[str] = []
    writes: list[str] = []
    try:
        kernel = str(getattr(node.node, "python_kernel_name", None) or "generated")
    except Exception:
        pass
    try:
        for sub in node.get_nodes():
            for origin in getattr(sub.node, "origins", None) or ():
                if getattr(origin, "op", "") == "call_function":
                    ops.add(_short_op(origin.target))
    except Exception:
        pass
    try:
        reads = sorted({dep.name for dep in node.read_writes.reads})
        writes = sorted({dep.name for dep in node.read_writes.writes})
    except Exception:
        pass
    return NodeBytes(kernel=kernel, bytes=size, ops=sorted(ops), reads=reads, writes=writes)


def _short_op(target: Any) -> str:
    """``aten.convolution.default`` -> ``convolution``; other callables by ``__name__``."""
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return str(getattr(packet, "__name__", packet))
    return str(getattr(target, "__name__", target))


#: ``torch._inductor.compile_fx`` calls ``GraphLowering.count_bytes()`` only when this
#: artifact logger is enabled for INFO (torch 2.11-2.13).
_METRICS_LOGGER = "torch._inductor.compile_fx.__inductor_metrics"


@contextlib.contextmanager
def capture_inductor_bytes(recorder: CompileRecorder) -> Iterator[None]:
    """Enable inductor's per-graph byte count and capture it, without printing it.

    A compiled graph's bytes arrive one of two ways, per graph (forward and backward):
    - compiled here (a cache miss): the "Graph Metrics" record of the ``inductor_metrics``
      artifact log. We set that logger's level directly instead of ``torch._logging.set_logs``,
      which would replace the user's whole logging configuration (TORCH_LOGS).
    - loaded from the FX-graph or AOT-autograd cache (a hit): no record is logged; inductor
      adds the ``CachedMetricsDeltas`` stored with the entry to its global counters through
      ``CachedMetricsHelper.apply_deltas`` (``torch/_inductor/codecache.py``), which we wrap
      for the duration. Checked on torch 2.13: the hit replays the forward and backward
      graphs' bytes one call each, under the same compile id as the miss logged them.
    """
    try:
        import torch._inductor.compile_fx as compile_fx  # noqa: F401  (registers the logger)
    except ImportError as exc:  # pragma: no cover
        recorder.bytes_unavailable = f"inductor not importable: {exc}"
        yield
        return
    logger = logging.getLogger(_METRICS_LOGGER)
    if not hasattr(compile_fx, "inductor_metrics_log"):
        recorder.bytes_unavailable = (
            "this torch has no inductor_metrics artifact log; cannot read inductor's byte count"
        )
        yield
        return
    handler = _InductorMetricsHandler(recorder)
    old_level, old_propagate, old_disabled = logger.level, logger.propagate, logger.disabled
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.disabled = False
    saved_handlers = list(logger.handlers)
    logger.handlers = [handler]
    try:
        with _capture_replayed_bytes(recorder):
            yield
    finally:
        logger.handlers = saved_handlers
        logger.setLevel(old_level)
        logger.propagate = old_propagate
        logger.disabled = old_disabled


#: The attribute perfguard adds to a cache entry's ``CachedMetricsDeltas``: its graph's
#: scheduler nodes as plain tuples (``NodeBytes`` fields), pickled with the entry.
_NODES_ATTRIBUTE = "_perfguard_nodes"


@contextlib.contextmanager
def _capture_replayed_bytes(recorder: CompileRecorder) -> Iterator[None]:
    """Record the byte counts, and the kernels they are made of, that a cache hit replays
    (see :func:`capture_inductor_bytes`).

    A hit replays only ``CachedMetricsDeltas``, which has no per-kernel list, so on a miss
    the nodes inductor just counted are attached to the deltas object that
    ``CachedMetricsHelper.get_deltas`` makes for the cache entry (``compile_fx``, after the
    "Graph Metrics" log; torch 2.13): a dataclass pickled with the entry, extra attribute
    included, and handed back to ``apply_deltas`` on a hit. Cold and warm compiles then
    give the same ``bytes_breakdown``.
    """
    if not cache_replays_bytes():
        yield  # measurement_compile_config turned the caches off: nothing is replayed
        return
    from torch._inductor import metrics

    helper = metrics.CachedMetricsHelper
    original = helper.__dict__["apply_deltas"]
    apply = original.__func__ if isinstance(original, staticmethod) else original
    original_get_deltas: Any = helper.__dict__.get("get_deltas")

    def get_deltas(self: Any) -> Any:
        delta = original_get_deltas(self)
        with recorder._lock:
            nodes = recorder.pending_nodes.pop(current_compile_id() or "?", None)
        if nodes is not None:
            with contextlib.suppress(AttributeError, TypeError):  # a slotted/frozen class
                setattr(delta, _NODES_ATTRIBUTE,
                        [(n.kernel, n.bytes, n.ops, n.reads, n.writes) for n in nodes])
        return delta

    def apply_deltas(delta: Any) -> None:
        apply(delta)
        replayed = int(getattr(delta, "num_bytes_accessed", 0) or 0)
        compile_id = current_compile_id() or "?"
        stored = getattr(delta, _NODES_ATTRIBUTE, None)
        with recorder._lock:
            if isinstance(stored, list):
                recorder.nodes_by_compile_id.setdefault(compile_id, []).extend(
                    NodeBytes(str(k), int(b), list(o), list(r), list(w))
                    for k, b, o, r, w in stored)
            if replayed == 0 and int(getattr(delta, "ir_nodes_pre_fusion", 0) or 0) > 0:
                # A graph with IR nodes moves bytes: this entry was written by a compile
                # that did not count them (not one of perfguard's).
                recorder.bytes_unavailable = (
                    "an inductor cache entry without a byte count was used for graph "
                    f"{compile_id}; clear {measurement_cache_dir() or 'the inductor cache'}")
            recorder.bytes_by_compile_id[compile_id] = (
                recorder.bytes_by_compile_id.get(compile_id, 0) + replayed)

    helper.apply_deltas = staticmethod(apply_deltas)  # type: ignore[method-assign]
    if callable(original_get_deltas):
        helper.get_deltas = get_deltas  # type: ignore[method-assign]
    try:
        yield
    finally:
        helper.apply_deltas = original  # type: ignore[method-assign]
        if callable(original_get_deltas):
            helper.get_deltas = original_get_deltas  # type: ignore[method-assign]
        recorder.pending_nodes.clear()
