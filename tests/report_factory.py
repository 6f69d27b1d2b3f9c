"""Hand-built RunResults for the reporter tests: no torch, realistic numbers.

The run is a merged CI matrix: a CPU job (inductor C++ kernels) and a GPU job on an H100
(Triton/cuBLAS kernels, NVML and utilisation). The verdicts are what ``compare`` produces
for such measurements against a baseline, written out by hand so that a change in the
comparison does not move these reporter tests.

Entries:

* ``test_mlp_block``: regressed. A ``.item()`` call added a graph break; the compiled
  launches, bytes moved and graph breaks went up, with hints naming the new break.
* ``test_layernorm_gelu``: improved (one fused kernel instead of two).
* ``test_sdpa_block[bf16-causal]::backward``: new (no baseline yet), timing unavailable.
* ``test_custom_op[<script>...|a`b]``: hostile text in the test id, kernel names and the
  graph-break reason; unchanged.
* ``test_conv_bn_relu``: other-environment.
* GPU ``test_matmul_relu[cuda-fp16]`` and ``test_bmm_small[cuda-fp32]``: utilisation and
  NVML data (the roofline has points), unchanged.
* Two errored tests of the CPU job (one in setup, one with hostile text in its message).

Peak memory is the tensors alive at once in one call, as ``ModeRecord.peak_memory`` holds
it; each value below is the sum of the allocations listed for that mode (derived in each
entry's comment). ``test_conv_bn_relu`` has none: results written before peak memory
existed. Every CPU record says "no GPU" for NVML, utilisation and device time in both
modes, as the runner writes it; the reports say that once per environment.
"""

from __future__ import annotations

from dataclasses import asdict

from pytest_perfguard.compare import Change, Rules, Verdict
from pytest_perfguard.record import (
    Allocation,
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
from pytest_perfguard.results import ResultEntry, RunResults, TestError

CREATED = "2025-11-26T14:40:00+00:00"
TOOL_VERSION = "0.1.0"
BASELINE_PATH = ".perfguard/baseline.json"

#: The hostile test id: HTML, a table pipe and a backtick in the parametrize id.
EVIL_TEST_ID = "tests/test_ops.py::test_custom_op[<script>alert(1)</script>|a`b]"

H100_PEAK_BYTES = 3.35e12
H100_PEAK_FP16 = 989.4e12
H100_PEAK_FP32 = 66.9e12

MiB = 1024**2

#: What the runner records for every GPU-only metric of a CPU run.
NO_GPU = "no GPU: this run was on the CPU"


def on_cpu(*records: ModeRecord) -> None:
    """Mark the GPU-only metrics unavailable, as the runner does on a CPU run."""
    for record in records:
        for metric in ("nvml", "utilisation", "device_seconds"):
            record.unavailable.setdefault(metric, NO_GPU)


def peak(record: ModeRecord, *allocations: tuple[str, int, str]) -> None:
    """Set a mode's peak memory to the sum of the tensors alive at its peak."""
    record.peak_allocations = [Allocation(op, size, shape) for op, size, shape in allocations]
    record.peak_memory = sum(size for _, size, _ in allocations)


def cpu_environment() -> Environment:
    return Environment(
        python="3.11.9",
        torch="2.13.0+cpu",
        triton="",
        device="cpu",
        device_name="cpu (AVX2)",
        backend="inductor",
        mode="default",
        dynamic="auto",
        fullgraph=False,
        inductor={"cpp.simdlen": "None", "freezing": "False"},
    )


def gpu_environment() -> Environment:
    return Environment(
        python="3.11.9",
        torch="2.13.0+cu128",
        triton="3.5.0",
        device="cuda",
        device_name="NVIDIA H100 80GB HBM3",
        backend="inductor",
        mode="max-autotune",
        dynamic="auto",
        fullgraph=False,
        inductor={"max_autotune_gemm_backends": "ATEN,TRITON"},
    )


def timing(median: float, spread: float, samples: int = 20, clock: str = "perf_counter") -> Timing:
    """Deterministic samples around ``median``, +-``spread`` relative, rounded for stable JSON."""
    values = [
        round(median * (1 + spread * (((i * 7) % samples) / (samples - 1) - 0.5) * 2), 9)
        for i in range(samples)
    ]
    return Timing(samples=values, clock=clock)


def utilisation(device_seconds: float, bytes_moved: int, flops: int, peak_flops: float,
                peak_source: str) -> Utilisation:
    return Utilisation(
        device_seconds=device_seconds,
        achieved_bytes_per_second=round(bytes_moved / device_seconds, 0),
        achieved_flops_per_second=round(flops / device_seconds, 0),
        peak_bytes_per_second=H100_PEAK_BYTES,
        peak_flops_per_second=peak_flops,
        peak_source=peak_source,
    )


def nvml(gpu_util: float, memory_util: float, power: float) -> NvmlSummary:
    return NvmlSummary(
        samples=48,
        window_seconds=0.48,
        gpu_util_percent=gpu_util,
        memory_util_percent=memory_util,
        memory_used_bytes=2_361_393_152,
        sm_clock_mhz=1980.0,
        memory_clock_mhz=2619.0,
        power_watts=power,
        temperature_c=57.0,
        throttle_reasons=[],
    )


# --- CPU job -----------------------------------------------------------------------------


def mlp_block_regressed() -> ResultEntry:
    """Linear-GELU-Linear + residual + LayerNorm, 8192 tokens x 512 -> 2048, fp32."""
    flops = 34_359_738_368
    eager = ModeRecord(
        mode="eager",
        kernel_launches=5,
        kernels=[
            Kernel("aten::addmm", "aten", 2),
            Kernel("aten::gelu", "aten", 1),
            Kernel("aten::add", "aten", 1),
            Kernel("aten::native_layer_norm", "aten", 1),
        ],
        bytes_moved=394_278_912,
        flops=flops,
        time=timing(0.0412, 0.03),
    )
    compiled = ModeRecord(
        mode="compiled",
        kernel_launches=5,
        kernels=[
            Kernel("extern_kernels.addmm", "aten", 2),
            Kernel("cpp_fused_gelu_0", "generated", 1),
            Kernel("cpp_fused_mean_1", "generated", 1),
            Kernel("cpp_fused_add_native_layer_norm_2", "generated", 1),
        ],
        bytes_moved=427_829_248,
        flops=flops,
        time=timing(0.0398, 0.04),
        graphs=2,
        graph_breaks=1,
        graph_break_details=[
            GraphBreak(
                reason="Unsupported Tensor.item() call with capture_scalar_outputs=False\n"
                "  Explanation: Dynamo does not support Tensor.item() by default.",
                location="tests/test_models.py:48",
                function="MLPBlock.forward",
            )
        ],
        recompiles=0,
        compile_seconds=3.84,
    )
    measurement = Measurement(
        test_id="tests/test_models.py::test_mlp_block",
        name="default",
        train=False,
        environment=cpu_environment(),
        eager=eager,
        compiled=compiled,
        numerics=Numerics(checked=True, ok=True, max_abs_error=2.4e-06, max_rel_error=1.1e-05,
                          where="output[0][17, 3, 402]", atol=1e-05, rtol=1.3e-06),
    )
    # Eager peak: during the second addmm, the first addmm's and GELU's [8192, 2048] fp32
    # outputs (64 MiB each) and its own [8192, 512] output (16 MiB) are alive: 144 MiB.
    peak(eager, ("aten::addmm", 64 * MiB, "[8192, 2048] float32"),
         ("aten::gelu", 64 * MiB, "[8192, 2048] float32"),
         ("aten::addmm", 16 * MiB, "[8192, 512] float32"))
    # Compiled: the graph break keeps the GELU output alive across the break (128 MiB), and
    # the fused output and the mean's scalar buffer are allocated before it is freed.
    peak(compiled, ("extern_kernels.addmm", 64 * MiB, "[8192, 2048] float32"),
         ("cpp_fused_gelu_0", 64 * MiB, "[8192, 2048] float32"),
         ("cpp_fused_add_native_layer_norm_2", 16 * MiB, "[8192, 512] float32"),
         ("cpp_fused_mean_1", 4, "[] float32"))
    on_cpu(eager, compiled)
    break_hint = ("new graph break at tests/test_models.py:48: Unsupported Tensor.item() call "
                  "with capture_scalar_outputs=False")
    kernel_hints = [
        "kernel appeared: cpp_fused_add_native_layer_norm_2 (x1)",
        "kernel appeared: cpp_fused_mean_1 (x1)",
        "kernel vanished: cpp_fused_add_native_layer_norm_1 (x1)",
    ]
    verdict = Verdict(
        key=measurement.key,
        status="regressed",
        changes=[
            Change("compiled kernel_launches", 4, 5, "regressed", kernel_hints + [break_hint]),
            Change("graph_breaks", 0, 1, "regressed", [break_hint]),
            Change("compiled bytes_moved", 360_720_384, 427_829_248, "regressed",
                   kernel_hints + [break_hint]),
            Change("fusion_ratio", 1.25, 1.0, "regressed", kernel_hints + [break_hint]),
            # Baseline compiled peak 128 MiB (the GELU output was freed before the fused
            # kernel ran); eager 144 MiB, so the baseline memory ratio was 144/128 = 1.125.
            Change("compiled peak_memory", 128 * MiB, 144 * MiB + 4, "regressed", [break_hint]),
            Change("memory_ratio", 1.125, 144 * MiB / (144 * MiB + 4), "regressed",
                   [break_hint]),
        ],
    )
    return ResultEntry(measurement, verdict)


def layernorm_gelu_improved() -> ResultEntry:
    """LayerNorm -> GELU -> scale -> residual add, 4096 x 1024 fp32: now one kernel."""
    measurement = Measurement(
        test_id="tests/test_models.py::test_layernorm_gelu",
        name="default",
        train=False,
        environment=cpu_environment(),
        eager=ModeRecord(
            mode="eager",
            kernel_launches=4,
            kernels=[
                Kernel("aten::native_layer_norm", "aten", 1),
                Kernel("aten::gelu", "aten", 1),
                Kernel("aten::mul", "aten", 1),
                Kernel("aten::add", "aten", 1),
            ],
            bytes_moved=150_994_944,
            flops=0,
            time=timing(0.0221, 0.02),
        ),
        compiled=ModeRecord(
            mode="compiled",
            kernel_launches=1,
            kernels=[Kernel("cpp_fused_add_gelu_mul_native_layer_norm_0", "generated", 1)],
            bytes_moved=33_554_432,
            flops=0,
            time=timing(0.0069, 0.15),
            graphs=1,
            graph_breaks=0,
            recompiles=0,
            compile_seconds=1.92,
        ),
        numerics=Numerics(checked=True, ok=True, max_abs_error=4.8e-07, max_rel_error=3.0e-06,
                          where="output[2048, 77]", atol=1e-05, rtol=1.3e-06),
    )
    # [4096, 1024] fp32 is 16 MiB. Eager: the layer norm's output and its [4096, 1] mean
    # and rstd (16 KiB each) are alive while GELU writes its output: 32 MiB + 32 KiB.
    # Compiled: one fused kernel writes only the output: 16 MiB. Memory ratio 2.00x.
    peak(measurement.eager, ("aten::native_layer_norm", 16 * MiB, "[4096, 1024] float32"),
         ("aten::gelu", 16 * MiB, "[4096, 1024] float32"),
         ("aten::native_layer_norm", 16 * 1024, "[4096, 1] float32"),
         ("aten::native_layer_norm", 16 * 1024, "[4096, 1] float32"))
    peak(measurement.compiled,
         ("cpp_fused_add_gelu_mul_native_layer_norm_0", 16 * MiB, "[4096, 1024] float32"))
    on_cpu(measurement.eager, measurement.compiled)
    verdict = Verdict(
        key=measurement.key,
        status="improved",
        changes=[
            Change("compiled kernel_launches", 2, 1, "improved"),
            Change("compiled bytes_moved", 67_108_864, 33_554_432, "improved"),
            Change("fusion_ratio", 2.0, 4.0, "improved"),
        ],
    )
    return ResultEntry(measurement, verdict)


def sdpa_backward_new() -> ResultEntry:
    """Causal attention block in bf16, forward + backward, no baseline yet."""
    no_time = {"time": "timing off (--perfguard-time=off)"}
    measurement = Measurement(
        test_id="tests/test_attention.py::test_sdpa_block[bf16-causal]",
        name="backward",
        train=True,
        environment=cpu_environment(),
        eager=ModeRecord(
            mode="eager",
            kernel_launches=14,
            kernels=[
                Kernel("aten::addmm", "aten", 4),
                Kernel("aten::_scaled_dot_product_flash_attention_for_cpu", "aten", 1),
                Kernel("aten::_scaled_dot_product_flash_attention_for_cpu_backward", "aten", 1),
                Kernel("aten::mm", "aten", 6),
                Kernel("aten::sum", "aten", 2),
            ],
            bytes_moved=75_497_472,
            flops=12_884_901_888,
            unavailable=dict(no_time),
        ),
        compiled=ModeRecord(
            mode="compiled",
            kernel_launches=11,
            kernels=[
                Kernel("extern_kernels.addmm", "aten", 4),
                Kernel("aten::_scaled_dot_product_flash_attention_for_cpu", "aten", 1),
                Kernel("aten::_scaled_dot_product_flash_attention_for_cpu_backward", "aten", 1),
                Kernel("extern_kernels.mm", "aten", 4),
                Kernel("cpp_fused_sum_0", "generated", 1),
            ],
            bytes_moved=62_914_560,
            flops=12_884_901_888,
            graphs=2,
            graph_breaks=0,
            recompiles=0,
            compile_seconds=11.3,
            unavailable=dict(no_time),
        ),
        numerics=Numerics(checked=True, ok=True, max_abs_error=0.0078125, max_rel_error=0.0039,
                          where="grad[q][1, 3, 120, 5]", atol=0.016, rtol=0.016),
    )
    # bf16 [4096, 512] and [4, 8, 1024, 64] are 4 MiB each; the fp32 logsumexp [4, 8, 1024]
    # is 128 KiB. Eager peak in backward: the saved q, k, v projections, the attention
    # output and its logsumexp, and the three attention gradients: 7 x 4 MiB + 128 KiB.
    peak(measurement.eager,
         *[("aten::addmm", 4 * MiB, "[4096, 512] bfloat16")] * 3,
         ("aten::_scaled_dot_product_flash_attention_for_cpu", 4 * MiB, "[4, 8, 1024, 64] bfloat16"),
         *[("aten::_scaled_dot_product_flash_attention_for_cpu_backward", 4 * MiB,
            "[4, 8, 1024, 64] bfloat16")] * 3,
         ("aten::_scaled_dot_product_flash_attention_for_cpu", 128 * 1024,
          "[4, 8, 1024] float32"))
    # Compiled: the min-cut partitioner recomputes two projections, so one projection, the
    # attention output, the three gradients, the logsumexp and a [512] fp32 bias gradient
    # (2 KiB) are alive: 5 x 4 MiB + 128 KiB + 2 KiB. Seven tensors: the two smallest are
    # not shown (TOP_ALLOCATIONS is 5).
    peak(measurement.compiled,
         ("extern_kernels.addmm", 4 * MiB, "[4096, 512] bfloat16"),
         ("aten::_scaled_dot_product_flash_attention_for_cpu", 4 * MiB, "[4, 8, 1024, 64] bfloat16"),
         *[("aten::_scaled_dot_product_flash_attention_for_cpu_backward", 4 * MiB,
            "[4, 8, 1024, 64] bfloat16")] * 3,
         ("aten::_scaled_dot_product_flash_attention_for_cpu", 128 * 1024,
          "[4, 8, 1024] float32"),
         ("cpp_fused_sum_0", 2048, "[512] float32"))
    on_cpu(measurement.eager, measurement.compiled)
    return ResultEntry(measurement, Verdict(key=measurement.key, status="new"))


def evil_unchanged() -> ResultEntry:
    """A custom op whose names carry HTML, pipes, backticks and newlines."""
    evil_kernel = "mylib::fused|<img src=x onerror=alert(2)>`k`"
    reason = ("Unsupported: call_function UserDefinedObjectVariable(<script>alert(4)</script>)"
              " | `oops`\n  from user code:\n    File \"tests/test_ops.py\", line 77, in forward")
    measurement = Measurement(
        test_id=EVIL_TEST_ID,
        name="default",
        train=False,
        environment=cpu_environment(),
        eager=ModeRecord(
            mode="eager",
            kernel_launches=3,
            kernels=[Kernel(evil_kernel, "aten", 1), Kernel("aten::relu", "aten", 2)],
            bytes_moved=3_145_728,
            flops=0,
            time=timing(0.00041, 0.05),
        ),
        compiled=ModeRecord(
            mode="compiled",
            kernel_launches=2,
            kernels=[Kernel(evil_kernel, "aten", 1), Kernel("cpp_fused_relu_0", "generated", 1)],
            bytes_moved=2_097_152,
            flops=0,
            time=timing(0.00038, 0.05),
            graphs=2,
            graph_breaks=1,
            graph_break_details=[
                GraphBreak(reason=reason, location="tests/test_ops.py:77|<b>x</b>",
                           function="forward<script>")
            ],
            recompiles=0,
            compile_seconds=0.87,
        ),
        numerics=Numerics(checked=True, ok=True, max_abs_error=0.0, max_rel_error=0.0,
                          atol=1e-05, rtol=1.3e-06),
    )
    # Hostile op names and shapes in the allocations too: 1 MiB + 1 MiB eager, 1 MiB compiled.
    evil_shape = "[<b>3</b>|`x`]\n| y |"
    peak(measurement.eager, (evil_kernel, MiB, evil_shape), ("aten::relu", MiB, "[512, 512]"))
    peak(measurement.compiled, (evil_kernel, MiB, evil_shape))
    on_cpu(measurement.eager, measurement.compiled)
    return ResultEntry(measurement, Verdict(key=measurement.key, status="unchanged"))


def conv_bn_relu_other_environment() -> ResultEntry:
    measurement = Measurement(
        test_id="tests/test_models.py::test_conv_bn_relu",
        name="default",
        train=False,
        environment=cpu_environment(),
        eager=ModeRecord(
            mode="eager",
            kernel_launches=3,
            kernels=[
                Kernel("aten::mkldnn_convolution", "aten", 1),
                Kernel("aten::native_batch_norm", "aten", 1),
                Kernel("aten::relu", "aten", 1),
            ],
            bytes_moved=44_040_192,
            flops=7_398_752_256,
            time=timing(0.0187, 0.03),
        ),
        compiled=ModeRecord(
            mode="compiled",
            kernel_launches=2,
            kernels=[
                Kernel("extern_kernels.convolution", "aten", 1),
                Kernel("cpp_fused__native_batch_norm_legit_no_training_relu_0", "generated", 1),
            ],
            bytes_moved=29_360_128,
            flops=7_398_752_256,
            time=timing(0.0151, 0.03),
            graphs=1,
            graph_breaks=0,
            recompiles=0,
            compile_seconds=4.1,
        ),
        numerics=Numerics(checked=False, message="model is stochastic (dropout in train mode)"),
    )
    on_cpu(measurement.eager, measurement.compiled)  # and no peak memory: an older results file
    verdict = Verdict(
        key=measurement.key,
        status="other-environment",
        note="baseline holds only other environments: cpu (AVX512) · torch 2.12.0 · py3.11 · "
        "inductor/default",
    )
    return ResultEntry(measurement, verdict)


# --- GPU job -----------------------------------------------------------------------------


def matmul_relu_gpu() -> ResultEntry:
    """4096^3 fp16 matmul + ReLU; max-autotune fuses the ReLU into a Triton template."""
    flops = 137_438_953_472
    eager_bytes, compiled_bytes = 167_772_160, 100_663_296
    gemm = ("sm90_xmma_gemm_f16f16_f16f32_f32_tn_n_tilesize128x256x64_warpgroupsize2x1x1_"
            "execute_segment_k_off_kernel__5x_cublas")
    relu = ("void at::native::vectorized_elementwise_kernel<4, at::native::(anonymous "
            "namespace)::launch_clamp_scalar(at::TensorIteratorBase&, c10::Scalar, c10::Scalar, "
            "at::native::detail::ClampLimits)::{lambda()#1}::operator()() const::{lambda()#7}"
            "::operator()() const::{lambda(c10::Half)#1}, std::array<char*, 2ul> >"
            "(int, at::native::(anonymous namespace)::launch_clamp_scalar, std::array<char*, 2ul>)")
    measurement = Measurement(
        test_id="tests/test_gpu.py::test_matmul_relu[cuda-fp16]",
        name="default",
        train=False,
        environment=gpu_environment(),
        eager=ModeRecord(
            mode="eager",
            kernel_launches=2,
            kernels=[Kernel(gemm, "cuda", 1, 0.000198), Kernel(relu, "cuda", 1, 0.000032)],
            bytes_moved=eager_bytes,
            flops=flops,
            time=timing(0.000241, 0.02, clock="cuda-events"),
            device_seconds=0.00023,
            utilisation=utilisation(0.00023, eager_bytes, flops, H100_PEAK_FP16,
                                    "datasheet:H100 SXM fp16"),
            nvml=nvml(98.0, 61.0, 612.0),
        ),
        compiled=ModeRecord(
            mode="compiled",
            kernel_launches=1,
            kernels=[Kernel("triton_tem_fused_mm_relu_0", "generated", 1, 0.000201)],
            bytes_moved=compiled_bytes,
            flops=flops,
            time=timing(0.000209, 0.02, clock="cuda-events"),
            graphs=1,
            graph_breaks=0,
            recompiles=0,
            compile_seconds=41.7,
            device_seconds=0.000201,
            utilisation=utilisation(0.000201, compiled_bytes, flops, H100_PEAK_FP16,
                                    "datasheet:H100 SXM fp16"),
            nvml=nvml(97.0, 58.0, 634.0),
        ),
        numerics=Numerics(checked=True, ok=True, max_abs_error=0.0625, max_rel_error=0.00098,
                          where="output[3071, 12]", atol=0.1, rtol=0.001),
    )
    # [4096, 4096] fp16 is 32 MiB: eager holds the matmul output and the ReLU output; the
    # fused template writes one.
    peak(measurement.eager, ("aten::mm", 32 * MiB, "[4096, 4096] float16"),
         ("aten::relu", 32 * MiB, "[4096, 4096] float16"))
    peak(measurement.compiled, ("triton_tem_fused_mm_relu_0", 32 * MiB, "[4096, 4096] float16"))
    verdict = Verdict(
        key=measurement.key,
        status="unchanged",
        changes=[Change("compiled nvml_gpu_util_percent", 99.0, 97.0, "changed")],
    )
    return ResultEntry(measurement, verdict)


def bmm_small_gpu() -> ResultEntry:
    """4096 batched 64x64 fp32 matmuls: memory bound, left of the ridge."""
    flops = 2_147_483_648
    eager_bytes, compiled_bytes = 201_326_592, 201_326_592
    measurement = Measurement(
        test_id="tests/test_gpu.py::test_bmm_small[cuda-fp32]",
        name="default",
        train=False,
        environment=gpu_environment(),
        eager=ModeRecord(
            mode="eager",
            kernel_launches=1,
            kernels=[Kernel("ampere_sgemm_64x64_nn", "cuda", 1, 0.000083)],
            bytes_moved=eager_bytes,
            flops=flops,
            time=timing(0.000094, 0.03, clock="cuda-events"),
            device_seconds=0.000083,
            utilisation=utilisation(0.000083, eager_bytes, flops, H100_PEAK_FP32,
                                    "datasheet:H100 SXM fp32"),
            nvml=nvml(93.0, 88.0, 402.0),
        ),
        compiled=ModeRecord(
            mode="compiled",
            kernel_launches=1,
            kernels=[Kernel("triton_tem_fused_bmm_0", "generated", 1, 0.000071)],
            bytes_moved=compiled_bytes,
            flops=flops,
            time=timing(0.000082, 0.03, clock="cuda-events"),
            graphs=1,
            graph_breaks=0,
            recompiles=0,
            compile_seconds=18.2,
            device_seconds=0.000071,
            utilisation=utilisation(0.000071, compiled_bytes, flops, H100_PEAK_FP32,
                                    "datasheet:H100 SXM fp32"),
            nvml=nvml(95.0, 91.0, 418.0),
        ),
        numerics=Numerics(checked=True, ok=True, max_abs_error=3.8e-06, max_rel_error=2.1e-06,
                          where="output[2210, 17, 40]", atol=1e-05, rtol=1.3e-06),
    )
    # [4096, 64, 64] fp32 is 64 MiB, the output alone in both modes.
    peak(measurement.eager, ("aten::bmm", 64 * MiB, "[4096, 64, 64] float32"))
    peak(measurement.compiled, ("triton_tem_fused_bmm_0", 64 * MiB, "[4096, 64, 64] float32"))
    return ResultEntry(measurement, Verdict(key=measurement.key, status="unchanged"))


# --- runs --------------------------------------------------------------------------------


#: An error message with markup, a code fence and a pipe: it must stay text everywhere.
EVIL_ERROR = ("RuntimeError: boom | ```</details><script>alert(7)</script>\n"
              "```\n  File \"tests/test_models.py\", line 12, in test_t5\n"
              "    model(<img src=x onerror=alert(8)>)")


def errors() -> list[TestError]:
    """The CPU job's errored tests: one in setup (a missing fixture), one in the call."""
    return [
        TestError("tests/test_models.py::test_whisper_encoder[tiny]", "setup",
                  "fixture 'whisper_config' not found\n>       available fixtures: cache, "
                  "capsys, perfguard, tmp_path"),
        TestError("tests/test_models.py::test_t5[<b>tiny</b>]", "call", EVIL_ERROR),
    ]


def _run(entries: list[ResultEntry], errored: list[TestError] | None = None) -> RunResults:
    return RunResults(
        errors=errored or [],
        entries=entries,
        created=CREATED,
        tool_version=TOOL_VERSION,
        rules=asdict(Rules()),
        baseline_path=BASELINE_PATH,
    )


def cpu_run() -> RunResults:
    return _run([
        layernorm_gelu_improved(),
        evil_unchanged(),
        mlp_block_regressed(),
        sdpa_backward_new(),
        conv_bn_relu_other_environment(),
    ], errors())


def gpu_run() -> RunResults:
    return _run([matmul_relu_gpu(), bmm_small_gpu()])


def sample_results() -> RunResults:
    """The merged CI matrix: every CPU entry, then every GPU entry (input order unsorted)."""
    return _run(cpu_run().entries + gpu_run().entries, errors())
