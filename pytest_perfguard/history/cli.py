"""``perfguard history``: record runs and ask which commit changed a number.

    perfguard history add RESULTS.json [...] --commit SHA [--branch B] [--dirty] [--db PATH]
    perfguard history show TEST [--metric M] [--name N] [--environment E] [--branch B] [-n N]
                           [--db PATH]
    perfguard history first-change TEST METRIC [--name N] [--environment E] [--branch B]
                                   [--db PATH]
    perfguard history report [--html FILE] [--markdown FILE] [--current RESULTS.json ...]
                             [--last N] [--summary-commits K] [--commit-url URL] [--db PATH]

METRIC: the history's ``compiled.graph_breaks``, or as the gate, a report, junit or an
export prints it (``graph_breaks``, ``compiled kernel_launches``): see
:func:`~pytest_perfguard.history.metrics.canonical_metric`.

Exit codes: 0 ok; 1 ``first-change`` found no change; 2 usage or file error (a
:class:`~pytest_perfguard.history.store.HistoryError` is a ``ValueError``, which
``perfguard``'s ``main`` reports as ``perfguard: error: ...`` with exit 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .._files import atomic_write
from ..reporting._format import printable
from ..reporting.merge import merge_results
from ..results import RunResults
from . import gitinfo
from .query import DEFAULT_METRIC, first_change, show
from .report import (
    DEFAULT_LAST,
    DEFAULT_SUMMARY_COMMITS,
    collect,
    commit_url_template,
    render_history_html,
    render_history_markdown,
)
from .store import DEFAULT_HISTORY, HistoryError, HistoryStore, RunInfo


def add_history_parser(subparsers: Any) -> None:
    """Register ``perfguard history ...`` on the ``perfguard`` parser's subparsers."""
    history = subparsers.add_parser(
        "history", help="record runs per commit; show a metric's history; find the commit "
        "that changed it; trend reports",
        description="The history of every metric across commits, in an SQLite file "
        f"(default {DEFAULT_HISTORY}).")
    sub = history.add_subparsers(dest="history_command", required=True, metavar="COMMAND")

    def db_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--db", type=Path, default=DEFAULT_HISTORY,
                            help=f"history database (default: {DEFAULT_HISTORY})")

    def filters(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--environment", metavar="E",
                            help="environment key prefix or part of its label (default: the "
                            "one most recently recorded for this test)")
        parser.add_argument("--branch", help="only runs recorded on this branch")
        parser.add_argument("--name", help="the measurement's name (\"default\" when "
                            "unnamed); TEST is then its node id alone: tells "
                            "t.py::test_c[x] named y[z] from t.py::test_c[x]::y[z]")

    add = sub.add_parser("add", help="append a finished run (results.json) at a commit")
    add.add_argument("results", type=Path, nargs="+",
                     help="results.json files of one run (several: a CI matrix, merged)")
    add.add_argument("--commit", required=True, type=gitinfo.commit_argument,
                     help="the commit the run measured (a hex object name or a ref name)")
    add.add_argument("--branch", default="", help="the branch it was on")
    add.add_argument("--dirty", action="store_true",
                     help="the tree had uncommitted changes")
    db_option(add)
    add.set_defaults(func=_cmd_add)

    show_parser = sub.add_parser("show", help="a metric's value per commit, newest first")
    show_parser.add_argument("test", help="test key: node id, or node id::name")
    show_parser.add_argument("--metric", default=DEFAULT_METRIC,
                             help=f"e.g. compiled.graph_breaks, or as the gate prints it: "
                             f"graph_breaks (default {DEFAULT_METRIC})")
    show_parser.add_argument("-n", "--limit", type=_count, default=0,
                             help="show the newest N commits only (default: all)")
    filters(show_parser)
    db_option(show_parser)
    show_parser.set_defaults(func=_cmd_show)

    first = sub.add_parser("first-change",
                           help="the commit at which a deterministic metric took its "
                           "current value (exit 1: it never changed)")
    first.add_argument("test", help="test key: node id, or node id::name")
    first.add_argument("metric", help="e.g. compiled.kernel_launches, or as the gate prints "
                       "it: 'compiled kernel_launches', graph_breaks")
    first.add_argument("--include-dirty", action="store_true",
                       help="count runs of uncommitted trees too")
    filters(first)
    db_option(first)
    first.set_defaults(func=_cmd_first_change)

    report = sub.add_parser("report", help="trend charts (HTML) and a summary table (markdown)")
    report.add_argument("--html", type=Path, help="write the trend page here")
    report.add_argument("--markdown", type=Path, help="write the summary table here")
    report.add_argument("--current", type=Path, nargs="+", default=[],
                        help="results.json of a run not recorded (a pull request), shown "
                        "beside the history")
    report.add_argument("--last", type=_count, default=DEFAULT_LAST,
                        help=f"runs to show (default {DEFAULT_LAST}; 0: all)")
    report.add_argument("--summary-commits", type=_count, default=DEFAULT_SUMMARY_COMMITS,
                        help="recorded runs beside the current one in the markdown "
                        f"(default {DEFAULT_SUMMARY_COMMITS})")
    report.add_argument("--commit-url", metavar="URL",
                        help="link template with {commit}, e.g. "
                        "https://github.com/OWNER/REPO/commit/{commit} (default: from "
                        "GITHUB_SERVER_URL and GITHUB_REPOSITORY when set)")
    report.add_argument("--branch", help="only runs recorded on this branch")
    db_option(report)
    report.set_defaults(func=_cmd_report)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


def _cmd_add(args: argparse.Namespace) -> int:
    runs = [RunResults.load(path) for path in args.results]
    results = merge_results(runs) if len(runs) > 1 else runs[0]
    if not results.entries:
        print(f"perfguard: history: {', '.join(map(str, args.results))} holds no "
              "measurements; nothing recorded")
        return 0
    info = RunInfo(commit=args.commit, branch=args.branch, dirty=args.dirty,
                   source=", ".join(str(p) for p in args.results))
    with HistoryStore.open(args.db, create=True) as store:
        outcome = store.append(results, info)
    if not outcome.added:
        print(f"perfguard: history: these results are already recorded for {args.commit} "
              f"(run {outcome.run_id} in {args.db}); nothing added")
    else:
        print(f"perfguard: history: run {outcome.run_id} ({outcome.measurements} "
              f"measurements at {args.commit}) appended to {args.db}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    with HistoryStore.open(args.db) as store:
        text = show(store, args.test, args.metric, environment=args.environment,
                    branch=args.branch, limit=args.limit, name=args.name)
    sys.stdout.write(printable(text, multiline=True) + "\n")
    return 0


def _cmd_first_change(args: argparse.Namespace) -> int:
    cwd = Path.cwd()
    with HistoryStore.open(args.db) as store:
        answer = first_change(
            store, args.test, args.metric, environment=args.environment, branch=args.branch,
            include_dirty=args.include_dirty, name=args.name,
            commits_between=lambda old, new: gitinfo.commits_between(cwd, old, new))
    print(printable(answer.text, multiline=True))
    return answer.exit_code


def _cmd_report(args: argparse.Namespace) -> int:
    if not args.html and not args.markdown:
        raise HistoryError("history report: give --html FILE and/or --markdown FILE")
    current = None
    if args.current:
        runs = [RunResults.load(path) for path in args.current]
        current = merge_results(runs) if len(runs) > 1 else runs[0]
    template = commit_url_template(args.commit_url)
    with HistoryStore.open(args.db) as store:
        view = collect(store, last=args.last, branch=args.branch, current=current,
                       commit_url=template)
    if args.html:
        atomic_write(args.html, render_history_html(view))
        print(f"perfguard: wrote {args.html}")
    if args.markdown:
        atomic_write(args.markdown, render_history_markdown(view, commits=args.summary_commits))
        print(f"perfguard: wrote {args.markdown}")
    return 0
