"""pytest-perfguard: fail CI when torch.compile fusion gets worse.

The public API: the ``perfguard`` fixture (``pytest_perfguard.fixture``), the record types a
measurement returns (``pytest_perfguard.record``), ``Inputs`` for several input sets, and the
``perfguard`` command (``pytest_perfguard.cli``). Importing this package imports no torch.
"""

from .inputs import Inputs

__version__ = "0.2.0"

__all__ = ["Inputs", "__version__"]
