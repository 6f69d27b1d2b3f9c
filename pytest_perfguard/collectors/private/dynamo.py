"""What dynamo compiles for one measured model: graphs, graph breaks, recompiles.

Private APIs: ``torch._guards.CompileContext.current_compile_id``,
``torch._dynamo.utils.counters["graph_break"]``, ``torch._dynamo.utils._compilation_metrics``
(recompile reasons), the ``graph_break_log`` loggers of ``torch._dynamo.symbolic_convert``
and ``convert_frame``, dynamo's break messages (graph-break registry gb0098, gb0148) and the
structured-trace logger ``torch.__trace`` (``torch._logging._internal.trace_log``).
Checked on torch 2.11-2.13.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...record import Recompile


@dataclass
class CompiledGraphInfo:
    """One graph handed to the backend."""

    compile_id: str
    #: dynamo's GraphCompileReason: why this graph ended.
    reason: str
    graph_break: bool
    #: The user's frame where the graph ended: (filename, lineno, function).
    user_frame: tuple[str, int, str] | None
    #: Set while this graph was being compiled (counts compiles after the first call).
    after_first_call: bool = False
    #: Which input set's call compiled it (``perfguard(model, inputs=[...])``).
    input_set: int = 0
    #: Compiled with symbolic (dynamic) shapes: inductor's byte count is then for the
    #: shapes it was compiled with.
    dynamic_shapes: bool = False


@dataclass
class NodeBytes:
    """One scheduler node (a kernel) of a compiled graph and the bytes inductor counts."""

    #: ``extern_kernels.convolution``-style name of an extern kernel, else "generated".
    kernel: str
    bytes: int
    #: The aten ops it was lowered from (``convolution``, ``add``, ...).
    ops: list[str]
    reads: list[str]
    writes: list[str]


@dataclass
class BreakSighting:
    """A graph break dynamo logged while compiling (its ``graph_breaks`` log, what
    ``TORCH_LOGS=graph_breaks`` prints): also the breaks no graph ends at, such as a call
    to a module under ``torch.compiler.disable`` in a loop, where dynamo runs the whole
    frame eagerly."""

    compile_id: str
    filename: str
    lineno: int
    function: str
    #: dynamo's reason for the break itself (as a graph's ``compile_subgraph_reason``).
    reason: str
    after_first_call: bool = False


@dataclass
class CompileRecorder:
    """Collects what happens at compile time for one measured model."""

    graphs: list[CompiledGraphInfo] = field(default_factory=list)
    #: compile id -> bytes inductor's scheduler counted (forward and backward graphs).
    bytes_by_compile_id: dict[str, int] = field(default_factory=dict)
    #: compile id -> each scheduler node's bytes (what inductor's count is made of).
    nodes_by_compile_id: dict[str, list[NodeBytes]] = field(default_factory=dict)
    #: Set by :meth:`end_first_call`: graphs compiled from then on are recompiles.
    first_call_done: bool = False
    #: The input set being run (graphs compiled meanwhile are attributed to it).
    input_set: int = 0
    bytes_unavailable: str | None = None
    #: ``counters["graph_break"]`` when :meth:`start` was called.
    break_counts_at_start: dict[str, int] = field(default_factory=dict)
    #: Every graph break dynamo logged (see :func:`capture_graph_break_log`).
    break_log: list[BreakSighting] = field(default_factory=list)
    #: compile id -> the scheduler nodes inductor just counted, until its cache entry's
    #: metric deltas are made (see :func:`.inductor_bytes._capture_replayed_bytes`).
    pending_nodes: dict[str, list[NodeBytes]] = field(default_factory=dict)
    #: dynamo's compilation metrics that existed at :meth:`start`, by ``id`` (kept alive
    #: here so that no new one can take an id), see :func:`recompile_details`.
    metrics_at_start: dict[int, Any] = field(default_factory=dict)
    #: Each distinct reason ``counters["graph_break"]`` gained over the first call (it
    #: counts a break once per restart of dynamo's analysis, so counts are not kept).
    first_call_break_reasons: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Call before the first compiled call: graph-break reasons and recompiles are
        counted from here."""
        self.break_counts_at_start = graph_break_counter_reasons()
        self.metrics_at_start = {id(m): m for m in _compilation_metrics() or ()}

    def end_first_call(self) -> None:
        """Call after the first compiled call: what compiles from here is a recompile, and
        the graph-break reasons dynamo counted since :meth:`start` are kept."""
        self.first_call_done = True
        now = graph_break_counter_reasons()
        self.first_call_break_reasons = [r for r, n in now.items()
                                         if n > self.break_counts_at_start.get(r, 0)]


def _compilation_metrics() -> list[Any] | None:
    """dynamo's record of each frame compile, oldest first: ``torch._dynamo.utils.
    _compilation_metrics``, a deque of ``CompilationMetrics`` (``compile_id`` "0/1",
    ``recompile_reason``, ``co_filename``, ``co_firstlineno``), as far back as its length
    limit (checked on torch 2.13). None where this torch has none."""
    try:
        from torch._dynamo import utils as dynamo_utils
    except ImportError:  # pragma: no cover
        return None
    metrics = getattr(dynamo_utils, "_compilation_metrics", None)
    return list(metrics) if metrics is not None else None


def latest_compiles(skip: dict[int, Any] | None = None) -> dict[str, Any]:
    """compile id -> the latest compilation metrics of that compile (dynamo numbers frames
    afresh after each reset), leaving out those in ``skip``; {} where this torch keeps none."""
    return {str(m.compile_id): m for m in _compilation_metrics() or ()
            if id(m) not in (skip or {}) and getattr(m, "compile_id", None) is not None
            and getattr(m, "co_filename", None)}


_COMPILE_ID_PREFIX = re.compile(r"^\d+/\d+: ")
#: The reason of a graph compiled after the first call with no cache entry to fail: the
#: first compile of a frame (a branch or a resume function the first call did not reach).
NEW_FRAME = "no guard failed: a frame first compiled after the first call"


def recompile_details(recorder: CompileRecorder) -> list[Recompile]:
    """Why each graph compiled after the first call was compiled: dynamo's guard failure
    (``tensor 'x' size mismatch at index 0. expected 8, actual 16``, as ``TORCH_LOGS=
    recompiles`` prints it, without the failed entry's compile id) at the ``file:LINE``
    where the recompiled function starts. Equal (reason, location) pairs are counted once,
    in the order they first happened. Where this torch keeps no compilation metrics the
    reason says ``unavailable``."""
    recompiled = [g.compile_id for g in recorder.graphs if g.after_first_call]
    if not recompiled:
        return []
    found = latest_compiles(recorder.metrics_at_start)
    details: dict[tuple[str, str], Recompile] = {}
    for compile_id in recompiled:
        metrics = found.get(compile_id)
        if metrics is None:
            reason, location = ("unavailable (this torch kept no compilation metrics for "
                                f"compile {compile_id})"), ""
        else:
            reason = _guard_failure(getattr(metrics, "recompile_reason", None))
            location = user_location(str(metrics.co_filename), int(metrics.co_firstlineno or 0))
        if (reason, location) in details:
            details[(reason, location)].count += 1
        else:
            details[(reason, location)] = Recompile(reason=reason, location=location)
    return list(details.values())


def _guard_failure(raw: object) -> str:
    """dynamo's ``recompile_reason`` (``0/0: tensor 'x' size mismatch ...``, then maybe a
    user stack) as its first line, without the compile id, object addresses or the source
    comment dynamo appends to a guard (``G['STEP'] == 1  # STEP += 1  # /tmp/.../m.py:19 in
    f``: a machine's path, and the line is in ``location`` already)."""
    if not raw or not str(raw).strip():
        return NEW_FRAME
    first = str(raw).strip().splitlines()[0]
    first = re.split(r"\s+#\s", first, maxsplit=1)[0].rstrip()
    return _ADDRESS.sub("", _COMPILE_ID_PREFIX.sub("", first))


def user_location(filename: str, lineno: int) -> str:
    """``path:LINE`` that reads the same on every machine: relative to the working
    directory, or for an installed package from the package on (``transformers/...``)."""
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(marker):]) + f":{lineno}"
    try:
        relative = os.path.relpath(filename)
    except ValueError:
        relative = filename
    return f"{filename if relative.startswith('..') else relative}:{lineno}"


def current_compile_id() -> str | None:
    """The dynamo compile id being compiled (``"1/0"``), via ``torch._guards.CompileContext``."""
    try:
        from torch._guards import CompileContext
    except ImportError:
        return None
    compile_id = CompileContext.current_compile_id()
    if compile_id is None:
        return None
    frame_id = getattr(compile_id, "frame_id", None)
    frame_compile_id = getattr(compile_id, "frame_compile_id", None)
    if frame_id is None or frame_compile_id is None:
        return None
    return f"{frame_id}/{frame_compile_id}"



def is_bare_reason(reason: str) -> bool:
    """dynamo's internal reason names (``step_unsupported``: a break inside a function it
    could not resume in, reported at the user's call site) say nothing to a user."""
    return not reason.strip() or reason.strip().replace("_", "").isalnum()


def graph_break_counter_reasons() -> dict[str, int]:
    """``torch._dynamo.utils.counters["graph_break"]``: reason -> count (process-wide)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return {}
    return dict(counters.get("graph_break", {}))


#: dynamo's ``graph_breaks`` artifact loggers (``torch._dynamo.symbolic_convert`` and
#: ``convert_frame``, attribute ``graph_break_log``; torch 2.11-2.13). Their message says
#: "Graph break in user code at FILE:LINE" (asserted by torch's own test_exc.py) and
#: "Graph Break Reason: ...".
_BREAK_LOG_MODULES = ("torch._dynamo.symbolic_convert", "torch._dynamo.convert_frame")
_BREAK_AT = re.compile(r"in user code at (.+):(\d+)\n")
_USER_FRAME = re.compile(r'File "(.+)", line (\d+), in (\S+)')
_REASON_ENDS = ("\nStack variable source attribution:", "\nUser code traceback:",
                "\n*** While handling this graph break")


class _GraphBreakLogHandler(logging.Handler):
    def __init__(self, recorder: CompileRecorder) -> None:
        super().__init__(level=logging.DEBUG)
        self.recorder = recorder

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            return
        at = _BREAK_AT.search(text)
        frames = _USER_FRAME.findall(text)
        if at is not None:
            filename, lineno = at.group(1), int(at.group(2))
        elif frames:
            filename, lineno = frames[-1][0], int(frames[-1][1])
        else:
            return
        function = next((f for name, line, f in reversed(frames)
                         if name == filename and int(line) == lineno), "")
        sighting = BreakSighting(
            compile_id=current_compile_id() or "?", filename=filename, lineno=lineno,
            function=function, reason=_logged_reason(text),
            after_first_call=self.recorder.first_call_done)
        with self.recorder._lock:
            self.recorder.break_log.append(sighting)


def _logged_reason(text: str) -> str:
    """The break's own reason in a ``graph_breaks`` log message, without dynamo's wrapper
    line ("Encountered graph break when attempting to trace CALL ...:")."""
    _, found, reason = text.partition("Graph Break Reason: ")
    if not found:
        return text.strip().splitlines()[0] if text.strip() else ""
    for end in _REASON_ENDS:
        reason = reason.split(end)[0]
    first, _, rest = reason.partition("\n")
    if first.rstrip().endswith(":") and rest.strip():
        reason = rest
    return reason.strip()


@contextlib.contextmanager
def capture_graph_break_log(recorder: CompileRecorder) -> Iterator[None]:
    """Record every graph break dynamo logs while compiling into ``recorder.break_log``.

    The loggers print nothing meanwhile unless the user enabled them (``TORCH_LOGS``),
    whose handlers are kept. A torch without these loggers records nothing (only the
    breaks that end a graph are then listed).
    """
    import importlib

    loggers = []
    for name in _BREAK_LOG_MODULES:
        try:
            found = getattr(importlib.import_module(name), "graph_break_log", None)
        except ImportError:  # pragma: no cover
            found = None
        if isinstance(found, logging.Logger):
            loggers.append(found)
    handler = _GraphBreakLogHandler(recorder)
    saved = [(lg, lg.level, lg.propagate, lg.disabled, list(lg.handlers)) for lg in loggers]
    for logger in loggers:
        if logger.isEnabledFor(logging.DEBUG):
            logger.addHandler(handler)  # the user asked for them: keep theirs too
        else:
            logger.setLevel(logging.DEBUG)
            logger.propagate = False
            logger.disabled = False
            logger.handlers = [handler]
    try:
        yield
    finally:
        for logger, level, propagate, disabled, handlers in saved:
            logger.handlers = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_DISABLED_FUNCTION = re.compile(
    r"Skip calling function `<(?:function|bound method|built-in function) ([\w.<>]+)")
_DISABLED_MODULE = re.compile(
    r"when calling `([^`]+)`\. Reason: Optimized `nn\.Module` is wrapped with "
    r"`torch\.compiler\.disable`")
_SOURCE_KEY = re.compile(r"\._modules\['([^']+)'\]|\['([^']+)'\]|\.(\w+)")


def clean_break_reason(reason: str) -> tuple[str, str]:
    """(dynamo's break reason with object addresses dropped, so it reads the same on every
    run; what it calls that is under ``torch.compiler.disable``, e.g. ``function gelu``,
    ``module self.layers.1``, or "").

    The messages are dynamo's graph-break registry entries gb0098 ("Skip calling
    `torch.compiler.disable()`d function") and gb0148 ("Unsupported function call
    (delayed)" for an ``nn.Module`` wrapped in ``torch.compiler.disable``), torch 2.13.
    """
    disabled = ""
    function = _DISABLED_FUNCTION.search(reason)
    module = _DISABLED_MODULE.search(reason)
    if function is not None:
        disabled = f"function {function.group(1)}"
    elif module is not None:
        source = module.group(1)  # L['self']._modules['layers']._modules['1']
        parts = [next(p for p in match if p) for match in _SOURCE_KEY.findall(source)]
        disabled = "module " + ".".join(parts) if parts else f"module {source}"
    return _ADDRESS.sub("", reason), disabled


def reset_dynamo() -> None:
    """Forget compiled code so each measurement compiles fresh and counts its own recompiles.

    ``torch.compiler.reset`` is public; without it, a second instance of a model class would
    hit the first one's cache entries and use up dynamo's recompile limit.
    """
    torch.compiler.reset()


#: torch's structured-trace logger (``torch._logging._internal.trace_log``, private; torch
#: 2.2-2.13): DEBUG level, not propagating, one record per compile event. pytest (9.x)
#: attaches its capture handler to non-propagating loggers too, so a failing test's
#: "Captured log" held hundreds of empty ``DEBUG torch.__trace`` lines.
_TRACE_LOGGER = "torch.__trace"


class _DropRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextlib.contextmanager
def quiet_trace_log() -> Iterator[None]:
    """Drop torch's structured-trace records while perfguard compiles, unless the user asked
    for a trace (``TORCH_TRACE``): they carry no text for a person, only for tlparse."""
    if os.environ.get("TORCH_TRACE"):
        yield
        return
    logger = logging.getLogger(_TRACE_LOGGER)
    drop = _DropRecords()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)
