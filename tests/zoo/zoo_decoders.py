"""Decoders with a KV cache (GPT-2, Llama), mixture-of-experts (Mixtral, Qwen2-MoE), and a
GPT-2 training step with labels."""

from __future__ import annotations

import pytest
import torch
from conftest import VOCAB, seeded
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
    Qwen2MoeConfig,
    Qwen2MoeForCausalLM,
)

pytestmark = pytest.mark.perfguard(repeats=2, warmup=1)


def tiny_gpt2(**overrides) -> GPT2LMHeadModel:
    config = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                        bos_token_id=0, eos_token_id=0, **overrides)
    return seeded(lambda: GPT2LMHeadModel(config))


def test_gpt2_inference_with_cache(perfguard, ids):
    """The output holds a DynamicCache; its keys and values are compared too."""
    result = perfguard(tiny_gpt2().eval(), ids)
    assert result.numerics.ok
    assert result.compiled.graph_breaks == 0


def test_gpt2_training_step(perfguard, ids):
    """A training step as users run it: labels given, the loss backpropagated. Dropout is
    active in training mode, so eager and compiled draw different random numbers."""
    model = tiny_gpt2()
    result = perfguard(model, ids, kwargs={"labels": ids}, train=True, check_numerics=False)
    explained = torch._dynamo.explain(model)(ids, labels=ids)
    assert result.compiled.graph_breaks == explained.graph_break_count
    for graph_break in result.compiled.graph_break_details:
        assert graph_break.location.startswith("transformers/"), graph_break.location
        assert graph_break.reason.count("Hint:") <= 1, graph_break.reason


def test_llama_inference_with_cache(perfguard, ids):
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=64, bos_token_id=0, eos_token_id=0)
    result = perfguard(seeded(lambda: LlamaForCausalLM(config)).eval(), ids)
    assert result.numerics.ok


def test_mixtral_inference(perfguard, ids):
    config = MixtralConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                           num_local_experts=4, num_experts_per_tok=2,
                           max_position_embeddings=64, bos_token_id=0, eos_token_id=0)
    result = perfguard(seeded(lambda: MixtralForCausalLM(config)).eval(), ids)
    assert result.numerics.ok


def test_qwen2_moe_inference(perfguard, ids):
    config = Qwen2MoeConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                            moe_intermediate_size=32, shared_expert_intermediate_size=32,
                            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                            num_experts=4, num_experts_per_tok=2,
                            max_position_embeddings=64, bos_token_id=0, eos_token_id=0)
    result = perfguard(seeded(lambda: Qwen2MoeForCausalLM(config)).eval(), ids)
    assert result.numerics.ok
