"""Reporters (terminal, markdown, HTML, exporters, merge) on hand-built results. No torch.

Golden files live in ``tests/golden/``; after an intended change of a report, regenerate
them with ``PERFGUARD_REGEN_GOLDEN=1 python -m pytest tests/test_reporting.py`` and review
the diff.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import difflib
import hashlib
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_factory import (
    EVIL_ERROR,
    EVIL_TEST_ID,
    NO_GPU,
    MiB,
    cpu_run,
    errors,
    evil_unchanged,
    gpu_run,
    layernorm_gelu_improved,
    mlp_block_regressed,
    sample_results,
    sdpa_backward_new,
)

from pytest_perfguard.compare import Change
from pytest_perfguard.record import Kernel
from pytest_perfguard.reporting import (
    EXPORT_FORMATS,
    SUMMARY_MAX_BYTES,
    build_view,
    describe_change,
    export,
    failure_message,
    merge_results,
    render_html,
    render_markdown,
    render_markdown_summary,
    render_terminal,
)
from pytest_perfguard.reporting._format import human_bytes, human_seconds, human_si, md_escape
from pytest_perfguard.reporting._svg import STUB, BarRow, grouped_bars, log_axis, nice_ceiling
from pytest_perfguard.reporting.html import CHART_ROWS, FILTER_SCRIPT
from pytest_perfguard.results import ResultEntry, ResultsError, RunResults, TestError

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("PERFGUARD_REGEN_GOLDEN") == "1"


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if REGEN:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(difflib.unified_diff(
            expected.splitlines(keepends=True), text.splitlines(keepends=True),
            f"golden/{name}", "rendered", n=2))
        pytest.fail(f"{name} differs from its golden file (PERFGUARD_REGEN_GOLDEN=1 to "
                    f"regenerate):\n{diff[:6000]}", pytrace=False)


# --- golden files ------------------------------------------------------------------------


def test_golden_results_json() -> None:
    assert_golden("results.json", sample_results().dumps())


def test_golden_markdown() -> None:
    assert_golden("report.md", render_markdown(sample_results()))


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_golden_exports(fmt: str) -> None:
    assert_golden(f"export-{fmt}.json", export(sample_results(), fmt))


def test_reports_rebuild_from_results_json_alone() -> None:
    original = sample_results()
    loaded = RunResults.validate(json.loads(original.dumps()))
    assert loaded.dumps() == original.dumps()
    assert render_markdown(loaded) == render_markdown(original)
    assert render_terminal(loaded, verbose=True) == render_terminal(original, verbose=True)
    assert render_html(loaded) == render_html(original)
    for fmt in EXPORT_FORMATS:
        assert export(loaded, fmt) == export(original, fmt)


# --- formatting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "n/a"), (0, "0 B"), (1023, "1023 B"), (1024, "1.00 KiB"), (4_194_304, "4.00 MiB"),
     (427_829_248, "408 MiB"), (3 * 1024**4, "3.00 TiB")],
)
def test_human_bytes(value: int | None, text: str) -> None:
    assert human_bytes(value) == text


def test_human_units() -> None:
    assert human_seconds(0.00123) == "1.23 ms"
    assert human_seconds(0.000201) == "201 us"
    assert human_seconds(41.7) == "41.7 s"
    assert human_si(34_359_738_368, "FLOP") == "34.4 GFLOP"
    assert human_si(0, "FLOP") == "0 FLOP"
    assert nice_ceiling(14) == 20 and nice_ceiling(0.3) == 0.5


def test_md_escape() -> None:
    assert md_escape("a|b") == r"a\|b"
    assert md_escape("<script>x</script>") == "&lt;script&gt;x&lt;/script&gt;"
    assert md_escape("x`y`") == r"x\`y\`"
    assert md_escape("line1\n  line2\r\nline3") == "line1 line2 line3"
    assert md_escape("[click](https://evil)") == r"\[click\](https://evil)"
    assert md_escape("a & b") == "a &amp; b"


# --- terminal ----------------------------------------------------------------------------


def test_terminal_errors_first_then_regressions_with_hints() -> None:
    text = render_terminal(sample_results())
    lines = text.splitlines()
    assert lines[0] == ("errored tests/test_models.py::test_whisper_encoder[tiny] (in setup): "
                        "fixture 'whisper_config' not found")
    # A cause too long for its line goes below it, whole (not cut at the table's width).
    assert lines[1] == "errored tests/test_models.py::test_t5[<b>tiny</b>] (in call):"
    assert lines[2] == "    RuntimeError: boom | ```</details><script>alert(7)</script>"
    assert lines[3] == ""
    assert lines[4].split() == ["mode", "launches", "bytes", "peak", "mem", "fusion", "traffic",
                                "memory", "breaks", "recompiles", "speedup", "verdict"]
    assert lines[6] == "tests/test_models.py::test_mlp_block @ cpu (AVX2)"
    # Peak memory 144 MiB in both modes (64 + 64 + 16 MiB; compiled 4 bytes more), so the
    # memory ratio rounds to 1.00x; fusion 5/5, traffic 376 MiB / 408 MiB = 0.92x.
    assert lines[7].split() == ["eager", "5", "376", "MiB", "144", "MiB", "1.00x", "0.92x",
                                "1.00x", "1.04x", "regressed"]
    assert lines[8].split() == ["compiled", "5", "408", "MiB", "144", "MiB", "1", "0"]
    # Exactly the six regressed changes, each once, hints once per test.
    regressions = [line for line in lines if line.startswith("regressed ")]
    assert [line.split(": ", 1)[1].split(":")[0] for line in regressions] == [
        "compiled kernel_launches", "graph_breaks", "compiled bytes_moved", "fusion_ratio",
        "compiled peak_memory", "memory_ratio"]
    assert ("regressed tests/test_models.py::test_mlp_block @ cpu (AVX2): compiled peak_memory: "
            "baseline 134,217,728, current 150,994,948 (+12.5%)") in lines
    hint = ("    hint: new graph break at tests/test_models.py:48: Unsupported Tensor.item() "
            "call with capture_scalar_outputs=False")
    assert hint not in lines  # the failure message says it; -v repeats it, once
    assert render_terminal(sample_results(), verbose=True).splitlines().count(hint) == 1
    assert lines[-1] == ("perfguard: 2 errored, 1 regressed, 1 improved, 1 new, "
                         "1 other-environment, 3 unchanged")


def test_terminal_is_plain_and_fits_a_terminal() -> None:
    results = sample_results()
    results.entries[2].verdict.changes[0].hints.append("\x1b[31mred\x1b[0m\nsecond line")
    text = render_terminal(results)
    assert "\x1b" not in text
    verbose = render_terminal(results, verbose=True)  # hints are shown with -v
    assert "\x1b" not in verbose
    assert "    hint: \\x1b[31mred\\x1b[0m second line" in verbose  # escapes shown, not acted on
    errors_block, table = (block.splitlines() for block in text.split("\n\n")[:2])
    assert max(len(line) for line in table) <= 120
    assert max(len(line) for line in errors_block) <= 120  # shortened like long test ids
    assert "<script>alert(7)" in errors_block[2]  # plain text, nothing to escape


def test_terminal_verbose_and_truncation() -> None:
    results = sample_results()
    long_id = "tests/test_long.py::test_" + "x" * 150 + "[end]"
    entry = copy.deepcopy(results.entries[0])
    entry.measurement.test_id = long_id
    results.entries.append(entry)

    short = render_terminal(results)
    assert long_id not in short
    assert "tests/test_long.py::test_xxx" in short and "xxx[end] @ cpu (AVX2)" in short
    assert "improved tests/test_models.py::test_layernorm_gelu" not in short
    assert "unavailable" not in short

    verbose = render_terminal(results, verbose=True)
    assert long_id in verbose
    assert ("improved tests/test_models.py::test_layernorm_gelu @ cpu (AVX2): compiled "
            "kernel_launches: baseline 2, current 1 (-50.0%)") in verbose
    assert ("unavailable tests/test_attention.py::test_sdpa_block[bf16-causal]::backward @ "
            "cpu (AVX2): eager time: timing off (--perfguard-time=off)") in verbose
    assert "other-environment tests/test_models.py::test_conv_bn_relu" in verbose
    assert "changed tests/test_gpu.py::test_matmul_relu[cuda-fp16]" in verbose
    # An error is its first line (pytest prints the whole error above the summary).
    assert ("errored tests/test_models.py::test_t5[<b>tiny</b>] (in call): RuntimeError: boom | "
            "```</details><script>alert(7)</script>\n") in verbose


def test_cpu_run_says_no_gpu_once() -> None:
    """Every CPU record lists nvml, utilisation and device_seconds as "no GPU" in both
    modes (6 reasons x 5 CPU tests here); the reports say it once, for the environment."""
    results = sample_results()
    cpu_records = [mode for e in results.entries if e.measurement.environment.device == "cpu"
                   for mode in (e.measurement.eager, e.measurement.compiled)]
    assert sum(list(r.unavailable.values()).count(NO_GPU) for r in cpu_records) == 30
    note = ("Not measured on cpu (AVX2) · torch 2.13.0+cpu · py3.11.9 · inductor/default: "
            "device_seconds, nvml, utilisation (no GPU: this run was on the CPU)")
    verbose = render_terminal(results, verbose=True)
    assert verbose.count(NO_GPU) == 1 and note in verbose.splitlines()
    assert NO_GPU not in render_terminal(results)
    markdown = render_markdown(results)
    assert markdown.count(NO_GPU) == 1 and md_escape(note) in markdown.splitlines()
    html = render_html(results)
    assert html.count(NO_GPU) == 1 and f'<p class="run-info run-note">{note}</p>' in html
    # A reason only some tests of an environment give stays with those tests.
    assert "unavailable tests/test_attention.py::test_sdpa_block[bf16-causal]::backward" in verbose
    # One environment: the note does not name it.
    assert ("Not measured: device\\_seconds, nvml, utilisation (no GPU: this run was on the "
            "CPU)") in render_markdown(cpu_run())


def test_single_environment_labels_have_no_device_suffix() -> None:
    text = render_terminal(cpu_run())
    assert "tests/test_models.py::test_mlp_block\n" in text
    assert "@ cpu (AVX2)" not in text


def test_empty_results() -> None:
    empty = RunResults()
    assert render_terminal(empty) == "perfguard: no measurements in this run\n"
    assert render_markdown(empty) == "## perfguard: no measurements\n"
    assert 'id="chart-launches"' not in render_html(empty)
    assert json.loads(export(empty, "github-action-benchmark")) == []
    assert json.loads(export(empty, "bencher")) == {}


# --- markdown ----------------------------------------------------------------------------

_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _table_rows(markdown: str) -> list[list[str]]:
    """Every markdown table (consecutive lines starting with '|') as cell counts per row."""
    tables: list[list[str]] = []
    current: list[str] = []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def test_markdown_headline_and_order() -> None:
    text = render_markdown(sample_results())
    assert text.startswith("## perfguard: 2 errored, 1 regressed, 1 improved, 1 new, "
                           "1 other-environment, 3 unchanged\n")
    # Errored tests come before the summary table, each with its whole message.
    assert text.index("### Errored tests (2)") < text.index("| Test | Verdict |")
    assert ("<pre>fixture 'whisper_config' not found\n"
            "&gt;       available fixtures: cache, capsys, perfguard, tmp_path</pre>") in text
    summary = _table_rows(text)[0]
    assert "**regressed**" in summary[2] and "test\\_mlp\\_block" in summary[2]
    assert "| 144 MiB → 144 MiB |" in summary[2] and "| 32.0 MiB → 16.0 MiB |" in summary[3]
    statuses = re.findall(r"<details><summary><b>([a-z-]+)</b>", text)
    assert statuses == ["errored", "errored", "regressed", "improved", "new",
                        "other-environment", "unchanged", "unchanged", "unchanged"]
    assert text.count("<details>") == text.count("</details>") == 9


def test_markdown_escapes_user_text() -> None:
    text = render_markdown(sample_results())
    # No raw tag from any test id, kernel name, reason or location survives.
    for raw in ("<script", "</script", "<img", "<b>x"):
        assert raw not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\|a\\`b\\]" in text  # summary table cell
    assert "&lt;script&gt;alert(1)&lt;/script&gt;|a&#96;b]" in text  # inside <summary>
    assert "mylib::fused\\|&lt;img src=x onerror=alert(2)&gt;\\`k\\`" in text
    # Allocations: the hostile op and a shape with markup, a pipe, a backtick, a newline.
    assert ("| <code>mylib::fused\\|&lt;img src=x onerror=alert(2)&gt;\\`k\\`</code> | 1.00 MiB "
            "| <code>\\[&lt;b&gt;3&lt;/b&gt;\\|\\`x\\`\\] \\| y \\|</code> |") in text
    # An error message keeps its lines, inert inside <pre>: no tag, no fence, no </pre>.
    (pre,) = [block for block in re.findall(r"<pre>(.*?)</pre>", text, re.S) if "boom" in block]
    assert pre == ("RuntimeError: boom | &#96;&#96;&#96;&lt;/details&gt;&lt;script&gt;alert(7)"
                   "&lt;/script&gt;\n&#96;&#96;&#96;\n  File \"tests/test_models.py\", line 12, "
                   "in test_t5\n    model(&lt;img src=x onerror=alert(8)&gt;)")
    assert ("in call: RuntimeError: boom | &#96;&#96;&#96;&lt;/details&gt;&lt;script&gt;"
            "alert(7)&lt;/script&gt;</summary>") in text
    # Every backtick is escaped; no stray code span can open.
    assert not re.search(r"(?<!\\)`", text.replace("&#96;", ""))
    # Every row of every table has as many cells as its header.
    for table in _table_rows(text):
        widths = {len(_UNESCAPED_PIPE.findall(row)) for row in table}
        assert len(widths) == 1, table


def test_markdown_collapses_newlines_in_user_text() -> None:
    entry = evil_unchanged()
    entry.measurement.compiled.kernels.append(Kernel("evil\nkernel|name\r\n| x |", "aten", 3))
    entry.measurement.compiled.graph_break_details[0].location = "a.py:1\n| b |"
    text = render_markdown(RunResults(entries=[entry]))
    assert "| <code>evil kernel\\|name \\| x \\|</code> | aten | 3 |" in text
    assert "<code>a.py:1 \\| b \\|</code>" in text
    for table in _table_rows(text):
        assert len({len(_UNESCAPED_PIPE.findall(row)) for row in table}) == 1


def test_markdown_gpu_sections() -> None:
    text = render_markdown(gpu_run())
    assert "**Utilisation**" in text and "**NVML**" in text
    assert "| compiled | 201 us | 501 GB/s | 14.9% | 684 TFLOP/s | 69.1% |" in text
    assert "| compiled | 48 in 480 ms | 97% | 58% | 2.20 GiB | 1980 MHz |" in text
    assert "| Kernel | Kind | Count | Device time |" in text
    assert "**Utilisation**" not in render_markdown(cpu_run())


# --- HTML (structure; tests/test_html_browser.py renders it in Chromium) ----------------


class _Dom(HTMLParser):
    """Start tags with attributes, in order, plus the text inside <script> and <title>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[str] = []
        self.stack: list[str] = []
        self.svg_titles: dict[str, str] = {}
        self._svg: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        self.stack.append(tag)
        if tag == "svg":
            self._svg = attributes.get("id")
        if tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
        if tag == "svg":
            self._svg = None

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "script":
            self.scripts[-1] += data
        if self.stack and self.stack[-1] == "title" and self._svg:
            self.svg_titles.setdefault(self._svg, data)

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags
                if (tag is None or t == tag) and all(a.get(k) == v for k, v in attrs.items())]


def _dom(text: str) -> _Dom:
    dom = _Dom()
    dom.feed(text)
    dom.close()
    return dom


def test_html_charts_and_entries() -> None:
    text = render_html(sample_results())
    dom = _dom(text)
    for chart_id in ("chart-launches", "chart-bytes", "chart-memory", "chart-changes",
                     "chart-roofline"):
        (svg,) = dom.find("svg", id=chart_id)
        assert svg["class"] == "chart" and svg["role"] == "img"
        assert dom.svg_titles[chart_id]
    assert "chart-roofline-missing" not in text and "chart-memory-missing" not in text
    entries = [a for t, a in dom.tags if "test-entry" in a.get("class", "").split()]
    assert [e["data-status"] for e in entries] == [
        "errored", "errored", "regressed", "improved", "new", "other-environment", "unchanged",
        "unchanged", "unchanged"]
    assert entries[0]["id"].startswith("error-tests-test-models-py-test-whisper-encoder-")
    assert entries[2]["id"].startswith("test-tests-test-models-py-test-mlp-block-")
    rows = [a["data-status"] for a in dom.find("tr") if "summary-row" in a.get("class", "")]
    assert rows[:3] == ["errored", "errored", "regressed"] and len(rows) == 9
    counts = [a["data-status"] for a in dom.find("li") if "count" in a.get("class", "")]
    assert counts == ["errored", "regressed", "improved", "new", "other-environment",
                      "unchanged"]
    ids = [a["id"] for _, a in dom.tags if "id" in a]
    assert len(ids) == len(set(ids))
    # Ids are stable: the same test in the same environment gets the same id next run.
    assert [e["id"] for e in entries] == [
        e["id"] for _, e in _dom(render_html(sample_results())).tags
        if "test-entry" in e.get("class", "").split()]


def test_html_without_gpu_data_says_so() -> None:
    results = cpu_run()
    text = render_html(results)
    assert 'id="chart-roofline"' not in text
    assert 'id="chart-roofline-missing"' in text and "No GPU utilisation data" in text
    unchanged = RunResults(entries=[evil_unchanged()])
    assert 'id="chart-changes-missing"' in render_html(unchanged)


def test_html_is_self_contained_and_escaped() -> None:
    links = {
        "tests/test_models.py::test_mlp_block": {
            "trace": "traces/mlp.json", "code": "traces/mlp.py",
            "evil": "javascript:alert(5)", "data": "data:text/html,<script>alert(6)</script>",
        }
    }
    text = render_html(sample_results(), trace_links=links)
    dom = _dom(text)
    # One script, the filter, allowed by its hash in the CSP; no event handler attributes.
    assert dom.scripts == [FILTER_SCRIPT]
    digest = base64.b64encode(hashlib.sha256(FILTER_SCRIPT.encode()).digest()).decode()
    (csp,) = dom.find("meta", **{"http-equiv": "Content-Security-Policy"})
    assert "default-src 'none'" in csp["content"] and f"'sha256-{digest}'" in csp["content"]
    assert not [a for _, a in dom.tags if any(k.startswith("on") for k in a)]
    # Nothing is fetched: no external src/href, no <link>, <img>, <iframe>, @import or url().
    assert not [t for t, _ in dom.tags if t in ("link", "img", "iframe", "object", "embed")]
    for _, attrs in dom.tags:
        for name in ("src", "href", "xlink:href"):
            assert not attrs.get(name, "").lower().startswith(("http:", "https:", "//"))
    assert "@import" not in text and "url(" not in text
    # trace links: relative ones kept, other schemes dropped.
    hrefs = [a["href"] for a in dom.find("a") if not a["href"].startswith("#")]
    assert hrefs == ["traces/mlp.json", "traces/mlp.py"]
    # Hostile text is shown, not executed.
    assert "<script>alert(1)" not in text and "<img src=x" not in text
    assert "test_custom_op[&lt;script&gt;alert(1)&lt;/script&gt;|a`b]" in text
    assert "UserDefinedObjectVariable(&lt;script&gt;alert(4)&lt;/script&gt;)" in text
    assert "tests/test_ops.py:77|&lt;b&gt;x&lt;/b&gt;" in text
    # New fields too: allocation ops and shapes, error messages, run notes.
    assert "<b>3</b>" not in text and "&lt;b&gt;3&lt;/b&gt;|`x`]\n| y |" in text
    assert "<script>alert(7)" not in text and "<img src=x onerror=alert(8)" not in text
    assert "&lt;/details&gt;&lt;script&gt;alert(7)&lt;/script&gt;" in text


def test_html_charts_cap_rows_and_keep_regressions() -> None:
    base = sample_results()
    entries = []
    for index in range(CHART_ROWS + 20):
        entry = copy.deepcopy(base.entries[index % len(base.entries)])
        entry.measurement.test_id = f"tests/test_many.py::test_case[{index}]"
        entries.append(entry)
    text = render_html(RunResults(entries=entries))
    dom = _dom(text)
    assert f"showing {CHART_ROWS} of {len(entries)} tests" in text
    chart = text.split('id="chart-launches"')[1].split("</svg>")[0]
    assert chart.count('class="row-label"') == CHART_ROWS
    regressed = sum(1 for e in entries if e.verdict.status == "regressed")
    assert chart.count('font-weight="bold"') == regressed
    assert len([a for _, a in dom.tags if "test-entry" in a.get("class", "")]) == len(entries)


def test_html_gpu_sections() -> None:
    text = render_html(gpu_run())
    assert "<h4>Utilisation</h4>" in text and "<h4>NVML</h4>" in text
    assert "datasheet:H100 SXM fp16" in text
    # Both roofs (fp16 and fp32 peaks) and one point per mode per test.
    roofline = text.split('id="chart-roofline"')[1].split("</svg>")[0]
    assert roofline.count('class="roof-point"') == 4
    assert "peak 989 TFLOP/s" in roofline and "peak 66.9 TFLOP/s" in roofline
    assert "peak 3.35 TB/s" in roofline


# --- exporters ---------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_github_action_benchmark_shape(data: object) -> None:
    """customSmallerIsBetter: a list of {name: str, unit: str, value: number,
    range?: str, extra?: str} (github-action-benchmark README, custom benchmarks)."""
    assert isinstance(data, list)
    names = set()
    for item in data:
        assert isinstance(item, dict)
        assert set(item) >= {"name", "unit", "value"}
        assert set(item) <= {"name", "unit", "value", "range", "extra"}
        assert isinstance(item["name"], str) and item["name"]
        assert isinstance(item["unit"], str) and item["unit"]
        assert _is_number(item["value"])
        for optional in ("range", "extra"):
            assert isinstance(item.get(optional, ""), str)
        assert item["name"] not in names, f"duplicate benchmark name {item['name']!r}"
        names.add(item["name"])


def check_bencher_shape(data: object) -> None:
    """BMF: {benchmark name: {measure slug: {value: number, lower_value?: number,
    upper_value?: number}}} (https://bencher.dev/docs/reference/bencher-metric-format/)."""
    assert isinstance(data, dict)
    for benchmark, measures in data.items():
        assert isinstance(benchmark, str) and 0 < len(benchmark) <= 1024
        assert isinstance(measures, dict) and measures
        for slug, metric in measures.items():
            assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", slug), slug
            assert isinstance(metric, dict)
            assert "value" in metric and set(metric) <= {"value", "lower_value", "upper_value"}
            assert all(_is_number(v) for v in metric.values())
            assert metric.get("lower_value", metric["value"]) <= metric["value"]
            assert metric["value"] <= metric.get("upper_value", metric["value"])


def test_export_github_action_benchmark() -> None:
    data = json.loads(export(sample_results(), "github-action-benchmark"))
    check_github_action_benchmark_shape(data)
    by_name = {item["name"]: item for item in data}
    prefix = "tests/test_models.py::test_mlp_block"
    assert by_name[f"{prefix} - compiled kernel launches"]["value"] == 5
    assert by_name[f"{prefix} - compiled bytes moved"] == {
        "name": f"{prefix} - compiled bytes moved", "unit": "bytes", "value": 427_829_248,
        "extra": "eager 394,278,912 bytes; traffic ratio 0.92x\n"
                 "cpu (AVX2) · torch 2.13.0+cpu · py3.11.9 · inductor/default"}
    assert by_name[f"{prefix} - graph breaks"]["value"] == 1
    assert by_name[f"{prefix} - compiled median time"]["unit"] == "s"
    assert by_name[f"{prefix} - compiled median time"]["value"] == pytest.approx(0.0398)
    # No timing, no time entry.
    sdpa = "tests/test_attention.py::test_sdpa_block[bf16-causal]::backward"
    assert f"{sdpa} - compiled median time" not in by_name
    assert f"{sdpa} - compiled kernel launches" in by_name
    # Compiled peak 64 + 64 + 16 MiB + 4 B; eager 144 MiB: ratio 0.99999997 -> "1.00x".
    assert by_name[f"{prefix} - compiled peak memory"] == {
        "name": f"{prefix} - compiled peak memory", "unit": "bytes", "value": 150_994_948,
        "extra": "eager 150,994,944 bytes; memory ratio 1.00x\n"
                 "cpu (AVX2) · torch 2.13.0+cpu · py3.11.9 · inductor/default"}
    # A noisy time (layernorm_gelu's compiled IQR is 15% of its median) is left out.
    assert "tests/test_models.py::test_layernorm_gelu - compiled median time" not in by_name
    # 7 tests x (launches, bytes, breaks) + 5 timed, not noisy + 6 with peak memory (conv
    # has none).
    assert len(data) == 7 * 3 + 5 + 6


def test_export_bencher() -> None:
    data = json.loads(export(sample_results(), "bencher"))
    check_bencher_shape(data)
    mlp = data["tests/test_models.py::test_mlp_block"]
    assert mlp["compiled-kernel-launches"] == {"value": 5}
    assert mlp["compiled-bytes-moved"] == {"value": 427_829_248}
    assert mlp["graph-breaks"] == {"value": 1}
    assert mlp["compiled-peak-memory"] == {"value": 150_994_948}
    assert "compiled-peak-memory" not in data["tests/test_models.py::test_conv_bn_relu"]
    latency = mlp["latency"]
    assert latency["value"] == pytest.approx(39.8e6)  # nanoseconds
    assert latency["lower_value"] < latency["value"] < latency["upper_value"]
    assert "latency" not in data["tests/test_attention.py::test_sdpa_block[bf16-causal]::backward"]
    assert "latency" not in data["tests/test_models.py::test_layernorm_gelu"]  # noisy


def test_export_names_distinguish_environments() -> None:
    gpu_twin = copy.deepcopy(mlp_block_regressed())
    gpu_twin.measurement.environment = gpu_run().entries[0].measurement.environment
    cpu_twin = copy.deepcopy(mlp_block_regressed())
    cpu_twin.measurement.environment = dataclasses.replace(
        cpu_twin.measurement.environment, torch="2.12.0+cpu")
    results = RunResults(entries=[mlp_block_regressed(), gpu_twin, cpu_twin])
    bencher = json.loads(export(results, "bencher"))
    check_bencher_shape(bencher)
    key = "tests/test_models.py::test_mlp_block"
    names = sorted(bencher)
    assert len(names) == 3 and f"{key} [NVIDIA H100 80GB HBM3]" in names
    assert all(name.startswith(f"{key} [cpu (AVX2), ") for name in names
               if "NVIDIA" not in name)
    check_github_action_benchmark_shape(json.loads(export(results, "github-action-benchmark")))


def test_export_unknown_format() -> None:
    with pytest.raises(ValueError, match="github-action-benchmark, bencher"):
        export(sample_results(), "csv")


# --- merge -------------------------------------------------------------------------------


def test_merge_ci_matrix_jobs() -> None:
    cpu, gpu = cpu_run(), gpu_run()
    before = (cpu.dumps(), gpu.dumps())
    merged = merge_results([cpu, gpu])
    assert merged.dumps() == sample_results().dumps()
    assert (cpu.dumps(), gpu.dumps()) == before  # inputs untouched
    assert merged.created == cpu.created and merged.rules == cpu.rules


def test_merge_same_key_in_two_environments_keeps_both() -> None:
    gpu_twin = copy.deepcopy(mlp_block_regressed())
    gpu_twin.measurement.environment = gpu_run().entries[0].measurement.environment
    merged = merge_results([RunResults(entries=[mlp_block_regressed()]),
                            RunResults(entries=[gpu_twin])])
    assert [e.measurement.environment.device for e in merged.entries] == ["cpu", "cuda"]
    text = render_markdown(merged)
    assert "test\\_mlp\\_block @ cpu (AVX2)" in text
    assert "test\\_mlp\\_block @ NVIDIA H100 80GB HBM3" in text


def test_merge_rerun_replaces_in_place() -> None:
    first = cpu_run()
    rerun = RunResults(entries=[copy.deepcopy(first.entries[2])],
                       created="2025-11-26T15:00:00+00:00", tool_version="0.1.1")
    rerun.entries[0].verdict.status = "unchanged"
    rerun.entries[0].verdict.changes = []
    merged = merge_results([first, rerun])
    assert len(merged.entries) == len(first.entries)
    assert merged.entries[2].verdict.status == "unchanged"
    assert merged.entries[2].measurement.key == "tests/test_models.py::test_mlp_block"
    assert merged.created == "2025-11-26T15:00:00+00:00"
    assert merged.tool_version == "0.1.0, 0.1.1"
    assert merge_results([]).entries == []


def test_evil_id_round_trips_through_every_format() -> None:
    results = RunResults(entries=[evil_unchanged()])
    assert EVIL_TEST_ID in render_terminal(results, verbose=True)  # unchanged: listed with -v
    gab = json.loads(export(results, "github-action-benchmark"))
    assert gab[0]["name"] == f"{EVIL_TEST_ID} - compiled kernel launches"
    assert EVIL_TEST_ID in json.loads(export(results, "bencher"))


def test_changes_without_relative_value() -> None:
    """A metric whose baseline was 0 has no relative change; every reporter copes."""
    entry: ResultEntry = mlp_block_regressed()
    entry.verdict.changes = [Change("graph_breaks", 0, 2, "regressed", ["h"])]
    results = RunResults(entries=[entry])
    assert "graph\\_breaks: 0 → 2\n" in render_markdown(results)
    assert 'id="chart-changes"' in render_html(results)
    assert "graph_breaks: baseline 0, current 2" in render_terminal(results)


def test_reporting_does_not_import_torch() -> None:
    """Reports are rendered from results.json alone, e.g. on a machine without torch."""
    import subprocess
    import sys

    code = "import sys, pytest_perfguard.reporting; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_html_roofline_needs_flops() -> None:
    results = gpu_run()
    for entry in results.entries:
        entry.measurement.eager.flops = entry.measurement.compiled.flops = 0
    text = render_html(results)
    assert 'id="chart-roofline"' not in text
    assert "no measurement has both FLOPs and bytes moved" in text


# --- errored tests ---------------------------------------------------------------------


def test_errors_round_trip_and_old_files_without_them() -> None:
    results = sample_results()
    data = json.loads(results.dumps())
    assert data["errors"] == [
        {"test_id": "tests/test_models.py::test_whisper_encoder[tiny]", "when": "setup",
         "message": errors()[0].message},
        {"test_id": "tests/test_models.py::test_t5[<b>tiny</b>]", "when": "call",
         "message": EVIL_ERROR},
    ]
    assert RunResults.validate(data).errors == errors()
    del data["errors"]  # a results.json written before errors were recorded
    assert RunResults.validate(data).errors == []
    data["errors"] = {"not": "a list"}
    with pytest.raises(ResultsError, match="r.json: errors: Input should be a valid array"):
        RunResults.validate(data, source="r.json")
    data["errors"] = [{"when": "setup"}]
    with pytest.raises(ResultsError, match=r"r.json: errors\[0\].test_id: required field is missing"):
        RunResults.validate(data, source="r.json")


def test_only_errors_never_reads_as_all_clear() -> None:
    """Every test errored before measuring: no report may say "0 regressed" alone."""
    results = RunResults(errors=[TestError("tests/test_a.py::test_a", "collect",
                                           "ImportError: No module named 'transformers'")])
    headline = "1 errored, 0 regressed, 0 improved, 0 new, 0 other-environment, 0 unchanged"
    terminal = render_terminal(results)
    assert terminal.splitlines() == [
        "errored tests/test_a.py::test_a (during collection): ImportError: No module named "
        "'transformers'", "", f"perfguard: {headline}"]
    markdown = render_markdown(results)
    assert markdown.startswith(f"## perfguard: {headline}\n")
    assert "<code>tests/test_a.py::test_a</code> during collection: ImportError" in markdown
    assert "| Test | Verdict |" not in markdown
    html = render_html(results)
    assert f"<title>perfguard: {headline}</title>" in html
    assert 'data-status="errored"' in html and 'id="chart-launches"' not in html
    summary = render_markdown_summary(results)
    assert summary.startswith(f"## perfguard: {headline}\n")
    assert "### Errored tests (1)" in summary


def test_merge_keeps_errors_of_every_job() -> None:
    rerun = RunResults(errors=[errors()[1], TestError("tests/test_gpu.py::test_x", "teardown",
                                                      "CUDA error: out of memory")])
    merged = merge_results([cpu_run(), gpu_run(), rerun])
    assert [(e.test_id, e.when) for e in merged.errors] == [
        ("tests/test_models.py::test_whisper_encoder[tiny]", "setup"),
        ("tests/test_models.py::test_t5[<b>tiny</b>]", "call"),
        ("tests/test_gpu.py::test_x", "teardown")]


def test_long_error_messages_are_cut() -> None:
    long = "RuntimeError: deep\n" + "  frame\n" * 3000
    text = render_markdown(RunResults(errors=[TestError("t.py::t", "call", long)]))
    # 19 + 3,000 x 8 characters, less the final newline, less the 8,000 kept.
    assert "\n... (16,018 more characters)</pre>" in text
    (pre,) = re.findall(r"<pre>(.*?)</pre>", text, re.S)
    assert len(pre) < 8100


# --- peak memory -----------------------------------------------------------------------


def test_peak_memory_in_metric_tables_and_allocations() -> None:
    results = RunResults(entries=[layernorm_gelu_improved(), sdpa_backward_new()])
    view = build_view(results)
    layernorm, sdpa = view.tests
    # Eager 16 + 16 MiB + 2 x 16 KiB, compiled 16 MiB: memory ratio (32 MiB + 32 KiB) /
    # 16 MiB = 2.002 -> "2.00x".
    assert ["Peak memory", "32.0 MiB", "16.0 MiB", "memory 2.00x"] in layernorm.metrics.rows
    # sdpa compiled: seven tensors at the peak, the five largest shown (4 MiB each), the
    # 128 KiB logsumexp and the 2 KiB bias gradient counted: 130 KiB.
    compiled = sdpa.allocations[0]
    assert compiled.title == "Compiled: largest tensors alive at the peak (20.1 MiB)"
    assert [row[1] for row in compiled.rows] == ["4.00 MiB"] * 5
    assert compiled.note == "2 more tensors (130 KiB in all) not shown"
    markdown = render_markdown(results)
    assert "| Peak memory | 32.0 MiB | 16.0 MiB | memory 2.00x |" in markdown
    assert "**Compiled: largest tensors alive at the peak (20.1 MiB)**" in markdown
    assert "2 more tensors (130 KiB in all) not shown" in markdown
    html = render_html(results)
    assert ('<tr><td>Peak memory</td><td class="num">32.0 MiB</td><td class="num">16.0 MiB'
            '</td><td class="num">memory 2.00x</td></tr>') in html
    assert "<caption>Eager: largest tensors alive at the peak (32.0 MiB)</caption>" in html
    assert ('<tr><td><code>aten::native_layer_norm</code></td><td class="num">16.0 KiB</td>'
            '<td><code>[4096, 1] float32</code></td></tr>') in html


def test_peak_memory_changes_render_as_bytes() -> None:
    results = RunResults(entries=[mlp_block_regressed()])
    markdown = render_markdown(results)
    # 128 MiB -> 144 MiB + 4 B: +12.5% (4 bytes do not move the first decimal).
    assert "- **regressed** compiled peak\\_memory: 128 MiB → 144 MiB (+12.5%)" in markdown
    assert "- **regressed** memory\\_ratio: 1.12x → 1.00x (-11.1%)" in markdown
    html = render_html(results)
    assert "compiled peak_memory: 128 MiB → 144 MiB (+12.5%)" in html
    assert "mlp_block · compiled peak_memory" in html  # a row of the change chart
    assert describe_change(Change("compiled peak_memory", 128 * MiB, 144 * MiB, "regressed")) \
        == "compiled peak_memory: baseline 134,217,728, current 150,994,944 (+12.5%)"


def test_results_without_peak_memory() -> None:
    """Results written before peak memory existed: n/a, and the chart says why it is absent."""
    entry = layernorm_gelu_improved()
    for mode in (entry.measurement.eager, entry.measurement.compiled):
        mode.peak_memory, mode.peak_allocations = None, []
    results = RunResults(entries=[entry])
    assert "| Peak memory | n/a | n/a | memory n/a |" in render_markdown(results)
    html = render_html(results)
    assert 'id="chart-memory"' not in html and 'id="chart-memory-missing"' in html
    assert "largest tensors alive" not in html


# --- charts for mixed sizes ------------------------------------------------------------


def _bar_widths(svg: str) -> list[float]:
    return [float(w) for w in re.findall(r'<rect x="\d+" y="[\d.]+" width="([\d.]+)"', svg)]


def test_bars_readable_when_sizes_differ_a_million_times() -> None:
    """1 KiB -> 512 B next to 1 GiB -> 512 MiB: on the log axis the small test's bars are
    as readable as the large one's, and the same 2x ratio is the same gap on both rows."""
    rows = [BarRow("small", "small", 1024, 512), BarRow("large", "large", 1024**3, 512 * MiB)]
    svg = grouped_bars("chart-x", "Bytes", rows, human_bytes, binary=True)
    small_eager, small_compiled, large_eager, large_compiled = _bar_widths(svg)
    # 2^9 B to 2^30 B is 21 doublings: ticks every 5 doublings from 2^5 = 32 B to 2^30 =
    # 1 GiB. The plot is 470 px, the first 8 px (STUB) below the axis minimum, so each
    # doubling is 462 / 25 = 18.48 px, and 512 B = 2^9 sits 4 doublings up: 8 + 73.92.
    assert large_eager == 470.0
    assert small_compiled == 81.9
    assert small_eager - small_compiled == pytest.approx(18.48, abs=0.11)
    assert large_eager - large_compiled == pytest.approx(18.48, abs=0.11)
    labels = re.findall(r'fill="#555">([^<]+)</text>', svg)
    assert labels == ["32 B", "1 KiB", "32 KiB", "1 MiB", "32 MiB", "1 GiB"]
    assert 'class="axis-note">log scale</text>' in svg
    assert "1.00 KiB</text>" in svg and "512 MiB</text>" in svg  # values printed on bars
    # On the old linear axis the small test's bars would be 470 * 1024 / 2^30 = 0.0004 px.


def test_log_axis_ticks() -> None:
    assert [label for _, label in log_axis([1, 14]).ticks] == [
        "1", "2", "5", "10", "20"]
    assert [label for _, label in log_axis([3, 2400]).ticks] == ["1", "10", "100", "1k", "10k"]
    axis = log_axis([3 * MiB, 408 * MiB], binary=True)
    # 2^21 (2 MiB, below 3 MiB) to 2^29 (512 MiB, above 408 MiB): 8 doublings is more
    # than 7 ticks, so every second doubling, aligned to even powers.
    assert [label for _, label in axis.ticks] == [
        "1 MiB", "4 MiB", "16 MiB", "64 MiB", "256 MiB", "1 GiB"]
    assert axis.position(axis.low, 400) == STUB and axis.position(axis.high, 400) == 400
    zero = grouped_bars("c", "Launches", [BarRow("a", "a", 0, None)], count_text)
    assert "<rect" not in zero.split("</desc>")[1].split("<g>")[1]  # no bar for 0 or n/a


def count_text(value: float | None) -> str:
    return "n/a" if value is None else str(value)


# --- job summary -----------------------------------------------------------------------


def _regressed_copies(n: int, hint_chars: int = 200) -> RunResults:
    base = mlp_block_regressed()
    entries = []
    for index in range(n):
        entry = copy.deepcopy(base)
        entry.measurement.test_id = f"tests/test_many.py::test_case[{index}-<b>|`x`]"
        entry.verdict.key = entry.measurement.key
        entry.verdict.changes[0].hints.append("h" * hint_chars + str(index))
        entries.append(entry)
    return RunResults(entries=entries, errors=errors())


def test_summary_lists_errors_and_regressions_and_counts_the_rest() -> None:
    summary = render_markdown_summary(sample_results())
    assert summary.index("### Errored tests (2)") < summary.index("### Regressed tests (1)")
    assert ("**<code>tests/test\\_models.py::test\\_mlp\\_block @ cpu (AVX2)</code>** · "
            "launches 5 → 5 · bytes 376 MiB → 408 MiB · peak memory 144 MiB → 144 MiB") in summary
    assert "- **regressed** compiled peak\\_memory: 128 MiB → 144 MiB (+12.5%)" in summary
    assert summary.count("hint: new graph break at tests/test\\_models.py:48") == 1
    assert "Not listed here: 1 improved, 1 new, 1 other-environment, 3 unchanged." in summary
    assert summary.endswith("Every test with its kernels, peak memory, graph breaks and "
                            "charts: report.md and report.html in this run's artifacts.\n")
    assert "test_layernorm_gelu" not in summary and "not shown" not in summary
    for raw in ("<script", "<img", "<b>tiny", "</details><"):
        assert raw not in summary
    custom = render_markdown_summary(sample_results(), full_report="the `perfguard-report` "
                                     "artifact <x>")
    assert custom.endswith("charts: the \\`perfguard-report\\` artifact &lt;x&gt;.\n")


def test_summary_of_a_thousand_regressions_fits_github_limit() -> None:
    results = _regressed_copies(1000)
    full = render_markdown(results)
    assert len(full.encode()) > 1024**2  # the whole report would be refused by GitHub
    summary = render_markdown_summary(results)
    size = len(summary.encode())
    assert SUMMARY_MAX_BYTES - 3000 < size <= SUMMARY_MAX_BYTES < 1024**2
    shown = summary.count("test\\_case\\[")
    assert 0 < shown < 1000
    assert f"... and {1000 - shown} more regressed tests not shown: the job summary is " \
           f"limited to 1,000,000 bytes." in summary
    assert "### Errored tests (2)" in summary  # errors are never the ones cut first
    for table in _table_rows(summary):
        assert len({len(_UNESCAPED_PIPE.findall(row)) for row in table}) == 1


@pytest.mark.parametrize("max_bytes", [4096, 5000, 20_000, 100_000])
def test_summary_never_exceeds_its_limit(max_bytes: int) -> None:
    results = _regressed_copies(300, hint_chars=3000)
    results.baseline_path = "x" * 5000
    results.errors.append(TestError("t.py::t" * 500, "setup", "é" * 20_000))
    summary = render_markdown_summary(results, max_bytes=max_bytes)
    assert len(summary.encode("utf-8")) <= max_bytes
    assert summary.startswith("## perfguard: 3 errored, 300 regressed")
    assert "not shown: the job summary is limited to" in summary
    assert summary.count("<details>") == summary.count("</details>")


def test_summary_refuses_a_limit_too_small() -> None:
    with pytest.raises(ValueError, match="max_bytes must be at least 4096"):
        render_markdown_summary(sample_results(), max_bytes=1000)


# --- messages for the plugin and the CLI -------------------------------------------------


def test_failure_message_lists_every_regression_with_exact_numbers() -> None:
    message = failure_message(mlp_block_regressed(), strict=False)
    lines = message.splitlines()
    assert lines[0] == ("perfguard: tests/test_models.py::test_mlp_block regressed against the "
                        "baseline (cpu (AVX2) · torch 2.13.0+cpu · py3.11.9 · inductor/default)")
    assert [line for line in lines if line.startswith("  ") and not line.startswith("    ")] == [
        "  compiled kernel_launches: baseline 4, current 5 (+25.0%)",
        "  graph_breaks: baseline 0, current 1",
        "  compiled bytes_moved: baseline 360,720,384, current 427,829,248 (+18.6%)",
        "  fusion_ratio: baseline 1.25, current 1 (-20.0%)",
        "  compiled peak_memory: baseline 134,217,728, current 150,994,948 (+12.5%)",
        "  memory_ratio: baseline 1.125, current 1 (-11.1%)",
    ]
    cause = ("    likely cause: new graph break at tests/test_models.py:48: Unsupported "
             "Tensor.item() call with capture_scalar_outputs=False")
    assert lines.count(cause) == 1
    assert lines[-1] == ("If this change is intended, accept it: pytest --perfguard "
                         "--perfguard-update")
    strict = failure_message(layernorm_gelu_improved(), strict=True).splitlines()
    assert strict[0].startswith("perfguard: tests/test_models.py::test_layernorm_gelu improved "
                                "beyond tolerance and --perfguard-strict is set")
    assert strict[1:4] == ["  compiled kernel_launches: baseline 2, current 1 (-50.0%)",
                           "  compiled bytes_moved: baseline 67,108,864, current 33,554,432 "
                           "(-50.0%)", "  fusion_ratio: baseline 2, current 4 (+100.0%)"]
    assert describe_change(Change("compiled bytes_moved", None, 5, "regressed")) == \
        "compiled bytes_moved: baseline unavailable, current 5"


# --- one view model ----------------------------------------------------------------------


def test_markdown_and_html_show_the_view_models_numbers() -> None:
    """Every metric cell, kernel row and allocation row of the view appears in both reports:
    they are laid out from one model, not computed twice."""
    results = sample_results()
    view = build_view(results)
    markdown, html = render_markdown(results), render_html(results)
    for test in view.tests:
        for table in (test.metrics, *test.kernels, *test.allocations, *test.gpu):
            for row in table.rows:
                for cell in row:
                    if cell:
                        assert md_escape(cell) in markdown, (test.key, cell)
                        assert (cell.replace("&", "&amp;").replace("<", "&lt;")
                                .replace(">", "&gt;")) in html.replace("&#34;", '"').replace(
                                    "&#39;", "'"), (test.key, cell)
        assert md_escape(test.numerics.text) in markdown.replace("<code>", "").replace(
            "</code>", "") or not test.numerics.where
        assert test.numerics.text.replace("<", "&lt;").replace(">", "&gt;") in html
