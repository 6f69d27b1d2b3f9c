"""The nearest recorded environment for a measurement that has none of its own. No torch.

After an upgrade (torch, triton, a project's own keyed facts) no baseline entry shares the
new environment's key. The same test recorded in the nearest environment of the same device
kind is then what the measurement is compared with (:func:`~pytest_perfguard.compare.judge`),
with a note that says which environment that was and what differs.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .record import Environment, Measurement

if TYPE_CHECKING:
    from .baseline import Baseline


@dataclass(frozen=True)
class Nearest:
    """The entry a measurement is compared with, and where it was recorded."""

    key: str
    environment: Environment
    entry: Measurement
    #: What differs, baseline -> current: ``torch 2.12.0 -> 2.13.0``.
    differences: list[str]

    def note(self) -> str:
        """``compared with <label> [key]: torch 2.12.0 -> 2.13.0``."""
        return (f"no baseline in this environment; compared with {self.environment.label()} "
                f"[{self.key}]: " + "; ".join(self.differences or ["no keyed difference"]))


def differences(baseline: Environment, current: Environment) -> list[str]:
    """Each keyed field (and each key of a keyed dict) that differs, then the libraries
    (not keyed, but what an upgrade usually is): ``name baseline -> current``."""
    base, cur = asdict(baseline), asdict(current)
    keyed = [name for name in base if name not in Environment.NOT_KEYED]
    return [*(d for name in keyed for d in _field_differences(name, base[name], cur[name])),
            *_field_differences("", base["libraries"], cur["libraries"])]


def _field_differences(name: str, base: Any, cur: Any) -> list[str]:
    if isinstance(base, dict) and isinstance(cur, dict):
        prefix = f"{name}." if name else ""
        return [f"{prefix}{k} {base.get(k, '(unset)')} -> {cur.get(k, '(unset)')}"
                for k in sorted(base.keys() | cur.keys()) if base.get(k) != cur.get(k)]
    return [] if base == cur else [f"{name} {base} -> {cur}"]


def _version(text: str) -> tuple[int, ...]:
    """``2.13.0+cu128`` -> ``(2, 13, 0)``: the leading numbers of a version."""
    numbers = re.match(r"[\d.]*", text)
    return tuple(int(p) for p in (numbers.group(0) if numbers else "").split(".") if p)


def _version_distance(a: str, b: str) -> tuple[int, ...]:
    va, vb = _version(a), _version(b)
    width = max(len(va), len(vb))
    va, vb = va + (0,) * (width - len(va)), vb + (0,) * (width - len(vb))
    return tuple(abs(x - y) for x, y in zip(va, vb, strict=True))


def nearest(baseline: Baseline, current: Measurement) -> Nearest | None:
    """The same test in the nearest other environment of the same device kind, or None.

    Nearest: on a GPU the same card model first; then the fewest differences in keyed
    fields; then the closest torch version; then the environment key (deterministic).
    """
    env = current.environment
    own = env.key()
    ranked = []
    for key, block in baseline.environments.items():
        other = block.environment
        if key == own or other.device != env.device or current.identity not in block.entries:
            continue
        diffs = [d for name in asdict(other) if name not in Environment.NOT_KEYED
                 for d in _field_differences(name, getattr(other, name), getattr(env, name))]
        rank = (other.device_name != env.device_name, len(diffs),
                _version_distance(other.torch, env.torch), key)
        ranked.append((rank, key, block))
    if not ranked:
        return None
    _, key, block = min(ranked, key=lambda item: item[0])
    return Nearest(key, block.environment, block.entries[current.identity],
                   differences(block.environment, env))


__all__ = ["Nearest", "differences", "nearest"]
