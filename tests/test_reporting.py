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
    EVIL_TEST_ID,
    cpu_run,
    evil_unchanged,
    gpu_run,
    mlp_block_regressed,
    sample_results,
)

from pytest_perfguard.compare import Change
from pytest_perfguard.record import Kernel
from pytest_perfguard.reporting import (
    EXPORT_FORMATS,
    export,
    merge_results,
    render_html,
    render_markdown,
    render_terminal,
)
from pytest_perfguard.reporting._format import human_bytes, human_seconds, human_si, md_escape
from pytest_perfguard.reporting._svg import nice_ceiling
from pytest_perfguard.reporting.html import CHART_ROWS, FILTER_SCRIPT
from pytest_perfguard.results import ResultEntry, RunResults

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
    loaded = RunResults.from_dict(json.loads(original.dumps()))
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
    assert nice_ceiling(480 * 1024**2, binary=True) == 500 * 1024**2
    assert nice_ceiling(14) == 20 and nice_ceiling(0.3) == 0.5


def test_md_escape() -> None:
    assert md_escape("a|b") == r"a\|b"
    assert md_escape("<script>x</script>") == "&lt;script&gt;x&lt;/script&gt;"
    assert md_escape("x`y`") == r"x\`y\`"
    assert md_escape("line1\n  line2\r\nline3") == "line1 line2 line3"
    assert md_escape("[click](https://evil)") == r"\[click\](https://evil)"
    assert md_escape("a & b") == "a &amp; b"


# --- terminal ----------------------------------------------------------------------------


def test_terminal_table_regressions_first_with_hints() -> None:
    text = render_terminal(sample_results())
    lines = text.splitlines()
    assert lines[0].split() == ["mode", "launches", "bytes", "moved", "FLOPs", "fusion",
                                "traffic", "breaks", "recompiles", "speedup", "verdict"]
    assert lines[2] == "tests/test_models.py::test_mlp_block @ cpu (AVX2)"
    assert lines[3].split()[0] == "eager" and lines[3].split()[-1] == "regressed"
    assert lines[4].split()[:4] == ["compiled", "5", "408", "MiB"]
    # Exactly the four regressed changes, each once, hints once per test.
    regressions = [line for line in lines if line.startswith("regressed ")]
    assert [line.split(": ", 1)[1].split(":")[0] for line in regressions] == [
        "compiled kernel_launches", "graph_breaks", "compiled bytes_moved", "fusion_ratio"]
    hint = ("    hint: new graph break at tests/test_models.py:48: Unsupported Tensor.item() "
            "call with capture_scalar_outputs=False")
    assert lines.count(hint) == 1
    assert lines[-1] == ("perfguard: 1 regressed, 1 improved, 1 new, 1 other-environment, "
                         "3 unchanged")


def test_terminal_is_plain_and_fits_a_terminal() -> None:
    results = sample_results()
    results.entries[2].verdict.changes[0].hints.append("\x1b[31mred\x1b[0m\nsecond line")
    text = render_terminal(results)
    assert "\x1b" not in text
    assert "    hint: [31mred[0m second line" in text
    table = text.split("\n\n")[0].splitlines()
    assert max(len(line) for line in table) <= 120


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
    assert text.startswith(
        "## perfguard: 1 regressed, 1 improved, 1 new, 1 other-environment, 3 unchanged\n")
    summary = _table_rows(text)[0]
    assert "**regressed**" in summary[2] and "test\\_mlp\\_block" in summary[2]
    statuses = re.findall(r"<details><summary><b>([a-z-]+)</b>", text)
    assert statuses == ["regressed", "improved", "new", "other-environment",
                        "unchanged", "unchanged", "unchanged"]
    assert text.count("<details>") == text.count("</details>") == 7


def test_markdown_escapes_user_text() -> None:
    text = render_markdown(sample_results())
    # No raw tag from any test id, kernel name, reason or location survives.
    for raw in ("<script", "</script", "<img", "<b>x"):
        assert raw not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\|a\\`b\\]" in text  # summary table cell
    assert "&lt;script&gt;alert(1)&lt;/script&gt;|a&#96;b]" in text  # inside <summary>
    assert "mylib::fused\\|&lt;img src=x onerror=alert(2)&gt;\\`k\\`" in text
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
    for chart_id in ("chart-launches", "chart-bytes", "chart-changes", "chart-roofline"):
        (svg,) = dom.find("svg", id=chart_id)
        assert svg["class"] == "chart" and svg["role"] == "img"
        assert dom.svg_titles[chart_id]
    assert "chart-roofline-missing" not in text
    entries = [a for t, a in dom.tags if "test-entry" in a.get("class", "").split()]
    assert [e["data-status"] for e in entries] == [
        "regressed", "improved", "new", "other-environment", "unchanged", "unchanged",
        "unchanged"]
    assert entries[0]["id"].startswith("test-tests-test-models-py-test-mlp-block-")
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
    assert len(data) == 7 * 4 - 1


def test_export_bencher() -> None:
    data = json.loads(export(sample_results(), "bencher"))
    check_bencher_shape(data)
    mlp = data["tests/test_models.py::test_mlp_block"]
    assert mlp["compiled-kernel-launches"] == {"value": 5}
    assert mlp["compiled-bytes-moved"] == {"value": 427_829_248}
    assert mlp["graph-breaks"] == {"value": 1}
    latency = mlp["latency"]
    assert latency["value"] == pytest.approx(39.8e6)  # nanoseconds
    assert latency["lower_value"] < latency["value"] < latency["upper_value"]
    assert "latency" not in data["tests/test_attention.py::test_sdpa_block[bf16-causal]::backward"]


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
    assert EVIL_TEST_ID in render_terminal(results)
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
