"""Small but realistic models, as a team using perfguard would have them."""

from .convnet import SmallConvNet
from .gpt import GPTBlock
from .mlp import MLP

__all__ = ["GPTBlock", "MLP", "SmallConvNet"]
