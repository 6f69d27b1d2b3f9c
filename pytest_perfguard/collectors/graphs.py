"""Graphs, graph breaks and recompiles of a compiled model, from what the compiles recorded
(:class:`private.dynamo.CompileRecorder`): the graphs dynamo handed to the backend, the
breaks it logged, and its compilation metrics.
"""

from __future__ import annotations

from ..record import GraphBreak, ModeRecord
from .private import dynamo


def record_graphs(record: ModeRecord, recorder: dynamo.CompileRecorder) -> None:
    """Graphs and graph breaks of the first call, counted as ``torch._dynamo.explain``
    counts them: ``graph_breaks`` is the graphs compiled minus one (every occurrence: a
    break in a repeated layer, and a frame dynamo runs eagerly between graphs, count too;
    dynamo's restarts and repeated hand-overs of one compile id are one graph, see
    :func:`private.backends.recording_backend`).

    ``graph_break_details`` lists each site once, at the user's ``file:line``, with how
    many graphs ended there (explain's ``break_reasons`` at that line). Sites where dynamo
    broke but no graph ended (a call to a module under ``torch.compiler.disable`` in a
    loop, where dynamo runs the whole frame eagerly) come from dynamo's graph-break log,
    with the times dynamo broke there. A call to something under ``torch.compiler.disable``
    is named in ``disabled``.

    A graph that ended with a bare reason (``step_unsupported``: the break happened in a
    function dynamo could not resume in, e.g. transformers' ``logger.warning_once`` inside
    ``loss_function``) gets the reasons dynamo counted during the first call that no other
    break states, each once."""
    first = [g for g in recorder.graphs if not g.after_first_call]
    record.graphs = len(first)
    record.graph_breaks = max(len(first) - 1, 0)
    stated = {_first_line(g.reason) for g in first if not dynamo.is_bare_reason(g.reason)}
    unstated = [r for r in recorder.first_call_break_reasons if _first_line(r) not in stated]
    sites: dict[str, GraphBreak] = {}
    for graph in first:
        if not graph.graph_break:
            continue
        location, function = "unknown", ""
        if graph.user_frame is not None:
            filename, lineno, function = graph.user_frame
            location = dynamo.user_location(filename, lineno)
        reason = graph.reason
        if dynamo.is_bare_reason(reason) and unstated:
            reason = "\n".join(unstated)
        _add_site(sites, location, function, reason, 1)
    _add_logged_sites(sites, recorder, {g.compile_id for g in first if g.graph_break})
    record.graph_break_details = list(sites.values())


def _add_logged_sites(sites: dict[str, GraphBreak], recorder: dynamo.CompileRecorder,
                      ended: set[str]) -> None:
    """Sites from dynamo's graph-break log of the first call, each with the compiles that
    broke there. The log also holds the breaks of the graphs above (their compile ids
    ``ended``, or a frame further in that dynamo ran eagerly, like ``warning_once``): a
    break adds a site only if it calls something disabled or its reason is not listed."""
    known_reasons = {_first_line(site.reason) for site in sites.values()}
    logged: dict[str, set[str]] = {}
    for seen in recorder.break_log:
        location = dynamo.user_location(seen.filename, seen.lineno)
        if seen.after_first_call or seen.compile_id in ended:
            continue
        if location not in logged:
            calls_disabled = bool(dynamo.clean_break_reason(seen.reason)[1])
            if location in sites or (_first_line(seen.reason) in known_reasons
                                     and not calls_disabled):
                continue
            _add_site(sites, location, seen.function, seen.reason, 0)
        logged.setdefault(location, set()).add(seen.compile_id)
    for location, compile_ids in logged.items():
        sites[location].count = len(compile_ids)


def _add_site(sites: dict[str, GraphBreak], location: str, function: str, reason: str,
              count: int) -> None:
    if location in sites:
        sites[location].count += count
        return
    reason, disabled = dynamo.clean_break_reason(reason)
    sites[location] = GraphBreak(reason=reason, location=location, function=function,
                                 count=count, disabled=disabled)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def record_recompiles(record: ModeRecord, recorder: dynamo.CompileRecorder) -> None:
    """Graphs compiled after the first call, and why (each distinct reason and place once)."""
    record.recompiles = sum(1 for g in recorder.graphs if g.after_first_call)
    record.recompile_details = dynamo.recompile_details(recorder)
