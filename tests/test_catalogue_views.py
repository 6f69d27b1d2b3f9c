"""The catalogue is the only place a metric is described: the words every report prints about
a metric (headers, row names, chart titles, export units, ``perfguard show``'s columns) come
from :mod:`pytest_perfguard.metrics`. No torch.

A fresh interpreter renames kernel launches in the catalogue before any report module is
imported, then renders the sample run every way perfguard can; the new words show up
everywhere the old ones were.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent

RENDER = r'''
import contextlib, dataclasses, io, json, sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
out = Path(sys.argv[2])
from pytest_perfguard import metrics

# Kernel launches become "kernel dispatches" in the catalogue, and nowhere else.
renamed = {m.name: dataclasses.replace(m, words="kernel dispatches", short="dispatches",
                                       column="dispatched")
           for m in metrics.CATALOGUE if m.field == "kernel_launches"}
metrics.CATALOGUE = tuple(renamed.get(m.name, m) for m in metrics.CATALOGUE)
metrics.BY_NAME.update(renamed)
metrics.CHARTS["launches"] = metrics.Chart("Kernel dispatches per call", "fewer is better")

from report_factory import sample_results
from pytest_perfguard.cli import main
from pytest_perfguard.reporting import (
    export, render_html, render_markdown, render_markdown_summary, render_terminal)

results = sample_results()
(out / "results.json").write_text(results.dumps())


def cli(*argv):
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main([str(a) for a in argv]) == 0
    return text.getvalue()


cli("update", out / "results.json", "--baseline", out / "baseline.json")
cli("history", "add", out / "results.json", "--commit", "1" * 40, "--db", out / "h.sqlite")
cli("history", "report", "--html", out / "history.html", "--db", out / "h.sqlite")
print(json.dumps({
    "terminal": render_terminal(results, verbose=True),
    "markdown": render_markdown(results),
    "summary": render_markdown_summary(results),
    "html": render_html(results),
    "export": json.loads(export(results, "github-action-benchmark")),
    "show": cli("show", out / "baseline.json"),
    "history": (out / "history.html").read_text(),
}))
'''


def test_a_metric_renamed_in_the_catalogue_is_renamed_in_every_report(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", RENDER, str(TESTS), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)

    header = next(line for line in out["terminal"].splitlines() if line.strip().startswith("mode"))
    assert header.split() == ["mode", "dispatched", "bytes", "peak", "mem", "fusion", "traffic",
                              "memory", "breaks", "recompiles", "speedup", "verdict"]

    markdown = out["markdown"]
    assert "| Kernel dispatches (eager → compiled) | Bytes moved (eager → compiled) |" in markdown
    assert "| Kernel dispatches | 5 | 5 | fusion 1.00x |" in markdown  # a test's metric table
    assert "Kernel launches" not in markdown
    assert "dispatches 5 → 5 · bytes 376 MiB → 408 MiB · peak memory" in out["summary"]

    html = out["html"]
    assert "<th class=\"num\">Kernel dispatches (eager → compiled)</th>" in html
    assert '<title id="chart-launches-title">Kernel dispatches per call</title>' in html
    assert "<figcaption>Kernel dispatches per call, eager vs compiled (fewer is better; log " \
        "scale)</figcaption>" in html
    assert "Kernel launches" not in html

    units = {bench["name"].rsplit(" - ", 1)[1]: bench["unit"] for bench in out["export"]}
    assert units["compiled kernel launches"] == "dispatches"  # the export's name is kept
    extras = [bench["extra"] for bench in out["export"]
              if bench["name"].endswith("compiled kernel launches")]
    assert extras and all(extra.startswith("eager ") and " dispatches; fusion ratio " in extra
                          for extra in extras)

    show = out["show"].splitlines()
    assert "eager dispatches" in show[1] and "compiled dispatches" in show[1]
    assert "launches" not in out["show"]

    assert '<title id="t0-launches-title">Kernel dispatches per call</title>' in out["history"]


def test_every_bar_chart_says_when_nothing_was_measured() -> None:
    """Each catalogue bar chart has its figure, and says so where no test measured its
    metric (a run whose kernel launches were all unavailable used to stop the HTML report)."""
    from report_factory import sample_results

    from pytest_perfguard.reporting import render_html

    results = sample_results()
    for entry in results.entries:
        entry.measurement.eager.kernel_launches = None
        entry.measurement.compiled.kernel_launches = None
    html = render_html(results)
    assert ('<p class="no-data" id="chart-launches-missing">No kernel launches in these '
            "results: they were measured without it.</p>") in html
    assert 'id="chart-bytes"' in html and 'id="chart-memory"' in html
