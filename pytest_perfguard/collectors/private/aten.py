"""aten operators: which do work, what they read and write, which draw random numbers.

Private APIs: the C++ dispatcher table (``torch._C._dispatch_has_kernel_for_dispatch_key``,
``torch._C.DispatchKey``), ``OpOverload._schema``,
``torch.utils._python_dispatch.TorchDispatchMode`` and ``torch.utils._pytree.tree_flatten``.
Checked on torch 2.11-2.13.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import Unavailable

try:
    #: The base class of the eager byte counter: sees every op that reaches a kernel.
    from torch.utils._python_dispatch import TorchDispatchMode

    #: Flattens nested op arguments (lists of tensors) into their tensors.
    from torch.utils._pytree import tree_flatten
except ImportError as exc:  # pragma: no cover - present in every supported torch
    raise ImportError(f"perfguard needs torch.utils._python_dispatch/_pytree: {exc}") from exc

__all__ = ["METADATA_OPS", "TorchDispatchMode", "classify_op", "op_schema",
           "random_ops_called", "tree_flatten"]

#: Ops that allocate or only change metadata: they launch no compute kernel.
METADATA_OPS = frozenset(
    {
        "empty",
        "empty_strided",
        "empty_like",
        "new_empty",
        "new_empty_strided",
        "resize_",
        "set_",
        "_unsafe_view",
        "_reshape_alias",
        "alias",
        "lift_fresh",
        "_local_scalar_dense",
        "detach_",
        "record_stream",
        "_nested_tensor_from_mask",
        "is_nonzero",
        "size",
        "stride",
        "sym_size",
        "sym_stride",
        "sym_numel",
    }
)


_op_kind_cache: dict[str, str] = {}


def classify_op(qualified_name: str) -> str:
    """Classify a profiler event name such as ``aten::mul`` or ``mylib::op``: "kernel"
    (does work), "composite" (decomposes: look at its children), "view"/"metadata" (no
    work), "custom" (a user's op), "unknown" (not an operator, e.g. a Python range).

    Uses the C++ dispatcher table, ``torch._C._dispatch_has_kernel_for_dispatch_key(name,
    CompositeImplicitAutograd)`` (the op decomposes before reaching a kernel), and
    ``OpOverload.is_view``, over all overloads of the name (the profiler does not name the
    overload; ``out`` overloads are skipped). Checked on torch 2.11-2.13.
    """
    cached = _op_kind_cache.get(qualified_name)
    if cached is not None:
        return cached
    kind = _classify_uncached(qualified_name)
    _op_kind_cache[qualified_name] = kind
    return kind


def _classify_uncached(qualified_name: str) -> str:
    if "::" not in qualified_name:
        return "unknown"
    namespace, _, name = qualified_name.partition("::")
    if namespace in ("aten", "prims") and name in METADATA_OPS:
        return "metadata"
    try:
        packet = getattr(getattr(torch.ops, namespace), name)
        overload_names = packet.overloads()
    except (AttributeError, RuntimeError):
        return "unknown"
    composite_key = torch._C.DispatchKey.CompositeImplicitAutograd
    composite, views, total = 0, 0, 0
    for overload in overload_names:
        if "out" in overload.split("_"):
            continue
        try:
            op = getattr(packet, overload)
            # The C++ dispatcher table, not OpOverload.has_kernel_for_dispatch_key: the
            # latter also says True for Python-registered decompositions (it would make
            # aten::native_batch_norm, a real CPU kernel, look composite).
            is_composite = torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), composite_key)
            is_view = bool(op.is_view)
        except (AttributeError, RuntimeError):
            continue  # TorchScript-only overloads have no dispatcher entry
        total += 1
        composite += int(is_composite)
        views += int(is_view)
    if total == 0:
        return "unknown"
    if composite == total:
        return "composite"
    if views == total:
        return "view"
    if namespace not in ("aten", "prims", "mkldnn", "quantized", "_quantized", "onednn"):
        # A user's custom op: its Python implementation may launch aten kernels of its own;
        # the counter looks inside it and counts it as one kernel only if it holds none.
        return "custom"
    return "kernel"


def random_ops_called(fn: Callable[[], Any]) -> list[str]:
    """Run ``fn`` and name the random ops it called: aten ops tagged
    ``torch.Tag.nondeterministic_seeded`` (dropout, bernoulli, rand, ...), seen by a
    ``TorchDispatchMode`` (``torch.utils._python_dispatch``, private; torch 2.0-2.13).
    The tag is not evidence on its own: CPU attention
    (``_scaled_dot_product_flash_attention_for_cpu``) carries it with ``dropout_p=0``, so an
    op whose ``dropout_p``/``p`` is 0 or whose ``train`` is False is not named.
    Raises :class:`Unavailable` where that is missing."""
    try:
        from torch.utils._python_dispatch import TorchDispatchMode

        seeded = torch.Tag.nondeterministic_seeded
    except (ImportError, AttributeError) as exc:
        raise Unavailable(f"cannot watch for random ops in this torch: {exc}") from exc
    found: list[str] = []

    class _RandomOps(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                               kwargs: Any = None) -> Any:
            if seeded in getattr(func, "tags", ()) and _draws_random(func, args, kwargs or {}):
                name = str(func.overloadpacket.__name__)
                if name not in found:
                    found.append(name)
            return func(*args, **(kwargs or {}))

    with _RandomOps():
        fn()
    return found


def _draws_random(func: Any, args: Any, kwargs: dict[str, Any]) -> bool:
    """False for a seeded op called with no randomness (``dropout_p=0``, ``p=0``,
    ``train=False``; the schema's default where not passed)."""
    schema = getattr(func, "_schema", None)
    for index, argument in enumerate(schema.arguments if schema is not None else ()):
        if argument.name not in ("dropout_p", "p", "train"):
            continue
        if not argument.kwarg_only and index < len(args):
            value = args[index]
        elif argument.name in kwargs:
            value = kwargs[argument.name]
        elif argument.has_default_value():
            value = argument.default_value
        else:
            continue
        if argument.name == "train" and value is False:
            return False
        if argument.name != "train" and isinstance(value, (int, float)) and value == 0:
            return False
    return True


def op_schema(func: Any) -> Any:
    """The op's ``torch._C.FunctionSchema`` (``OpOverload._schema``): its arguments, which
    it writes (``alias_info.is_write``) and which are keyword-only."""
    return func._schema
