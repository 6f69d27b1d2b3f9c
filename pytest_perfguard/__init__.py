"""pytest-perfguard."""

from .inputs import Inputs

__all__ = ["Inputs"]
