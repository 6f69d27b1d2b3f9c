"""Regressions planted inside a real transformers model (issue 18, "In the project's tests").

Each kind is a one-line change of GPT-2's MLP, applied by monkeypatching
``transformers.models.gpt2.modeling_gpt2.GPT2MLP.forward`` when ``ZOO_PLANT=1`` (two kinds
change how the model is used instead: eager attention in place of SDPA, ``.eval()``
forgotten). Unplanted, the model is transformers' own, unmodified. The same test ids run
unplanted with ``--perfguard-update`` (the baseline) and planted with ``--perfguard``;
``tests/test_zoo_planted.py`` runs both phases and reads the verdicts from results.json.
The planted lines are marked ``# PLANT <kind>`` so that test can find their line numbers.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from conftest import VOCAB, seeded, token_ids
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.models.gpt2 import modeling_gpt2

pytestmark = pytest.mark.perfguard(repeats=1, warmup=1)

PLANTED = os.environ.get("ZOO_PLANT") == "1"


@torch.library.custom_op("zoo::tanh", mutates_args=())
def opaque_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh as a custom op: inductor sees an opaque call it cannot fuse with its neighbours."""
    return torch.tanh(x)


@opaque_tanh.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def mlp(activation):
    """GPT2MLP.forward with ``activation(module, hidden_states)`` in place of ``self.act``."""
    def forward(self, hidden_states):
        hidden_states = activation(self, self.c_fc(hidden_states))
        return self.dropout(self.c_proj(hidden_states))
    return forward


def item(module, h):
    if h.abs().max().item() > 1e4:  # PLANT item
        h = h.clamp(-1e4, 1e4)
    return module.act(h)


def printed(module, h):
    print("mlp input", h.shape)  # PLANT print
    return module.act(h)


def tensor_if(module, h):
    if h.mean() > 0:  # PLANT tensor_if
        h = h * 1.0
    return module.act(h)


def disabled(module, h):
    return torch.compiler.disable(module.act)(h)  # PLANT disable


def opaque(module, h):
    inner = math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))  # NewGELU's
    return 0.5 * h * (1.0 + opaque_tanh(inner))  # PLANT opaque


def upcast(module, h):
    return module.act(h.double()).float()  # PLANT upcast


def cloned(module, h):
    return module.act(h.clone())  # PLANT clone


def kept(module, h):
    module.kept = module.act(h)  # PLANT kept
    return module.kept


def shape_branch(module, h):
    if h.shape[1] > 16:  # PLANT shape
        h = h * 1.0
    return module.act(h)


MLP_PLANTS = {"item": item, "print": printed, "tensor_if": tensor_if, "disable": disabled,
              "opaque": opaque, "upcast": upcast, "clone": cloned, "kept": kept,
              "shape": shape_branch}
KINDS = [*MLP_PLANTS, "attention", "eval"]


def tiny_gpt2(attn_implementation: str = "sdpa") -> GPT2LMHeadModel:
    config = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=1, n_head=2, n_positions=64,
                        bos_token_id=0, eos_token_id=0, use_cache=False,
                        attn_implementation=attn_implementation)  # type: ignore[call-arg]
    return seeded(lambda: GPT2LMHeadModel(config))


@pytest.mark.parametrize("kind", KINDS)
def test_planted(perfguard, ids, kind, monkeypatch):
    if PLANTED and kind in MLP_PLANTS:
        monkeypatch.setattr(modeling_gpt2.GPT2MLP, "forward", mlp(MLP_PLANTS[kind]))
    attention = "eager" if PLANTED and kind == "attention" else "sdpa"  # PLANT attention
    model = tiny_gpt2(attention)
    if not (PLANTED and kind == "eval"):  # planted: .eval() forgotten, dropout on
        model.eval()
    if kind == "shape":  # two sequence lengths, one dynamic graph: no recompile unplanted
        perfguard(model, inputs=[(ids,), (token_ids(2, 24, offset=1),)], dynamic=True)
    else:
        perfguard(model, ids, check_numerics=kind != "eval")
