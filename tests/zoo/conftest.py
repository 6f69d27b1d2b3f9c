"""The zoo: real transformers architectures, tiny configs, random weights, no downloads.

Each model is built from its config class (no ``from_pretrained``, ``HF_HUB_OFFLINE=1``)
and seeded, so every run measures the same thing. The tests call the models the way their
users do: as built (training mode unless a test calls ``.eval()``), with the outputs they
return by default (KV caches included).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402
import torch  # noqa: E402

SEED = 0
VOCAB = 128


def seeded(build):
    """Build a model with weights drawn from a fixed seed."""
    torch.manual_seed(SEED)
    return build()


def token_ids(batch: int, length: int, offset: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(SEED + offset)
    return torch.randint(0, VOCAB, (batch, length), generator=generator)


def randn(*shape: int, offset: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(SEED + offset)
    return torch.randn(*shape, generator=generator)


@pytest.fixture(scope="session")
def ids() -> torch.Tensor:
    """Batch 2, 12 tokens."""
    return token_ids(2, 12)


@pytest.fixture(scope="session")
def images() -> torch.Tensor:
    """Batch 2 of 3x32x32 images."""
    return randn(2, 3, 32, 32, offset=1)


#: The planted regressions run only when tests/test_zoo_planted.py asks for them (ZOO_PLANT
#: set to 0 or 1), not in the unchanged zoo's baseline-and-gate run.
collect_ignore = [] if "ZOO_PLANT" in os.environ else ["zoo_planted.py"]
