"""The state a call of the model can change, kept so that every mode starts alike.

A model may change its inputs in place (``x.add_(1)``), and a module changes its own
tensors when it runs (BatchNorm's running statistics in training mode, a step counter
buffer, parameters a training-step callable updates); random ops advance the generators.
If eager ran first and compiled second on what eager left behind, the outputs would differ
for no fault of the compiler. :class:`StartState` keeps the inputs as the test gave them,
a copy of the module's tensors and the generators' state, and :meth:`StartState.restore`
puts them back: fresh copies of the inputs, module tensors an earlier call changed copied
back in place (the same tensor objects, so compiled code that guards on them keeps its
graphs), and the generators as they were.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch

from .numerics import iter_tensors
from .private.model import tensor_dicts, tensor_version

InputSet = tuple[tuple[Any, ...], dict[str, Any]]


@dataclass
class _Saved:
    """One module tensor: where it lives, the object, a copy of its values, its version."""

    owner: dict[str, Any]
    name: str
    tensor: torch.Tensor
    values: torch.Tensor
    version: int


@dataclass
class StartState:
    """The inputs and module tensors as they were before the first call."""

    model: Any
    originals: list[InputSet]
    #: The inputs the next call uses (fresh copies after :meth:`restore`).
    current: list[InputSet] = field(default_factory=list)
    #: Per input set, its tensors that are graph leaves requiring grad, by name
    #: (``input[0]``): training calls clear and report their gradients.
    grad_leaves: list[list[tuple[str, torch.Tensor]]] = field(default_factory=list)
    #: What could not be kept (an input that cannot be copied), for the record.
    notes: list[str] = field(default_factory=list)
    _saved: list[_Saved] = field(default_factory=list)
    _rng: torch.Tensor | None = None
    _cuda_rng: list[torch.Tensor] | None = None

    def __post_init__(self) -> None:
        self._saved = list(_module_tensors(self.model))
        self._rng = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            self._cuda_rng = torch.cuda.get_rng_state_all()
        self.current = list(self.originals)
        self.restore()

    def restore(self) -> None:
        """Module tensors back to their saved values (only those that changed), the random
        number generators back to their state, and fresh copies of every input set. Runs
        outside every measured region."""
        if self._rng is not None:
            torch.set_rng_state(self._rng)
        if self._cuda_rng is not None:
            torch.cuda.set_rng_state_all(self._cuda_rng)
        with torch.no_grad():
            for saved in self._saved:
                if saved.owner.get(saved.name) is not saved.tensor:
                    saved.owner[saved.name] = saved.tensor  # reassigned: put the original back
                if tensor_version(saved.tensor) != saved.version:
                    saved.tensor.copy_(saved.values)
                    saved.version = tensor_version(saved.tensor)
        self.current = [self._fresh(i) for i in range(len(self.originals))]
        self.grad_leaves = [_grad_leaves(*inputs) for inputs in self.current]

    def _fresh(self, index: int) -> InputSet:
        """A deep copy of input set ``index``; the model's own tensors (an input may refer
        to them) are not copied. Tensors keep their strides, storage offsets, aliasing and
        ``requires_grad`` (``Tensor.__deepcopy__``)."""
        args, kwargs = self.originals[index]
        memo: dict[int, Any] = {id(self.model): self.model}
        for saved in self._saved:
            memo[id(saved.tensor)] = saved.tensor
        # deepcopy refuses tensors that are not graph leaves: copy those detached.
        for _, leaf in iter_tensors((args, kwargs), "input"):
            if isinstance(leaf, torch.Tensor) and not leaf.is_leaf and id(leaf) not in memo:
                memo[id(leaf)] = leaf.detach().clone().requires_grad_(leaf.requires_grad)
        try:
            copied_args, copied_kwargs = copy.deepcopy((args, kwargs), memo)
        except Exception as exc:
            note = (f"input set {index} could not be copied ({type(exc).__name__}: {exc}); "
                    "every call gets the same objects, so a model that changes its inputs "
                    "in place sees them changed")
            if note not in self.notes:
                self.notes.append(note)
            return args, kwargs
        return tuple(copied_args), dict(copied_kwargs)


def _module_tensors(model: Any) -> list[_Saved]:
    """Parameters, buffers and plain tensor attributes of every submodule, each once."""
    if not isinstance(model, torch.nn.Module):
        return []
    seen: set[int] = set()
    saved: list[_Saved] = []
    for module in model.modules():
        for owner in tensor_dicts(module):
            for name, tensor in list(owner.items()):
                if not isinstance(tensor, torch.Tensor) or id(tensor) in seen:
                    continue
                seen.add(id(tensor))
                saved.append(_Saved(owner, name, tensor, tensor.detach().clone(),
                                    tensor_version(tensor)))
    return saved


def input_tensors(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, torch.Tensor]]:
    """Every tensor of an input set, by path: ``input[0]``, ``input['labels']``."""
    found = []
    for path, leaf in iter_tensors({"args": list(args), "kwargs": kwargs}, "input"):
        if isinstance(leaf, torch.Tensor):
            path = path.replace("input['args']", "input", 1).replace("input['kwargs']", "input", 1)
            found.append((path, leaf))
    return found


def _grad_leaves(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, torch.Tensor]]:
    return [(path, t) for path, t in input_tensors(args, kwargs) if t.is_leaf and t.requires_grad]


def describe_inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """``input[0]: (2, 12) int64, input['labels']: (2, 12) int64`` (tensors only)."""
    parts = [f"{path}: {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"
             for path, t in input_tensors(args, kwargs)]
    return ", ".join(parts) or "no tensors"
