"""Run a model eager and compiled, and turn what the collectors saw into a Measurement.

The only module besides ``collectors/`` that imports torch. It knows the order of the runs;
the collectors know how to measure.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .collectors import _torch_private as private
from .collectors import memory, traces
from .collectors.bytes_compiled import compiled_bytes
from .collectors.bytes_eager import count_bytes_and_flops
from .collectors.environment import fingerprint
from .collectors.events import rows_from_profiler
from .collectors.gpu import compute_dtype, record_gpu_counters
from .collectors.kernels import KernelCount, count_cpu_kernels, count_device_kernels
from .collectors.numerics import NumericsMismatch, check, iter_tensors
from .record import GraphBreak, Measurement, ModeRecord, Numerics, Timing
from .settings import ProfileOptions


class ModelError(Exception):
    """The user's model raised; the message names the mode, the cause is the model's error."""


@dataclass
class _Call:
    """One way of calling the model (eager or compiled), inference or training."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    train: bool
    params: list[torch.Tensor]
    grad_outputs: list[torch.Tensor] | None = None
    label: str = "eager"
    backend: str = ""

    def __call__(self) -> Any:
        __tracebackhide__ = True  # pytest: show the model's frames, not perfguard's
        try:
            if not self.train:
                with torch.no_grad():
                    return self.fn(*self.args, **self.kwargs)
            for p in self.params:
                p.grad = None
            out = self.fn(*self.args, **self.kwargs)
            outputs = [t for _, t in iter_tensors(out)
                       if isinstance(t, torch.Tensor) and t.requires_grad]
            if not outputs:
                raise ValueError("train=True but no output requires grad")
            if self.grad_outputs is None:
                self.grad_outputs = [torch.ones_like(t) for t in outputs]
            torch.autograd.backward(outputs, self.grad_outputs)
            grads = {f"grad[{i}]": p.grad for i, p in enumerate(self.params) if p.grad is not None}
            return {"output": out, "grads": grads}
        except torch.cuda.OutOfMemoryError as exc:
            raise ModelError(f"CUDA out of memory in {self.describe()} mode: {exc}") from exc
        except (ModelError, NumericsMismatch):
            raise
        except Exception as exc:
            raise ModelError(
                f"model raised in {self.describe()} mode: {type(exc).__name__}: {exc}"
            ) from exc

    def describe(self) -> str:
        return f"compiled (backend={self.backend!r})" if self.label == "compiled" else "eager"


def find_device(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.device:
    """The one device the model's parameters and inputs live on; mixed devices are an error."""
    __tracebackhide__ = True
    devices: dict[str, str] = {}
    if isinstance(model, torch.nn.Module):
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            devices.setdefault(str(tensor.device), f"parameter {name}")
    for path, leaf in iter_tensors({"args": list(args), "kwargs": kwargs}, "input"):
        if isinstance(leaf, torch.Tensor):
            devices.setdefault(str(leaf.device), path)
    if len(devices) > 1:
        where = ", ".join(f"{d} ({what})" for d, what in devices.items())
        raise ValueError(f"perfguard: model and inputs are on more than one device: {where}")
    if not devices:
        return torch.device("cpu")
    return torch.device(next(iter(devices)))


def measure(
    model: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: ProfileOptions,
    *,
    test_id: str,
    profile: bool = True,
    trace_dir: Path | None = None,
) -> Measurement:
    """Measure ``model(*args, **kwargs)`` eager and compiled.

    With ``profile=False`` (pytest without ``--perfguard``) the model runs once per mode and
    only numerics are checked; the returned record has no metrics.
    """
    __tracebackhide__ = True
    if not callable(model):
        raise TypeError(f"perfguard: model must be an nn.Module or a callable, got {type(model)!r}")
    device = find_device(model, args, kwargs)
    params: list[torch.Tensor] = [p for p in model.parameters() if p.requires_grad] \
        if isinstance(model, torch.nn.Module) else []
    if options.train:
        params += [t for _, t in iter_tensors(list(args)) if isinstance(t, torch.Tensor)
                   and t.requires_grad and t.is_leaf]
    inner_backend = private.make_backend(options.backend, options.mode, options.dynamic)
    recorder = private.CompileRecorder()
    env = fingerprint(
        device, backend=options.backend, mode=options.mode, dynamic=options.dynamic,
        fullgraph=options.fullgraph, mode_config=getattr(inner_backend, "config", None),
    )

    private.reset_dynamo()
    compiled_fn = torch.compile(
        model, backend=private.recording_backend(inner_backend, recorder),
        dynamic=options.dynamic, fullgraph=options.fullgraph,
    )
    eager = _Call(model, args, kwargs, options.train, params, label="eager")
    compiled = _Call(compiled_fn, args, kwargs, options.train, params, label="compiled",
                     backend=options.backend)
    eager_record = ModeRecord(mode="eager")
    compiled_record = ModeRecord(mode="compiled")

    codes: list[str] = []
    with _compile_context(recorder, profile) as missing_config, \
            private.capture_output_code(codes):
        eager_out = _detach(eager())
        compiled.grad_outputs = eager.grad_outputs
        breaks_before = private.graph_break_counter_reasons()
        start = time.perf_counter()
        compiled_out = _detach(compiled())
        _sync(device)
        first_call_seconds = time.perf_counter() - start
        recorder.first_call_done = True
        breaks_after = private.graph_break_counter_reasons()

        numerics = Numerics(checked=False)
        if options.check_numerics:
            numerics = check(eager_out, compiled_out, rtol=options.rtol, atol=options.atol)
            if not numerics.ok:
                raise NumericsMismatch(
                    f"perfguard: compiled output differs from eager ({test_id}, "
                    f"{options.name}): {numerics.message}"
                )
        del eager_out, compiled_out

        _fill_compile_metrics(compiled_record, recorder, breaks_before, breaks_after)
        if profile:
            for _ in range(options.warmup - 1):
                eager()
                compiled()
            _profile_mode(eager, device, eager_record, recorder=None, trace_dir=trace_dir)
            eager_record.bytes_moved, eager_record.flops = count_bytes_and_flops(eager)
            _profile_mode(compiled, device, compiled_record, recorder=recorder,
                          backend=options.backend, trace_dir=trace_dir)
            # Compiled kernels do the model's work: FLOPs are the program's (see README).
            compiled_record.flops = eager_record.flops
            if eager_record.flops is None:
                compiled_record.unavailable["flops"] = eager_record.unavailable.get("flops", "")
            _time_interleaved(eager, compiled, device, options.repeats,
                              eager_record, compiled_record)
            record_gpu_counters({"eager": eager, "compiled": compiled},
                                {"eager": eager_record, "compiled": compiled_record},
                                device, compute_dtype(model, args))
            if compiled_record.time is not None:
                compiled_record.compile_seconds = max(
                    first_call_seconds - compiled_record.time.median, 0.0)
            for name in missing_config:
                compiled_record.unavailable.setdefault(
                    "kernel_launches", f"inductor config {name} missing in this torch")
        else:
            compiled_record.compile_seconds = first_call_seconds
            for record in (eager_record, compiled_record):
                for metric in ("kernel_launches", "bytes_moved", "flops", "time", "peak_memory"):
                    record.unavailable[metric] = "not profiled (run pytest with --perfguard)"
        # Recompiles counted over every call we made after the first.
        compiled_record.recompiles = sum(1 for g in recorder.graphs if g.after_first_call)

    measurement = Measurement(
        test_id=test_id, name=options.name, train=options.train, environment=env,
        eager=eager_record, compiled=compiled_record, numerics=numerics,
    )
    if profile and trace_dir is not None:
        measurement.traces = traces.save_code(trace_dir, codes)
    return measurement


@contextlib.contextmanager
def _compile_context(recorder: private.CompileRecorder, profile: bool) -> Iterator[list[str]]:
    if not profile:
        yield []
        return
    with private.measurement_compile_config() as missing, private.capture_inductor_bytes(recorder):
        yield missing


def _detach(value: Any) -> Any:
    """Outputs kept for the numerics check, cut off from autograd and later in-place changes."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_detach(v) for v in value)
    return value


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fill_compile_metrics(
    record: ModeRecord,
    recorder: private.CompileRecorder,
    breaks_before: dict[str, int],
    breaks_after: dict[str, int],
) -> None:
    first = [g for g in recorder.graphs if not g.after_first_call]
    record.graphs = len(first)
    details = []
    for graph in first:
        if not graph.graph_break:
            continue
        location, function = "unknown", ""
        if graph.user_frame is not None:
            filename, lineno, function = graph.user_frame
            location = f"{_relative_path(filename)}:{lineno}"
        details.append(GraphBreak(reason=graph.reason, location=location, function=function))
    # Breaks dynamo counted that produced no graph of their own (nothing before them).
    counted = {g.reason for g in details}
    for reason, count in breaks_after.items():
        delta = count - breaks_before.get(reason, 0)
        if delta > 0 and reason not in counted:
            details += [GraphBreak(reason=reason, location="unknown")] * delta
    record.graph_breaks = len(details)
    record.graph_break_details = details


def _relative_path(filename: str) -> str:
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if rel.startswith("..") else rel


def _profile_mode(
    call: _Call,
    device: torch.device,
    record: ModeRecord,
    *,
    recorder: private.CompileRecorder | None,
    backend: str = "",
    trace_dir: Path | None = None,
) -> None:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    _sync(device)
    if call.train:  # the last call's gradients are freed here, not inside the memory profile
        for param in call.params:
            param.grad = None
    with profile(activities=activities, record_shapes=recorder is not None,
                 profile_memory=True) as prof, memory.cuda_peak(device) as cuda_peak:
        returned = call()
        _sync(device)
    memory.record_peak(record, prof, returned, device, cuda_peak)
    del returned
    if trace_dir is not None and recorder is not None:
        prof.export_chrome_trace(str(traces.trace_file(trace_dir)))
    rows = rows_from_profiler(prof.events())
    if trace_dir is not None:
        traces.save_rows(trace_dir, record.mode, rows)
    counted: KernelCount
    if device.type == "cuda":
        counted = count_device_kernels(rows)
        record.device_seconds = sum(k.device_seconds or 0.0 for k in counted.kernels)
    else:
        counted = count_cpu_kernels(rows)
    record.kernel_launches = counted.launches
    record.kernels = counted.kernels
    if recorder is None:
        return
    bytes_moved, reason = compiled_bytes(recorder, counted, backend)
    if reason is not None:
        record.unavailable["bytes_moved"] = reason
    record.bytes_moved = bytes_moved


def _time_interleaved(
    eager: _Call,
    compiled: _Call,
    device: torch.device,
    repeats: int,
    eager_record: ModeRecord,
    compiled_record: ModeRecord,
) -> None:
    """Per-call wall time, eager and compiled alternating (as PyTorch's dashboard does)."""
    samples: dict[str, list[float]] = {"eager": [], "compiled": []}
    clock = "cuda-events" if device.type == "cuda" else "perf_counter"
    for _ in range(repeats):
        for label, call in (("eager", eager), ("compiled", compiled)):
            samples[label].append(_time_one(call, device))
    eager_record.time = Timing(samples=samples["eager"], clock=clock)
    compiled_record.time = Timing(samples=samples["compiled"], clock=clock)


def _time_one(call: _Call, device: torch.device) -> float:
    if device.type == "cuda":
        from .collectors.peaks import cuda_event_seconds

        return cuda_event_seconds(torch, call)
    start = time.perf_counter()
    call()
    return time.perf_counter() - start
