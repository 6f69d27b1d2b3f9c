"""Which numbers of a measurement go into the history, under which names. No torch, no I/O.

A metric is named ``<mode>.<field>``: ``compiled.kernel_launches``, ``eager.bytes_moved``,
``compiled.peak_memory``, ``compiled.time_median``. Every plain number of a
:class:`~pytest_perfguard.record.ModeRecord` is taken, read from the dataclass fields rather
than from a list written here, so a metric added to the record later is recorded without a
change to this module or to the database schema. Timings become
``time_median`` and ``time_iqr``; GPU utilisation ``bandwidth_utilisation`` and
``flop_utilisation``.

Deterministic metrics (counts, bytes, FLOPs, graph breaks, peak memory) form a step
function over commits, so the commit that changed one can be named exactly. Timings and
what is derived from them are not: :func:`is_timing` says which is which.
"""

from __future__ import annotations

import math
import re
from dataclasses import fields
from typing import TypeGuard

from ..record import Measurement, ModeRecord

MODES = ("eager", "compiled")

#: Field names (after the mode) measured with a clock or sampled from the device: they vary
#: run to run, so a history of them is a trend, not a step function.
_TIMING_FIELDS = frozenset({"time_median", "time_iqr", "bandwidth_utilisation",
                            "flop_utilisation"})


def measurement_metrics(measurement: Measurement) -> dict[str, int | float]:
    """Every metric of ``measurement`` that has a value, by name (``None`` is left out)."""
    metrics: dict[str, int | float] = {}
    for mode in MODES:
        record: ModeRecord = getattr(measurement, mode)
        for spec in fields(record):
            number = getattr(record, spec.name)
            if _is_number(number):
                metrics[f"{mode}.{spec.name}"] = number
        timing = record.time
        if timing is not None and timing.samples:
            metrics[f"{mode}.time_median"] = timing.median
            metrics[f"{mode}.time_iqr"] = timing.iqr
        utilisation = record.utilisation
        if utilisation is not None:
            for name in ("bandwidth_utilisation", "flop_utilisation"):
                value = getattr(utilisation, name)
                if _is_number(value):
                    metrics[f"{mode}.{name}"] = value
    return metrics


def _is_number(value: object) -> TypeGuard[int | float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


def field_of(metric: str) -> str:
    """``compiled.time_median`` -> ``time_median``."""
    return metric.split(".", 1)[1] if "." in metric else metric


def is_timing(metric: str) -> bool:
    """Whether ``metric`` is measured with a clock (or sampled), so not deterministic."""
    name = field_of(metric)
    return name in _TIMING_FIELDS or name.startswith("time") or name.endswith("_seconds")


#: Words after the mode in the exports' spellings that are not the field's own name.
_FIELD_ALIASES = {"median_time": "time_median", "time_median_s": "time_median"}


def canonical_metric(text: str) -> str:
    """The history's name (``compiled.graph_breaks``) for a metric as any perfguard output
    spells it, so that a name copied from one works in ``perfguard history``.

    Understood: the history's own ``compiled.kernel_launches``; the gate's
    ``compiled kernel_launches``, ``graph_breaks`` and ``compiled time_median_s`` (a name
    without a mode is the compiled one, as the gate means it); junit properties
    (``perfguard.compiled.bytes_moved``, ``perfguard.NAME.compiled.flops``);
    github-action-benchmark's ``compiled kernel launches`` and Bencher's
    ``compiled-kernel-launches``. Anything else comes back as ``compiled.<text>`` (or as it
    was, with a mode), for the caller to report as not recorded.
    """
    words = [word for word in re.split(r"[\s.\-]+", text.strip().lower()) if word]
    if words[:1] == ["perfguard"]:
        words = words[1:]
    modes = [i for i, word in enumerate(words) if word in MODES]
    mode = words[modes[-1]] if modes else "compiled"
    name = "_".join(words[modes[-1] + 1:] if modes else words)
    return f"{mode}.{_FIELD_ALIASES.get(name, name)}"
