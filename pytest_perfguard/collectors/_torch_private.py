"""Every reliance on a private torch / dynamo / inductor API, in one place.

Each helper is feature-detected: where a torch version lacks what it needs it returns
``None`` (or raises :class:`Unavailable` with the reason), and the caller records the
metric as ``unavailable (reason)``, never as 0. Checked on torch 2.13.0 (CPU) and
2.11.0+cu130 (H100); the design targets torch 2.11 to 2.14.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..record import Recompile


class Unavailable(Exception):
    """A private API this measurement needs is missing in this torch version."""


# --------------------------------------------------------------------------------------
# Inductor configuration
# --------------------------------------------------------------------------------------

#: Inductor settings that change the generated code, recorded in the environment
#: fingerprint (``torch._inductor.config``; names checked on torch 2.11-2.13).
CODEGEN_SETTINGS = (
    "max_autotune",
    "max_autotune_pointwise",
    "max_autotune_gemm",
    "coordinate_descent_tuning",
    "freezing",
    "cpp_wrapper",
    "epilogue_fusion",
    "pattern_matcher",
    "aggressive_fusion",
    "split_reductions",
    "fallback_random",
    "combo_kernels",
    "triton.cudagraphs",
    "cpp.simdlen",
    "cpp.max_horizontal_fusion_size",
)


def inductor_settings(overrides: dict[str, Any] | None = None) -> dict[str, str]:
    """The codegen-relevant inductor settings as text (overrides: a compile mode's patches)."""
    try:
        import torch._inductor.config as inductor_config
    except ImportError:  # pragma: no cover - inductor ships with every supported torch
        return {}
    settings: dict[str, str] = {}
    for name in CODEGEN_SETTINGS:
        obj: Any = inductor_config
        try:
            for part in name.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        settings[name] = repr(obj)
    for name, value in (overrides or {}).items():
        settings[name] = repr(value)
    return settings


#: Where perfguard's compiles keep inductor's caches unless the user chose a folder with
#: TORCHINDUCTOR_CACHE_DIR: ``$PERFGUARD_CACHE_DIR``, else ``$XDG_CACHE_HOME/perfguard/inductor``
#: (``~/.cache/perfguard/inductor``). Its own folder, not inductor's shared default
#: ``/tmp/torchinductor_<user>``: a long-lived shared default folder, written by many
#: processes and torch builds, gave heap-corruption aborts in torch 2.13's CPU build here.
CACHE_DIR_ENV = "PERFGUARD_CACHE_DIR"


def perfguard_cache_dir() -> Path:
    """perfguard's own inductor cache folder (see :data:`CACHE_DIR_ENV`); a CI cache restores it."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return (Path(base) / "perfguard" / "inductor").resolve()


def measurement_cache_dir() -> Path | None:
    """The folder perfguard's compiles use, or None where the user's TORCHINDUCTOR_CACHE_DIR rules.

    Inductor writes its default folder into TORCHINDUCTOR_CACHE_DIR the first time it
    compiles (``torch._inductor.runtime.cache_dir_utils.cache_dir``, torch 2.11-2.13), so a
    value equal to that default is inductor's own choice, not the user's.
    """
    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen:
        try:
            from torch._inductor.runtime.cache_dir_utils import default_cache_dir

            is_default = os.path.abspath(chosen) == os.path.abspath(default_cache_dir())
        except ImportError:  # pragma: no cover - a torch without it: respect the variable
            is_default = False
        if not is_default:
            return None
    # One folder per CPU ISA level (ATEN_CPU_CAPABILITY): torch 2.13's FX-graph cache does not
    # key on it, and a graph cached at AVX512 and loaded at AVX2 computed NaNs here
    # (tests/test_real_models.py switches the level between runs).
    return perfguard_cache_dir() / f"isa-{cpu_capability().lower()}"


def cache_replays_bytes() -> bool:
    """Whether an inductor cache hit replays the byte count we capture (see
    :func:`capture_inductor_bytes`): ``torch._inductor.metrics.CachedMetricsHelper.apply_deltas``
    with ``num_bytes_accessed`` among the replayed ``CachedMetricsDeltas`` (torch 2.11-2.13).
    """
    try:
        from torch._inductor import metrics
    except ImportError:  # pragma: no cover
        return False
    helper = getattr(metrics, "CachedMetricsHelper", None)
    fields = getattr(metrics, "get_metric_fields", None)
    if helper is None or not hasattr(helper, "apply_deltas") or fields is None:
        return False
    try:
        return "num_bytes_accessed" in fields()
    except Exception:  # pragma: no cover
        return False


@contextlib.contextmanager
def measurement_compile_config(
    compile_options: dict[str, Any] | None = None,
) -> Iterator[list[str]]:
    """Config for compiles whose kernels and bytes perfguard measures.

    - Generated C++ kernels: with the Python wrapper (the default) they are the
      ``cpp_fused_*`` callables of the compiled module, and :func:`annotated_kernels` names
      them in the profiled call; the generated code is then exactly a plain compile's.
      Where that cannot work (``cpp_wrapper``, in the measurement's ``compile_options`` or
      set in inductor's config: kernels are called from C++; a torch
      without ``PyCodeCache.modules``) ``cpp.enable_kernel_profile`` is turned on instead,
      which puts a profiler handle into every kernel (``graph_0_cpp_fused_...`` events; it
      cost ~12% more g++ time per kernel, and identical kernels of different graphs no
      longer shared one build).
    - The byte count must survive a cache hit, so perfguard's entries must never be a plain
      compile's (which ran without the count): a no-op post-grad pass whose ``uuid`` is
      part of inductor's cache key keeps them apart (:class:`_CacheKeySalt`); where that
      is not possible, ``cpp.enable_kernel_profile`` (also part of the key) does it.
    - The FX-graph and AOT-autograd caches stay as the user has them (on by default) when
      a hit replays the byte count (:func:`cache_replays_bytes`); in a torch where it does
      not, they are turned off, since a hit would lose the bytes.
    - TORCHINDUCTOR_CACHE_DIR points at :func:`measurement_cache_dir` while perfguard
      compiles, unless the user set it. Inductor reads it on every cache access, and a
      damaged FX-graph or AOT-autograd entry (truncated, garbage) is a warning and a miss
      in torch 2.13, never a crash.

    Yields the names of settings this torch version lacked (for the record).
    """
    import torch._inductor.config as inductor_config

    patches: dict[str, Any] = {}
    missing: list[str] = []
    salted = _salted_post_grad_pass(inductor_config)
    if salted is not None:
        patches["post_grad_custom_post_pass"] = salted
    cpp_wrapper = bool((compile_options or {}).get("cpp_wrapper")) \
        or bool(getattr(inductor_config, "cpp_wrapper", False))
    if cpp_wrapper or salted is None or _code_modules() is None:
        if hasattr(inductor_config, "cpp") and hasattr(inductor_config.cpp, "enable_kernel_profile"):
            patches["cpp.enable_kernel_profile"] = True
        else:
            missing.append("cpp.enable_kernel_profile")
    replay = cache_replays_bytes()
    if not replay and hasattr(inductor_config, "fx_graph_cache"):
        patches["fx_graph_cache"] = False
    folder = measurement_cache_dir()
    with contextlib.ExitStack() as stack:
        stack.enter_context(inductor_config.patch(patches))
        if not replay:
            try:
                import torch._functorch.config as functorch_config

                if hasattr(functorch_config, "enable_autograd_cache"):
                    stack.enter_context(functorch_config.patch(enable_autograd_cache=False))
            except ImportError:  # pragma: no cover
                pass
        if folder is not None:
            stack.enter_context(_environment_variable("TORCHINDUCTOR_CACHE_DIR", str(folder)))
        yield missing


#: Part of inductor's cache key for perfguard's compiles; bump it when what a cache entry
#: must carry for perfguard changes.
CACHE_KEY_SALT = "pytest-perfguard: inductor byte count and kernel list recorded (2)"


def _salted_post_grad_pass(inductor_config: Any) -> Any:
    """The post-grad custom pass setting with :class:`_CacheKeySalt` added, or None where
    this torch cannot take it (no ``CustomGraphPass``, or the user's own pass set on a
    torch that accepts only one; torch 2.13 takes a list via
    ``get_custom_graph_passes``)."""
    try:
        from torch._inductor import custom_graph_pass
    except ImportError:  # pragma: no cover
        return None
    base = getattr(custom_graph_pass, "CustomGraphPass", None)
    if base is None or not hasattr(inductor_config, "post_grad_custom_post_pass"):
        return None
    salt = _cache_key_salt(base)
    current = inductor_config.post_grad_custom_post_pass
    if current is None:
        return salt
    if not hasattr(custom_graph_pass, "get_custom_graph_passes"):
        return None
    return [*custom_graph_pass.get_custom_graph_passes(current), salt]


@functools.cache
def _cache_key_salt(base: type) -> Any:
    """The one instance of a no-op ``CustomGraphPass`` (``base``) whose uuid is
    :data:`CACHE_KEY_SALT`."""

    class _CacheKeySalt(base):  # type: ignore[misc, valid-type, unused-ignore]
        """Does nothing to the graph; its uuid sets perfguard's cache entries apart."""

        def __call__(self, graph: Any) -> None:
            return None

        def uuid(self) -> str:
            return CACHE_KEY_SALT

    return _CacheKeySalt()


def _code_modules() -> list[Any] | None:
    """Every Python wrapper module inductor loaded in this process
    (``torch._inductor.codecache.PyCodeCache.modules``, checked on torch 2.13), or None."""
    try:
        from torch._inductor.codecache import PyCodeCache
    except ImportError:  # pragma: no cover
        return None
    modules = getattr(PyCodeCache, "modules", None)
    return modules if isinstance(modules, list) else None


#: The Python wrapper's names for inductor's generated C++ kernels (``cpp_fused_add_0``).
_CPP_KERNEL_PREFIX = "cpp_"


@contextlib.contextmanager
def annotated_kernels() -> Iterator[None]:
    """Name every generated C++ kernel call in the profiler for the duration.

    The Python wrapper calls each C++ kernel through a module global (``cpp_fused_x_0(...)``);
    for the duration those globals are wrapped in ``torch.profiler.record_function`` with
    the kernel's name, so the call shows up as a ``cpp_fused_x_0`` event inside ``## Call
    CompiledFxGraph ##``, as ``cpp.enable_kernel_profile`` would show it (less its
    ``graph_N_`` prefix, which perfguard drops anyway). Every loaded module is wrapped, and
    put back as found afterwards: a user's own compile of the same code shares the module.
    """
    modules = _code_modules()
    wrapped: list[tuple[Any, str, Any]] = []
    try:
        for module in list(modules or ()):
            for name, fn in list(vars(module).items()):
                if name.startswith(_CPP_KERNEL_PREFIX) and callable(fn) \
                        and not getattr(fn, "_perfguard_kernel", False):
                    wrapped.append((module, name, fn))
                    setattr(module, name, _named_kernel(name, fn))
        yield
    finally:
        for module, name, fn in wrapped:
            setattr(module, name, fn)


def _named_kernel(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    record_function = torch.profiler.record_function

    def kernel(*args: Any) -> Any:
        with record_function(name):
            return fn(*args)

    kernel._perfguard_kernel = True  # type: ignore[attr-defined]
    return kernel


@contextlib.contextmanager
def _environment_variable(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


# --------------------------------------------------------------------------------------
# Compile-time recording: graphs, graph breaks, inductor's byte counts
# --------------------------------------------------------------------------------------


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
    first_call_done: bool = False
    #: The input set being run (graphs compiled meanwhile are attributed to it).
    input_set: int = 0
    bytes_unavailable: str | None = None
    #: ``counters["graph_break"]`` when :meth:`start` was called.
    break_counts_at_start: dict[str, int] = field(default_factory=dict)
    #: Every graph break dynamo logged (see :func:`capture_graph_break_log`).
    break_log: list[BreakSighting] = field(default_factory=list)
    #: compile id -> the scheduler nodes inductor just counted, until its cache entry's
    #: metric deltas are made (see :func:`_capture_replayed_bytes`).
    pending_nodes: dict[str, list[NodeBytes]] = field(default_factory=dict)
    #: dynamo's compilation metrics that existed at :meth:`start`, by ``id`` (kept alive
    #: here so that no new one can take an id), see :func:`recompile_details`.
    metrics_at_start: dict[int, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Call before the first compiled call: graph-break reasons and recompiles are
        counted from here."""
        self.break_counts_at_start = graph_break_counter_reasons()
        self.metrics_at_start = {id(m): m for m in _compilation_metrics() or ()}

    def break_reasons_since_start(self) -> list[str]:
        """Each distinct reason ``counters["graph_break"]`` gained since :meth:`start` (it
        counts a break once per restart of dynamo's analysis, so counts are not kept)."""
        now = graph_break_counter_reasons()
        return [r for r, n in now.items() if n > self.break_counts_at_start.get(r, 0)]


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


def _latest_compiles(skip: dict[int, Any] | None = None) -> dict[str, Any]:
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
    found = _latest_compiles(recorder.metrics_at_start)
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


def make_backend(
    backend: str,
    mode: str | None,
    dynamic: bool | None,
    options: dict[str, Any] | None = None,
) -> Any:
    """Build the compiler callable ``torch.compile`` would build for (backend, mode, options).

    torch.compile only accepts ``mode`` and ``options`` for its own wrappers, so to wrap the
    backend (to see each graph dynamo hands over) we build the same object it would: the
    private ``torch._TorchCompileInductorWrapper`` / ``torch._TorchCompileWrapper`` (torch
    2.0-2.14). An option inductor does not know is a ``ValueError`` naming it.
    """
    __tracebackhide__ = True
    if options and mode not in (None, "default"):
        raise ValueError(
            "perfguard: give mode or compile_options, not both (torch.compile accepts one)"
        )
    from torch._dynamo.backends.registry import lookup_backend

    try:
        lookup_backend(backend)
    except Exception as exc:  # InvalidBackend
        try:
            known = ", ".join(sorted(torch._dynamo.list_backends()))
        except Exception:  # pragma: no cover
            known = "see torch._dynamo.list_backends()"
        raise ValueError(
            f"perfguard: unsupported torch.compile backend {backend!r} ({exc}). "
            f"Available: {known}"
        ) from None
    wrapper_mode = None if options else (mode or "default")
    try:
        if backend == "inductor" and hasattr(torch, "_TorchCompileInductorWrapper"):
            _check_inductor_arguments(mode, options)
            return torch._TorchCompileInductorWrapper(wrapper_mode, options, dynamic)
        if hasattr(torch, "_TorchCompileWrapper"):
            return torch._TorchCompileWrapper(backend, wrapper_mode, options, dynamic)
    except RuntimeError as exc:  # "Unexpected type of attr ...", "Unrecognized mode=..."
        what = f"compile_options {options!r}" if options else f"mode {mode!r}"
        raise ValueError(f"perfguard: bad {what}: {exc}") from None
    if mode not in (None, "default") or options:
        raise Unavailable("this torch cannot combine mode/options with a wrapped backend")
    return lookup_backend(backend)


def _check_inductor_arguments(mode: str | None, options: dict[str, Any] | None) -> None:
    """A ``ValueError`` naming a mode or option inductor does not know, with a short hint.

    torch's own errors are "bad compile_options None" for a mode and, for one unknown
    option, the list of all ~600 (``torch._inductor.list_mode_options`` and
    ``config.get_config_copy``, checked on torch 2.11-2.13; skipped where missing).
    """
    __tracebackhide__ = True
    import difflib

    try:
        from torch._inductor import config as inductor_config
        from torch._inductor import list_mode_options

        modes = list(list_mode_options())
        known = list(inductor_config.get_config_copy())
    except (ImportError, AttributeError):  # pragma: no cover - torch's own check remains
        return
    if mode is not None and mode not in modes:
        raise ValueError(f"perfguard: bad mode {mode!r}: torch.compile's modes are "
                         f"{', '.join(modes)}")
    for key in options or {}:
        if key.replace("-", "_") not in known:
            close = difflib.get_close_matches(key.replace("-", "_"), known, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ValueError(f"perfguard: bad compile_options {options!r}: unknown inductor "
                             f"option {key!r} ({hint}see torch._inductor.config)")


def recording_backend(inner: Any, recorder: CompileRecorder) -> Callable[..., Any]:
    """Wrap a backend so each graph dynamo compiles is recorded.

    ``gm.compile_subgraph_reason`` (a ``torch._dynamo.output_graph.GraphCompileReason``) is
    what ``torch._dynamo.explain`` reads for its break reasons; it holds the reason and the
    user's stack where the graph ended. dynamo may hand the same frame's graph over more
    than once under one compile id (it restarts its analysis, e.g. under ``dynamic=True``):
    only the last one is kept, with the byte counts of its own compile, as ``explain``
    would count it (torch 2.13).
    """
    def perfguard_backend(gm: Any, example_inputs: Any, **kwargs: Any) -> Any:
        reason_obj = getattr(gm, "compile_subgraph_reason", None)
        user_frame = None
        if reason_obj is not None and getattr(reason_obj, "user_stack", None):
            top = reason_obj.user_stack[-1]
            user_frame = (str(top.filename), int(top.lineno or 0), str(top.name))
        reason = str(getattr(reason_obj, "reason", "")) if reason_obj is not None else ""
        compile_id = current_compile_id() or f"?/{len(recorder.graphs)}"
        info = CompiledGraphInfo(
            compile_id=compile_id,
            reason=reason,
            graph_break=bool(getattr(reason_obj, "graph_break", False)),
            user_frame=user_frame,
            after_first_call=recorder.first_call_done,
            input_set=recorder.input_set,
            dynamic_shapes=_has_symbolic_shapes(example_inputs),
        )
        with recorder._lock:
            recorder.graphs = [g for g in recorder.graphs if g.compile_id != compile_id]
            recorder.bytes_by_compile_id.pop(compile_id, None)
            recorder.nodes_by_compile_id.pop(compile_id, None)
            recorder.graphs.append(info)
        return inner(gm, example_inputs, **kwargs)

    return perfguard_backend


def _has_symbolic_shapes(example_inputs: Any) -> bool:
    for value in example_inputs or ():
        if isinstance(value, torch.SymInt):
            return True
        if isinstance(value, torch.Tensor) and any(isinstance(d, torch.SymInt)
                                                   for d in value.shape):
            return True
    return False


def is_bare_reason(reason: str) -> bool:
    """dynamo's internal reason names (``step_unsupported``: a break inside a function it
    could not resume in, reported at the user's call site) say nothing to a user."""
    return not reason.strip() or reason.strip().replace("_", "").isalnum()


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


@contextlib.contextmanager
def capture_output_code(codes: list[str]) -> Iterator[None]:
    """Collect the Python/C++ wrapper code inductor generates for each graph.

    ``GraphLowering.save_output_code`` is a hook inductor's own tests patch (torch 2.11-2.13).
    """
    try:
        from torch._inductor.graph import GraphLowering
    except ImportError:  # pragma: no cover
        yield
        return
    if not hasattr(GraphLowering, "save_output_code"):
        yield
        return
    previous = GraphLowering.save_output_code
    GraphLowering.save_output_code = staticmethod(codes.append)  # type: ignore[assignment, unused-ignore]
    try:
        yield
    finally:
        GraphLowering.save_output_code = previous  # type: ignore[method-assign, unused-ignore]


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


# --------------------------------------------------------------------------------------
# Operator classification (for kernel counting)
# --------------------------------------------------------------------------------------

#: Ops that allocate or only change metadata: they launch no compute kernel.
METADATA_OPS = frozenset(
    {
        "empty",
        "empty_strided",
        "empty_like",
        "new_empty",
        "new_empty_strided",
        "resize_",
        "set_",
        "_unsafe_view",
        "_reshape_alias",
        "alias",
        "lift_fresh",
        "_local_scalar_dense",
        "detach_",
        "record_stream",
        "_nested_tensor_from_mask",
        "is_nonzero",
        "size",
        "stride",
        "sym_size",
        "sym_stride",
        "sym_numel",
    }
)


_op_kind_cache: dict[str, str] = {}


def classify_op(qualified_name: str) -> str:
    """Classify a profiler event name such as ``aten::mul`` or ``mylib::op``: "kernel"
    (does work), "composite" (decomposes: look at its children), "view"/"metadata" (no
    work), "custom" (a user's op), "unknown" (not an operator, e.g. a Python range).

    Uses the C++ dispatcher table, ``torch._C._dispatch_has_kernel_for_dispatch_key(name,
    CompositeImplicitAutograd)`` (the op decomposes before reaching a kernel), and
    ``OpOverload.is_view``, over all overloads of the name (the profiler does not name the
    overload; ``out`` overloads are skipped). Checked on torch 2.11-2.13.
    """
    cached = _op_kind_cache.get(qualified_name)
    if cached is not None:
        return cached
    kind = _classify_uncached(qualified_name)
    _op_kind_cache[qualified_name] = kind
    return kind


def _classify_uncached(qualified_name: str) -> str:
    if "::" not in qualified_name:
        return "unknown"
    namespace, _, name = qualified_name.partition("::")
    if namespace in ("aten", "prims") and name in METADATA_OPS:
        return "metadata"
    try:
        packet = getattr(getattr(torch.ops, namespace), name)
        overload_names = packet.overloads()
    except (AttributeError, RuntimeError):
        return "unknown"
    composite_key = torch._C.DispatchKey.CompositeImplicitAutograd
    composite, views, total = 0, 0, 0
    for overload in overload_names:
        if "out" in overload.split("_"):
            continue
        try:
            op = getattr(packet, overload)
            # The C++ dispatcher table, not OpOverload.has_kernel_for_dispatch_key: the
            # latter also says True for Python-registered decompositions (it would make
            # aten::native_batch_norm, a real CPU kernel, look composite).
            is_composite = torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), composite_key)
            is_view = bool(op.is_view)
        except (AttributeError, RuntimeError):
            continue  # TorchScript-only overloads have no dispatcher entry
        total += 1
        composite += int(is_composite)
        views += int(is_view)
    if total == 0:
        return "unknown"
    if composite == total:
        return "composite"
    if views == total:
        return "view"
    if namespace not in ("aten", "prims", "mkldnn", "quantized", "_quantized", "onednn"):
        # A user's custom op: its Python implementation may launch aten kernels of its own;
        # the counter looks inside it and counts it as one kernel only if it holds none.
        return "custom"
    return "kernel"


def cpu_capability() -> str:
    """The CPU ISA level inductor's C++ codegen targets (``torch.backends.cpu``)."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # pragma: no cover
        return "unknown"


# --------------------------------------------------------------------------------------
# Memory events of a profiled call (for peak memory)
# --------------------------------------------------------------------------------------


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
                              for cid, m in _latest_compiles().items()}
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


# --------------------------------------------------------------------------------------
# Dispatch-level helpers (private modules of torch.utils; torch 2.11-2.13)
# --------------------------------------------------------------------------------------

try:
    #: The base class of the eager byte counter: sees every op that reaches a kernel.
    from torch.utils._python_dispatch import TorchDispatchMode

    #: Flattens nested op arguments (lists of tensors) into their tensors.
    from torch.utils._pytree import tree_flatten
except ImportError as exc:  # pragma: no cover - present in every supported torch
    raise ImportError(f"perfguard needs torch.utils._python_dispatch/_pytree: {exc}") from exc

__all__ = ["CompileRecorder", "TorchDispatchMode", "Unavailable", "classify_op", "tree_flatten"]
# Walking outputs and inputs; state a call changes
# --------------------------------------------------------------------------------------


def pytree_children(value: Any) -> list[tuple[str, str, Any]] | None:
    """(path suffix, key name, child) for a container registered with torch's pytree
    (tuples, lists, dicts, namedtuples, ``torch.return_types``, transformers'
    ``ModelOutput`` and whatever else a library registered); None for anything else.

    ``torch.utils._pytree`` is private: ``_get_node_type``, ``SUPPORTED_NODES`` and
    ``NodeDef.flatten_with_keys_fn`` / ``flatten_fn`` (torch 2.2-2.13). Without them the
    caller walks plain tuples, lists and dicts itself.
    """
    try:
        import torch.utils._pytree as pytree

        node_def = pytree.SUPPORTED_NODES.get(pytree._get_node_type(value))
    except Exception:
        return None
    if node_def is None:
        return None
    try:
        with_keys = getattr(node_def, "flatten_with_keys_fn", None)
        if with_keys is not None:
            pairs, _ = with_keys(value)
            return [(str(key), _key_name(key), child) for key, child in pairs]
        flat, _ = node_def.flatten_fn(value)
        return [(f"[{i}]", str(i), child) for i, child in enumerate(flat)]
    except Exception:
        return None


def _key_name(key: Any) -> str:
    """The bare name of a pytree key: ``MappingKey.key``, ``GetAttrKey.name``,
    ``SequenceKey.idx``."""
    for attribute in ("key", "name", "idx"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def tensor_version(tensor: torch.Tensor) -> int:
    """The tensor's version counter (``Tensor._version``): in-place changes bump it."""
    return int(tensor._version)


def random_ops_called(fn: Callable[[], Any]) -> list[str]:
    """Run ``fn`` and name the random ops it called: aten ops tagged
    ``torch.Tag.nondeterministic_seeded`` (dropout, bernoulli, rand, ...), seen by a
    ``TorchDispatchMode`` (``torch.utils._python_dispatch``, private; torch 2.0-2.13).
    The tag is not evidence on its own: CPU attention
    (``_scaled_dot_product_flash_attention_for_cpu``) carries it with ``dropout_p=0``, so an
    op whose ``dropout_p``/``p`` is 0 or whose ``train`` is False is not named.
    Raises :class:`Unavailable` where that is missing."""
    try:
        from torch.utils._python_dispatch import TorchDispatchMode

        seeded = torch.Tag.nondeterministic_seeded
    except (ImportError, AttributeError) as exc:
        raise Unavailable(f"cannot watch for random ops in this torch: {exc}") from exc
    found: list[str] = []

    class _RandomOps(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                               kwargs: Any = None) -> Any:
            if seeded in getattr(func, "tags", ()) and _draws_random(func, args, kwargs or {}):
                name = str(func.overloadpacket.__name__)
                if name not in found:
                    found.append(name)
            return func(*args, **(kwargs or {}))

    with _RandomOps():
        fn()
    return found


def _draws_random(func: Any, args: Any, kwargs: dict[str, Any]) -> bool:
    """False for a seeded op called with no randomness (``dropout_p=0``, ``p=0``,
    ``train=False``; the schema's default where not passed)."""
    schema = getattr(func, "_schema", None)
    for index, argument in enumerate(schema.arguments if schema is not None else ()):
        if argument.name not in ("dropout_p", "p", "train"):
            continue
        if not argument.kwarg_only and index < len(args):
            value = args[index]
        elif argument.name in kwargs:
            value = kwargs[argument.name]
        elif argument.has_default_value():
            value = argument.default_value
        else:
            continue
        if argument.name == "train" and value is False:
            return False
        if argument.name != "train" and isinstance(value, (int, float)) and value == 0:
            return False
    return True


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


def fallback_random() -> contextlib.AbstractContextManager[Any] | None:
    """Inductor's ``fallback_random`` on: random ops run as eager's aten kernels, drawing
    from eager's generator. ``torch._inductor.config`` is private (checked on torch 2.13);
    None where this torch lacks ``fallback_random``."""
    try:
        import torch._inductor.config as inductor_config
    except ImportError:  # pragma: no cover - inductor ships with every supported torch
        return None
    if not hasattr(inductor_config, "fallback_random"):
        return None
    return inductor_config.patch(fallback_random=True)
