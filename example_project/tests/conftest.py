"""Shared models and inputs for the perfguard tests.

Models and inputs are built once per session and seeded, so every run measures exactly
the same thing: kernel counts, bytes and FLOPs are then deterministic, which is what lets
the gate compare them with no allowance for noise.

They live on the GPU when there is one (set TINYMODELS_DEVICE=cpu to measure on the CPU
anyway). A GPU run is its own environment in the baseline, recorded on that machine.
"""

from __future__ import annotations

import os

import pytest
import torch
from tinymodels import MLP, GPTBlock, SmallConvNet

SEED = 0
DEVICE = torch.device(
    os.environ.get("TINYMODELS_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
)


def _randn(*shape: int, offset: int) -> torch.Tensor:
    """Seeded random input, drawn on the CPU so that every device gets the same values."""
    generator = torch.Generator().manual_seed(SEED + offset)
    return torch.randn(*shape, generator=generator).to(DEVICE)


@pytest.fixture(scope="session")
def mlp() -> MLP:
    torch.manual_seed(SEED)
    return MLP().to(DEVICE).eval()


@pytest.fixture(scope="session")
def mlp_input() -> torch.Tensor:
    return _randn(32, 128, offset=1)


@pytest.fixture(scope="session")
def gpt_block() -> GPTBlock:
    torch.manual_seed(SEED)
    return GPTBlock().to(DEVICE).eval()


@pytest.fixture(scope="session")
def gpt_input() -> torch.Tensor:
    # batch 2, sequence 32, model dim 64
    return _randn(2, 32, 64, offset=2)


@pytest.fixture(scope="session")
def convnet() -> SmallConvNet:
    # Inference only: .eval() makes batch norm use its running statistics, as in serving.
    torch.manual_seed(SEED)
    return SmallConvNet().to(DEVICE).eval()


@pytest.fixture(scope="session")
def image_batch() -> torch.Tensor:
    # batch 4 of 3x32x32 images
    return _randn(4, 3, 32, 32, offset=3)
