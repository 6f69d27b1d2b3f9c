"""How long and how much memory the baseline store takes on a large suite.

    python benchmarks/bench_store.py [--tests 50000] [--workdir DIR]

Generates ``--tests`` synthetic results of realistic size (like the example project's: 4-16
distinct kernels eager, 1-8 compiled, 20 timing samples, a quarter of them on a GPU with NVML
and utilisation, about 5 KB each in results.json), then, each step in a fresh process so
that the peak resident memory (``ru_maxrss``) belongs to that step alone:

1. ``perfguard update RESULTS --baseline BASELINE`` into a new baseline,
2. the same update again into the now full baseline (every entry replaced),
3. ``Baseline.load`` of the result (what every ``pytest --perfguard`` run does first).

Prints wall and CPU seconds and peak RSS of each against the targets (10 s, 500 MB) and
exits 1 when one is missed. The time target is checked against CPU time (user + system),
which on a shared, loaded machine stays what the step costs while wall time stretches; on an
idle machine the two agree. No torch needed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_SECONDS = 10.0
TARGET_MEGABYTES = 500.0

OPS = ("addmm", "mm", "gelu", "add", "mul", "native_layer_norm", "softmax", "relu", "sum",
       "convolution", "native_batch_norm", "bmm", "_scaled_dot_product_flash_attention")


def synthetic_results(tests: int, seed: int = 0) -> str:
    """results.json text for ``tests`` measurements, built in the document's own JSON form
    (through the record dataclasses, so that the file is exactly what a run writes)."""
    from pytest_perfguard.codec import dump, dump_measurement, dump_verdict
    from pytest_perfguard.compare import Change, Verdict
    from pytest_perfguard.record import (
        Environment,
        GraphBreak,
        Kernel,
        Measurement,
        ModeRecord,
        Numerics,
        NvmlSummary,
        Timing,
        Utilisation,
    )
    from pytest_perfguard.settings import Rules

    cpu = Environment(python="3.11.9", torch="2.13.0+cpu", triton="", device="cpu",
                      device_name="cpu (AVX2)", backend="inductor", mode="default",
                      dynamic="auto", fullgraph=False)
    gpu_env = Environment(python="3.11.9", torch="2.13.0+cu128", triton="3.5.0", device="cuda",
                          device_name="NVIDIA H100 80GB HBM3", backend="inductor",
                          mode="max-autotune", dynamic="auto", fullgraph=False)
    rng = random.Random(seed)

    def mode(name: str, kernels: int, bytes_moved: int, flops: int, gpu: bool) -> ModeRecord:
        prefix = "aten::" if name == "eager" else ("triton_poi_fused_" if gpu else "cpp_fused_")
        record = ModeRecord(
            mode=name,
            kernel_launches=kernels + rng.randint(0, 3),
            kernels=[Kernel(f"{prefix}{rng.choice(OPS)}_{i}",
                            "aten" if name == "eager" else "generated", rng.randint(1, 3),
                            rng.uniform(1e-6, 1e-4) if gpu else None) for i in range(kernels)],
            bytes_moved=bytes_moved,
            flops=flops,
            time=Timing([round(rng.uniform(1e-4, 5e-2), 9) for _ in range(20)]),
        )
        if gpu:
            seconds = rng.uniform(5e-5, 5e-3)
            record.device_seconds = seconds
            record.utilisation = Utilisation(seconds, bytes_moved / seconds, flops / seconds,
                                             3.35e12, 989.4e12, "datasheet:H100 SXM fp16")
            record.nvml = NvmlSummary(samples=40, window_seconds=0.4, gpu_util_percent=95.0,
                                      memory_util_percent=60.0, memory_used_bytes=2 << 30,
                                      sm_clock_mhz=1980.0, power_watts=600.0,
                                      temperature_c=57.0)
        else:
            for metric in ("device_seconds", "nvml", "utilisation"):
                record.unavailable[metric] = "no GPU: this run was on the CPU"
        return record

    header = {"baseline_path": ".perfguard/baseline.json", "created": "2025-11-26T14:40:00+00:00",
              "errors": [], "rules": dump(Rules()), "schema": 1,
              "tool": "pytest-torch-perfguard", "tool_version": "0.1.0"}
    items = []
    for index in range(tests):
        gpu = index % 4 == 3
        eager_kernels = rng.randint(4, 16)
        eager_bytes = rng.randint(1 << 16, 1 << 30)
        flops = rng.randint(0, 1 << 36)
        breaks = rng.choice((0, 0, 0, 0, 1))
        compiled = mode("compiled", max(1, eager_kernels // rng.randint(2, 4)),
                        eager_bytes // rng.randint(2, 4), flops, gpu)
        compiled.graphs, compiled.graph_breaks, compiled.recompiles = breaks + 1, breaks, 0
        compiled.compile_seconds = rng.uniform(0.5, 40)
        compiled.graph_break_details = [
            GraphBreak("Unsupported Tensor.item() call\n  from user code",
                       f"tests/test_suite_{index // 50}.py:{10 + b}", "forward")
            for b in range(breaks)]
        measurement = Measurement(
            test_id=f"tests/test_suite_{index // 50}.py::test_model[{index}-fp32-batch{index % 8}]",
            name="default" if index % 5 else "backward",
            train=index % 5 == 0,
            environment=gpu_env if gpu else cpu,
            eager=mode("eager", eager_kernels, eager_bytes, flops, gpu),
            compiled=compiled,
            numerics=Numerics(checked=True, ok=True, max_abs_error=1e-6, max_rel_error=1e-5,
                              atol=1e-5, rtol=1.3e-6),
        )
        verdict = (Verdict(measurement.key, "improved", [
            Change("compiled bytes_moved", 2 * (compiled.bytes_moved or 0),
                   compiled.bytes_moved, "improved")])
            if index % 50 == 7 else Verdict(measurement.key, "unchanged"))
        items.append({"measurement": dump_measurement(measurement), "verdict": dump_verdict(verdict)})
    sample = {**header, "results": items[:2]}
    assert _dumps_like_a_run(header, items[:2]) == json.dumps(sample, indent=2, sort_keys=True) + "\n"
    return _dumps_like_a_run(header, items)


def _dumps_like_a_run(header: dict[str, Any], items: list[dict[str, Any]]) -> str:
    """``json.dumps({**header, "results": items}, indent=2, sort_keys=True)``, the way the
    plugin writes results.json, but a result at a time (the one-shot form is slow)."""
    head = json.dumps({**header, "results": [0]}, indent=2, sort_keys=True)
    before, after = head.split("\n    0\n")
    body = ",\n".join("    " + json.dumps(item, indent=2, sort_keys=True).replace("\n", "\n    ")
                      for item in items)
    return f"{before}\n{body}\n{after}\n"


#: Each step runs in a fresh interpreter; it prints "seconds cpu_seconds peak_megabytes" (the
#: imports included, as a user waits for them too). The peak is
#: the process's own high-water mark (VmHWM); ``ru_maxrss`` is not used because Linux carries
#: it over from the parent through fork and exec.
STEP = """
import resource, sys, time
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
start, start_cpu = time.perf_counter(), cpu()
{body}
seconds, cpu_seconds = time.perf_counter() - start, cpu() - start_cpu
try:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmHWM:"))
    peak = int(line.split()[1]) / 1024
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(seconds, cpu_seconds, peak)
"""

UPDATE = """
from pytest_perfguard.cli import main
code = main(["update", sys.argv[1], "--baseline", sys.argv[2]])
assert code == 0, code
"""

LOAD = """
from pytest_perfguard.baseline import Baseline
baseline = Baseline.load(sys.argv[2], missing_ok=False)
assert sum(len(b.entries) for b in baseline.environments.values()) == int(sys.argv[3])
"""


def run_step(body: str, *args: str) -> tuple[float, float, float]:
    """Run one step in a fresh process; (wall seconds, CPU seconds, peak RSS in MB)."""
    done = subprocess.run([sys.executable, "-c", STEP.format(body=body), *args],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"step failed:\n{done.stdout}{done.stderr}")
    seconds, cpu_seconds, megabytes = done.stdout.split()[-3:]
    return float(seconds), float(cpu_seconds), float(megabytes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tests", type=int, default=50_000)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where to put the files (default: a temporary folder)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results, baseline = workdir / "results.json", workdir / "baseline.json"
        baseline.unlink(missing_ok=True)
        start = time.perf_counter()
        results.write_text(synthetic_results(args.tests), encoding="utf-8")
        print(f"generated {args.tests:,} results ({results.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - start:.1f} s")
        interpreter = run_step("pass")
        steps = [
            ("update into a new baseline", UPDATE),
            ("update into the full baseline", UPDATE),
            ("load the baseline", LOAD),
        ]
        ok = True
        print(f"{'step':30} {'wall s':>7} {'CPU s':>7} {'target':>7} {'peak RSS':>9} {'target':>7}")
        for label, body in steps:
            seconds, cpu_seconds, megabytes = run_step(body, str(results), str(baseline),
                                                       str(args.tests))
            within = cpu_seconds <= TARGET_SECONDS and megabytes <= TARGET_MEGABYTES
            ok &= within
            print(f"{label:30} {seconds:7.2f} {cpu_seconds:7.2f} "
                  f"{cpu_seconds / TARGET_SECONDS:7.0%} {megabytes:6.0f} MB "
                  f"{megabytes / TARGET_MEGABYTES:7.0%}{'' if within else '  OVER TARGET'}")
        print(f"(a bare interpreter peaks at {interpreter[2]:.0f} MB; baseline file "
              f"{baseline.stat().st_size / 1e6:.0f} MB; machine load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: wall time is CPU time "
              "only on an idle machine, so the targets are checked against CPU time)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
