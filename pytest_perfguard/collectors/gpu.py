"""GPU counters for one measurement: NVML readings while each mode runs, and utilisation
against the device's roofline (CUDA only; on other devices every GPU metric is recorded as
unavailable with the reason).

Each mode gets its own contiguous sampled block, repeated until NVML's averaging window (up
to 1 s) is covered, so its utilisation is that mode's alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..record import ModeRecord

NO_GPU = "no GPU: this run was on the CPU"


def record_gpu_counters(
    calls: Mapping[str, Callable[[], Any]],
    records: Mapping[str, ModeRecord],
    device: torch.device,
    compute_dtype: torch.dtype,
) -> None:
    """Fill ``nvml`` and ``utilisation`` of each mode's record (``calls`` and ``records`` are
    keyed by mode); ``device_seconds``, ``bytes_moved`` and ``flops`` must be there already."""
    if device.type != "cuda":
        for record in records.values():
            for metric in ("nvml", "utilisation", "device_seconds"):
                record.unavailable[metric] = NO_GPU
        return
    from .nvml import MIN_WINDOW_S, NvmlSampler, window_long_enough
    from .peaks import calibrate, datasheet_peaks, utilisation

    index = device.index if device.index is not None else torch.cuda.current_device()
    roofline = peak_dtype(compute_dtype)
    peaks = datasheet_peaks(torch.cuda.get_device_name(index))
    if peaks is None:
        try:
            peaks = calibrate(device, roofline)
        except Exception as exc:  # calibration is best effort; the reason is recorded
            for record in records.values():
                record.unavailable["peaks"] = f"no datasheet entry and calibration failed: {exc}"
    try:
        uuid = str(torch.cuda.get_device_properties(index).uuid)
    except Exception:
        uuid = None
    for mode, call in calls.items():
        record = records[mode]
        with NvmlSampler(index, device_uuid=uuid) as sampler:
            start = time.perf_counter()
            count = 0
            while count < 10_000 and (count < 3 or not window_long_enough(
                    time.perf_counter() - start)):
                call()
                count += 1
                if time.perf_counter() - start > 2 * MIN_WINDOW_S:
                    break
            torch.cuda.synchronize(device)
        record.nvml = sampler.summary()
        if sampler.unavailable_reason is not None:
            record.unavailable["nvml"] = sampler.unavailable_reason
        if record.device_seconds:
            record.utilisation = utilisation(record.bytes_moved, record.flops,
                                             record.device_seconds, peaks, roofline)
        else:
            record.unavailable["utilisation"] = "no device time was recorded for this mode"


def peak_dtype(dtype: torch.dtype) -> Any:
    """The roofline a dtype's matmuls run at: float32 matmuls use TF32 tensor cores when
    ``torch.set_float32_matmul_precision`` is "high" or "medium" (the public switch; it
    also reflects ``torch.backends.cuda.matmul.allow_tf32``). Calibration measures the
    same key, so the measured peak and the achieved FLOP/s describe the same pipes."""
    if dtype == torch.float32 and torch.get_float32_matmul_precision() in ("high", "medium"):
        return "tf32"
    return dtype


def compute_dtype(model: Any, args: tuple[Any, ...]) -> torch.dtype:
    """The floating dtype the model computes in: its first floating parameter, else input."""
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            if p.is_floating_point():
                return p.dtype
    pending: list[Any] = list(args)
    while pending:
        leaf = pending.pop(0)
        if isinstance(leaf, torch.Tensor) and leaf.is_floating_point():
            return leaf.dtype
        if isinstance(leaf, (list, tuple)):
            pending[:0] = list(leaf)
        elif isinstance(leaf, dict):
            pending[:0] = list(leaf.values())
    return torch.float32
