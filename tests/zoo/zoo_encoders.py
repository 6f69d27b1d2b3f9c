"""Encoders and vision models: BERT (inference, and dynamic shapes over two sequence
lengths), ViT, and ResNet with BatchNorm in a real training step."""

from __future__ import annotations

import pytest
import torch
from conftest import VOCAB, seeded, token_ids
from transformers import (
    BertConfig,
    BertModel,
    ResNetConfig,
    ResNetForImageClassification,
    ViTConfig,
    ViTModel,
)

pytestmark = pytest.mark.perfguard(repeats=2, warmup=1)


def tiny_bert() -> BertModel:
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64)
    return seeded(lambda: BertModel(config)).eval()


def test_bert_inference(perfguard, ids):
    result = perfguard(tiny_bert(), ids, kwargs={"attention_mask": torch.ones_like(ids)})
    assert result.compiled.graph_breaks == 0
    assert result.compiled.graphs == 1


def test_bert_dynamic_shapes(perfguard):
    """One measurement over two sequence lengths: under dynamic=True the second length
    runs the graph compiled for the first, so nothing recompiles."""
    result = perfguard(tiny_bert(), inputs=[(token_ids(2, 12),), (token_ids(2, 24, 1),)],
                       dynamic=True)
    assert result.compiled.graphs == 1
    assert result.compiled.recompiles == 0
    assert [s.compiles for s in result.shapes] == [1, 0]


def test_vit_inference(perfguard, images):
    config = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32,
                       num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    model = seeded(lambda: ViTModel(config)).eval()
    result = perfguard(model, images)
    assert result.compiled.graph_breaks == 0


def test_resnet_training_step(perfguard, images):
    """BatchNorm in training mode updates its running statistics on every call; perfguard
    restores them so that eager and compiled start from the same state."""
    config = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16],
                          depths=[1, 1], layer_type="basic", num_labels=4)
    model = seeded(lambda: ResNetForImageClassification(config))  # training mode, as built
    labels = torch.tensor([0, 3])
    before = model.resnet.embedder.embedder.normalization.running_mean.clone()
    result = perfguard(model, images, kwargs={"labels": labels}, train=True)
    assert result.numerics.ok
    assert torch.equal(model.resnet.embedder.embedder.normalization.running_mean, before)
