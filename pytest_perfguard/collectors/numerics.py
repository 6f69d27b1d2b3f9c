"""Compare compiled outputs with eager outputs, with tolerances by dtype."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import torch

from ..record import Numerics

#: (rtol, atol) by dtype: inductor reorders and fuses arithmetic, so bit-exactness is not
#: expected; these are a little looser than torch.testing's defaults.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-7, 1e-7),
    torch.float32: (1e-4, 1e-5),
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (1.6e-2, 1e-2),
}


class NumericsMismatch(AssertionError):
    """Compiled output differs from eager output beyond tolerance."""


def iter_tensors(value: Any, path: str = "output") -> Iterator[tuple[str, Any]]:
    """Yield (path, leaf) for tensors and numbers in nested outputs.

    Handles tensors, tuples/lists (namedtuples too), dicts, dataclasses and None.
    """
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, (bool, int, float, complex)):
        yield path, value
    elif value is None or isinstance(value, (str, bytes)):
        return
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_tensors(item, f"{path}[{key!r}]")
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            yield from iter_tensors(item, f"{path}[{index}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from iter_tensors(getattr(value, f.name), f"{path}.{f.name}")
    else:
        raise TypeError(
            f"perfguard cannot compare {path} of type {type(value).__name__}: return tensors, "
            "numbers, or tuples/lists/dicts/dataclasses of them"
        )


def check(
    eager: Any,
    compiled: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
) -> Numerics:
    """Compare two outputs. Returns the record; ``ok`` is False on a mismatch."""
    eager_leaves = list(iter_tensors(eager))
    compiled_leaves = list(iter_tensors(compiled))
    if [p for p, _ in eager_leaves] != [p for p, _ in compiled_leaves]:
        return Numerics(
            checked=True,
            ok=False,
            where="structure",
            message=(
                "compiled output has a different structure from eager output: "
                f"eager {[p for p, _ in eager_leaves]} vs compiled {[p for p, _ in compiled_leaves]}"
            ),
        )
    worst: tuple[float, float, str, float, float, bool] | None = None  # excess, abs, where, ...
    used_rtol = used_atol = 0.0
    for (path, e), (_, c) in zip(eager_leaves, compiled_leaves, strict=True):
        if not isinstance(e, torch.Tensor):
            if isinstance(e, float) or isinstance(c, float):
                if not math.isclose(float(e), float(c), rel_tol=1e-5, abs_tol=1e-6):
                    excess = abs(float(e) - float(c))
                    if worst is None or excess > worst[0]:
                        worst = (excess, excess, path, float(e), float(c), False)
            elif e != c:
                return Numerics(checked=True, ok=False, where=path,
                                message=f"{path}: eager {e!r}, compiled {c!r}")
            continue
        if e.shape != c.shape or e.dtype != c.dtype:
            return Numerics(
                checked=True, ok=False, where=path,
                message=(f"{path}: eager {tuple(e.shape)} {e.dtype}, "
                         f"compiled {tuple(c.shape)} {c.dtype}"),
            )
        if e.numel() == 0:
            continue
        default_rtol, default_atol = TOLERANCES.get(e.dtype, (0.0, 0.0))
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
                     float(e_d.reshape(-1)[flat_index]), float(c_d.reshape(-1)[flat_index]), True)
    if worst is None:
        return Numerics(checked=True, ok=True, max_abs_error=0.0, atol=used_atol, rtol=used_rtol)
    excess_value, abs_error, where, eager_value, compiled_value, _ = worst
    # JSON holds finite numbers only (results.json and the baseline are validated): an error
    # with no finite size (against an eager 0, or a NaN where eager had a number) is None,
    # and the message says where it is.
    finite = math.isfinite(abs_error)
    rel_error = (abs_error / abs(eager_value) if eager_value else None if abs_error else 0.0
                 ) if finite else None
    ok = excess_value <= 0
    message = "" if ok else (
        f"largest error at {where}: eager {eager_value:.6g}, compiled {compiled_value:.6g}, "
        f"abs error {abs_error:.3g} (rtol {used_rtol:g}, atol {used_atol:g})"
    )
    return Numerics(checked=True, ok=ok, max_abs_error=abs_error if finite else None,
                    max_rel_error=rel_error,
                    where=where, atol=used_atol, rtol=used_rtol, message=message)
