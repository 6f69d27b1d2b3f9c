"""Profiler events as one plain table: parse once, analyse many (HTA's pattern).

:func:`rows_from_profiler` is the only place that reads torch profiler ``FunctionEvent``
fields (``name``, ``device_type``, ``cpu_parent``, ``time_range``, ``input_shapes``,
``input_type``; checked on torch 2.11-2.13). The kernel counters (whose kernels the compiled
byte count is matched against), the saved traces (``--perfguard-traces``) and the GPU replay
tests read :class:`EventRow` rows, so a recorded trace (``tests/data/h100_gpu_traces.json``,
the same row format as JSON) replays through exactly the code a live run uses. Peak memory
reads the profiler's allocation events instead (``private.profiler.memory_trace``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EventRow:
    """One profiler event."""

    name: str
    #: The profiler's device type as text: ``DeviceType.CPU`` for host events (operators,
    #: ranges), ``DeviceType.CUDA`` for device activity (kernels, memcpy, memset).
    device_type: str
    #: Index of the enclosing host event in the same table, or None for a root.
    parent: int | None
    start_us: float
    dur_us: float
    input_shapes: list[Any] = field(default_factory=list)
    input_types: list[Any] = field(default_factory=list)
    #: A range annotation (``record_function``) the profiler mirrors on the GPU timeline.
    is_user_annotation: bool = False

    @property
    def on_device(self) -> bool:
        """Device activity (a kernel, memcpy or memset), not a host event."""
        return "CPU" not in self.device_type


def rows_from_profiler(events: Iterable[Any]) -> list[EventRow]:
    """The profiler's ``FunctionEvent`` list (``prof.events()``) as rows, in its order."""
    events = list(events)
    index = {id(event): i for i, event in enumerate(events)}
    rows = []
    for event in events:
        parent = getattr(event, "cpu_parent", None)
        time_range = getattr(event, "time_range", None)
        rows.append(EventRow(
            name=str(event.name),
            device_type=str(getattr(event, "device_type", "DeviceType.CPU")),
            parent=index.get(id(parent)) if parent is not None else None,
            start_us=float(time_range.start) if time_range is not None else 0.0,
            dur_us=float(time_range.elapsed_us()) if time_range is not None else 0.0,
            input_shapes=list(getattr(event, "input_shapes", None) or []),
            input_types=list(getattr(event, "input_type", None) or []),
            is_user_annotation=bool(getattr(event, "is_user_annotation", False)),
        ))
    return rows


def rows_from_json(data: Iterable[Mapping[str, Any]]) -> list[EventRow]:
    """Rows recorded as JSON (``dataclasses.asdict`` of each; keys this version does not read, such
    as the ``cpu_memory_bytes`` of older recordings, are ignored)."""
    return [
        EventRow(
            name=str(row["name"]),
            device_type=str(row["device_type"]),
            parent=None if row.get("parent") is None else int(row["parent"]),
            start_us=float(row.get("start_us", 0.0)),
            dur_us=float(row.get("dur_us", 0.0)),
            input_shapes=list(row.get("input_shapes") or []),
            input_types=list(row.get("input_types") or []),
            is_user_annotation=bool(row.get("is_user_annotation", False)),
        )
        for row in data
    ]


def children(rows: list[EventRow]) -> tuple[list[int], dict[int, list[int]]]:
    """The host event tree: (root indices, parent index -> child indices), device rows out."""
    roots: list[int] = []
    kids: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        if row.on_device:
            continue
        if row.parent is not None and not rows[row.parent].on_device:
            kids.setdefault(row.parent, []).append(i)
        else:
            roots.append(i)
    return roots, kids
