"""Real models, called the way their users call them (issue 9).

Each test runs the plugin end to end with pytester and real torch on the CPU. The models
are tiny stand-ins for what transformers models do (return a cache object, carry a loss,
change state, use dropout); the zoo at the end runs real transformers architectures.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _needs_transformers() -> None:
    """Skip without transformers. Not imported here: pytester drops modules a test imported
    when it ends, and numpy (which transformers imports) cannot be imported twice."""
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("transformers is not installed (pip install -e '.[dev]')")

# ---- 1. Outputs of any structure -----------------------------------------------------

CACHE_MODEL = """
import threading
import torch

class Layer:                 # like transformers' DynamicLayer: slots holding tensors
    __slots__ = ("keys", "values", "step")

    def __init__(self, keys, values):
        self.keys, self.values, self.step = keys, values, 3

class Cache:                 # like DynamicCache: an object holding layers
    def __init__(self, layers):
        self.layers = layers
        self.device = torch.device("cpu")   # metadata, not data: ignored
        self.owner = self                   # refers back to itself

LOCK = threading.Lock()      # an object with nothing perfguard can read

def model(x):
    keys = x * 2
    if torch.compiler.is_compiling() and OFF_BY_ONE:
        keys = keys + 1
    return {"logits": x.sin(), "cache": Cache([Layer(keys, x + 1)]), "lock": LOCK}

OFF_BY_ONE = False
"""


def test_outputs_of_any_structure_are_walked_and_skips_are_recorded(
    pytester: pytest.Pytester,
) -> None:
    """Before: ``TypeError: perfguard cannot compare output['cache'] of type Cache``.

    Every tensor and number reachable is compared: logits, the layer's keys, values and
    ``step``. The cycle (``owner``) and the lock are skipped with their reasons; the
    device is metadata and ignored. ``numerics_exclude`` leaves the cache out by name.
    """
    pytester.makepyfile(model=CACHE_MODEL)
    pytester.makepyfile(
        """
import torch
import model as m

def test_walk(perfguard):
    result = perfguard(m.model, torch.randn(8))
    assert result.numerics.ok
    assert result.numerics.skipped == [
        "output['cache'].owner: Cache refers back to an enclosing object",
        "output['lock']: _thread.lock holds no attributes perfguard can read (not a "
        "tensor, number, container or Python object)",
    ]

def test_mismatch_inside_the_cache_is_found(perfguard):
    m.OFF_BY_ONE = True
    perfguard(m.model, torch.zeros(8))

def test_excluded_cache_is_not_compared(perfguard):
    m.OFF_BY_ONE = True
    result = perfguard(m.model, torch.zeros(8), numerics_exclude=["cache"])
    assert "output['cache']: excluded by numerics_exclude" in result.numerics.skipped

def test_exclude_must_be_a_list(perfguard):
    perfguard(m.model, torch.zeros(8), numerics_exclude="cache")
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines_random([
        "*NumericsMismatch: perfguard: compiled output differs from eager*largest error at "
        "output[[]'cache'[]].layers[[]0[]].keys[[]0[]]: eager 0, compiled 1*",
        "*numerics_exclude must be a list of output names or paths*got 'cache'*",
    ])


# ---- 2. Blame ------------------------------------------------------------------------


def test_only_the_models_own_errors_are_the_models(pytester: pytest.Pytester) -> None:
    """Before: perfguard's own failures inside a training call read ``model raised in
    eager mode: ...`` (and an output of another type was a TypeError blamed on the model,
    even with check_numerics=False)."""
    pytester.makepyfile(model=CACHE_MODEL)
    pytester.makepyfile(
        """
import torch
import model as m

def test_detached_output(perfguard):
    perfguard(lambda x: x.detach() * 2, torch.ones(3, requires_grad=True), train=True)

def test_cache_output_in_training(perfguard):
    perfguard(m.model, torch.ones(8, requires_grad=True), train=True, check_numerics=False)

def test_model_error_is_still_the_models(perfguard):
    def broken(x):
        raise RuntimeError("model is broken")
    perfguard(broken, torch.ones(3, requires_grad=True), train=True)

def test_bad_loss_callable(perfguard):
    perfguard(lambda x: x * 2, torch.ones(3, requires_grad=True), train=True,
              loss=lambda out: out.detach().sum())
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines_random([
        "*ValueError: perfguard: train=True but no output of the model requires grad*",
        "*ModelError: RuntimeError: model is broken (model raised in eager mode)*",
        "*ValueError: perfguard: loss= must return a one-element tensor that requires grad, "
        "got a tensor of shape () that does not require grad*",
    ])
    # Count the raised errors ("E   " lines), not the short summary: pytest leaves summary
    # lines untruncated when $CI is set, so a whole-output count depends on the runner.
    raised = [ln for ln in result.stdout.lines if ln.startswith("E ") and "model raised" in ln]
    assert len(raised) == 1, raised


# ---- 3. A real training step ---------------------------------------------------------

SCALED = """
import torch

class Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(2**16))

    def forward(self, x):
        y = x * self.scale
        return {"loss": y.sum(), "y": y}

class Doubled(torch.nn.Module):
    \"\"\"Compiled, the gradient of scale doubles; the output does not change.\"\"\"
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(4))

    def forward(self, x):
        w = self.scale
        if torch.compiler.is_compiling():
            w = w + (w - w.detach())
        return (x * w).sum()
"""


def test_training_step_backpropagates_the_loss(pytester: pytest.Pytester) -> None:
    """Eager kernels of one training step of ``y = x * scale; loss = y.sum()`` (N = 2**16
    float32, 262,144 bytes per tensor):

    - the loss only (now): forward mul + sum, backward one mul (grad of scale = the
      expanded loss gradient, a view, times x) = 3 launches. Bytes: mul 3 x 262,144;
      sum 262,144 + 4; backward mul reads the stride-0 gradient (4 bytes) and x, writes
      the gradient: 4 + 2 x 262,144. Total 1,572,872.
    - before, loss and y were backpropagated with ones: y's gradient is then ones plus the
      expanded loss gradient, one add more: 4 launches.
    - ``loss=lambda out: out["y"].mean()``: forward mul, sum, mean; backward div (mean)
      and mul = 5 launches.
    """
    pytester.makepyfile(model=SCALED)
    pytester.makepyfile(
        """
import torch
from model import Doubled, Scaled

def test_loss(perfguard):
    x = torch.randn(2**16)
    step = perfguard(Scaled(), x, train=True, name="loss")
    assert step.eager.kernel_launches == 3
    assert step.eager.bytes_moved == 1_572_872
    mean = perfguard(Scaled(), x, train=True, name="mean", loss=lambda out: out["y"].mean())
    assert mean.eager.kernel_launches == 5

def test_gradients_are_named(perfguard):
    perfguard(Doubled(), torch.ones(4), train=True, repeats=1, warmup=1)
"""
    )
    result = pytester.runpytest("--perfguard", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*compiled output differs from eager*largest error at grad[[]scale[]][[]0[]]: "
        "eager 1, compiled 2*",
    ])


# ---- 4. Equal starting state ---------------------------------------------------------

STATEFUL = """
import torch

class Counter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls.add_(1)
        return x * self.calls

def add_in_place(x):
    x.add_(1)
    return x * 2
"""


def test_every_mode_starts_from_the_same_state(pytester: pytest.Pytester) -> None:
    """Before: the compiled call saw what the eager call left (the buffer at 2, the input
    already incremented) and numerics failed. Now each mode starts from the state the test
    gave, and the test finds its model and input as they were."""
    pytester.makepyfile(model=STATEFUL)
    pytester.makepyfile(
        """
import torch
from model import Counter, add_in_place

def test_buffer(perfguard):
    counter = Counter()
    result = perfguard(counter, torch.ones(4))
    assert result.numerics.ok
    assert counter.calls.item() == 0

def test_input_changed_in_place(perfguard):
    x = torch.ones(4)
    assert perfguard(add_in_place, x).numerics.ok
    assert x.tolist() == [1.0, 1.0, 1.0, 1.0]

def test_batch_norm_running_statistics(perfguard):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8))  # training
    before = model[1].running_mean.clone()
    assert perfguard(model, torch.randn(16, 8), train=True).numerics.ok
    assert torch.equal(model[1].running_mean, before)
    assert model[1].num_batches_tracked.item() == 0
"""
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=3)


# ---- 5. Numerics failures that say why -----------------------------------------------


def test_numerics_failure_names_dropout_and_random_ops(pytester: pytest.Pytester) -> None:
    """Before: two different numbers and nothing else. ``compile_options`` with
    ``fallback_random`` makes inductor draw eager's random numbers, and perfguard starts
    both modes from the same generator state: the dropout model then matches exactly."""
    pytester.makepyfile(
        """
import torch

def dropout_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.5))  # training

def test_dropout(perfguard):
    perfguard(dropout_model(), torch.randn(4, 8))

def test_random_op(perfguard):
    perfguard(lambda x: x + torch.rand_like(x), torch.randn(4, 8))

def test_fallback_random(perfguard):
    result = perfguard(dropout_model(), torch.randn(4, 8),
                       compile_options={"fallback_random": True})
    assert result.numerics.ok and result.numerics.max_abs_error == 0.0
    assert result.environment.compile_options == {"fallback_random": "True"}
    assert result.environment.inductor["fallback_random"] == "True"
    assert "options fallback_random=True" in result.environment.label()

def test_unknown_compile_option(perfguard):
    perfguard(torch.sin, torch.randn(4), compile_options={"no_such_option": 1})
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines_random([
        "*note: dropout is active: 1 Dropout module(s) in training mode, e.g. 1 (p=0.5); "
        "the model called random ops (*)*model.eval()*fallback_random*check_numerics=False*",
        "*note: the model called random ops (rand_like)*",
        "*ValueError: perfguard: bad compile_options {'no_such_option': 1}*",
    ])


# ---- 6, 7. Graph breaks and graphs as dynamo counts them ------------------------------

WARN_ONCE_MODEL = """
import functools
import logging
import torch

log = logging.getLogger("mylib")

@functools.lru_cache(None)
def warning_once(message):            # like transformers' logger.warning_once
    log.warning(message)

def scaled_sum(y):
    return (y * 2).sum()

class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    @property
    def loss_function(self):          # like transformers' PreTrainedModel.loss_function
        warning_once("using the default loss")
        return scaled_sum

    def forward(self, x):
        y = torch.relu(self.linear(x))
        return self.loss_function(y)  # BREAK
"""


def test_graph_breaks_match_dynamo_explain(pytester: pytest.Pytester) -> None:
    """transformers' pattern: a logger call inside a property dynamo cannot resume in. The
    graph ends at the user's call with dynamo's bare reason ``step_unsupported``, and
    dynamo's counter saw the logging break. Before: 2 breaks (the graph's, plus the
    counter's at ``unknown``); ``torch._dynamo.explain`` says 1. Now: 1, at the call's
    line, with the logging reason and its hint once."""
    pytester.makepyfile(model=WARN_ONCE_MODEL)
    pytester.makepyfile(
        """
import torch
from model import Model

def test_breaks(perfguard):
    model, x = Model(), torch.randn(2, 4)
    explained = torch._dynamo.explain(model)(x)
    result = perfguard(model, x)
    assert result.compiled.graph_breaks == explained.graph_break_count == 1
    assert result.compiled.graphs == explained.graph_count == 2
    (graph_break,) = result.compiled.graph_break_details
    assert graph_break.reason.startswith("logging.Logger method not supported")
    assert graph_break.reason.count("Hint:") == 1
    print("LOCATION", graph_break.location)
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=1)
    line = (pytester.path / "model.py").read_text().splitlines().index(
        "        return self.loss_function(y)  # BREAK") + 1
    result.stdout.fnmatch_lines([f"*LOCATION model.py:{line}"])


@pytest.mark.zoo
def test_dynamic_bert_is_one_graph(pytester: pytest.Pytester,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: BertModel under dynamic=True reported graphs: 2 (dynamo handed compile id
    0/0 to the backend twice)."""
    _needs_transformers()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makepyfile(
        """
import torch
from transformers import BertConfig, BertModel

def test_bert(perfguard):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64)
    result = perfguard(BertModel(config).eval(), torch.randint(0, 128, (2, 12)), dynamic=True)
    assert (result.compiled.graphs, result.compiled.graph_breaks) == (1, 0)
"""
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


# ---- 8. Several input shapes in one measurement --------------------------------------


def test_input_sets_report_each_shape_and_count_recompiles(pytester: pytest.Pytester) -> None:
    """``x.sin() * 2`` on 1,024 and 2,048 float32 elements. Eager per set: 2 launches,
    each op reads and writes 4N bytes: 16N = 16,384 and 32,768. Compiled per set: one
    fused kernel reading and writing 4N: 8,192 and 16,384.

    dynamic=False compiles again for the second length (1 recompile); the sums cover both
    sets. dynamic=True runs the first graph for both (0 recompiles), and the second set
    has no compiled byte count: inductor counted that graph's bytes at the first length.
    """
    pytester.makepyfile(
        """
import torch
from pytest_perfguard import Inputs

def f(x, scale=2):
    return x.sin() * scale

def test_shapes(perfguard):
    small, large = torch.randn(1024), torch.randn(2048)
    static = perfguard(f, inputs=[(small,), {"x": large}], dynamic=False, name="static")
    assert static.compiled.recompiles == 1
    assert [s.compiles for s in static.shapes] == [1, 1]
    assert [s.eager_kernel_launches for s in static.shapes] == [2, 2]
    assert [s.compiled_kernel_launches for s in static.shapes] == [1, 1]
    assert [s.eager_bytes_moved for s in static.shapes] == [16_384, 32_768]
    assert [s.compiled_bytes_moved for s in static.shapes] == [8_192, 16_384]
    assert (static.eager.kernel_launches, static.compiled.kernel_launches) == (4, 2)
    assert (static.eager.bytes_moved, static.compiled.bytes_moved) == (49_152, 24_576)
    assert static.shapes[1].inputs == "input['x']: (2048,) float32"

    dynamic = perfguard(f, inputs=[Inputs(small, scale=2), Inputs(large, scale=2)],
                        dynamic=True, name="dynamic")
    assert dynamic.compiled.recompiles == 0
    assert [s.compiles for s in dynamic.shapes] == [1, 0]
    assert dynamic.shapes[0].compiled_bytes_moved == 8_192
    assert dynamic.shapes[1].compiled_bytes_moved is None
    assert "compiled with dynamic shapes for input set 0" in (
        dynamic.shapes[1].unavailable["compiled bytes_moved"])
    assert dynamic.compiled.bytes_moved is None
    assert dynamic.compiled.kernel_launches == 2

def test_inputs_and_positional_inputs(perfguard):
    perfguard(f, torch.randn(4), inputs=[(torch.randn(4),)])
"""
    )
    result = pytester.runpytest("--perfguard", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*positionally or as inputs=[[]...[]], not both*"])


# ---- 9. Where the bytes go -----------------------------------------------------------


def test_bytes_breakdown_where_compiled_moves_more(pytester: pytest.Pytester) -> None:
    """Conv2d(3, 8, 3) + ReLU on one 3x16x16 image, inference on the CPU. Eager: the
    convolution reads the input (3,072 bytes), weight (864) and bias (32) and writes
    8x14x14 floats (6,272); ReLU reads and writes 6,272: 22,784 bytes. Compiled, inductor
    first copies the input (3,072 read + 3,072 written) and the weight (864 + 864) into
    the layout its convolution wants, so it moves 30,656 bytes: the breakdown shows the
    four kernels by size, and they add up to inductor's total."""
    pytester.makepyfile(
        """
import torch

def test_conv(perfguard):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).eval()
    result = perfguard(model, torch.randn(1, 3, 16, 16), repeats=1, warmup=1)
    assert (result.eager.bytes_moved, result.compiled.bytes_moved) == (22_784, 30_656)
    breakdown = result.compiled.bytes_breakdown
    assert [k.bytes for k in breakdown] == [12_544, 10_240, 6_144, 1_728]
    assert sum(k.bytes for k in breakdown) == result.compiled.bytes_moved
    assert breakdown[1].kernel == "extern_kernels.convolution"
    assert breakdown[0].ops == ["relu"]
    assert result.traffic_note().startswith(
        "compiled code moves 1.35x eager's bytes (30,656 vs 22,784); largest compiled "
        "kernels: generated from relu: 12,544 bytes")

def test_chain_has_no_breakdown(perfguard):
    result = perfguard(lambda x: x * 2 + 1, torch.randn(1024), repeats=1, warmup=1)
    assert result.compiled.bytes_breakdown == []
    assert result.traffic_note() is None
"""
    )
    pytester.runpytest("--perfguard", "-p", "no:cacheprovider").assert_outcomes(passed=2)
    data = json.loads((pytester.path / ".perfguard/report/results.json").read_text())
    by_key = {r["measurement"]["key"]: r["measurement"] for r in data["results"]}
    conv = by_key["test_bytes_breakdown_where_compiled_moves_more.py::test_conv"]
    assert [k["bytes"] for k in conv["compiled"]["bytes_breakdown"]] == [12_544, 10_240,
                                                                         6_144, 1_728]
    chain = by_key["test_bytes_breakdown_where_compiled_moves_more.py::test_chain_has_no_breakdown"]
    assert "bytes_breakdown" not in chain["compiled"]


# ---- 10. Baselines that travel between CPUs ------------------------------------------


def test_baseline_travels_between_cpu_isa_levels(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A baseline recorded at ATEN_CPU_CAPABILITY=avx2 gates a run at =default: the ISA is
    recorded and shown, not keyed (before: other-environment, silently ungated). Two
    measurements that differ only in ``dynamic`` get different labels."""
    pytester.makepyfile(
        """
import torch

def chain(x):
    return x * 2 + 1

def test_chain(perfguard):
    auto = perfguard(chain, torch.randn(4096), repeats=1, warmup=1, name="auto")
    dynamic = perfguard(chain, torch.randn(4096), repeats=1, warmup=1, dynamic=True,
                        name="dynamic")
    assert auto.environment.label() != dynamic.environment.label()
    assert "dynamic=True" in dynamic.environment.label()
"""
    )
    # perfguard's own compile cache (one folder per ISA level; conftest.py keeps it warm
    # between runs), not a shared one a developer may have set: torch's FX-graph cache does
    # not key on the ISA level.
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    pytester.runpytest("--perfguard-update", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    recorded = json.loads((pytester.path / ".perfguard/baseline.json").read_text())
    labels = sorted(block["label"] for block in recorded["environments"])
    assert all(label.startswith("cpu (AVX2) · ") for label in labels), labels
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    result = pytester.runpytest("--perfguard", "--perfguard-require-baseline", "-p",
                                "no:cacheprovider")
    result.assert_outcomes(passed=1)
    data = json.loads((pytester.path / ".perfguard/report/results.json").read_text())
    assert [r["verdict"]["status"] for r in data["results"]] == ["unchanged", "unchanged"]
    assert {r["measurement"]["environment"]["cpu_isa"] for r in data["results"]} == {"DEFAULT"}


# ---- 11. The README's first example --------------------------------------------------


def _readme_example(section: str) -> str:
    """The first python block of a README section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    part = text[text.index(f"\n## {section}\n"):]
    start = part.index("```python\n") + len("```python\n")
    return part[start:part.index("\n```", start)]


@pytest.mark.parametrize("flags", [(), ("--perfguard",)], ids=["plain", "perfguard"])
def test_readme_first_example_passes(pytester: pytest.Pytester, flags: tuple[str, ...]) -> None:
    """Before: under plain pytest, ``None < None`` failed with a TypeError."""
    pytester.makepyfile(test_readme=_readme_example("Use"))
    pytester.runpytest(*flags, "-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.zoo
def test_readme_real_models_example_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worked example of "Real models" runs as printed (without --perfguard: numerics,
    graphs and recompiles are checked in both modes)."""
    _needs_transformers()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makepyfile(test_gpt2=_readme_example("Real models"))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


# ---- The zoo -------------------------------------------------------------------------

ZOO = ROOT / "tests" / "zoo"
#: Measurements the zoo makes (one per test): BERT (2), ViT, ResNet, GPT-2 (2), Llama,
#: Mixtral, Qwen2-MoE, T5, Whisper, CLIP.
ZOO_MEASUREMENTS = 12


@pytest.mark.zoo
def test_zoo_records_a_baseline_and_gates_unchanged(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real transformers architectures, unmodified, tiny configs and random weights: a
    baseline run, then a gating run that requires a baseline for every test. Every
    test passes and every measurement is unchanged."""
    _needs_transformers()
    shutil.copytree(ZOO, pytester.path, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".perfguard"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    update = pytester.runpytest("--perfguard-update", "-p", "no:cacheprovider")
    update.assert_outcomes(passed=ZOO_MEASUREMENTS)
    baseline = json.loads((pytester.path / ".perfguard/baseline.json").read_text())
    recorded = sum(len(b["entries"]) for b in baseline["environments"])
    assert recorded == ZOO_MEASUREMENTS
    gate = pytester.runpytest("--perfguard", "--perfguard-require-baseline", "-p",
                              "no:cacheprovider")
    gate.assert_outcomes(passed=ZOO_MEASUREMENTS)
    results = json.loads((pytester.path / ".perfguard/report/results.json").read_text())
    statuses = {r["measurement"]["key"]: r["verdict"]["status"] for r in results["results"]}
    assert len(statuses) == ZOO_MEASUREMENTS
    assert set(statuses.values()) == {"unchanged"}, statuses
    sys.stderr.write(f"zoo: baseline + gate in {time.perf_counter() - start:.0f} s\n")
