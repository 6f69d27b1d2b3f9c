"""Device peaks: datasheet matching by torch's device names, utilisation sums, calibration."""

from __future__ import annotations

import pytest
import torch

from pytest_perfguard.collectors.peaks import (
    Peaks,
    calibrate,
    datasheet_peaks,
    dtype_key,
    utilisation,
)


@pytest.mark.parametrize(
    ("torch_name", "source"),
    [
        ("NVIDIA H100 80GB HBM3", "datasheet:H100 SXM"),
        ("NVIDIA H100 PCIe", "datasheet:H100 PCIe"),
        ("NVIDIA H100 NVL", "datasheet:H100 NVL"),
        ("NVIDIA H200", "datasheet:H200 SXM"),
        ("NVIDIA H200 NVL", "datasheet:H200 NVL"),
        ("NVIDIA A100-SXM4-40GB", "datasheet:A100 SXM 40GB"),
        ("NVIDIA A100-SXM4-80GB", "datasheet:A100 SXM 80GB"),
        ("NVIDIA A100-PCIE-40GB", "datasheet:A100 PCIe 40GB"),
        ("NVIDIA A100 80GB PCIe", "datasheet:A100 PCIe 80GB"),
        ("NVIDIA L4", "datasheet:L4"),
        ("NVIDIA L40S", "datasheet:L40S"),
        ("NVIDIA A10", "datasheet:A10"),
        ("Tesla T4", "datasheet:T4"),
        ("Tesla V100-SXM2-16GB", "datasheet:V100 SXM2"),
        ("Tesla V100-SXM2-32GB", "datasheet:V100 SXM2"),
        ("Tesla V100-PCIE-32GB", "datasheet:V100 PCIe"),
        ("NVIDIA GeForce RTX 4090", "datasheet:RTX 4090"),
    ],
)
def test_datasheet_matches_torch_device_names(torch_name: str, source: str) -> None:
    peaks = datasheet_peaks(torch_name)
    assert peaks is not None
    assert peaks.source == source


@pytest.mark.parametrize(
    "torch_name",
    [
        "NVIDIA L40",  # not an L40S
        "NVIDIA A10G",  # AWS part, not an A10
        "NVIDIA GeForce RTX 4090 D",  # fewer SMs than a 4090
        "NVIDIA GeForce RTX 4090 Laptop GPU",
        "Tesla V100S-PCIE-32GB",
        "NVIDIA RTX A6000",
        "NVIDIA B200",
        "AMD Instinct MI300X",
        "cpu (AVX2)",
        "",
    ],
)
def test_unknown_cards_have_no_datasheet(torch_name: str) -> None:
    assert datasheet_peaks(torch_name) is None


def test_datasheet_figures_are_dense() -> None:
    h100 = datasheet_peaks("NVIDIA H100 80GB HBM3")
    assert h100 is not None
    assert h100.bytes_per_second == 3.35e12
    assert h100.flops_per_second == {
        "fp32": 67e12,
        "tf32": 494.5e12,  # 989 TFLOPS "with sparsity" / 2
        "fp16": 989.5e12,  # 1,979 / 2
        "bf16": 989.5e12,
    }
    t4 = datasheet_peaks("Tesla T4")
    assert t4 is not None
    assert t4.bytes_per_second == 320e9
    assert set(t4.flops_per_second) == {"fp32", "fp16"}  # Turing: no TF32, no BF16


@pytest.mark.parametrize(
    ("dtype", "key"),
    [
        (torch.float32, "fp32"),
        (torch.float16, "fp16"),
        (torch.bfloat16, "bf16"),
        ("bfloat16", "bf16"),
        ("tf32", "tf32"),
        ("half", "fp16"),
        (torch.float64, None),
        (torch.int8, None),
    ],
)
def test_dtype_key(dtype: object, key: str | None) -> None:
    assert dtype_key(dtype) == key


def test_utilisation_by_hand() -> None:
    peaks = Peaks(bytes_per_second=2e12, flops_per_second={"bf16": 1e15}, source="test")
    # 1 GB and 250 GFLOP in 1 ms: 1e12 B/s (half the bandwidth), 2.5e14 FLOP/s (a quarter).
    result = utilisation(1_000_000_000, 250_000_000_000, 1e-3, peaks, torch.bfloat16)
    assert result.device_seconds == 1e-3
    assert result.achieved_bytes_per_second == pytest.approx(1e12)
    assert result.achieved_flops_per_second == pytest.approx(2.5e14)
    assert result.peak_bytes_per_second == 2e12
    assert result.peak_flops_per_second == 1e15
    assert result.peak_source == "test"
    assert result.bandwidth_utilisation == pytest.approx(0.5)
    assert result.flop_utilisation == pytest.approx(0.25)


def test_utilisation_against_an_h100_datasheet() -> None:
    peaks = datasheet_peaks("NVIDIA H100 80GB HBM3")
    # 6.7 GB in 4 ms is 1.675e12 B/s, half of 3.35 TB/s; 1.979e12 fp16 FLOP in 4 ms is
    # 4.9475e14 FLOP/s, half of 989.5 TFLOP/s.
    result = utilisation(6_700_000_000, 1_979_000_000_000, 4e-3, peaks, "float16")
    assert result.peak_source == "datasheet:H100 SXM"
    assert result.bandwidth_utilisation == pytest.approx(0.5)
    assert result.flop_utilisation == pytest.approx(0.5)


def test_utilisation_with_missing_pieces() -> None:
    t4 = datasheet_peaks("Tesla T4")
    no_bf16 = utilisation(10, 20, 1.0, t4, torch.bfloat16)
    assert no_bf16.achieved_flops_per_second == 20.0
    assert no_bf16.peak_flops_per_second is None  # T4 has no BF16 peak
    assert no_bf16.flop_utilisation is None
    assert no_bf16.bandwidth_utilisation == pytest.approx(10 / 320e9)

    no_peaks = utilisation(10, None, 1.0, None, torch.float32)
    assert no_peaks.achieved_bytes_per_second == 10.0
    assert no_peaks.achieved_flops_per_second is None
    assert no_peaks.peak_bytes_per_second is None
    assert no_peaks.peak_source == ""

    untimed = utilisation(10, 20, 0.0, t4, torch.float32)
    assert untimed.achieved_bytes_per_second is None
    assert untimed.achieved_flops_per_second is None


def test_calibrate_refuses_a_cpu_device() -> None:
    with pytest.raises(ValueError, match="CUDA device"):
        calibrate("cpu", torch.float32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="calibrate measures a CUDA device")
@pytest.mark.parametrize("dtype", [torch.bfloat16, "tf32", torch.float32])
def test_calibrate_on_the_gpu(dtype: object) -> None:
    peaks = calibrate("cuda", dtype)
    key = dtype_key(dtype)
    assert key is not None
    assert peaks.source == "calibrated"
    assert calibrate(torch.device("cuda", torch.cuda.current_device()), dtype) is peaks
    sheet = datasheet_peaks(torch.cuda.get_device_name())
    if sheet is None:
        assert peaks.bytes_per_second > 0
        assert peaks.flops_per_second[key] > 0
        return
    # Measured peaks land below the datasheet's, but not far below.
    assert 0.5 < peaks.bytes_per_second / sheet.bytes_per_second < 1.05
    assert 0.3 < peaks.flops_per_second[key] / sheet.flops_per_second[key] < 1.05
