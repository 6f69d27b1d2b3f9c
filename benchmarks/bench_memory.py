"""What measuring peak memory costs: the profiled call with and without ``profile_memory``.

perfguard measures peak memory inside the profiled call it already makes per mode (for the
kernel count), so the cost of the metric is the difference between
  without: profile(record_shapes as the runner sets it) + prof.events() + kernel count
  with:    the same with profile_memory=True, + reading the allocation events + the peak
measured side by side in one process (interleaved, median of REPEATS), for the example
models and a stack of 6 GPT blocks, inference and training, eager and compiled. It prints
with / without per mode, the extra milliseconds of both modes next to a whole
``measure()`` of that model (compile included), the figure a user waits for, and the
memory analysis alone per mode (pure Python over the recorded events: the steady part).

    python benchmarks/bench_memory.py

The profiled calls are timed in CPU seconds of this process (``time.process_time``: the
profiler's cost is CPU work, and CPU time moves less than wall time when other processes
share the cores); ``measure()`` in wall seconds. Still noisy on a shared machine: compare
ratios across a few runs, not single numbers.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "example_project"))

from tinymodels import MLP, GPTBlock, SmallConvNet  # noqa: E402

from pytest_perfguard.collectors.events import rows_from_profiler  # noqa: E402
from pytest_perfguard.collectors.kernels import count_cpu_kernels  # noqa: E402
from pytest_perfguard.collectors.memory import peak_memory  # noqa: E402
from pytest_perfguard.collectors.private.dynamo import reset_dynamo  # noqa: E402
from pytest_perfguard.collectors.private.inductor import measurement_compile_config  # noqa: E402
from pytest_perfguard.collectors.private.profiler import memory_trace  # noqa: E402
from pytest_perfguard.collectors.state import StartState  # noqa: E402
from pytest_perfguard.runner import ProfileOptions, _Call, measure  # noqa: E402

REPEATS = 25


def _cases() -> dict[str, Callable[[], tuple[torch.nn.Module, torch.Tensor]]]:
    return {
        "mlp": lambda: (MLP(), torch.randn(32, 128)),
        "gpt_block": lambda: (GPTBlock(), torch.randn(4, 32, 64)),
        "convnet": lambda: (SmallConvNet(), torch.randn(4, 3, 32, 32)),
        "gpt_x6": lambda: (torch.nn.Sequential(*[GPTBlock() for _ in range(6)]),
                           torch.randn(4, 32, 64)),
    }


def _profiled(call: _Call, record_shapes: bool, with_memory: bool) -> tuple[float, float]:
    """CPU seconds of the runner's profiled call and its analysis, with or without memory,
    and of the memory analysis alone (reading the allocation events, finding the peak)."""
    from torch.profiler import ProfilerActivity, profile

    if call.train:
        for _, param in call.named_params:
            param.grad = None
    start = time.process_time()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=record_shapes,
                 profile_memory=with_memory) as prof:
        call()
    count_cpu_kernels(rows_from_profiler(prof.events()))
    analysis = time.process_time()
    if with_memory:
        peak_memory(memory_trace(prof))
    end = time.process_time()
    return end - start, end - analysis


def _calls(model: torch.nn.Module, x: torch.Tensor, train: bool) -> dict[str, _Call]:
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    reset_dynamo()
    compiled = torch.compile(model)
    state = StartState(model, [((x,), {})])
    device = torch.device("cpu")
    calls = {
        "eager": _Call(model, state, [0], train, params, device, label="eager"),
        "compiled": _Call(compiled, state, [0], train, params, device, label="compiled"),
    }
    for _ in range(2):
        for call in calls.values():
            call()
    calls["compiled"].grad_outputs = calls["eager"].grad_outputs
    return calls


def main() -> None:
    # One intra-op thread: OpenMP workers spinning while they wait made CPU time swing by
    # 2x between identical calls; the profiler's work happens on the calling thread.
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {REPEATS}")
    print("case           eager: without -> with (ms)  ratio   compiled: without -> with (ms)"
          "  ratio   extra / measure()            analysis (ms)")
    for name, make in _cases().items():
        for train in (False, True):
            torch.manual_seed(0)
            model, x = make()
            model.train(train)
            start = time.perf_counter()
            measure(model, (x,), {}, ProfileOptions(train=train, check_numerics=False),
                    test_id="bench")
            whole = time.perf_counter() - start
            with measurement_compile_config():
                calls = _calls(model, x, train)
                samples: dict[tuple[str, bool], list[float]] = {}
                analysis: list[float] = []
                for _ in range(REPEATS):
                    for mode, call in calls.items():
                        for with_memory in (False, True):
                            seconds, analysed = _profiled(call, mode == "compiled", with_memory)
                            samples.setdefault((mode, with_memory), []).append(seconds)
                            if with_memory:
                                analysis.append(analysed)
            line, extra = f"{name + (' train' if train else ''):<15}", 0.0
            for mode in calls:
                without = statistics.median(samples[(mode, False)])
                with_ = statistics.median(samples[(mode, True)])
                extra += with_ - without
                line += f"   {without * 1e3:9.2f} -> {with_ * 1e3:7.2f}  {with_ / without:5.2f}x"
            print(f"{line}   {extra * 1e3:6.1f} ms of {whole:5.1f} s = {extra / whole:6.2%}"
                  f"   {statistics.median(analysis) * 1e3:5.1f}", flush=True)


if __name__ == "__main__":
    main()
