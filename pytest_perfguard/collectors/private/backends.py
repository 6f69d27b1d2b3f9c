"""The compiler callable ``torch.compile`` would build, wrapped to see each graph.

Private APIs: ``torch._TorchCompileInductorWrapper`` / ``torch._TorchCompileWrapper``
(torch 2.0-2.14), ``torch._dynamo.backends.registry.lookup_backend``,
``torch._dynamo.list_backends``, ``torch._inductor.list_mode_options`` and
``torch._inductor.config.get_config_copy`` (to name a bad mode or option), and the graph
module's ``compile_subgraph_reason`` (``torch._dynamo.output_graph.GraphCompileReason``).
Checked on torch 2.11-2.13.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import Unavailable
from .dynamo import CompiledGraphInfo, CompileRecorder, current_compile_id


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
