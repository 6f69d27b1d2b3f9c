"""Encoder-decoders (T5, Whisper) and a model with two inputs (CLIP: text and image)."""

from __future__ import annotations

import pytest
from conftest import VOCAB, randn, seeded, token_ids
from transformers import (
    CLIPConfig,
    CLIPModel,
    T5Config,
    T5ForConditionalGeneration,
    WhisperConfig,
    WhisperModel,
)

pytestmark = pytest.mark.perfguard(repeats=2, warmup=1)


def test_t5_inference(perfguard, ids):
    config = T5Config(vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=64, num_layers=2,
                      num_decoder_layers=2, num_heads=2, decoder_start_token_id=0)
    model = seeded(lambda: T5ForConditionalGeneration(config)).eval()
    result = perfguard(model, ids, kwargs={"decoder_input_ids": token_ids(2, 6, 2)})
    assert result.numerics.ok


def test_whisper_inference(perfguard):
    config = WhisperConfig(vocab_size=VOCAB, num_mel_bins=16, d_model=32,
                           encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                           max_source_positions=16, max_target_positions=32,
                           decoder_start_token_id=0, pad_token_id=0, bos_token_id=0,
                           eos_token_id=0)
    model = seeded(lambda: WhisperModel(config)).eval()
    features = randn(2, 16, 32, offset=3)  # batch 2, 16 mel bins, 32 frames
    result = perfguard(model, features, kwargs={"decoder_input_ids": token_ids(2, 4, 4)})
    assert result.numerics.ok


def test_clip_text_and_image(perfguard, ids, images):
    config = CLIPConfig(
        text_config={"vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2,
                     "max_position_embeddings": 32, "projection_dim": 16,
                     "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32,
                       "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "projection_dim": 16},
        projection_dim=16,
    )
    model = seeded(lambda: CLIPModel(config)).eval()
    result = perfguard(model, kwargs={"input_ids": ids, "pixel_values": images})
    assert result.numerics.ok
