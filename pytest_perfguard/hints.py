"""Likely causes of a regression, read from two measurements of the same test. No torch.

:func:`likely_causes` returns, for each kind of check (see ``compare.HintKind``), the lines a
regression of that kind carries: new graph breaks and the kernels that changed for fusion
metrics, new graph breaks for ``graph_breaks``, new guard failures for ``recompiles``, and
the allocations that grew at the peak for ``peak_memory``. Each list is short (at most
:data:`MAX_KERNEL_LINES` kernel lines, :data:`MAX_LINES` recompile and allocation lines): a
failure message is read by a person; the reports show the full kernel lists.
"""

from __future__ import annotations

import re
from collections import Counter

from .record import Allocation, Kernel, Measurement

#: Kernel lines a fusion regression carries at most, the last one saying how many more.
MAX_KERNEL_LINES = 10
#: Recompile and allocation lines a regression carries at most.
MAX_LINES = 5

#: Inductor's per-graph kernel index (``cpp_fused_add_view_2``): renumbered by any change
#: elsewhere in the graph, so kernels are matched without it.
_KERNEL_INDEX = re.compile(r"_\d+$")
#: A generated kernel's fused ops: ``cpp_fused_mul_silu``, ``triton_poi_fused_add`` (the
#: kind prefix, ``poi``/``per``/``red``/``tem``, stays part of the name).
_FUSED_OPS = re.compile(r"^(?:cpp|triton_[a-z]+)_fused_(.+)$")
_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def likely_causes(baseline: Measurement, current: Measurement) -> dict[str, list[str]]:
    """The hint lines for each hint kind, most telling first."""
    breaks = _graph_break_hints(baseline, current)
    return {"fusion": breaks + _kernel_hints(baseline.compiled.kernels,
                                             current.compiled.kernels),
            "breaks": breaks, "recompiles": _recompile_hints(baseline, current),
            "memory": _memory_hints(baseline, current)}


def _kernel_counts(kernels: list[Kernel]) -> dict[str, tuple[str, int]]:
    """Kernel name (generated ones without their index) -> (kind, launches per call)."""
    counts: dict[str, tuple[str, int]] = {}
    for kernel in kernels:
        name = _KERNEL_INDEX.sub("", kernel.name) if kernel.kind == "generated" else kernel.name
        _, before = counts.get(name, (kernel.kind, 0))
        counts[name] = (kernel.kind, before + kernel.count)
    return counts


def _fused_ops(name: str) -> str | None:
    """``"_mul_silu_"`` for ``cpp_fused_mul_silu``, None for any other kernel."""
    match = _FUSED_OPS.match(name)
    return f"_{match.group(1)}_" if match else None


def _op_words(name: str) -> set[str]:
    """The words of a fused kernel's ops (``native_layer_norm`` is three: names alone do
    not say where one op ends), to tell whether kernels hold the same ops."""
    return set(str(_fused_ops(name)).split("_")) - {""}


def _kernel_hints(baseline: list[Kernel], current: list[Kernel]) -> list[str]:
    """What changed in the compiled kernels, most telling first: ops that left a fused
    kernel (an aten kernel or custom op appeared whose op the fused kernel that shrank
    held), the other aten kernels and custom ops that appeared, fused kernels split in
    several, then the other count changes; at most :data:`MAX_KERNEL_LINES` lines."""
    base, cur = _kernel_counts(baseline), _kernel_counts(current)
    names = sorted(set(base) | set(cur))
    before = {name: base.get(name, ("", 0))[1] for name in names}
    after = {name: cur.get(name, ("", 0))[1] for name in names}
    kind = {name: cur.get(name, base.get(name, ("", 0)))[0] for name in names}
    shrank = [n for n in names if after[n] < before[n] and _fused_ops(n)]
    grew = [n for n in names if after[n] > before[n]]
    explained: set[str] = set()
    lines: list[str] = []
    # (a, b) Kernels outside fused code that appeared or ran more often: an aten fallback
    # or custom op, named as an op that left a fused kernel where one of them holds it
    # (one line per fused kernel: "add, relu left fused kernel ... (now aten::add, ...)").
    left: dict[str, list[str]] = {}
    for name in grew:
        if kind[name] == "generated":
            continue
        op = name.partition("::")[2]
        fused = next((f for f in shrank if op and f"_{op}_" in str(_fused_ops(f))), None)
        if fused is not None:
            left.setdefault(fused, []).append(name)
        elif before[name] == 0:
            label = {"aten": "aten kernel", "custom": "custom op"}.get(kind[name], "kernel")
            lines.append(f"{label} appeared: {name} (x{after[name]})")
        else:
            continue
        explained.add(name)
    lines[:0] = [f"{', '.join(n.partition('::')[2] for n in ops)} left fused kernel {fused} "
                 f"(now {', '.join(ops)})" for fused, ops in left.items()]
    explained.update(left)
    # (c) A fused kernel replaced by several that together hold its ops.
    for name in shrank:
        if name in explained:
            continue
        ops = _op_words(name)
        parts = [n for n in grew if n not in explained and _fused_ops(n)
                 and _op_words(n) <= ops]
        if len(parts) > 1 and set().union(*map(_op_words, parts)) == ops:
            lines.append(f"kernel split: {name} -> {' + '.join(parts)}")
            explained.update((name, *parts))
    # (d) Everything else, by name.
    rest = [n for n in names if n not in explained and before[n] != after[n]]
    lines += [f"kernel appeared: {n} (x{after[n]})" for n in rest if before[n] == 0]
    lines += [f"kernel vanished: {n} (x{before[n]})" for n in rest if after[n] == 0]
    lines += [f"kernel {n}: x{before[n]} -> x{after[n]}" for n in rest
              if before[n] and after[n]]
    if len(lines) > MAX_KERNEL_LINES:
        more = len(lines) - (MAX_KERNEL_LINES - 1)
        lines = lines[:MAX_KERNEL_LINES - 1] + [
            f"... and {more} more kernel changes (see report)"]
    return lines


def _graph_break_hints(baseline: Measurement, current: Measurement) -> list[str]:
    seen = {(g.short_reason, g.location) for g in baseline.compiled.graph_break_details}
    hints: list[str] = []
    for g in current.compiled.graph_break_details:
        hint = f"new graph break at {g.location}: {g.short_reason}"
        if (g.short_reason, g.location) not in seen and hint not in hints:
            hints.append(hint)
    return hints


def _recompile_hints(baseline: Measurement, current: Measurement) -> list[str]:
    """Guard failures that are new (or more frequent) since the baseline, with the line:
    ``recompiled at model.py:12: tensor 'x' size mismatch at index 0. expected 8, actual 16``.
    They are matched by reason and file: an edit above the model moves its line."""
    def counts(m: Measurement) -> Counter[tuple[str, str]]:
        total: Counter[tuple[str, str]] = Counter()
        for r in m.compiled.recompile_details:
            total[(r.reason, r.location.rpartition(":")[0])] += r.count
        return total

    base, cur = counts(baseline), counts(current)
    lines = []
    for r in current.compiled.recompile_details:
        key = (r.reason, r.location.rpartition(":")[0])
        if cur[key] <= base[key]:
            continue
        where = f" at {r.location}" if r.location else ""
        times = f", {cur[key]} times" if cur[key] != 1 else ""
        if base[key]:
            times += f" (baseline {base[key]})"
        lines.append(f"recompiled{where}: {r.reason}{times}")
        cur[key] = base[key]  # said once
    return _bounded(lines, "recompile reasons")


def _memory_hints(baseline: Measurement, current: Measurement) -> list[str]:
    """Allocations alive at the peak that grew or appeared, largest growth first:
    ``+4.00 MiB: [1024, 1024] float32 from aten::mm at model.py:20``. They are matched by op
    and shape (by op and line where the shape is unknown): an edit above the model shifts
    every line of it, and its tensors are still the same tensors."""
    def key(allocation: Allocation) -> tuple[str, str]:
        return (allocation.op, allocation.shape or allocation.location)

    base: Counter[tuple[str, str]] = Counter()
    for allocation in baseline.compiled.peak_allocations:
        base[key(allocation)] += allocation.bytes
    cur: Counter[tuple[str, str]] = Counter()
    shapes: dict[tuple[str, str], str] = {}
    sites: dict[tuple[str, str], list[str]] = {}
    for allocation in current.compiled.peak_allocations:
        cur[key(allocation)] += allocation.bytes
        shapes[key(allocation)] = allocation.shape
        at = sites.setdefault(key(allocation), [])
        if allocation.location and allocation.location not in at:
            at.append(allocation.location)
    grown = sorted(((size - base[k], k) for k, size in cur.items() if size > base[k]),
                   key=lambda item: (-item[0], item[1]))
    lines = []
    for growth, k in grown[:MAX_LINES]:
        what = f"{shapes[k]} from {k[0]}" if shapes[k] else f"from {k[0]}"
        where = f" at {', '.join(sites[k])}" if sites[k] else ""
        lines.append(f"+{_human_bytes(growth)}: {what}{where}")
    return lines


def _bounded(lines: list[str], what: str) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return lines[:MAX_LINES - 1] + [f"... and {len(lines) - MAX_LINES + 1} more {what}"]


def _human_bytes(size: int) -> str:
    """``4194304`` -> ``4.00 MiB``, as the reports write bytes (``reporting._format``, which
    this module cannot import: the reporting package imports the comparison)."""
    value, unit = float(size), 0
    while value >= 1024 and unit < len(_BYTE_UNITS) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{size} B"
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {_BYTE_UNITS[unit]}"
