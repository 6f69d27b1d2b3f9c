"""What names a measurement: ``(test_id, name)``, and that pair as people read it. No torch.

A module of its own so that the baseline store and ``results.json`` (which the comparison
reads and writes) share it without importing each other.
"""

from __future__ import annotations

#: ``(test_id, name)``: kept as two fields, so that ``test_c[x]`` measuring ``y[z]`` and
#: ``test_c[x]::y[z]`` stay two identities.
Identity = tuple[str, str]


def display(identity: Identity) -> str:
    """An identity as people read it (the same text as ``Measurement.key``); text that no
    terminal can print (a lone surrogate from a ``\\ud800`` escape) is shown escaped."""
    test_id, name = identity
    text = test_id if name == "default" else f"{test_id}::{name}"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
