"""The comparison: a pure function from (baseline, current, rules) to a verdict.

No torch, no I/O. The plugin and ``perfguard compare`` both call :func:`compare`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .record import Measurement

if TYPE_CHECKING:
    from .baseline import Baseline

Status = Literal["regressed", "improved", "new", "unchanged", "other-environment"]

#: Order in which reports list verdicts: regressions first.
STATUS_ORDER: dict[str, int] = {
    "regressed": 0,
    "improved": 1,
    "new": 2,
    "other-environment": 3,
    "unchanged": 4,
}


@dataclass
class Rules:
    """Tolerances and switches for one comparison (defaults from the issue)."""

    #: Allowed relative growth of compiled bytes moved (0.01 = 1%).
    bytes_tolerance: float = 0.01
    #: Allowed relative drop of utilisation metrics (0.10 = 10%).
    utilisation_tolerance: float = 0.10
    #: Gate on wall time (off by default: shared runners are noisy).
    time: bool = False
    #: With ``time``: the minimum relative slowdown of the median that counts.
    time_min_effect: float = 0.10
    #: With ``time``: significance level of the Mann-Whitney U test on the samples.
    time_alpha: float = 0.01
    #: Treat improvements beyond tolerance that were not accepted as failures.
    strict: bool = False
    #: Gate on NVML's sampled GPU utilisation too. Off by default: on an H100 it moved by
    #: up to 60% between identical runs of small models (NVML averages over up to 1 s).
    nvml: bool = False

    def updated(self, **overrides: Any) -> Rules:
        values = {**self.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
        unknown = set(values) - set(self.__dict__)
        if unknown:
            raise ValueError(f"unknown perfguard rule(s): {', '.join(sorted(unknown))}")
        return Rules(**values)


@dataclass
class Change:
    """One metric that moved."""

    metric: str
    baseline: float | None
    current: float | None
    #: "regressed" or "improved" (beyond tolerance), or "changed" (within tolerance).
    direction: str
    #: Likely causes: new graph breaks with file:line, kernels that appeared or vanished.
    hints: list[str] = field(default_factory=list)

    @property
    def relative(self) -> float | None:
        if self.baseline in (None, 0) or self.current is None:
            return None
        return (self.current - self.baseline) / self.baseline

    def describe(self) -> str:
        rel = self.relative
        change = f" ({rel:+.1%})" if rel is not None else ""
        return (
            f"{self.metric}: baseline {_fmt(self.baseline)}, current {_fmt(self.current)}"
            f"{change}"
        )


@dataclass
class Verdict:
    """The outcome of comparing one measurement with its baseline."""

    key: str
    status: Status
    changes: list[Change] = field(default_factory=list)
    #: For "other-environment": the labels of environments the baseline does hold.
    note: str = ""

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.direction == "regressed"]

    @property
    def improvements(self) -> list[Change]:
        return [c for c in self.changes if c.direction == "improved"]

    def fails(self, rules: Rules) -> bool:
        return self.status == "regressed" or (rules.strict and self.status == "improved")

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status,
            "note": self.note,
            "changes": [
                {
                    "metric": c.metric,
                    "baseline": c.baseline,
                    "current": c.current,
                    "direction": c.direction,
                    "relative": c.relative,
                    "hints": c.hints,
                }
                for c in self.changes
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(
            key=data["key"],
            status=data["status"],
            note=data.get("note", ""),
            changes=[
                Change(
                    metric=c["metric"],
                    baseline=c["baseline"],
                    current=c["current"],
                    direction=c["direction"],
                    hints=list(c.get("hints", [])),
                )
                for c in data.get("changes", [])
            ],
        )


def _fmt(value: float | None) -> str:
    if value is None:
        return "unavailable"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    return f"{int(value):,}"


def new_verdict(current: Measurement) -> Verdict:
    return Verdict(key=current.key, status="new")


def other_environment_verdict(current: Measurement, labels: list[str]) -> Verdict:
    note = "baseline holds only other environments: " + "; ".join(labels)
    return Verdict(key=current.key, status="other-environment", note=note)


def judge(baseline: Baseline | None, current: Measurement, rules: Rules) -> Verdict:
    """The verdict for one measurement against a whole baseline file: compared with its
    entry for this environment, else "other-environment" or "new" (never compared)."""
    previous = baseline.lookup(current) if baseline is not None else None
    if previous is not None:
        return compare(previous, current, rules)
    others = baseline.other_environment_labels(current) if baseline is not None else []
    return other_environment_verdict(current, others) if others else new_verdict(current)


def unique_hints(changes: Iterable[Change]) -> list[tuple[Change, list[str]]]:
    """Each change with the hints not already given for an earlier change of the same test.

    :func:`compare` attaches the same likely causes (a new graph break, a kernel that
    appeared) to every metric they moved; a message says each cause once, under the first.
    """
    seen: set[str] = set()
    paired = []
    for change in changes:
        fresh = [hint for hint in change.hints if hint not in seen]
        seen.update(fresh)
        paired.append((change, fresh))
    return paired


def compare(baseline: Measurement, current: Measurement, rules: Rules) -> Verdict:
    """Compare two measurements of the same test in the same environment."""
    if baseline.environment.key() != current.environment.key():
        raise ValueError(
            f"refusing to compare {current.key!r} across environments: baseline "
            f"{baseline.environment.label()} vs current {current.environment.label()}"
        )
    changes: list[Change] = []
    base_c, cur_c = baseline.compiled, current.compiled

    kernel_hints = _kernel_hints(baseline, current)
    break_hints = _graph_break_hints(baseline, current)

    # Fusion: deterministic counts are compared exactly.
    changes += _exact("compiled kernel_launches", base_c.kernel_launches, cur_c.kernel_launches,
                      kernel_hints + break_hints)
    changes += _exact("graph_breaks", base_c.graph_breaks, cur_c.graph_breaks, break_hints)
    changes += _exact("recompiles", base_c.recompiles, cur_c.recompiles, [])
    changes += _relative("compiled bytes_moved", base_c.bytes_moved, cur_c.bytes_moved,
                         rules.bytes_tolerance, higher_is_worse=True,
                         hints=kernel_hints + break_hints)
    changes += _relative("fusion_ratio", baseline.fusion_ratio, current.fusion_ratio,
                         1e-9, higher_is_worse=False, hints=kernel_hints + break_hints)

    # Utilisation (GPU): a drop beyond tolerance is a regression.
    for mode in ("eager", "compiled"):
        base_u = getattr(baseline, mode).utilisation
        cur_u = getattr(current, mode).utilisation
        if base_u is not None and cur_u is not None:
            changes += _relative(f"{mode} bandwidth_utilisation", base_u.bandwidth_utilisation,
                                 cur_u.bandwidth_utilisation, rules.utilisation_tolerance,
                                 higher_is_worse=False, hints=[])
            changes += _relative(f"{mode} flop_utilisation", base_u.flop_utilisation,
                                 cur_u.flop_utilisation, rules.utilisation_tolerance,
                                 higher_is_worse=False, hints=[])
        base_n = getattr(baseline, mode).nvml
        cur_n = getattr(current, mode).nvml
        if rules.nvml and base_n is not None and cur_n is not None:
            changes += _relative(f"{mode} nvml_gpu_util_percent", base_n.gpu_util_percent,
                                 cur_n.gpu_util_percent, rules.utilisation_tolerance,
                                 higher_is_worse=False, hints=[])

    if rules.time:
        for mode in ("eager", "compiled"):
            changes += _time_change(mode, baseline, current, rules)

    if any(c.direction == "regressed" for c in changes):
        status: Status = "regressed"
    elif any(c.direction == "improved" for c in changes):
        status = "improved"
    else:
        status = "unchanged"
    return Verdict(key=current.key, status=status, changes=changes)


def _exact(metric: str, base: int | None, cur: int | None, hints: list[str]) -> list[Change]:
    if base is None or cur is None or base == cur:
        return []
    direction = "regressed" if cur > base else "improved"
    return [Change(metric, base, cur, direction, hints if direction == "regressed" else [])]


def _relative(
    metric: str,
    base: float | None,
    cur: float | None,
    tolerance: float,
    *,
    higher_is_worse: bool,
    hints: list[str],
) -> list[Change]:
    if base is None or cur is None or base == cur:
        return []
    if base == 0:
        rel = math.inf if cur > 0 else -math.inf
    else:
        rel = (cur - base) / abs(base)
    worse = rel > tolerance if higher_is_worse else rel < -tolerance
    better = rel < -tolerance if higher_is_worse else rel > tolerance
    if worse:
        return [Change(metric, base, cur, "regressed", hints)]
    if better:
        return [Change(metric, base, cur, "improved", [])]
    return [Change(metric, base, cur, "changed", [])]


def _time_change(mode: str, baseline: Measurement, current: Measurement, rules: Rules) -> list[Change]:
    base_t = getattr(baseline, mode).time
    cur_t = getattr(current, mode).time
    if base_t is None or cur_t is None or not base_t.samples or not cur_t.samples:
        return []
    rel = (cur_t.median - base_t.median) / base_t.median if base_t.median else 0.0
    p_value = mann_whitney_p(base_t.samples, cur_t.samples)
    metric = f"{mode} time_median_s"
    significant = p_value < rules.time_alpha
    if significant and rel > rules.time_min_effect:
        return [Change(metric, base_t.median, cur_t.median, "regressed",
                       [f"Mann-Whitney p={p_value:.2g} over {len(base_t.samples)}+"
                        f"{len(cur_t.samples)} samples"])]
    if significant and rel < -rules.time_min_effect:
        return [Change(metric, base_t.median, cur_t.median, "improved", [])]
    return []


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided Mann-Whitney U test p-value (normal approximation with tie correction)."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return 1.0
    combined = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = [0.0] * len(combined)
    tie_term = 0.0
    i = 0
    while i < len(combined):
        j = i
        while j + 1 < len(combined) and combined[j + 1][0] == combined[i][0]:
            j += 1
        rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = rank
        t = j - i + 1
        tie_term += t**3 - t
        i = j + 1
    rank_sum_a = sum(r for r, (_, group) in zip(ranks, combined, strict=True) if group == 0)
    u = rank_sum_a - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return 1.0
    z = (abs(u - mean) - 0.5) / math.sqrt(var)
    return math.erfc(max(z, 0.0) / math.sqrt(2))


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
    return [
        f"new graph break at {g.location}: {g.short_reason}"
        for g in current.compiled.graph_break_details
        if (g.short_reason, g.location) not in seen
    ]
