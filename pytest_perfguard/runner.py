"""Run a model eager and compiled, and turn what the collectors saw into a Measurement.

The only module besides ``collectors/`` that imports torch. It knows the order of the runs;
the collectors know how to measure.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .collectors import _torch_private as private
from .collectors.bytes_eager import ByteCounter
from .collectors.environment import fingerprint
from .collectors.kernels import KernelCount, count_cpu_kernels, count_device_kernels
from .collectors.numerics import NumericsMismatch, check, iter_tensors
from .record import GraphBreak, Measurement, ModeRecord, Numerics, Timing

_DTYPE_BYTES = {
    "float": 4, "double": 8, "c10::Half": 2, "c10::BFloat16": 2, "Half": 2, "BFloat16": 2,
    "long int": 8, "int": 4, "short int": 2, "signed char": 1, "unsigned char": 1, "bool": 1,
    "c10::complex<float>": 8, "c10::complex<double>": 16,
}


class ModelError(Exception):
    """The user's model raised; the message names the mode, the cause is the model's error."""


@dataclass
class ProfileOptions:
    """Options of one ``perfguard(model, ...)`` call."""

    backend: str = "inductor"
    mode: str | None = None
    dynamic: bool | None = None
    fullgraph: bool = False
    train: bool = False
    name: str = "default"
    #: Timed calls per mode (interleaved eager/compiled).
    repeats: int = 20
    warmup: int = 2
    rtol: float | None = None
    atol: float | None = None
    check_numerics: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.backend, str) or not self.backend:
            raise ValueError(f"perfguard: backend must be a backend name, got {self.backend!r}")
        if self.repeats < 1 or self.warmup < 1:
            raise ValueError("perfguard: repeats and warmup must be at least 1")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"perfguard: name must be a non-empty string, got {self.name!r}")


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
    event_sink: Callable[[str, list[Any]], None] | None = None,
    gate_time: bool = False,
) -> Measurement:
    """Measure ``model(*args, **kwargs)`` eager and compiled.

    With ``profile=False`` (pytest without ``--perfguard``) the model runs once per mode and
    only numerics are checked; the returned record has no metrics. ``gate_time`` (the rules'
    ``time`` switch) asks for ``options.repeats`` clean timed calls per mode; without it the
    time is a reported number and costs a small bounded budget (see ``_time_interleaved``).
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
            _profile_mode(eager, device, eager_record, recorder=None, event_sink=event_sink)
            _count_eager_bytes_and_flops(eager, eager_record)
            trace_file = _trace_path(trace_dir, options.name, "trace.json")
            _profile_mode(compiled, device, compiled_record, recorder=recorder,
                          backend=options.backend, trace_file=trace_file,
                          event_sink=event_sink)
            # Compiled kernels do the model's work: FLOPs are the program's (see README).
            compiled_record.flops = eager_record.flops
            if eager_record.flops is None:
                compiled_record.unavailable["flops"] = eager_record.unavailable.get("flops", "")
            # Recompiles over the warm-up and profiled calls only: the number of timed calls
            # depends on the time budget and on load, and the count must not.
            compiled_record.recompiles = sum(1 for g in recorder.graphs if g.after_first_call)
            _time_interleaved(eager, compiled, device, options.repeats,
                              eager_record, compiled_record, gate_time=gate_time)
            _gpu_counters(eager, compiled, device, model, args, eager_record, compiled_record)
            if compiled_record.time is not None:
                compiled_record.compile_seconds = max(
                    first_call_seconds - compiled_record.time.median, 0.0)
            for name in missing_config:
                compiled_record.unavailable.setdefault(
                    "kernel_launches", f"inductor config {name} missing in this torch")
        else:
            compiled_record.compile_seconds = first_call_seconds
            compiled_record.recompiles = sum(1 for g in recorder.graphs if g.after_first_call)
            for record in (eager_record, compiled_record):
                for metric in ("kernel_launches", "bytes_moved", "flops", "time"):
                    record.unavailable[metric] = "not profiled (run pytest with --perfguard)"

    measurement = Measurement(
        test_id=test_id, name=options.name, train=options.train, environment=env,
        eager=eager_record, compiled=compiled_record, numerics=numerics,
    )
    if profile and trace_dir is not None:
        _save_traces(trace_dir, measurement, codes)
    return measurement


def _trace_path(trace_dir: Path | None, name: str, suffix: str) -> Path | None:
    if trace_dir is None:
        return None
    trace_dir.mkdir(parents=True, exist_ok=True)
    return trace_dir / f"{name}.{suffix}"


def _save_traces(trace_dir: Path, measurement: Measurement, codes: list[str]) -> None:
    """The generated code next to the Chrome trace, and an index the HTML report links from."""
    code_file = trace_dir / f"{measurement.name}.code.py"
    code_file.write_text("\n\n# ---- next graph ----\n\n".join(codes) or "# no code captured\n",
                         encoding="utf-8")
    index_file = trace_dir / "index.json"
    index = json.loads(index_file.read_text(encoding="utf-8")) if index_file.exists() else {}
    index[measurement.key] = {"trace": f"{measurement.name}.trace.json",
                              "code": code_file.name}
    index_file.write_text(json.dumps(index, indent=2, sort_keys=True), encoding="utf-8")


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
    trace_file: Path | None = None,
    event_sink: Callable[[str, list[Any]], None] | None = None,
) -> None:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    _sync(device)
    with profile(activities=activities, record_shapes=recorder is not None) as prof:
        call()
        _sync(device)
    if trace_file is not None:
        prof.export_chrome_trace(str(trace_file))
    events = list(prof.events())
    if event_sink is not None:
        event_sink(record.mode, events)
    counted: KernelCount
    if device.type == "cuda":
        counted = count_device_kernels(events)
        record.device_seconds = sum(k.device_seconds or 0.0 for k in counted.kernels)
    else:
        counted = count_cpu_kernels(events)
    record.kernel_launches = counted.launches
    record.kernels = counted.kernels
    if recorder is None:
        return
    # Compiled bytes: inductor's count for each graph that ran, plus eager ops between graphs.
    if recorder.bytes_unavailable:
        record.unavailable["bytes_moved"] = recorder.bytes_unavailable
        return
    ran = set(counted.compiled_regions)
    if ran and not recorder.bytes_by_compile_id:
        record.unavailable["bytes_moved"] = (
            f"backend {backend!r} reported no inductor byte counts" if backend != "inductor"
            else "inductor reported no byte counts for the compiled graphs")
        return
    missing = sorted(r for r in ran if r not in recorder.bytes_by_compile_id
                     and any(g.compile_id == r for g in recorder.graphs))
    if missing:
        record.unavailable["bytes_moved"] = (
            f"no inductor byte count for compiled graph(s) {', '.join(missing)}")
        return
    total = sum(recorder.bytes_by_compile_id.get(r, 0) for r in ran)
    total += sum(_estimate_op_bytes(shapes, dtypes) for _, shapes, dtypes in counted.outside_graph_ops)
    record.bytes_moved = total


def _estimate_op_bytes(shapes: list[Any], dtypes: list[Any]) -> int:
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


def _count_eager_bytes_and_flops(call: _Call, record: ModeRecord) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    counter = ByteCounter()
    flop_counter = FlopCounterMode(display=False)
    with flop_counter, counter:
        call()
    record.bytes_moved = counter.bytes_moved
    record.flops = int(flop_counter.get_total_flops())


#: Wall time not gated (the default): the time is a reported number only, so take at most
#: this many clean calls per mode, within about this much wall time in all.
UNGATED_CALLS = 5
UNGATED_BUDGET_S = 0.1
#: ... and while a mode has no clean call yet (a burst of load), up to this long.
UNGATED_MAX_S = 0.3
#: Wall time gated: ``repeats`` clean calls per mode; stalled calls (see
#: ``collectors/cpu_wait.py``) are retaken for up to this long beyond the first ``repeats``
#: pairs, to wait out a burst of load on the machine.
GATED_WAIT_S = 5.0


def _time_interleaved(
    eager: _Call,
    compiled: _Call,
    device: torch.device,
    repeats: int,
    eager_record: ModeRecord,
    compiled_record: ModeRecord,
    *,
    gate_time: bool = False,
) -> None:
    """Per-call wall time, eager and compiled alternating (as PyTorch's dashboard does).

    On the CPU a call whose threads waited for a CPU (another process ran) is not a sample
    of the model: it is dropped and retaken, within a bounded budget. With ``gate_time``
    ``repeats`` clean samples per mode are wanted and a burst of load is waited out for up
    to :data:`GATED_WAIT_S`; without it (the default) at most :data:`UNGATED_CALLS` per mode
    within :data:`UNGATED_BUDGET_S` (:data:`UNGATED_MAX_S` while a mode has no clean call).
    If the machine stays loaded throughout, the samples taken are kept as they are (and
    usually come out ``noisy``).
    """
    from .collectors.cpu_wait import RunQueueWait, stalled

    clock = "cuda-events" if device.type == "cuda" else "perf_counter"
    wanted = repeats if gate_time else min(repeats, UNGATED_CALLS)
    waits = RunQueueWait() if device.type == "cpu" else None
    if waits is not None and not waits.available:
        waits = None  # not Linux: every sample is kept
    clean: dict[str, list[float]] = {"eager": [], "compiled": []}
    everything: dict[str, list[float]] = {"eager": [], "compiled": []}
    start = time.perf_counter()
    deadline: float | None = None if gate_time else start + UNGATED_BUDGET_S
    pairs = 0
    while min(len(clean["eager"]), len(clean["compiled"])) < wanted:
        for label, call in (("eager", eager), ("compiled", compiled)):
            waited_before = waits.seconds() if waits is not None else 0.0
            sample = _time_one(call, device)
            everything[label].append(sample)
            if waits is None or not stalled(sample, waits.seconds() - waited_before):
                clean[label].append(sample)
        pairs += 1
        now = time.perf_counter()
        if deadline is None and pairs >= repeats:
            deadline = now + GATED_WAIT_S  # gated: all repeats taken, now wait out stalls
        if deadline is not None and now >= deadline:
            if gate_time or (clean["eager"] and clean["compiled"]) or now >= start + UNGATED_MAX_S:
                break
    for label, record in (("eager", eager_record), ("compiled", compiled_record)):
        samples = clean[label][:wanted] if clean[label] else everything[label]
        record.time = Timing(samples=samples, clock=clock)


def _time_one(call: _Call, device: torch.device) -> float:
    if device.type == "cuda":
        from .collectors.peaks import cuda_event_seconds

        return cuda_event_seconds(torch, call)
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _gpu_counters(
    eager: _Call,
    compiled: _Call,
    device: torch.device,
    model: Any,
    args: tuple[Any, ...],
    eager_record: ModeRecord,
    compiled_record: ModeRecord,
) -> None:
    """NVML readings and utilisation against the roofline (CUDA only).

    Each mode gets its own contiguous sampled block, repeated until NVML's averaging window
    (up to 1 s) is covered, so its utilisation is that mode's alone.
    """
    if device.type != "cuda":
        for record in (eager_record, compiled_record):
            record.unavailable["nvml"] = "no GPU: this run was on the CPU"
            record.unavailable["utilisation"] = "no GPU: this run was on the CPU"
            record.unavailable["device_seconds"] = "no GPU: this run was on the CPU"
        return
    from .collectors.nvml import MIN_WINDOW_S, NvmlSampler, window_long_enough
    from .collectors.peaks import calibrate, datasheet_peaks, utilisation

    index = device.index if device.index is not None else torch.cuda.current_device()
    dtype = _compute_dtype(model, args)
    peak_dtype: Any = dtype
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        peak_dtype = "tf32"
    peaks = datasheet_peaks(torch.cuda.get_device_name(index))
    if peaks is None:
        try:
            peaks = calibrate(device, dtype)
        except Exception as exc:  # calibration is best effort; the reason is recorded
            for record in (eager_record, compiled_record):
                record.unavailable["peaks"] = f"no datasheet entry and calibration failed: {exc}"
    try:
        uuid = str(torch.cuda.get_device_properties(index).uuid)
    except Exception:
        uuid = None
    for call, record in ((eager, eager_record), (compiled, compiled_record)):
        with NvmlSampler(index, device_uuid=uuid) as sampler:
            start = time.perf_counter()
            calls = 0
            while calls < 10_000 and (calls < 3 or not window_long_enough(
                    time.perf_counter() - start)):
                call()
                calls += 1
                if time.perf_counter() - start > 2 * MIN_WINDOW_S:
                    break
            _sync(device)
        record.nvml = sampler.summary()
        if sampler.unavailable_reason is not None:
            record.unavailable["nvml"] = sampler.unavailable_reason
        if record.device_seconds:
            record.utilisation = utilisation(record.bytes_moved, record.flops,
                                             record.device_seconds, peaks, peak_dtype)
        else:
            record.unavailable["utilisation"] = "no device time was recorded for this mode"


def _compute_dtype(model: Any, args: tuple[Any, ...]) -> torch.dtype:
    """The floating dtype the model computes in: its first floating parameter, else input."""
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            if p.is_floating_point():
                return p.dtype
    for _, leaf in iter_tensors(list(args), "input"):
        if isinstance(leaf, torch.Tensor) and leaf.is_floating_point():
            return leaf.dtype
    return torch.float32
