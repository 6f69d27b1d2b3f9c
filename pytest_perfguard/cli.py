"""The ``perfguard`` command: work with baselines and results outside pytest. No torch.

    perfguard update [RESULTS.json ...] [--baseline PATH] [--only-failed]
    perfguard compare BASELINE RESULTS [--bytes-tolerance X ...] [--across-environments]
    perfguard show [BASELINE]
    perfguard report RESULTS.json [...] [--html FILE] [--markdown FILE] [--summary FILE]
                     [--comment FILE]
    perfguard export RESULTS.json --format {github-action-benchmark,bencher} [-o FILE]

``compare`` judges each result with the rules it was judged with in pytest (a test's
``@pytest.mark.perfguard`` overrides included, as recorded in results.json), through the same
:func:`~pytest_perfguard.compare.judge` the plugin calls, so the two cannot disagree; a rule
given on the command line overrides it for every result.

Exit codes: 0 ok, 1 a failing verdict (compare), 2 usage or file error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import __version__
from ._files import FileError, atomic_write
from .baseline import (
    DEFAULT_BASELINE,
    Baseline,
    BaselineError,
    update_baseline_file,
)
from .compare import judge
from .history.cli import add_history_parser
from .metrics import SHOW, metrics_of
from .record import Measurement
from .reporting._format import printable
from .results import ResultEntry, ResultsError, RunResults, open_results
from .settings import SettingError, add_cli_rule_arguments, cli_rule_overrides

DEFAULT_RESULTS = Path(".perfguard") / "report" / "results.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (BaselineError, FileError, ResultsError, SettingError, ValueError) as exc:
        print(f"perfguard: error: {printable(str(exc), multiline=True)}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perfguard", description="Work with perfguard's baselines, results and history "
        "outside pytest (no torch needed).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    update = sub.add_parser("update", help="promote results files to the baseline")
    update.add_argument("results", nargs="*", type=Path,
                        help=f"results.json files (default: {DEFAULT_RESULTS})")
    update.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE,
                        help=f"baseline file to update (default: {DEFAULT_BASELINE})")
    update.add_argument("--only-failed", action="store_true",
                        help="promote only regressed and improved entries")
    update.set_defaults(func=_cmd_update)

    cmp = sub.add_parser(
        "compare", help="compare results with a baseline; exit 1 on regression",
        description="Judge each result against the baseline, with the rules it was judged with "
        "in pytest unless a flag below overrides them. A result without an entry in its own "
        "environment is compared with the same test in the nearest recorded environment of "
        "the same device kind (e.g. the previous torch): reported as other-environment with "
        "the changes and what differs, and gated only with --across-environments.")
    cmp.add_argument("baseline", type=Path, help="baseline file (baseline.json)")
    cmp.add_argument("results", type=Path, help="results file of a run (results.json)")
    add_cli_rule_arguments(cmp)
    cmp.set_defaults(func=_cmd_compare)

    show = sub.add_parser("show", help="what a baseline holds, per environment")
    show.add_argument("baseline", type=Path, nargs="?", default=DEFAULT_BASELINE,
                      help=f"baseline file (default: {DEFAULT_BASELINE})")
    show.set_defaults(func=_cmd_show)

    report = sub.add_parser("report", help="render one report from one or more results files")
    report.add_argument("results", type=Path, nargs="+",
                        help="results.json files, merged into one report (e.g. a CI matrix)")
    report.add_argument("--html", type=Path, metavar="FILE", help="write the HTML report here")
    report.add_argument("--markdown", type=Path, metavar="FILE",
                        help="write the full markdown report here")
    report.add_argument("--summary", type=Path, metavar="FILE",
                        help="append the job summary pytest --perfguard writes (regressions and "
                        "errors in full, kept under GitHub's 1 MiB limit) to FILE, e.g. "
                        '"$GITHUB_STEP_SUMMARY"')
    report.add_argument("--comment", type=Path, metavar="FILE",
                        help="write a pull-request comment here: the verdict first, regressions "
                        "with their cause, improvements to accept, counts (under 50,000 "
                        "characters)")
    report.set_defaults(func=_cmd_report)

    export = sub.add_parser("export", help="export results for benchmark dashboards")
    export.add_argument("results", type=Path, help="results file of a run (results.json)")
    export.add_argument("--format", required=True,
                        choices=["github-action-benchmark", "bencher"],
                        help="github-action-benchmark's customSmallerIsBetter JSON, or "
                        "Bencher's metric format (bencher run --adapter json)")
    export.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write here (default: standard output)")
    export.set_defaults(func=_cmd_export)

    add_history_parser(sub)
    return parser


def _cmd_update(args: argparse.Namespace) -> int:
    files = args.results or [DEFAULT_RESULTS]
    # Timings stay in an entry only where its test gated on time (its own rules). The set is
    # filled as the results stream by, each identity before its measurement is handed over.
    keep_time: set[tuple[str, str]] = set()

    def chosen() -> Iterator[Measurement]:
        for path in files:
            with open_results(path) as reader:
                for e in reader.entries():
                    if args.only_failed and e.verdict.status not in ("regressed", "improved"):
                        continue
                    if e.verdict.rules.time and e.measurement.compiled.time is not None:
                        keep_time.add(e.measurement.identity)
                    yield e.measurement

    summary = update_baseline_file(args.baseline, chosen(), keep_time_for=keep_time,
                                   validated=True)
    count = summary.written
    print(f"perfguard: baseline {args.baseline}: {count} entr{'y' if count == 1 else 'ies'} "
          f"updated from {len(files)} results file(s)")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .reporting import describe_change, render_terminal

    overrides = cli_rule_overrides(args)
    baseline = Baseline.load(args.baseline, missing_ok=False)
    results = RunResults.load(args.results)
    entries = [
        ResultEntry(e.measurement,
                    judge(baseline, e.measurement, e.verdict.rules.replace(**overrides)))
        for e in results.entries
    ]
    compared = RunResults(entries=entries, errors=results.errors, created=results.created,
                          tool_version=results.tool_version, rules=results.rules,
                          baseline_path=str(args.baseline))
    print(render_terminal(compared, verbose=True))
    failing = [e for e in entries if e.verdict.fails]
    for entry in failing:
        changes = entry.verdict.regressions or entry.verdict.improvements
        reason = "; ".join(describe_change(c) for c in changes) or (
            "no baseline entry for this environment and require_baseline is set")
        print(printable(f"FAILED {entry.measurement.key}: {reason}"))
    return 1 if failing else 0


#: The metrics ``perfguard show`` lists per baseline entry (a field measured in both modes
#: is headed with its mode: ``eager launches``).
SHOWN = tuple(metric for field in SHOW for metric in metrics_of(field))


def _cmd_show(args: argparse.Namespace) -> int:
    baseline = Baseline.load(args.baseline, missing_ok=False)
    if not baseline.environments:
        print(f"{args.baseline}: no entries")
        return 0
    from tabulate import tabulate

    for key, block in sorted(baseline.environments.items()):
        print(printable(f"environment {key}: {block.environment.label()}"))
        if block.environment.libraries:
            print(printable("libraries: " + ", ".join(
                f"{name} {version}" for name, version in sorted(
                    block.environment.libraries.items()))))
        rows = [[printable(m.key), "train" if m.train else "infer",
                 *(metric.read(m) for metric in SHOWN)]
                for _, m in sorted(block.entries.items())]
        print(tabulate(rows, headers=["test", "kind", *(
            f"{metric.mode} {metric.brief}" if len(metrics_of(metric.field)) > 1 else metric.brief
            for metric in SHOWN)], intfmt=","))
        print()
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .reporting import (
        merge_results,
        render_html,
        render_markdown,
        render_markdown_comment,
        render_markdown_summary,
    )

    if not (args.html or args.markdown or args.summary or args.comment):
        raise ValueError("report: give --html FILE, --markdown FILE, --summary FILE and/or "
                         "--comment FILE")
    merged = merge_results([RunResults.load(p) for p in args.results])
    if args.html:
        atomic_write(args.html, render_html(merged))
        print(f"perfguard: wrote {args.html}")
    if args.markdown:
        atomic_write(args.markdown, render_markdown(merged))
        print(f"perfguard: wrote {args.markdown}")
    if args.comment:
        atomic_write(args.comment, render_markdown_comment(merged))
        print(f"perfguard: wrote {args.comment}")
    if args.summary:
        # Appended, as GitHub expects of $GITHUB_STEP_SUMMARY (other steps write there too).
        try:
            with open(args.summary, "a", encoding="utf-8") as handle:
                handle.write(render_markdown_summary(merged) + "\n")
        except OSError as exc:
            raise ValueError(f"cannot append the job summary to {args.summary}: "
                             f"{exc.strerror or exc}") from None
        print(f"perfguard: appended the job summary to {args.summary}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .reporting import export

    text = export(RunResults.load(args.results), args.format)
    if args.output:
        atomic_write(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
