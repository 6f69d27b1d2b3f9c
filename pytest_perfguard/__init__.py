"""pytest-perfguard: fail CI when torch.compile fusion gets worse.

The public API: the ``perfguard`` fixture (``pytest_perfguard.plugin``), the record types a
measurement returns (``pytest_perfguard.record``), and the ``perfguard`` command
(``pytest_perfguard.cli``). Importing this package imports no torch.
"""

__version__ = "0.2.0"
