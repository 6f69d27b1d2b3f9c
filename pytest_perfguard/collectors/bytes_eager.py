"""Bytes moved by eager kernels, counted from the real tensors of every op.

A ``TorchDispatchMode`` sees each op after autograd and after composite ops decomposed,
that is, the ops that reach a kernel, with their actual input and output tensors. For each
op that does work (not a view or metadata op):

- bytes read: every tensor argument the op does not write, once per argument;
- bytes written: every output, and every argument the schema marks as mutated
  (``Tensor(a!)``: in-place and ``out=`` ops); an in-place op therefore counts its
  ``self`` once read and once written, like inductor's read/write sets do;
- a tensor's size is the elements it really spans times the element size: dimensions with
  stride 0 (``expand``/broadcast) count once. Python scalars move nothing.

Oracle: ``x * 2 + 1`` for a float32 ``x`` of 2**20 elements is two ops, each reading 4 MiB
and writing 4 MiB: 16,777,216 bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import torch

from .private.aten import METADATA_OPS, TorchDispatchMode, op_schema, tree_flatten


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes a kernel touches in ``t``: elements over non-broadcast dims times element size."""
    elements = 1
    for size, stride in zip(t.shape, t.stride(), strict=True):
        if stride != 0:
            elements *= size
    if t.dim() == 0:
        elements = 1
    return elements * t.element_size()


class ByteCounter(TorchDispatchMode):
    """Sum the bytes read and written by every kernel-running op under this mode."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes_read = 0
        self.bytes_written = 0
        self.ops: Counter[str] = Counter()

    @property
    def bytes_moved(self) -> int:
        return self.bytes_read + self.bytes_written

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if _moves_no_data(func):
            return out
        schema = op_schema(func)
        written_ids: set[int] = set()
        read = 0
        written = 0
        for index, argument in enumerate(schema.arguments):
            if argument.kwarg_only or index >= len(args):
                value = kwargs.get(argument.name)
            else:
                value = args[index]
            tensors = [v for v in tree_flatten(value)[0] if isinstance(v, torch.Tensor)]
            is_write = argument.alias_info is not None and argument.alias_info.is_write
            for tensor in tensors:
                if is_write:
                    written += tensor_bytes(tensor)
                    written_ids.add(id(tensor))
                    if not _is_out_argument(argument):
                        read += tensor_bytes(tensor)  # in-place: self is read, then written
                else:
                    read += tensor_bytes(tensor)
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and id(tensor) not in written_ids:
                written += tensor_bytes(tensor)
        self.bytes_read += read
        self.bytes_written += written
        self.ops[str(func.overloadpacket.__name__)] += 1
        return out


def _is_out_argument(argument: Any) -> bool:
    return bool(argument.kwarg_only) and argument.name.startswith("out")


def _moves_no_data(func: Any) -> bool:
    name = func.overloadpacket.__name__
    if name in METADATA_OPS:
        return True
    try:
        return bool(func.is_view)
    except AttributeError:  # pragma: no cover
        return False


def count_bytes(call: Callable[[], Any]) -> int:
    """Bytes moved by one eager call (this module's counter alone)."""
    counter = ByteCounter()
    with counter:
        call()
    return counter.bytes_moved


def count_flops(call: Callable[[], Any]) -> int:
    """FLOPs of one eager call: torch's ``FlopCounterMode`` (matmul, convolution and
    attention work) alone."""
    from torch.utils.flop_counter import FlopCounterMode

    flop_counter = FlopCounterMode(display=False)
    with flop_counter:
        call()
    return int(flop_counter.get_total_flops())


def count_bytes_and_flops(call: Callable[[], Any]) -> tuple[int, int]:
    """(bytes moved, FLOPs) of one eager call: both counters watch the same call."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = ByteCounter()
    flop_counter = FlopCounterMode(display=False)
    with flop_counter, counter:
        call()
    return counter.bytes_moved, int(flop_counter.get_total_flops())
