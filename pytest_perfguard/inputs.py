"""``Inputs``: one set of positional and keyword inputs for ``perfguard(model, inputs=[...])``.

No torch here: the plugin imports this package before torch is needed.
"""

from __future__ import annotations

from typing import Any


class Inputs:
    """One call's inputs: ``Inputs(ids, attention_mask=mask)``.

    ``perfguard(model, inputs=[...])`` also takes a tuple (positional inputs), a dict
    (keyword inputs) or a single tensor per set; ``Inputs`` is for a set with both.
    """

    __slots__ = ("args", "kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"Inputs(*{self.args!r}, **{self.kwargs!r})"
