"""Which numbers of a measurement go into the history, under which names. No torch, no I/O.

The names and readers are the metric catalogue's (:mod:`pytest_perfguard.metrics`): a metric
is named ``<mode>.<field>`` (``compiled.kernel_launches``, ``compiled.time_median``), and
every catalogue metric marked ``history`` that has a value is recorded.

Deterministic metrics (counts, bytes, FLOPs, graph breaks, peak memory) form a step
function over commits, so the commit that changed one can be named exactly. Timings and
what is derived from them are not: :func:`is_timing` says which is which.
"""

from __future__ import annotations

from ..metrics import BY_NAME, MODES, canonical, values
from ..record import Measurement

__all__ = ["MODES", "canonical_metric", "field_of", "is_timing", "measurement_metrics"]


def measurement_metrics(measurement: Measurement) -> dict[str, float]:
    """Every history metric of ``measurement`` that has a value, by name."""
    return values(measurement, history_only=True)


def field_of(metric: str) -> str:
    """``compiled.time_median`` -> ``time_median``."""
    return metric.split(".", 1)[1] if "." in metric else metric


def is_timing(metric: str) -> bool:
    """Whether ``metric`` is measured with a clock (or sampled), so not deterministic. A name
    the catalogue lacks (a database written by a newer perfguard) is judged by its name."""
    known = BY_NAME.get(metric)
    if known is not None:
        return not known.deterministic
    name = field_of(metric)
    return name.startswith("time") or name.endswith(("_seconds", "utilisation"))


#: Any spelling perfguard prints -> the history's name: see :func:`..metrics.canonical`.
canonical_metric = canonical
