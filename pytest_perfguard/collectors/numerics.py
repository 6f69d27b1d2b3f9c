"""Compare compiled outputs with eager outputs, with tolerances by dtype.

A model may return anything: a tensor, containers of tensors, a transformers
``ModelOutput``, a KV cache object (``DynamicCache``), or objects of its own that hold
tensors. :func:`flatten` walks all of it and keeps every tensor and number it reaches,
each under a path (``output['cache'].layers[0].keys``); whatever it cannot or should not
compare is listed with the reason, and no output type ever makes the check fail.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..record import Numerics
from .private.model import pytree_children

#: (rtol, atol) by dtype: inductor reorders and fuses arithmetic, so bit-exactness is not
#: expected; these are a little looser than torch.testing's defaults.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-7, 1e-7),
    torch.float32: (1e-4, 1e-5),
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (1.6e-2, 1e-2),
}

#: How deep the walk goes into objects that are not containers (a cache holds layers that
#: hold tensors: 2 levels). Deeper objects are listed as skipped, never compared silently.
MAX_OBJECT_DEPTH = 6
#: How deep the walk goes in total (containers and objects).
MAX_DEPTH = 32

#: Values that describe data rather than hold it: ignored, neither compared nor listed.
_METADATA_TYPES: tuple[type, ...] = (
    str, bytes, torch.device, torch.dtype, torch.layout, torch.memory_format, type,
    enum.Enum, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
    types.ModuleType, torch.Generator,
)


class NumericsMismatch(AssertionError):
    """Compiled output differs from eager output beyond tolerance."""


@dataclass
class Flattened:
    """Every tensor and number of one output, by path, and what was left out and why."""

    #: (path, leaf): tensors (detached copies when flattened with ``copy=True``) and numbers.
    leaves: list[tuple[str, Any]] = field(default_factory=list)
    #: "path: why it was not compared".
    skipped: list[str] = field(default_factory=list)

    def extend(self, other: Flattened) -> None:
        self.leaves += other.leaves
        self.skipped += other.skipped


def flatten(
    value: Any,
    root: str = "output",
    *,
    exclude: Sequence[str] = (),
    copy: bool = False,
) -> Flattened:
    """Walk ``value`` and collect its tensors and numbers.

    Order of the rules: tensors and numbers are leaves; ``None`` and metadata (strings,
    devices, dtypes, functions, enums) are ignored; an ``nn.Module`` is skipped (its
    parameters are state, not output); containers registered with torch's pytree (tuples,
    lists, dicts, namedtuples, transformers' ``ModelOutput``, ...) by their keys;
    dataclasses by field; other mappings and sequences by key and index; any other object
    by its attributes (``__dict__``, ``__slots__``), in name order. Objects seen again
    further down (cycles) and walks deeper than :data:`MAX_OBJECT_DEPTH` objects are
    skipped with the reason.

    ``exclude`` entries are key or attribute names matched at any depth (``"cache"``,
    ``"past_key_values"``) or whole paths as printed (``"output['cache']"``).
    ``copy=True`` keeps detached copies of the tensors, safe from later in-place changes.
    """
    out = Flattened()
    names = {e for e in exclude if not _looks_like_path(e, root)}
    paths = {e for e in exclude if _looks_like_path(e, root)}
    _walk(value, root, out, names=names, paths=paths, copy=copy, depth=0, object_depth=0,
          on_path=set())
    return out


def iter_tensors(value: Any, path: str = "output") -> Iterator[tuple[str, Any]]:
    """Yield (path, leaf) for every tensor and number reachable in ``value`` (no copies)."""
    yield from flatten(value, path).leaves


def _looks_like_path(entry: str, root: str) -> bool:
    return entry.startswith(root) and entry != root and entry[len(root)] in "[."


def _walk(
    value: Any,
    path: str,
    out: Flattened,
    *,
    names: set[str],
    paths: set[str],
    copy: bool,
    depth: int,
    object_depth: int,
    on_path: set[int],
) -> None:
    if path in paths:
        out.skipped.append(f"{path}: excluded by numerics_exclude")
        return
    if isinstance(value, torch.Tensor):
        if copy:
            try:
                value = value.detach().clone()
            except Exception as exc:  # a tensor subclass that cannot be copied
                out.skipped.append(f"{path}: {type(value).__name__} could not be copied ({exc})")
                return
        out.leaves.append((path, value))
        return
    if isinstance(value, (bool, int, float, complex)):
        out.leaves.append((path, value))
        return
    if value is None or isinstance(value, _METADATA_TYPES):
        return
    if isinstance(value, torch.nn.Module):
        out.skipped.append(f"{path}: {type(value).__name__} is a module (its parameters are "
                           "state, not output)")
        return
    if depth >= MAX_DEPTH or object_depth > MAX_OBJECT_DEPTH:
        out.skipped.append(f"{path}: {type(value).__name__} nested deeper than perfguard walks")
        return
    if id(value) in on_path:
        out.skipped.append(f"{path}: {type(value).__name__} refers back to an enclosing object")
        return

    found = _children(value, out, path)
    if found is None:
        return
    children, is_object = found
    on_path.add(id(value))
    try:
        for suffix, name, child in children:
            if name in names:
                out.skipped.append(f"{path}{suffix}: excluded by numerics_exclude")
                continue
            _walk(child, f"{path}{suffix}", out, names=names, paths=paths, copy=copy,
                  depth=depth + 1, object_depth=object_depth + int(is_object), on_path=on_path)
    finally:
        on_path.discard(id(value))


def _children(
    value: Any, out: Flattened, path: str
) -> tuple[list[tuple[str, str, Any]], bool] | None:
    """(path suffix, key name, child) for each child of a container or object, and whether
    it is a plain object (not a container); None when the value cannot be walked (the
    reason is recorded)."""
    registered = pytree_children(value)
    if registered is not None:
        return registered, False
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f".{f.name}", f.name, getattr(value, f.name, None))
                for f in dataclasses.fields(value)], False
    if isinstance(value, Mapping):
        try:
            return [(f"[{k!r}]", str(k), v) for k, v in value.items()], False
        except Exception as exc:
            out.skipped.append(f"{path}: {type(value).__name__} could not be iterated ({exc})")
            return None
    if isinstance(value, Sequence):
        return [(f"[{i}]", str(i), v) for i, v in enumerate(value)], False
    attributes = _attributes(value)
    if attributes is None:
        out.skipped.append(f"{path}: {type(value).__module__}.{type(value).__qualname__} holds "
                           "no attributes perfguard can read (not a tensor, number, container "
                           "or Python object)")
        return None
    children = []
    for name in attributes:
        try:
            child = getattr(value, name)
        except Exception as exc:
            out.skipped.append(f"{path}.{name}: could not be read ({type(exc).__name__}: {exc})")
            continue
        children.append((f".{name}", name, child))
    return children, True


def _attributes(value: Any) -> list[str] | None:
    """Instance attribute names in name order (``__dict__`` and ``__slots__``), or None."""
    found: set[str] = set()
    has_any = False
    instance_dict = getattr(value, "__dict__", None)
    if isinstance(instance_dict, dict):
        has_any = True
        found.update(k for k in instance_dict if isinstance(k, str))
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__")
        if slots is None:
            continue
        has_any = True
        for name in [slots] if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and hasattr(value, name):
                found.add(name)
    if not has_any:
        return None
    return sorted(n for n in found if not (n.startswith("__") and n.endswith("__")))


def lowest_precision(dtypes: Iterable[torch.dtype]) -> torch.dtype | None:
    """The floating dtype with the loosest tolerance among ``dtypes`` (bf16 over fp16 over
    float32 over float64), or None when none is a dtype with a tolerance."""
    known = [d for d in dtypes if d in TOLERANCES]
    return max(known, key=lambda d: TOLERANCES[d], default=None)


def model_precision(model: Any) -> torch.dtype | None:
    """The precision a model computes in: the lowest-precision floating dtype among its
    parameters and buffers (a bf16 model returning ``logits.float()`` computes in bf16)."""
    if not isinstance(model, torch.nn.Module):
        return None
    return lowest_precision(t.dtype for t in
                            itertools.chain(model.parameters(), model.buffers()))


def check(
    eager: Flattened,
    compiled: Flattened,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    compute: torch.dtype | None = None,
) -> Numerics:
    """Compare two flattened outputs. Returns the record; ``ok`` is False on a mismatch.

    A floating output's default tolerance is that of its own dtype or of ``compute`` (the
    model's compute dtype), whichever is looser: an error made in bf16 arithmetic stays a
    bf16-sized error after an upcast to float32. The message states the tolerance applied to
    the element it names."""
    skipped = sorted(set(eager.skipped) | set(compiled.skipped))
    eager_leaves, compiled_leaves = eager.leaves, compiled.leaves
    eager_paths = [p for p, _ in eager_leaves]
    compiled_paths = [p for p, _ in compiled_leaves]
    if sorted(eager_paths) != sorted(compiled_paths):
        only_eager = sorted(set(eager_paths) - set(compiled_paths))
        only_compiled = sorted(set(compiled_paths) - set(eager_paths))
        return Numerics(
            checked=True, ok=False, where="structure", skipped=skipped,
            message=(
                "compiled output has a different structure from eager output: only in eager "
                f"{only_eager[:5]}, only in compiled {only_compiled[:5]}"
            ),
        )
    compiled_by_path = dict(compiled_leaves)
    # excess, abs error, where, eager value, compiled value, its rtol, its atol
    worst: tuple[float, float, str, float, float, float, float] | None = None
    used_rtol = used_atol = 0.0
    for path, e in eager_leaves:
        c = compiled_by_path[path]
        if not isinstance(e, torch.Tensor) or not isinstance(c, torch.Tensor):
            if isinstance(e, torch.Tensor) or isinstance(c, torch.Tensor):
                return Numerics(checked=True, ok=False, where=path, skipped=skipped,
                                message=f"{path}: eager {type(e).__name__}, compiled "
                                        f"{type(c).__name__}")
            if isinstance(e, float) or isinstance(c, float):
                if not math.isclose(float(e), float(c), rel_tol=1e-5, abs_tol=1e-6):
                    excess = abs(float(e) - float(c))
                    if worst is None or excess > worst[0]:
                        worst = (excess, excess, path, float(e), float(c), 1e-5, 1e-6)
            elif e != c:
                return Numerics(checked=True, ok=False, where=path, skipped=skipped,
                                message=f"{path}: eager {e!r}, compiled {c!r}")
            continue
        if e.shape != c.shape or e.dtype != c.dtype:
            return Numerics(
                checked=True, ok=False, where=path, skipped=skipped,
                message=(f"{path}: eager {tuple(e.shape)} {e.dtype}, "
                         f"compiled {tuple(c.shape)} {c.dtype}"),
            )
        if e.numel() == 0:
            continue
        dtype = e.dtype
        if e.is_floating_point() and compute is not None:
            dtype = lowest_precision([e.dtype, compute]) or e.dtype
        default_rtol, default_atol = TOLERANCES.get(dtype, (0.0, 0.0))
        r = default_rtol if rtol is None else rtol
        a = default_atol if atol is None else atol
        used_rtol, used_atol = max(used_rtol, r), max(used_atol, a)
        e_d = e.detach().to("cpu", torch.float64) if e.is_floating_point() or e.is_complex() \
            else e.detach().to("cpu")
        c_d = c.detach().to("cpu", e_d.dtype)
        if not (e.is_floating_point() or e.is_complex()):
            mismatch = e_d != c_d
            if bool(mismatch.any()):
                index = tuple(int(i) for i in mismatch.nonzero()[0])
                return Numerics(checked=True, ok=False, where=f"{path}{list(index)}",
                                skipped=skipped,
                                message=(f"{path} element {index}: eager {e_d[index].item()}, "
                                         f"compiled {c_d[index].item()}"))
            continue
        nan_mismatch = torch.isnan(e_d) != torch.isnan(c_d)
        diff = (e_d - c_d).abs().nan_to_num(0.0)
        diff = torch.where(nan_mismatch, torch.full_like(diff, math.inf), diff)
        allowed = e_d.abs().nan_to_num(0.0) * r + a
        over = diff - allowed
        flat_index = int(over.argmax())
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat_index), e.shape))
        max_excess = float(over.reshape(-1)[flat_index])
        if worst is None or max_excess > worst[0]:
            worst = (max_excess, float(diff.reshape(-1)[flat_index]), f"{path}{list(index)}",
                     float(e_d.reshape(-1)[flat_index]), float(c_d.reshape(-1)[flat_index]),
                     r, a)
    if worst is None:
        return Numerics(checked=True, ok=True, max_abs_error=0.0, atol=used_atol, rtol=used_rtol,
                        skipped=skipped)
    excess_value, abs_error, where, eager_value, compiled_value, leaf_rtol, leaf_atol = worst
    # JSON holds finite numbers only (results.json and the baseline are validated): an error
    # with no finite size (against an eager 0, or a NaN where eager had a number) is None,
    # and the message says where it is.
    finite = math.isfinite(abs_error)
    rel_error = (abs_error / abs(eager_value) if eager_value else None if abs_error else 0.0
                 ) if finite else None
    ok = excess_value <= 0
    limit = leaf_atol + leaf_rtol * abs(eager_value) if math.isfinite(eager_value) else 0.0
    message = "" if ok else (
        f"largest error at {where}: eager {eager_value:.6g}, compiled {compiled_value:.6g}, "
        f"abs error {abs_error:.3g} > allowed {limit:.3g} (atol {leaf_atol:g} + "
        f"rtol {leaf_rtol:g} x |eager|)"
    )
    return Numerics(checked=True, ok=ok, max_abs_error=abs_error if finite else None,
                    max_rel_error=rel_error, where=where, atol=used_atol, rtol=used_rtol,
                    message=message, skipped=skipped)
