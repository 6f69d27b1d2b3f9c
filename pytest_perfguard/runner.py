"""Run a model eager and compiled, and turn what the collectors saw into a Measurement.

The only module besides ``collectors/`` that imports torch. It knows how the model is
called (:class:`_Call`) and the order of the runs (:func:`measure`); the collectors know
how to measure.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .collectors import graphs, memory, timing, traces
from .collectors.bytes_compiled import compiled_bytes, record_bytes_breakdown
from .collectors.bytes_eager import count_bytes, count_bytes_and_flops, count_flops
from .collectors.environment import fingerprint
from .collectors.events import rows_from_profiler
from .collectors.gpu import compute_dtype, record_gpu_counters
from .collectors.kernels import KernelCount, count_cpu_kernels, count_device_kernels
from .collectors.numerics import (
    Flattened,
    NumericsMismatch,
    check,
    flatten,
    iter_tensors,
    model_precision,
)
from .collectors.private import aten, backends, dynamo, inductor, inductor_bytes
from .collectors.private.model import is_dropout
from .collectors.state import InputSet, StartState, describe_inputs, input_tensors
from .inputs import Inputs
from .record import (
    Kernel,
    Measurement,
    ModeRecord,
    Numerics,
    ShapeRecord,
)
from .settings import ProfileOptions


class ModelError(Exception):
    """The user's model raised; the message names the mode, the cause is the model's error."""


def input_sets(args: tuple[Any, ...], kwargs: dict[str, Any],
               inputs: Sequence[Any] | None) -> list[InputSet]:
    """The measurement's input sets: the positional/keyword inputs, or ``inputs=[...]``."""
    if inputs is None:
        return [(tuple(args), dict(kwargs))]
    if args or kwargs:
        raise ValueError("perfguard: give the model's inputs positionally or as inputs=[...], "
                         "not both")
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise ValueError(f"perfguard: inputs must be a non-empty list of input sets, got "
                         f"{type(inputs).__name__}")
    sets: list[InputSet] = []
    for index, item in enumerate(inputs):
        if isinstance(item, Inputs):
            sets.append((tuple(item.args), dict(item.kwargs)))
        elif isinstance(item, (tuple, list)):
            sets.append((tuple(item), {}))
        elif isinstance(item, dict):
            sets.append(((), dict(item)))
        elif isinstance(item, torch.Tensor):
            sets.append(((item,), {}))
        else:
            raise ValueError(
                f"perfguard: inputs[{index}] is a {type(item).__name__}; each input set is a "
                "tuple (positional inputs), a dict (keyword inputs), a tensor, or "
                "pytest_perfguard.Inputs(*args, **kwargs)")
    return sets


@dataclass
class _TrainResult:
    """What one training call produced: the output and the gradients by name."""

    output: Any
    grads: dict[str, torch.Tensor]


@dataclass
class _Call:
    """One way of calling the model (eager or compiled), inference or training.

    A call runs the model once on each of ``sets`` (the indices of the input sets), on the
    inputs :class:`StartState` last prepared: a probe that needs the start state calls
    ``state.restore()`` first; calls in a row (warm-up, timing) do not. Only the model's
    own code (and its backward, and a ``loss=`` callable) is wrapped as
    :class:`ModelError`; anything that goes wrong in perfguard's own handling is
    perfguard's error and says so.
    """

    fn: Callable[..., Any]
    state: StartState
    sets: list[int]
    train: bool
    named_params: list[tuple[str, torch.Tensor]]
    device: torch.device
    loss: Callable[[Any], Any] | None = None
    label: str = "eager"
    backend: str = ""
    recorder: dynamo.CompileRecorder | None = None
    #: Per input set: the gradients fed to backward (made once, outside measured calls).
    grad_outputs: dict[int, list[torch.Tensor] | None] = field(default_factory=dict)

    def __call__(self) -> None:
        __tracebackhide__ = True
        for index in self.sets:
            self.run(index)

    def only(self, index: int) -> _Call:
        """The same call restricted to one input set (sharing state and gradients)."""
        return replace(self, sets=[index])

    def run(self, index: int, *, keep: bool = False) -> Any:
        """Run input set ``index``; with ``keep`` return the output (and, training, the
        gradients by name) for the numerics check."""
        __tracebackhide__ = True
        if self.recorder is not None:
            self.recorder.input_set = index
        args, kwargs = self.state.current[index]
        if not self.train:
            with torch.no_grad():
                out = self._model(args, kwargs)
            return out if keep else None
        leaves = self.state.grad_leaves[index]
        for _, p in self.named_params:
            p.grad = None
        for _, leaf in leaves:
            leaf.grad = None
        out = self._model(args, kwargs)
        targets = self._backward_targets(out)
        grad_outputs = self.grad_outputs.get(index)
        if grad_outputs is None or [g.shape for g in grad_outputs] != [t.shape for t in targets]:
            grad_outputs = [torch.ones_like(t) for t in targets]
            self.grad_outputs[index] = grad_outputs
        try:
            torch.autograd.backward(targets, grad_outputs)
        except torch.cuda.OutOfMemoryError as exc:
            raise ModelError(f"CUDA out of memory in the backward of {self.describe()} mode: "
                             f"{exc}") from exc
        except Exception as exc:
            raise ModelError(_cause_first(
                exc, f"the model's backward raised in {self.describe()} mode")) from exc
        if not keep:
            return None
        grads = {f"grad[{name}]": p.grad for name, p in self.named_params + leaves
                 if p.grad is not None}
        return _TrainResult(out, grads)

    def _model(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        __tracebackhide__ = True  # pytest: show the model's frames, not perfguard's
        try:
            return self.fn(*args, **kwargs)
        except torch.cuda.OutOfMemoryError as exc:
            raise ModelError(f"CUDA out of memory in {self.describe()} mode: {exc}") from exc
        except (ModelError, NumericsMismatch):
            raise
        except Exception as exc:
            raise ModelError(_cause_first(exc, f"model raised in {self.describe()} mode")) \
                from exc

    def _backward_targets(self, out: Any) -> list[torch.Tensor]:
        """What ``train=True`` backpropagates (see README "Real models"): the ``loss=``
        callable's result; else the output's loss (a ``loss`` key or attribute holding a
        tensor that requires grad, or the output itself when it is a scalar); else every
        output tensor that requires grad, with ones."""
        __tracebackhide__ = True
        if self.loss is not None:
            try:
                value = self.loss(out)
            except Exception as exc:
                raise ModelError(_cause_first(
                    exc, f"the loss= callable raised in {self.describe()} mode")) from exc
            if not (isinstance(value, torch.Tensor) and value.numel() == 1
                    and value.requires_grad):
                raise ValueError(
                    "perfguard: loss= must return a one-element tensor that requires grad, "
                    f"got {_describe_value(value)}")
            return [value]
        found = _output_loss(out)
        if found is not None:
            return [found]
        targets = [t for _, t in iter_tensors(out)
                   if isinstance(t, torch.Tensor) and t.requires_grad]
        if not targets:
            raise ValueError(
                "perfguard: train=True but no output of the model requires grad (is the "
                "model's output detached, or are its parameters frozen?)")
        return targets

    def describe(self) -> str:
        return f"compiled (backend={self.backend!r})" if self.label == "compiled" else "eager"


def _cause_first(exc: BaseException, where: str) -> str:
    """``AssertionError: message (model raised in eager mode)``: the cause leads, so a
    summary line cut to the terminal's width still shows it; a multi-line message keeps its
    first line there and the rest below."""
    first, _, rest = str(exc).strip().partition("\n")
    return f"{type(exc).__name__}: {first} ({where})" + (f"\n{rest}" if rest else "")


def _output_loss(out: Any) -> torch.Tensor | None:
    """The loss an output carries: itself when a scalar tensor, else its ``loss`` key or
    attribute (transformers' ``ModelOutput.loss`` when labels were given)."""
    if isinstance(out, torch.Tensor):
        return out if out.dim() == 0 and out.requires_grad else None
    candidate = None
    if isinstance(out, dict):
        candidate = out.get("loss")
    elif not isinstance(out, (tuple, list)) or hasattr(out, "_fields"):
        candidate = getattr(out, "loss", None)
    if isinstance(candidate, torch.Tensor) and candidate.requires_grad:
        return candidate
    return None


def _describe_value(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return (f"a tensor of shape {tuple(value.shape)}"
                + ("" if value.requires_grad else " that does not require grad"))
    return f"a {type(value).__name__}"


def find_device(model: Any, sets: list[InputSet]) -> torch.device:
    """The one device the model's parameters and inputs live on; mixed devices are an error."""
    __tracebackhide__ = True
    devices: dict[str, str] = {}
    if isinstance(model, torch.nn.Module):
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            devices.setdefault(str(tensor.device), f"parameter {name}")
    for args, kwargs in sets:
        for path, leaf in input_tensors(args, kwargs):
            devices.setdefault(str(leaf.device), path)
    if len(devices) > 1:
        where = ", ".join(f"{d} ({what})" for d, what in devices.items())
        raise ValueError(f"perfguard: model and inputs are on more than one device: {where}")
    if not devices:
        return torch.device("cpu")
    device = torch.device(next(iter(devices)))
    if device.type == "meta":
        raise ValueError(
            f"perfguard: model and inputs are on the meta device ({devices['meta']}): meta "
            "tensors have shapes but no data, so nothing can run or be measured; move them to "
            "the CPU or a GPU (e.g. model.to_empty(device='cpu') and real inputs)")
    return device


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
    """Measure ``model(*args, **kwargs)`` (or each of ``options.inputs``) eager and compiled.

    The first call of each mode checks numerics and compiles (graphs, graph breaks); with
    ``profile`` the probes follow, each from the start state: one profiled call per mode
    and input set (launches, bytes, FLOPs, peak memory), recompiles, time, NVML. With
    ``profile=False`` (pytest without ``--perfguard``) the model runs once per mode and
    input set, and only numerics, graphs and graph breaks are recorded.
    ``options.full_timing`` asks for ``options.repeats`` clean timed calls per mode; without
    it the time is a reported number and costs a small bounded budget.
    """
    __tracebackhide__ = True
    if not callable(model):
        raise TypeError(f"perfguard: model must be an nn.Module or a callable, got {type(model)!r}")
    sets = input_sets(args, kwargs, options.inputs)
    device = find_device(model, sets)
    named_params: list[tuple[str, torch.Tensor]] = [
        (name, p) for name, p in model.named_parameters() if p.requires_grad
    ] if isinstance(model, torch.nn.Module) else []
    inner_backend = backends.make_backend(options.backend, options.mode, options.dynamic,
                                          options.compile_options)
    recorder = dynamo.CompileRecorder()
    env = fingerprint(
        device, backend=options.backend, mode=options.mode, dynamic=options.dynamic,
        fullgraph=options.fullgraph, mode_config=getattr(inner_backend, "config", None),
        compile_options=options.compile_options,
    )
    state = StartState(model, sets)
    eager_record, compiled_record = ModeRecord(mode="eager"), ModeRecord(mode="compiled")
    shapes: list[ShapeRecord] = []
    codes: list[str] = []
    with _leave_as_found(state), dynamo.quiet_trace_log():
        eager = _Call(model, state, list(range(len(sets))), options.train, named_params,
                      device, loss=options.loss)
        dynamo.reset_dynamo()
        # Training with dropout: numerics against a compile that draws eager's random
        # numbers, made and forgotten before the measured compile (which draws its own).
        checked = _check_random_training(model, eager, inner_backend, options, test_id)
        if checked:
            dynamo.reset_dynamo()
        compiled = replace(eager, label="compiled", backend=options.backend, recorder=recorder,
                           grad_outputs={}, fn=torch.compile(
                               model, backend=backends.recording_backend(inner_backend, recorder),
                               dynamic=options.dynamic, fullgraph=options.fullgraph))
        with _compile_context(recorder, profile, options.compile_options) as missing_config, \
                inductor.capture_output_code(codes), dynamo.capture_graph_break_log(recorder):
            first_call_seconds, numerics = _first_calls(model, eager, compiled, checked,
                                                        options, test_id)
            graphs.record_graphs(compiled_record, recorder)
            if len(sets) > 1:
                shapes = [ShapeRecord(inputs=describe_inputs(*s),
                                      compiles=sum(1 for g in recorder.graphs if g.input_set == i))
                          for i, s in enumerate(sets)]
            if not profile:
                compiled_record.compile_seconds = first_call_seconds
                graphs.record_recompiles(compiled_record, recorder)
                for record in (eager_record, compiled_record):
                    for metric in ("kernel_launches", "bytes_moved", "flops", "time", "peak_memory"):
                        record.unavailable[metric] = "not profiled (run pytest with --perfguard)"
            else:
                state.restore()
                for _ in range(options.warmup - 1):
                    eager()
                    compiled()
                _profile(eager, compiled, eager_record, compiled_record, shapes, trace_dir)
                # Recompiles over the warm-up and profiled calls only: the number of timed
                # calls depends on the time budget and on load, and the count must not.
                graphs.record_recompiles(compiled_record, recorder)
                state.restore()
                timing.time_interleaved(eager, compiled, device, options.repeats, eager_record,
                                        compiled_record, full=bool(options.full_timing))
                state.restore()
                record_gpu_counters({"eager": eager, "compiled": compiled},
                                    {"eager": eager_record, "compiled": compiled_record},
                                    device, compute_dtype(model, state.current[0][0]))
                if compiled_record.time is not None:
                    compiled_record.compile_seconds = max(
                        first_call_seconds - compiled_record.time.median, 0.0)
                for name in missing_config:
                    compiled_record.unavailable.setdefault(
                        "kernel_launches", f"inductor config {name} missing in this torch")

    measurement = Measurement(
        test_id=test_id, name=options.name, train=options.train, environment=env,
        eager=eager_record, compiled=compiled_record, numerics=numerics, shapes=shapes,
    )
    if profile and trace_dir is not None:
        measurement.traces = traces.save_code(trace_dir, codes)
    return measurement


def _first_calls(model: Any, eager: _Call, compiled: _Call, checked: list[Numerics],
                 options: ProfileOptions, test_id: str) -> tuple[float, Numerics]:
    """The first call of each mode on each input set, from the start state: the compiled
    one compiles (the first set's call is timed, compile time included), and its output is
    checked against eager's unless ``checked`` holds the numerics already (see
    :func:`_check_random_training`). Returns (that time, the numerics of all sets)."""
    __tracebackhide__ = True
    state, recorder = eager.state, compiled.recorder
    assert recorder is not None
    recorder.start()
    first_call_seconds = 0.0
    per_set: list[Numerics] = list(checked)
    for index in eager.sets:
        eager_out = None
        if not checked:
            state.restore()
            eager_out = _flatten_result(eager.run(index, keep=True), options)
        state.restore()
        start = time.perf_counter()
        compiled_result = compiled.run(index, keep=eager_out is not None)
        _sync(compiled.device)
        if index == 0:
            first_call_seconds = time.perf_counter() - start
            recorder.end_first_call()
        if eager_out is None:
            continue  # checked before
        compiled_out = _flatten_result(compiled_result, options)
        numerics = Numerics(checked=False)
        if options.check_numerics:
            numerics = check(eager_out, compiled_out, rtol=options.rtol, atol=options.atol,
                             compute=model_precision(model))
            if not numerics.ok:
                state.restore()
                raise NumericsMismatch(
                    _mismatch(numerics, index, len(eager.sets), test_id, options)
                    + _randomness_note(model, eager.only(index)))
        per_set.append(numerics)
        del eager_out, compiled_out, compiled_result
    return first_call_seconds, _merge_numerics(per_set, state.notes)


@contextlib.contextmanager
def _leave_as_found(state: StartState) -> Iterator[None]:
    """Put the model's tensors and the generators back when the measurement ends, also when
    it fails: the test finds its model as it left it."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):  # the measurement's own error is what matters
            state.restore()
        raise
    state.restore()


def _flatten_result(result: Any, options: ProfileOptions) -> Flattened:
    """Copies of every tensor and number of one call's result, for the numerics check."""
    if isinstance(result, _TrainResult):
        flat = flatten(result.output, exclude=options.numerics_exclude, copy=True)
        for name, grad in result.grads.items():
            flat.extend(flatten(grad, name, exclude=options.numerics_exclude, copy=True))
        return flat
    return flatten(result, exclude=options.numerics_exclude, copy=True)


def _merge_numerics(per_set: list[Numerics], notes: list[str]) -> Numerics:
    """One record for all input sets: the set with the largest error, every skip."""
    if len(per_set) == 1:
        merged = per_set[0]
    else:
        checked = [n for n in per_set if n.checked]
        if not checked:
            merged = per_set[0]
        else:
            index, worst = max(enumerate(per_set),
                               key=lambda item: item[1].max_abs_error or 0.0)
            merged = replace(worst, where=f"input set {index}: {worst.where}" if worst.where
                             else "")
            merged.skipped = sorted({s for n in per_set for s in n.skipped})
    merged.skipped = sorted(set(merged.skipped) | set(notes))
    return merged


def _mismatch(numerics: Numerics, index: int, set_count: int, test_id: str,
              options: ProfileOptions) -> str:
    where = f" on input set {index}" if set_count > 1 else ""
    return (f"perfguard: compiled output differs from eager{where} ({test_id}, "
            f"{options.name}): {numerics.message}")


def _active_dropout(model: Any) -> list[tuple[str, torch.nn.Module]]:
    """The model's Dropout modules in training mode with p > 0, by name."""
    if not isinstance(model, torch.nn.Module):
        return []
    return [(name, m) for name, m in model.named_modules()
            if is_dropout(m) and m.training
            and float(getattr(m, "p", 0.0)) > 0]


def _random_in_training(model: Any, eager: _Call) -> str:
    """What draws random numbers in a ``train=True`` measurement ("" when nothing does):
    Dropout modules in training mode, else the random ops one eager training call ran
    (functional dropout, as transformers' BART calls it). A model with no module in
    training mode is not run for this."""
    if not isinstance(model, torch.nn.Module) or not any(m.training for m in model.modules()):
        return ""
    active = _active_dropout(model)
    if active:
        return f"dropout in training: {len(active)} Dropout module(s) active"
    eager.state.restore()
    try:
        random_ops = aten.random_ops_called(lambda: eager.run(eager.sets[0]))
    except Exception:  # the model's own error is raised by the measured calls
        random_ops = []
    return f"random ops in training: {', '.join(random_ops)}" if random_ops else ""


def _check_random_training(model: Any, eager: _Call, backend: Any, options: ProfileOptions,
                           test_id: str) -> list[Numerics]:
    """Numerics of a ``train=True`` measurement whose model draws random numbers (dropout),
    per input set; ``[]`` when the usual check applies.

    Compiled code draws its own random numbers, so its output cannot match eager's. As
    PyTorch's benchmark harness does, the check compiles the model a second time with
    inductor's ``fallback_random`` (eager's random numbers; both runs start from the same
    generator state) and compares that; the measured compile is the normal one. Inference,
    models without randomness and other backends are compiled once."""
    __tracebackhide__ = True
    if (not options.train or not options.check_numerics or options.backend != "inductor"
            or (options.compile_options or {}).get("fallback_random")):
        return []
    why = _random_in_training(model, eager)
    patch = inductor.fallback_random() if why else None
    if patch is None:
        return []
    note = (f"checked against a second compile with inductor's fallback_random ({why}): it "
            "draws eager's random numbers; the measured compiled code draws its own")
    checker = replace(eager, label="compiled", backend=options.backend, fn=torch.compile(
        model, backend=backend, dynamic=options.dynamic, fullgraph=options.fullgraph))
    per_set: list[Numerics] = []
    with patch:
        for index in eager.sets:
            eager.state.restore()
            eager_out = _flatten_result(eager.run(index, keep=True), options)
            eager.state.restore()
            checker_out = _flatten_result(checker.run(index, keep=True), options)
            numerics = check(eager_out, checker_out, rtol=options.rtol, atol=options.atol,
                             compute=model_precision(model))
            if not numerics.ok:
                eager.state.restore()
                raise NumericsMismatch(_mismatch(numerics, index, len(eager.sets), test_id,
                                                 options) + f"\n  note: {note}")
            per_set.append(replace(numerics, message=note))
    return per_set


def _randomness_note(model: Any, eager: _Call) -> str:
    """Why eager and compiled may differ by design: dropout active, or random ops called
    (inductor draws its own random numbers, so the two runs see different ones)."""
    reasons = []
    if isinstance(model, torch.nn.Module):
        active = _active_dropout(model)
        if active:
            examples = ", ".join(f"{name or type(m).__name__} (p={m.p:g})"
                                 for name, m in active[:3])
            more = f" and {len(active) - 3} more" if len(active) > 3 else ""
            reasons.append(f"dropout is active: {len(active)} Dropout module(s) in training "
                           f"mode, e.g. {examples}{more}")
    try:
        random_ops = aten.random_ops_called(lambda: eager.run(eager.sets[0]))
    except Exception:  # the note is best effort; the mismatch itself is already reported
        random_ops = []
    if random_ops:
        reasons.append(f"the model called random ops ({', '.join(random_ops)})")
    if not reasons:
        return ""
    return ("\n  note: " + "; ".join(reasons) + ". Eager and compiled code draw different "
            "random numbers, so their outputs differ by design. Fix: call model.eval() "
            "(no dropout), or pass compile_options={'fallback_random': True} (inductor then "
            "draws eager's random numbers; perfguard starts both modes from the same "
            "generator state), or check_numerics=False.")


def _count_eager(call: _Call, record: ModeRecord) -> None:
    """Fill ``record``'s bytes moved and FLOPs from one eager call under perfguard's probes.

    The probes (the byte counter, torch's ``FlopCounterMode``) are perfguard's machinery: a
    call that fails under them but runs without them is a probe failure, and the failing
    probe's metric is ``unavailable (reason)``. Only an error the model raises without any
    probe is the model's (FlopCounterMode's module tracker raises "Expected gradient function
    to be set" under ``no_grad`` for a parameter's view passed to a submodule, as DeBERTa-v2
    does; torch 2.13)."""
    __tracebackhide__ = True
    call.state.restore()
    try:
        record.bytes_moved, record.flops = count_bytes_and_flops(call)
        return
    except Exception:
        pass
    call.state.restore()
    call()  # without probes: the model's own error is raised as the model's
    for metric, probe, name in (("bytes_moved", count_bytes, "the byte counter"),
                                ("flops", count_flops, "torch's FlopCounterMode")):
        call.state.restore()
        try:
            setattr(record, metric, probe(call))
        except Exception as exc:
            record.unavailable[metric] = f"{name} failed: {_describe_error(exc)}"


def _describe_error(exc: BaseException) -> str:
    """``AssertionError: message`` of the error a probe raised (unwrapped from the
    :class:`ModelError` the model's call put around it), first line only."""
    cause = exc.__cause__ if isinstance(exc, ModelError) and exc.__cause__ else exc
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__


def _profile(eager: _Call, compiled: _Call, eager_record: ModeRecord,
             compiled_record: ModeRecord, shapes: list[ShapeRecord],
             trace_dir: Path | None) -> None:
    """Launches, bytes moved, FLOPs and peak memory of each mode: one profiled call per
    mode and input set, each from the start state, and eager's byte and FLOP counters.
    Several input sets are profiled one by one and summed into the mode records, each set's
    own numbers kept in ``shapes``.

    Inductor counts a graph's bytes at the shapes it was compiled for, so a set that runs a
    dynamic-shape graph compiled for another set's shapes has no compiled byte count.
    """
    recorder = compiled.recorder
    assert recorder is not None
    dynamic_for = {g.input_set for g in recorder.graphs if g.dynamic_shapes}
    eager_parts: list[ModeRecord] = []
    compiled_parts: list[ModeRecord] = []
    for index in eager.sets:
        eager_part, compiled_part = eager_record, compiled_record
        if shapes:
            eager_part, compiled_part = ModeRecord(mode="eager"), ModeRecord(mode="compiled")
        # --perfguard-traces keeps the first input set's files.
        set_trace_dir = trace_dir if index == 0 else None
        _profile_mode(eager.only(index), eager_part, set_trace_dir)
        _count_eager(eager.only(index), eager_part)
        _profile_mode(compiled.only(index), compiled_part, set_trace_dir)
        foreign = [i for i in dynamic_for if i != index and shapes[i].inputs != shapes[index].inputs]
        if foreign and compiled_part.bytes_moved is not None:
            compiled_part.bytes_moved = None
            compiled_part.unavailable["bytes_moved"] = (
                f"runs a graph compiled with dynamic shapes for input set {foreign[0]}; "
                "inductor counts a graph's bytes at the shapes it was compiled for "
                "(dynamic=False compiles and counts each shape on its own)")
        if shapes:
            _fill_shape(shapes[index], eager_part, compiled_part)
            eager_parts.append(eager_part)
            compiled_parts.append(compiled_part)
    if shapes:
        _sum_records(eager_record, eager_parts)
        _sum_records(compiled_record, compiled_parts)
    # Compiled kernels do the model's work: FLOPs are the program's (see README).
    compiled_record.flops = eager_record.flops
    if eager_record.flops is None:
        compiled_record.unavailable["flops"] = eager_record.unavailable.get("flops", "")
    record_bytes_breakdown(eager_record, compiled_record, recorder)


def _fill_shape(shape: ShapeRecord, eager: ModeRecord, compiled: ModeRecord) -> None:
    """One input set's own numbers."""
    shape.eager_kernel_launches = eager.kernel_launches
    shape.compiled_kernel_launches = compiled.kernel_launches
    shape.eager_bytes_moved = eager.bytes_moved
    shape.compiled_bytes_moved = compiled.bytes_moved
    shape.eager_peak_memory = eager.peak_memory
    shape.compiled_peak_memory = compiled.peak_memory
    shape.flops = eager.flops
    for part in (eager, compiled):
        for metric, reason in part.unavailable.items():
            shape.unavailable.setdefault(f"{part.mode} {metric}", reason)


def _sum_records(total: ModeRecord, parts: list[ModeRecord]) -> None:
    """Launches, bytes, FLOPs, device time and kernel counts summed over input sets, peak
    memory the largest set's peak (with what was alive at it); a metric missing for one set
    is missing for the total, with that set's reason."""
    for metric in ("kernel_launches", "bytes_moved", "flops", "device_seconds", "peak_memory"):
        values = [getattr(p, metric) for p in parts]
        if any(v is None for v in values):
            index = values.index(None)
            reason = parts[index].unavailable.get(metric)
            if reason is not None:
                total.unavailable[metric] = f"input set {index}: {reason}"
            continue
        if metric == "peak_memory":
            largest = values.index(max(values))
            total.peak_memory = values[largest]
            total.peak_allocations = parts[largest].peak_allocations
            continue
        setattr(total, metric, sum(values))
    kernels: dict[tuple[str, str], Kernel] = {}
    for part in parts:
        for kernel in part.kernels:
            key = (kernel.name, kernel.kind)
            if key not in kernels:
                kernels[key] = replace(kernel)
            else:
                kernels[key].count += kernel.count
                if kernel.device_seconds is not None:
                    kernels[key].device_seconds = (kernels[key].device_seconds or 0.0) \
                        + kernel.device_seconds
    total.kernels = list(kernels.values())
    for part in parts:
        for metric, reason in part.unavailable.items():
            total.unavailable.setdefault(metric, reason)


@contextlib.contextmanager
def _compile_context(recorder: dynamo.CompileRecorder, profile: bool,
                     compile_options: dict[str, Any] | None) -> Iterator[list[str]]:
    if not profile:
        yield []
        return
    with inductor.measurement_compile_config(compile_options) as missing, \
            inductor_bytes.capture_inductor_bytes(recorder):
        yield missing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _profile_mode(call: _Call, record: ModeRecord, trace_dir: Path | None) -> None:
    """One profiled call from the start state: kernel launches (and device time), peak
    memory, and for compiled code inductor's bytes moved."""
    from torch.profiler import ProfilerActivity, profile

    call.state.restore()
    device, recorder = call.device, call.recorder
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    _sync(device)
    if call.train:  # the last call's gradients are freed here, not inside the memory profile
        for _, param in call.named_params:
            param.grad = None
        for index in call.sets:
            for _, leaf in call.state.grad_leaves[index]:
                leaf.grad = None
    # Compiled: inductor's C++ kernels named in the profile (see inductor.annotated_kernels).
    names = inductor.annotated_kernels() if recorder is not None else contextlib.nullcontext()
    with names, profile(activities=activities, record_shapes=recorder is not None,
                        profile_memory=True) as prof, memory.cuda_peak(device) as cuda_peak:
        # Kept (outputs, and gradients when training) so peak memory can name their shapes.
        returned = [call.run(index, keep=True) for index in call.sets]
        _sync(device)
    try:
        memory.record_peak(record, prof, returned, device, cuda_peak)
    except Exception as exc:  # perfguard's probe failed, not the model
        record.peak_memory, record.peak_allocations = None, []
        record.unavailable["peak_memory"] = f"the memory probe failed: {_describe_error(exc)}"
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
    bytes_moved, reason = compiled_bytes(recorder, counted, call.backend)
    if reason is not None:
        record.unavailable["bytes_moved"] = reason
    record.bytes_moved = bytes_moved
