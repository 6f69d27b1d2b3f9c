"""Numbers that used to be wrong on real code (issue 18 items 1, 3, 4), end to end.

1. A compiled graph that runs more than once per call moves its bytes each time.
3. ``graph_breaks`` is ``torch._dynamo.explain``'s ``graph_break_count`` for the same call,
   with each break site listed once (user's ``file:line``, how often it broke), and calls
   to functions/modules under ``torch.compiler.disable`` named as such.
4. ``bytes_breakdown`` is the same whether the compile was cold or came from the cache.
"""

from __future__ import annotations

import json

import pytest

# Each block: y = x * 2 + 1, a graph break, y.sin(). The loop over the blocks makes dynamo
# run the model's forward eagerly and compile Block.forward as its own frame: graph 1
# (x * 2 + 1) and graph 2 (the resumed y.sin()), each reused by the second block.
REPEATED_BLOCKS = """
import torch


class Block(torch.nn.Module):
    def forward(self, x):
        y = x * 2 + 1
        torch._dynamo.graph_break()
        return y.sin()


class TwoBlocks(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([Block(), Block()])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def test_blocks(perfguard):
    model, x = TwoBlocks(), torch.randn(2**20)
    explained = torch._dynamo.explain(model)(x)
    result = perfguard(model, x)
    assert (result.compiled.graphs, result.compiled.graph_breaks) == (
        explained.graph_count, explained.graph_break_count) == (2, 1)
"""


def test_graph_run_twice_counts_its_bytes_twice(pytester: pytest.Pytester, results_of) -> None:
    """Two blocks, each ``y = x * 2 + 1``, a graph break, ``y.sin()``, on 2**20 float32
    (4 MiB = 4,194,304 bytes per tensor).

    Compiled, each block runs two kernels: the fused ``x * 2 + 1`` reads x and writes y
    (8 MiB), ``sin`` reads y and writes the output (8 MiB). Two blocks: 4 kernels,
    4 * 8 MiB = 33,554,432 bytes. The second block runs the first block's two compiled
    graphs again; before, each graph was counted once per call: 16,777,216.
    Eager: mul, add and sin per block, each reading and writing 4 MiB: 6 * 8 MiB =
    50,331,648 bytes in 6 launches.
    """
    pytester.makepyfile(test_blocks=REPEATED_BLOCKS)
    result = pytester.runpytest("--perfguard", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    measurement = results_of(pytester)["test_blocks.py::test_blocks"]["measurement"]
    assert measurement["compiled"]["kernel_launches"] == 4
    assert measurement["compiled"]["bytes_moved"] == 33_554_432
    assert measurement["eager"]["kernel_launches"] == 6
    assert measurement["eager"]["bytes_moved"] == 50_331_648


BREAKING_MODELS = """
import torch
import torch.nn.functional as F


class Layer(torch.nn.Module):
    \"\"\"Like a transformer layer: the same class repeated, each with its index.\"\"\"

    def __init__(self, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx
        self.fc = torch.nn.Linear(16, 16)


class ItemLayer(Layer):
    def forward(self, x):
        y = torch.relu(self.fc(x)) + self.layer_idx
        if y.sum().item() > 0:  # SITE item
            y = y * 2
        return y * (self.layer_idx + 1)


class PrintLayer(Layer):
    def forward(self, x):
        y = torch.relu(self.fc(x)) + self.layer_idx
        print("activations", tuple(y.shape))  # SITE print
        return y * (self.layer_idx + 1)


gelu = torch.compiler.disable(F.gelu)


class DisabledGeluLayer(Layer):
    def forward(self, x):
        y = gelu(self.fc(x) + self.layer_idx)  # SITE disabled_function
        return y * (self.layer_idx + 1)


class PlainLayer(Layer):
    def forward(self, x):
        return torch.relu(self.fc(x)) + self.layer_idx


class Stack(torch.nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = torch.nn.ModuleList(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)  # SITE disabled_module
        return x


def build(name):
    if name == "disabled_module":
        return Stack([PlainLayer(0), torch.compiler.disable(PlainLayer(1)), PlainLayer(2)])
    layer = {"item": ItemLayer, "print": PrintLayer, "disabled_function": DisabledGeluLayer}
    return Stack([layer[name](0), layer[name](1)])
"""

BREAKING_TESTS = """
import json
import os

import pytest
import torch

from models import build


@pytest.mark.parametrize("name", ["item", "print", "disabled_function", "disabled_module"])
def test_breaks(perfguard, name):
    torch.manual_seed(0)
    model, x = build(name), torch.randn(4, 16)
    with torch.no_grad():  # the call perfguard compiles: inference runs without grad
        explained = torch._dynamo.explain(model)(x)
    result = perfguard(model, x)
    with open(f"{name}.json", "w") as handle:
        json.dump({
            "explain": [explained.graph_count, explained.graph_break_count,
                        [f"{os.path.relpath(r.user_stack[-1].filename)}:{r.user_stack[-1].lineno}"
                         for r in explained.break_reasons]],
            "measured": [result.compiled.graphs, result.compiled.graph_breaks,
                          [[d.location, getattr(d, "count", None), getattr(d, "disabled", None),
                            d.function, d.short_reason]
                           for d in result.compiled.graph_break_details]],
        }, handle)
"""


def _site(pytester: pytest.Pytester, name: str) -> str:
    lines = (pytester.path / "models.py").read_text().splitlines()
    (number,) = [i + 1 for i, line in enumerate(lines) if line.endswith(f"# SITE {name}")]
    return f"models.py:{number}"


def test_graph_breaks_equal_explain_with_each_site_once(pytester: pytest.Pytester) -> None:
    """Each model is a stack of layers of one class, each with its ``layer_idx`` (as in
    transformers). ``torch._dynamo.explain`` runs in the same process on the same model,
    input and grad mode. Before, perfguard counted the graphs that ended in a break
    (2, 2, 2 and 0 here) and listed one entry per graph.

    - ``.item()``, ``print`` or ``torch.compiler.disable(F.gelu)`` in each of 2 layers: the
      loop makes dynamo run the stack's forward eagerly. Each layer's forward compiles (its
      guards see another ``layer_idx``) and breaks at the site, and each layer's resumed
      rest is a graph of its own: 4 graphs, explain 3 breaks; one site, where 2 graphs
      ended (explain's 2 reasons at that line).
    - the middle of 3 layers under ``torch.compiler.disable``: dynamo runs the stack's
      forward eagerly and compiles the two other layers: 2 graphs, 1 break; no graph ends
      at the call, so explain lists no reason (before: 0 breaks and nothing shown). The
      site is the loop's call, dynamo broke there once, naming ``module self.layers.1``.
    """
    pytester.makepyfile(models=BREAKING_MODELS, test_breaks=BREAKING_TESTS)
    pytester.runpytest("--perfguard", "-p", "no:cacheprovider").assert_outcomes(passed=4)
    expected = {
        # name: (graphs, breaks, [(site, count, disabled)])
        "item": (4, 3, [("item", 2, "")]),
        "print": (4, 3, [("print", 2, "")]),
        "disabled_function": (4, 3, [("disabled_function", 2, "function gelu")]),
        "disabled_module": (2, 1, [("disabled_module", 1, "module self.layers.1")]),
    }
    for name, (graphs, breaks, sites) in expected.items():
        data = json.loads((pytester.path / f"{name}.json").read_text())
        explain_graphs, explain_breaks, explain_sites = data["explain"]
        perfguard_graphs, perfguard_breaks, details = data["measured"]
        assert (explain_graphs, explain_breaks) == (graphs, breaks), name
        assert (perfguard_graphs, perfguard_breaks) == (explain_graphs, explain_breaks), name
        assert [(location, count, disabled) for location, count, disabled, _, _ in details] \
            == [(_site(pytester, site), count, disabled) for site, count, disabled in sites], name
        # Where explain lists reasons, the sites and counts are its reasons by file:line.
        if explain_sites:
            assert {location: explain_sites.count(location) for location in explain_sites} \
                == {location: count for location, count, _, _, _ in details}, name
        assert all(function == "forward" for _, _, _, function, _ in details), name
    short_reasons = {name: json.loads((pytester.path / f"{name}.json").read_text())
                     ["measured"][2][0][4] for name in expected}
    assert short_reasons["item"].startswith("Unsupported Tensor.item() call")
    assert short_reasons["disabled_function"] == \
        "Skip calling `torch.compiler.disable()`d function"
    report = (pytester.path / ".perfguard" / "report" / "report.html").read_text()
    assert ("<strong>Unsupported function call (delayed) (calls module self.layers.1 under "
            "torch.compiler.disable)</strong> at <code class=\"location\">"
            f"{_site(pytester, 'disabled_module')}</code>") in report
    assert ("<strong>Failed to trace builtin operator, 2 times</strong> at "
            f"<code class=\"location\">{_site(pytester, 'print')}</code>") in report


CONV_MODEL = """
import torch


def test_conv(perfguard):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).eval()
    perfguard(model, torch.randn(1, 3, 16, 16), repeats=1, warmup=1)
"""


def test_cold_and_warm_compiles_explain_the_bytes_alike(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, results_of
) -> None:
    """Conv2d(3, 8, 3) + ReLU on one 3x16x16 image (tests/test_real_models.py derives the
    bytes): compiled 30,656 bytes against eager's 22,784, in four kernels of 12,544
    (relu: reads and writes 8x14x14 floats), 10,240 (the convolution), 6,144 (the input
    copied to another layout) and 1,728 (the weight likewise).

    The first run compiles into a fresh perfguard cache folder; the second finds every
    graph there. Before, the warm run replayed the bytes but had no kernels to list.
    """
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("PERFGUARD_CACHE_DIR", str(pytester.path / "perfguard-cache"))
    pytester.makepyfile(test_conv=CONV_MODEL)
    runs = []
    for _ in ("cold", "warm"):
        pytester.runpytest("--perfguard", "-p", "no:cacheprovider").assert_outcomes(passed=1)
        runs.append(results_of(pytester)["test_conv.py::test_conv"]["measurement"]["compiled"])
    cold, warm = runs
    assert [k["bytes"] for k in cold["bytes_breakdown"]] == [12_544, 10_240, 6_144, 1_728]
    assert warm["bytes_breakdown"] == cold["bytes_breakdown"]
    assert warm["bytes_moved"] == cold["bytes_moved"] == 30_656
    assert "bytes_breakdown" not in warm.get("unavailable", {})
