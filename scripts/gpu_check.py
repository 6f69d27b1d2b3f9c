"""Check perfguard's GPU measurements on a real NVIDIA card.

Runs the example models on CUDA, eager and compiled, and prints per model and mode:
kernel launches, bytes moved, device time, achieved bandwidth and its fraction of peak, and
NVML readings. Where Nsight Compute (``ncu``) is installed it replays one call of selected
models under ncu and compares the kernel count with perfguard's and the bytes estimate with
``dram__bytes_read.sum + dram__bytes_write.sum``.

    python scripts/gpu_check.py [--out DIR] [--no-ncu]

Writes to DIR (default ./gpu-check-out): ``measurements.json`` (perfguard records),
``gpu_traces.json`` (the profiler events of each profiled call, replayable by the CPU
tests), ``ncu.json`` and ``table.md``. Finishes within 10 minutes on one GPU; paste the
table into docs/gpu-validation.md with the card and the date.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "example_project"))


def _models(device: str) -> dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    import torch
    from tinymodels import MLP, GPTBlock, SmallConvNet

    torch.manual_seed(0)

    def chain(x: Any) -> Any:
        return x * 2 + 1

    return {
        "chain": (chain, (torch.randn(2**20, device=device),), {}),
        # 256 MiB: larger than the L2 cache, so DRAM counters see every byte.
        "chain_large": (chain, (torch.randn(2**26, device=device),), {}),
        "mlp": (MLP().to(device).eval(), (torch.randn(64, 128, device=device),), {}),
        "mlp_train": (MLP().to(device), (torch.randn(64, 128, device=device),),
                      {"train": True}),
        "gpt_block": (GPTBlock().to(device).eval(), (torch.randn(8, 32, 64, device=device),), {}),
        # cuDNN picks other conv algorithms than inductor's: compare with a looser tolerance.
        "convnet": (SmallConvNet().to(device).eval(),
                    (torch.randn(8, 3, 32, 32, device=device),), {"rtol": 1e-3, "atol": 1e-4}),
    }


def measure_all(out: Path) -> list[dict[str, Any]]:
    import torch

    from pytest_perfguard.codec import dump_measurement
    from pytest_perfguard.runner import ProfileOptions, measure

    traces: dict[str, dict[str, Any]] = {}
    records = []
    for name, (model, args, extra) in _models("cuda").items():
        started = time.perf_counter()
        trace_dir = out / "traces" / name
        try:
            # --perfguard-traces' folder: each mode's profiler events as the plain table.
            m = measure(model, args, {}, ProfileOptions(repeats=10, name=name, **extra),
                        test_id=f"gpu_check::{name}", trace_dir=trace_dir)
        except Exception as exc:  # keep going: one broken model must not hide the others
            print(f"{name}: FAILED {type(exc).__name__}: {exc}", flush=True)
            records.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        sink = {mode: json.loads((trace_dir / f"{mode}.events.json").read_text())
                for mode in ("eager", "compiled")}
        traces[name] = sink
        records.append(dump_measurement(m))
        print(f"{name}: measured in {time.perf_counter() - started:.1f}s", flush=True)
    (out / "gpu_traces.json").write_text(json.dumps(traces))
    (out / "measurements.json").write_text(json.dumps(records, indent=1, default=str))
    if torch.cuda.is_available():
        print(torch.cuda.get_device_name(0), torch.__version__, flush=True)
    return records


def table(records: list[dict[str, Any]]) -> str:
    lines = ["| model | mode | launches | bytes moved | device time (us) | achieved GB/s | "
             "of peak | FLOP util | NVML gpu util % | SM MHz | power W |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['name']} | error | {r['error']} |||||||||")
            continue
        for mode in ("eager", "compiled"):
            rec = r[mode]
            util = rec.get("utilisation") or {}
            nvml = rec.get("nvml") or {}
            dev = rec.get("device_seconds")
            bw = util.get("achieved_bytes_per_second")
            peak_bw = util.get("peak_bytes_per_second")
            fl = util.get("achieved_flops_per_second")
            peak_fl = util.get("peak_flops_per_second")
            lines.append(
                f"| {r['name']} | {mode} | {rec.get('kernel_launches')} | "
                f"{rec.get('bytes_moved')} | {f'{dev * 1e6:.1f}' if dev else 'n/a'} | "
                f"{bw / 1e9 if bw else 0:.1f} | "
                f"{(bw / peak_bw) if bw and peak_bw else 0:.1%} | "
                f"{(fl / peak_fl) if fl and peak_fl else 0:.2%} | "
                f"{nvml.get('gpu_util_percent')} | {nvml.get('sm_clock_mhz')} | "
                f"{nvml.get('power_watts')} |"
            )
    return "\n".join(lines)


def ncu_target(name: str, mode: str) -> None:
    """Run inside ncu: warm up, then profile exactly one call between cudaProfilerStart/Stop."""
    import torch

    from pytest_perfguard.collectors.private.dynamo import reset_dynamo

    model, args, extra = _models("cuda")[name]
    fn = model
    if mode == "compiled":
        reset_dynamo()
        fn = torch.compile(model)
    train = bool(extra.get("train"))

    seed: list[Any] = []

    def call() -> None:
        if train:
            for p in model.parameters():
                p.grad = None
            out = fn(*args)
            if not seed:  # made once, outside the profiled call, as perfguard does
                seed.append(torch.ones_like(out))
            out.backward(seed[0])
        else:
            with torch.no_grad():
                fn(*args)

    for _ in range(3):
        call()
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStart()
    call()
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStop()


def run_ncu(records: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    ncu = shutil.which("ncu") or next(
        (str(p) for p in Path("/opt/nvidia").glob("nsight-compute/*/ncu")), None)
    if ncu is None:
        print("ncu not found: skipping the Nsight Compute comparison", flush=True)
        return []
    by_name = {r.get("name"): r for r in records if "error" not in r}
    results = []
    for name in ("chain", "chain_large", "mlp", "gpt_block"):
        for mode in ("eager", "compiled"):
            cmd = [ncu, "--profile-from-start", "off", "--csv", "--clock-control", "none",
                   "--metrics", "dram__bytes_read.sum,dram__bytes_write.sum",
                   sys.executable, str(Path(__file__).resolve()), "--ncu-target", name, mode]
            started = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
            kernels: dict[str, dict[str, float]] = {}
            text = proc.stdout[proc.stdout.find('"ID"'):] if '"ID"' in proc.stdout else ""
            for row in csv.DictReader(io.StringIO(text)):
                unit = row.get("Metric Unit", "byte")
                scale = {"byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9,
                         "KB": 1e3, "MB": 1e6}.get(unit, 1)
                value = float(row["Metric Value"].replace(",", "")) * scale
                kernels.setdefault(row["ID"], {"name": row["Kernel Name"]})[
                    row["Metric Name"]] = value
            dram = sum(k.get("dram__bytes_read.sum", 0) + k.get("dram__bytes_write.sum", 0)
                       for k in kernels.values())
            ours = by_name.get(name, {}).get(mode, {})
            memsets = sum(k["count"] for k in ours.get("kernels", [])
                          if k["kind"] in ("memset", "memcpy"))
            entry = {
                "model": name, "mode": mode, "ncu_kernels": len(kernels),
                "perfguard_memset_memcpy": memsets,
                "perfguard_launches": ours.get("kernel_launches"),
                "ncu_dram_bytes": dram, "perfguard_bytes": ours.get("bytes_moved"),
                "kernel_names": sorted({k["name"] for k in kernels.values()}),
                "returncode": proc.returncode, "seconds": round(time.perf_counter() - started, 1),
            }
            if proc.returncode != 0 or not kernels:
                entry["stderr_tail"] = (proc.stderr or proc.stdout)[-1500:]
            results.append(entry)
            print(json.dumps({k: v for k, v in entry.items() if k != "kernel_names"}), flush=True)
    (out / "ncu.json").write_text(json.dumps(results, indent=1))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-check-out")))
    parser.add_argument("--no-ncu", action="store_true")
    parser.add_argument("--ncu-target", nargs=2, metavar=("MODEL", "MODE"))
    args = parser.parse_args()
    if args.ncu_target:
        ncu_target(*args.ncu_target)
        return 0
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: this script needs an NVIDIA GPU", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    records = measure_all(args.out)
    md = table(records)
    print(md, flush=True)
    (args.out / "table.md").write_text(md + "\n")
    if not args.no_ncu:
        run_ncu(records, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
