"""A model's tensors and outputs: containers, in-place changes, module internals.

Private APIs: ``torch.utils._pytree`` (``_get_node_type``, ``SUPPORTED_NODES``,
``NodeDef.flatten_with_keys_fn`` / ``flatten_fn``; torch 2.2-2.13), ``Tensor._version``,
``nn.Module._parameters`` / ``_buffers`` and ``torch.nn.modules.dropout._DropoutNd``.
Checked on torch 2.11-2.13.
"""

from __future__ import annotations

from typing import Any

import torch


def pytree_children(value: Any) -> list[tuple[str, str, Any]] | None:
    """(path suffix, key name, child) for a container registered with torch's pytree
    (tuples, lists, dicts, namedtuples, ``torch.return_types``, transformers'
    ``ModelOutput`` and whatever else a library registered); None for anything else.

    ``torch.utils._pytree`` is private: ``_get_node_type``, ``SUPPORTED_NODES`` and
    ``NodeDef.flatten_with_keys_fn`` / ``flatten_fn`` (torch 2.2-2.13). Without them the
    caller walks plain tuples, lists and dicts itself.
    """
    try:
        import torch.utils._pytree as pytree

        node_def = pytree.SUPPORTED_NODES.get(pytree._get_node_type(value))
    except Exception:
        return None
    if node_def is None:
        return None
    try:
        with_keys = getattr(node_def, "flatten_with_keys_fn", None)
        if with_keys is not None:
            pairs, _ = with_keys(value)
            return [(str(key), _key_name(key), child) for key, child in pairs]
        flat, _ = node_def.flatten_fn(value)
        return [(f"[{i}]", str(i), child) for i, child in enumerate(flat)]
    except Exception:
        return None


def _key_name(key: Any) -> str:
    """The bare name of a pytree key: ``MappingKey.key``, ``GetAttrKey.name``,
    ``SequenceKey.idx``."""
    for attribute in ("key", "name", "idx"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def tensor_version(tensor: torch.Tensor) -> int:
    """The tensor's version counter (``Tensor._version``): in-place changes bump it."""
    return int(tensor._version)


def tensor_dicts(module: torch.nn.Module) -> list[dict[str, Any]]:
    """Where a module keeps its tensors: ``_parameters``, ``_buffers`` and its own
    attributes (``__dict__``, for plain tensor attributes)."""
    return [module._parameters, module._buffers, module.__dict__]


def is_dropout(module: torch.nn.Module) -> bool:
    """An ``nn.Dropout`` of any kind (their common base ``_DropoutNd``)."""
    return isinstance(module, torch.nn.modules.dropout._DropoutNd)
