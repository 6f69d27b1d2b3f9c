"""A device's peak memory bandwidth and FLOP/s, to turn achieved throughput into utilisation.

Peaks come from a datasheet table (dense figures: NVIDIA quotes tensor-core rates "with
sparsity", twice the dense rate) matched by the name torch reports, or from :func:`calibrate`,
which measures a large device-to-device copy and a large matmul once per device and dtype.
:func:`utilisation` is a pure function over the record's numbers. Only :func:`calibrate`
imports torch, lazily, so the rest reads on any machine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..record import Utilisation

__all__ = ["Peaks", "calibrate", "datasheet_peaks", "dtype_key", "utilisation"]

_GB = 1e9
_TFLOP = 1e12


@dataclass(frozen=True)
class Peaks:
    """Peak memory bandwidth (bytes read + written per second) and FLOP/s per dtype."""

    bytes_per_second: float
    #: "fp32" (plain FP32 pipes), "tf32", "fp16", "bf16" (tensor cores) -> FLOP/s.
    flops_per_second: dict[str, float]
    #: "datasheet:<card>" or "calibrated".
    source: str


def _sheet(
    card: str,
    bandwidth_gb_s: float,
    fp32: float,
    tf32: float | None = None,
    fp16: float | None = None,
    bf16: float | None = None,
) -> Peaks:
    """Datasheet figures in GB/s and dense TFLOP/s; ``None`` where the card lacks the unit."""
    dense = {"fp32": fp32, "tf32": tf32, "fp16": fp16, "bf16": bf16}
    return Peaks(
        bytes_per_second=bandwidth_gb_s * _GB,
        flops_per_second={k: v * _TFLOP for k, v in dense.items() if v is not None},
        source=f"datasheet:{card}",
    )


# (required name tokens, other tokens allowed, peaks). A name matches when it holds every
# required token and nothing outside both sets (vendor words dropped), so "L40" is not an
# "L40S", "A10G" not an "A10" and "RTX 4090 D" not an "RTX 4090".
_DATASHEET: tuple[tuple[frozenset[str], frozenset[str], Peaks], ...] = tuple(
    (frozenset(required.split()), frozenset(allowed.split()), peaks)
    for required, allowed, peaks in (
        # NVIDIA A100 Tensor Core GPU datasheet (2021): FP32 19.5, TF32 156, BF16/FP16 312
        # TFLOPS dense for every form factor; bandwidth 1,555 GB/s (40GB), 2,039 GB/s (80GB
        # SXM), 1,935 GB/s (80GB PCIe). torch: "NVIDIA A100-SXM4-40GB", "NVIDIA A100 80GB PCIe".
        ("A100 40GB", "SXM4 SXM", _sheet("A100 SXM 40GB", 1555, 19.5, 156, 312, 312)),
        ("A100 80GB", "SXM4 SXM", _sheet("A100 SXM 80GB", 2039, 19.5, 156, 312, 312)),
        ("A100 40GB PCIE", "", _sheet("A100 PCIe 40GB", 1555, 19.5, 156, 312, 312)),
        ("A100 80GB PCIE", "", _sheet("A100 PCIe 80GB", 1935, 19.5, 156, 312, 312)),
        # NVIDIA H100 Tensor Core GPU datasheet: SXM FP32 67, TF32 989*, BF16/FP16 1,979*
        # TFLOPS, 3.35 TB/s; PCIe 51, 756*, 1,513*, 2 TB/s; NVL 60, 835*, 1,671*, 3.9 TB/s
        # (* with sparsity: halved here). torch: "NVIDIA H100 80GB HBM3" is the SXM part.
        ("H100 HBM3", "80GB SXM5 SXM", _sheet("H100 SXM", 3350, 67, 494.5, 989.5, 989.5)),
        ("H100 PCIE", "80GB", _sheet("H100 PCIe", 2000, 51, 378, 756.5, 756.5)),
        ("H100 NVL", "94GB", _sheet("H100 NVL", 3900, 60, 417.5, 835.5, 835.5)),
        # NVIDIA H200 Tensor Core GPU datasheet: SXM FP32 67, TF32 989*, BF16/FP16 1,979*
        # TFLOPS; NVL 60, 835*, 1,671*; both 4.8 TB/s. torch: "NVIDIA H200" is the SXM part.
        ("H200", "141GB HBM3E SXM", _sheet("H200 SXM", 4800, 67, 494.5, 989.5, 989.5)),
        ("H200 NVL", "141GB", _sheet("H200 NVL", 4800, 60, 417.5, 835.5, 835.5)),
        # NVIDIA L4 Tensor Core GPU datasheet: FP32 30.3, TF32 120*, BF16/FP16 242* TFLOPS,
        # 300 GB/s.
        ("L4", "", _sheet("L4", 300, 30.3, 60, 121, 121)),
        # NVIDIA L40S GPU datasheet: FP32 91.6, TF32 183 (366*), BF16/FP16 362.05 (733*)
        # TFLOPS, 864 GB/s.
        ("L40S", "", _sheet("L40S", 864, 91.6, 183, 362.05, 362.05)),
        # NVIDIA A10 Tensor Core GPU datasheet: FP32 31.2, TF32 62.5, BF16/FP16 125 TFLOPS
        # dense, 600 GB/s.
        ("A10", "", _sheet("A10", 600, 31.2, 62.5, 125, 125)),
        # NVIDIA T4 Tensor Core GPU datasheet: FP32 8.1, mixed precision (FP16/FP32) 65
        # TFLOPS, 320 GB/s. Turing has no TF32 or BF16 tensor cores. torch: "Tesla T4".
        ("T4", "", _sheet("T4", 320, 8.1, fp16=65)),
        # NVIDIA Tesla V100 datasheet (2020): SXM2 FP32 15.7, tensor (FP16) 125 TFLOPS; PCIe
        # 14 and 112; both 900 GB/s. No TF32 or BF16. torch: "Tesla V100-SXM2-16GB".
        ("V100 SXM2", "16GB 32GB", _sheet("V100 SXM2", 900, 15.7, fp16=125)),
        ("V100 PCIE", "16GB 32GB", _sheet("V100 PCIe", 900, 14, fp16=112)),
        # NVIDIA Ada Lovelace architecture whitepaper v2.1, appendix table 2 (RTX 4090): FP32
        # 82.6, TF32 82.6, FP16/BF16 with FP32 accumulate 165.2 TFLOPS dense (what cuBLAS
        # uses for torch's fp16/bf16 matmuls), 1,008 GB/s.
        ("RTX 4090", "", _sheet("RTX 4090", 1008, 82.6, 82.6, 165.2, 165.2)),
    )
)

_VENDOR_WORDS = frozenset({"NVIDIA", "TESLA", "GEFORCE"})

_DTYPE_KEYS = {
    "float32": "fp32",
    "float": "fp32",
    "fp32": "fp32",
    "tf32": "tf32",
    "tfloat32": "tf32",
    "float16": "fp16",
    "half": "fp16",
    "fp16": "fp16",
    "bfloat16": "bf16",
    "bf16": "bf16",
}


def dtype_key(dtype: object) -> str | None:
    """The peak key ("fp32", "tf32", "fp16", "bf16") of a torch dtype or its name, or ``None``.

    A float32 model whose matmuls run on TF32 tensor cores (``fp32_precision="tf32"``,
    ``set_float32_matmul_precision("high")``) should be passed as "tf32".
    """
    return _DTYPE_KEYS.get(str(dtype).lower().removeprefix("torch."))


def datasheet_peaks(device_name: str) -> Peaks | None:
    """The datasheet peaks of the card torch names ``device_name``; ``None`` if unknown."""
    tokens = {t for t in re.split(r"[\s\-_]+", device_name.upper()) if t} - _VENDOR_WORDS
    for required, allowed, peaks in _DATASHEET:
        if required <= tokens and tokens <= required | allowed:
            return peaks
    return None


def utilisation(
    bytes_moved: int | None,
    flops: int | None,
    device_seconds: float,
    peaks: Peaks | None,
    dtype: object,
) -> Utilisation:
    """Achieved bytes/s and FLOP/s over ``device_seconds`` next to the peaks for ``dtype``."""
    timed = device_seconds > 0
    key = dtype_key(dtype)
    return Utilisation(
        device_seconds=device_seconds,
        achieved_bytes_per_second=bytes_moved / device_seconds
        if bytes_moved is not None and timed
        else None,
        achieved_flops_per_second=flops / device_seconds if flops is not None and timed else None,
        peak_bytes_per_second=peaks.bytes_per_second if peaks is not None else None,
        peak_flops_per_second=peaks.flops_per_second.get(key)
        if peaks is not None and key is not None
        else None,
        peak_source=peaks.source if peaks is not None else "",
    )


# -- calibration (needs a CUDA device) --------------------------------------------------

#: (device, dtype key) -> measured peaks, for the whole session.
_CALIBRATED: dict[tuple[str, str], Peaks] = {}
#: device -> measured copy bandwidth (shared by every dtype).
_BANDWIDTH: dict[str, float] = {}

_COPY_BYTES = 1 << 30  # each of source and destination; shrunk to fit free memory
_MATMUL_SIZE = 8192
_WARMUP = 2
_REPEATS = 5


def calibrate(device: Any, dtype: Any) -> Peaks:
    """Measure the device's copy bandwidth and ``dtype`` matmul FLOP/s (cached per session).

    Bandwidth: a large device-to-device copy, counting bytes read and written. FLOP/s: an
    8192-square matmul on random data. Each is the best of a few CUDA-event timings after
    warm-up. Allocates a few GiB: call it before resetting peak-memory statistics. Raises
    ``ValueError`` for a device that is not CUDA or a dtype without a peak.
    """
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        raise ValueError(f"calibrate measures a CUDA device, not {dev}")
    if dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    key = dtype_key(dtype)
    if key is None:
        raise ValueError(f"no peak FLOP/s is defined for dtype {dtype}")
    cached = _CALIBRATED.get((str(dev), key))
    if cached is not None:
        return cached
    with torch.cuda.device(dev):
        bandwidth = _BANDWIDTH.get(str(dev))
        if bandwidth is None:
            bandwidth = _BANDWIDTH[str(dev)] = _copy_bandwidth(torch, dev)
        flops = _matmul_flops(torch, dev, key)
        torch.cuda.empty_cache()
    peaks = Peaks(bytes_per_second=bandwidth, flops_per_second={key: flops}, source="calibrated")
    _CALIBRATED[(str(dev), key)] = peaks
    return peaks


def cuda_event_seconds(torch: Any, run: Callable[[], object]) -> float:
    """Device time of one ``run()`` on the current stream, from a pair of CUDA events."""
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    run()
    end.record()
    end.synchronize()
    return float(start.elapsed_time(end)) / 1000.0


def _best_seconds(torch: Any, run: Callable[[], object]) -> float:
    """The fastest of a few CUDA-event timings of ``run`` after warm-up."""
    for _ in range(_WARMUP):
        run()
    torch.cuda.synchronize()
    return min(cuda_event_seconds(torch, run) for _ in range(_REPEATS))


def _copy_bandwidth(torch: Any, dev: Any) -> float:
    free_bytes, _ = torch.cuda.mem_get_info(dev)
    size = min(_COPY_BYTES, free_bytes // 4)
    source = torch.empty(size, dtype=torch.uint8, device=dev).fill_(1)
    destination = torch.empty_like(source)
    seconds = _best_seconds(torch, lambda: destination.copy_(source))
    return 2 * size / seconds


def _matmul_flops(torch: Any, dev: Any, key: str) -> float:
    tensor_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(key, torch.float32)
    n = _MATMUL_SIZE
    a = torch.randn(n, n, device=dev, dtype=tensor_dtype)
    b = torch.randn(n, n, device=dev, dtype=tensor_dtype)
    out = torch.empty(n, n, device=dev, dtype=tensor_dtype)
    # fp32_precision ("ieee"/"tf32"/"none") is the public switch since torch 2.9;
    # restore the caller's setting afterwards.
    matmul_backend = torch.backends.cuda.matmul
    previous = matmul_backend.fp32_precision
    matmul_backend.fp32_precision = "tf32" if key == "tf32" else "ieee"
    try:
        seconds = _best_seconds(torch, lambda: torch.mm(a, b, out=out))
    finally:
        matmul_backend.fp32_precision = previous
    return 2 * n**3 / seconds
