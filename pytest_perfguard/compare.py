"""The comparison: pure functions from (baseline, current, rules) to a verdict. No torch, no I/O.

:func:`judge` is the one place a verdict is made; the plugin and ``perfguard compare`` /
``perfguard update`` all call it, and the verdict carries the :class:`Rules` that made it,
so a later reader of results.json reaches the same verdict. Each gated metric of the
catalogue (:mod:`.metrics`: name, reader, rule) becomes one :class:`Check` in :data:`CHECKS`;
presentation (how a change reads) lives in ``reporting``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .hints import likely_causes
from .metrics import GATED, Metric
from .nearest import nearest
from .record import Measurement
from .settings import Rules

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
class Change:
    """One metric that moved."""

    metric: str
    #: ``int | float``: a count read back from results.json stays an int (the schema would
    #: turn a JSON 4 into 4.0 for a plain ``float``).
    baseline: int | float | None
    current: int | float | None
    #: "regressed" or "improved" (beyond tolerance), or "changed" (within tolerance).
    direction: str
    #: Likely causes: new graph breaks with file:line, kernels that appeared or vanished.
    hints: list[str] = field(default_factory=list)

    @property
    def relative(self) -> float | None:
        if self.baseline in (None, 0) or self.current is None:
            return None
        return (self.current - self.baseline) / self.baseline


@dataclass
class Verdict:
    """The outcome of judging one measurement, with the rules that decided it."""

    key: str
    status: Status
    changes: list[Change] = field(default_factory=list)
    #: For a measurement without a baseline entry in its own environment: the environment
    #: it was compared with and what differs, or the labels of those the baseline holds.
    note: str = ""
    rules: Rules = field(default_factory=Rules)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.direction == "regressed"]

    @property
    def improvements(self) -> list[Change]:
        return [c for c in self.changes if c.direction == "improved"]

    @property
    def missing_baseline(self) -> bool:
        """No entry to compare with, and the rules require one."""
        return self.rules.require_baseline and self.status in ("new", "other-environment")

    @property
    def fails(self) -> bool:
        """Whether this verdict fails its test, by its own rules."""
        return (
            self.status == "regressed"
            or (self.rules.strict and self.status == "improved")
            or self.missing_baseline
        )


# ----------------------------------------------------------------------------------------
# Checks: one object per gated metric
# ----------------------------------------------------------------------------------------

#: Which likely causes a check's regression carries (see :mod:`.hints`): "fusion" (kernels
#: that changed, and new graph breaks), "breaks" (new graph breaks), "recompiles" (guard
#: failures), "memory" (allocations that grew at the peak), or none.
HintKind = Literal["fusion", "breaks", "recompiles", "memory", "none"]


@dataclass(frozen=True)
class Check:
    """One metric compared between baseline and current measurement."""

    metric: str
    read: Callable[[Measurement], float | None]
    hints: HintKind = "none"
    #: Whether the rules switch this check on (time and NVML checks are opt-in).
    enabled: Callable[[Rules], bool] = lambda rules: True

    def direction(self, base: float, cur: float, rules: Rules) -> str:
        raise NotImplementedError

    def evaluate(self, baseline: Measurement, current: Measurement, rules: Rules,
                 hints: Mapping[str, list[str]]) -> Change | None:
        base, cur = self.read(baseline), self.read(current)
        if base is None or cur is None or base == cur or not self.enabled(rules):
            return None
        direction = self.direction(base, cur, rules)
        attached = list(hints.get(self.hints, [])) if direction == "regressed" else []
        return Change(self.metric, base, cur, direction, attached)


@dataclass(frozen=True)
class ExactCheck(Check):
    """A deterministic count: any increase is a regression, any decrease an improvement."""

    def direction(self, base: float, cur: float, rules: Rules) -> str:
        return "regressed" if cur > base else "improved"


@dataclass(frozen=True)
class RelativeCheck(Check):
    """A relative change beyond the tolerance the rules give."""

    tolerance: Callable[[Rules], float] = lambda rules: 0.0
    higher_is_worse: bool = True

    def direction(self, base: float, cur: float, rules: Rules) -> str:
        rel = (math.inf if cur > 0 else -math.inf) if base == 0 else (cur - base) / abs(base)
        tolerance = self.tolerance(rules)
        worse = rel > tolerance if self.higher_is_worse else rel < -tolerance
        better = rel < -tolerance if self.higher_is_worse else rel > tolerance
        return "regressed" if worse else "improved" if better else "changed"


@dataclass(frozen=True)
class TimeCheck(Check):
    """Median wall time: a slowdown beyond ``time_min_effect`` that a two-sided Mann-Whitney
    U test over the samples finds significant at ``time_alpha``."""

    mode: str = "compiled"

    def evaluate(self, baseline: Measurement, current: Measurement, rules: Rules,
                 hints: Mapping[str, list[str]]) -> Change | None:
        if not rules.time:
            return None
        base_t, cur_t = getattr(baseline, self.mode).time, getattr(current, self.mode).time
        if base_t is None or cur_t is None or not base_t.samples or not cur_t.samples:
            return None
        rel = (cur_t.median - base_t.median) / base_t.median if base_t.median else 0.0
        p_value = mann_whitney_p(base_t.samples, cur_t.samples)
        if p_value >= rules.time_alpha or abs(rel) <= rules.time_min_effect:
            return None
        if rel > 0:
            return Change(self.metric, base_t.median, cur_t.median, "regressed",
                          [f"Mann-Whitney p={p_value:.2g} over {len(base_t.samples)}+"
                           f"{len(cur_t.samples)} samples"])
        return Change(self.metric, base_t.median, cur_t.median, "improved", [])


#: The likely causes each gated field's regression carries (see :mod:`.hints`).
_HINTS: dict[str, HintKind] = {"kernel_launches": "fusion", "bytes_moved": "fusion",
                               "graph_breaks": "breaks", "recompiles": "recompiles",
                               "peak_memory": "memory"}


def _check(metric: Metric) -> Check:
    """The check of one gated metric of the catalogue, by the rule the catalogue names."""
    name, hints = metric.verdict_name, _HINTS.get(metric.field, "none")
    gate = metric.gate
    if gate == "exact":
        return ExactCheck(name, metric.read, hints)
    if gate == "time":
        return TimeCheck(name, metric.read, mode=metric.mode)
    if gate == "nvml":
        return RelativeCheck(name, metric.read, hints, enabled=lambda r: r.nvml,
                             tolerance=lambda r: r.utilisation_tolerance,
                             higher_is_worse=metric.better == "lower")
    tolerance_field = str(gate)
    return RelativeCheck(name, metric.read, hints,
                         tolerance=lambda r: float(getattr(r, tolerance_field)),
                         higher_is_worse=metric.better == "lower")


def _checks() -> tuple[Check, ...]:
    """The gated metrics of the catalogue (:data:`.metrics.GATED`). Verdicts follow what users
    run: the compiled program's metrics, graph breaks and recompiles. Eager metrics and the
    eager/compiled ratios (fusion_ratio, memory_ratio, speedup) are context in reports, never a
    verdict: an eager-only change (an upcast, a ``.clone()`` inductor removes) moves them
    while the compiled program is the same, and a 1e-9 relative wobble of a ratio is no
    regression."""
    return tuple(_check(metric) for metric in GATED)


#: Every gated metric, in the order a failure lists them.
CHECKS: tuple[Check, ...] = _checks()


# ----------------------------------------------------------------------------------------
# Verdicts
# ----------------------------------------------------------------------------------------


def judge(baseline: Baseline | None, current: Measurement, rules: Rules) -> Verdict:
    """The verdict for one measurement against a whole baseline file: compared with its
    entry for this environment; else with the same test in the nearest other environment of
    the same device kind (:func:`~pytest_perfguard.nearest.nearest`), "other-environment"
    with the changes and a note unless ``rules.across_environments`` lets it gate; else
    "other-environment" (another device kind only) or "new"."""
    previous = baseline.lookup(current) if baseline is not None else None
    if previous is not None:
        return compare(previous, current, rules)
    others = baseline.other_environment_labels(current) if baseline is not None else []
    if baseline is None or not others:
        return Verdict(key=current.key, status="new", rules=rules)
    closest = nearest(baseline, current)
    note = (closest.note() if closest is not None
            else "baseline holds only other environments: " + "; ".join(others))
    older = older_fingerprints(baseline, current)
    if older:
        note += (f" (recorded under fingerprint definition v{', v'.join(map(str, older))}; "
                 f"this perfguard uses v{current.environment.fingerprint}: re-record them "
                 "with --perfguard-update)")
    if closest is None:
        return Verdict(key=current.key, status="other-environment", note=note, rules=rules)
    status, changes = _changes(closest.entry, current, rules)
    if not rules.across_environments:
        status = "other-environment"  # report only: the changes are shown, never gated
    return Verdict(key=current.key, status=status, changes=changes, note=note, rules=rules)


def older_fingerprints(baseline: Baseline, current: Measurement) -> list[int]:
    """Fingerprint versions, older than the current one, of environments holding this test."""
    versions = {block.environment.fingerprint for block in baseline.environments.values()
                if block.environment.fingerprint < current.environment.fingerprint
                and current.identity in block.entries}
    return sorted(versions)


def compare(baseline: Measurement, current: Measurement, rules: Rules) -> Verdict:
    """Compare two measurements of the same test in the same environment."""
    if baseline.environment.key() != current.environment.key():
        raise ValueError(
            f"refusing to compare {current.key!r} across environments: baseline "
            f"{baseline.environment.label()} vs current {current.environment.label()}"
        )
    status, changes = _changes(baseline, current, rules)
    return Verdict(key=current.key, status=status, changes=changes, rules=rules)


def _changes(baseline: Measurement, current: Measurement,
             rules: Rules) -> tuple[Status, list[Change]]:
    """Every check's change, and the status they make."""
    hints = likely_causes(baseline, current)
    changes = [change for check in CHECKS
               if (change := check.evaluate(baseline, current, rules, hints)) is not None]
    if any(c.direction == "regressed" for c in changes):
        return "regressed", changes
    if any(c.direction == "improved" for c in changes):
        return "improved", changes
    return "unchanged", changes


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


__all__ = ["CHECKS", "Change", "Check", "Rules", "STATUS_ORDER", "Verdict", "compare", "judge",
           "mann_whitney_p", "unique_hints"]
