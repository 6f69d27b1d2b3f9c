"""The one codec of perfguard's records: pydantic writes them, pydantic reads them. No torch.

Writing is pydantic's serializer over the dataclass annotations that ``schema.py`` validates
with, so a field added to a record is written and read with no code here. What results.json
carries beyond a record's own fields is added here and nowhere else (readers ignore it):

* a measurement: ``schema``, ``key``, ``environment_key``, ``derived`` (the catalogue's
  ratios of the two modes, and each mode's arithmetic intensity) and each timing's
  ``median``, ``iqr`` and ``noisy``; fields added after record schema 1 are left out while
  empty, so a record without them reads exactly as before;
* a verdict: ``fails``, and each change's ``relative``.

A baseline entry is :meth:`~.record.Measurement.for_baseline` dumped as it is (``baseline.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from . import schema
from .compare import Verdict
from .metrics import CATALOGUE, MODES
from .record import RECORD_SCHEMA, Measurement

#: Fields written only when they hold something (added after record schema 1).
_OPTIONAL_FIELDS: tuple[tuple[str, ...], ...] = (
    ("shapes",),
    ("numerics", "skipped"),
    ("eager", "bytes_breakdown"),
    ("compiled", "bytes_breakdown"),
    ("environment", "compile_options"),
    ("environment", "cpu_isa"),
    ("environment", "extra"),
    ("environment", "libraries"),
    ("environment", "card"),
)

#: results.json's ``derived`` block: the ratios of the two modes (``fusion_ratio``,
#: ``speedup``, ...) and each mode's arithmetic intensity, under ``<mode>_<field>``.
_DERIVED = (*(metric for metric in CATALOGUE if metric.ratio_of),
            *(metric for metric in CATALOGUE if metric.field == "arithmetic_intensity"))


def dump(record: Any) -> Any:
    """Any record of the schema (a dataclass: ``Rules``, ``TestError``, ``Environment``...)
    as JSON values (dicts, lists, strings, numbers, booleans, None)."""
    cls: Any = type(record)
    return schema.adapter(cls).dump_python(record, mode="json")


def dump_measurement(measurement: Measurement) -> dict[str, Any]:
    """A measurement as results.json and worker messages hold it, derived values included."""
    data: dict[str, Any] = dump(measurement)
    for *parents, last in _OPTIONAL_FIELDS:
        holder = data
        for name in parents:
            holder = holder[name]
        if holder.get(last) in ([], {}, ""):
            del holder[last]
    data["schema"] = RECORD_SCHEMA
    data["key"] = measurement.key
    data["environment_key"] = measurement.environment.key()
    data["derived"] = {metric.name.replace(".", "_"): metric.read(measurement)
                       for metric in _DERIVED}
    for mode in MODES:
        timing = getattr(measurement, mode).time
        if timing is not None:
            data[mode]["time"].update(median=timing.median, iqr=timing.iqr, noisy=timing.noisy)
    return data


def dump_verdict(verdict: Verdict) -> dict[str, Any]:
    """A verdict as results.json holds it: with whether it fails and each change's relative
    size, so a consumer need not re-derive them."""
    data: dict[str, Any] = dump(verdict)
    data["fails"] = verdict.fails
    for change, written in zip(verdict.changes, data["changes"], strict=True):
        written["relative"] = change.relative
    return data


def load_measurement(data: Mapping[str, Any] | str | bytes) -> Measurement:
    """A measurement from its results.json form (JSON text, or that text parsed), validated
    as results.json is (derived values ignored). Raises ``pydantic.ValidationError``."""
    text = data if isinstance(data, (str, bytes)) else json.dumps(data)
    return schema.read_measurement(text.encode() if isinstance(text, str) else text)


__all__ = ["dump", "dump_measurement", "dump_verdict", "load_measurement"]
