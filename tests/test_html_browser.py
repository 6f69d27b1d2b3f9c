"""The HTML report as a person sees it: rendered by headless Chromium, offline.

Needs a Chromium binary (Debian: ``apt-get install -y chromium``); skipped without one.
Run only these with ``python -m pytest -m browser``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_factory import sample_results

from pytest_perfguard.reporting import render_html

pytestmark = pytest.mark.browser

CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium or chromium-browser on PATH (Debian: apt-get install -y chromium)",
)

TRACE_LINKS = {"tests/test_models.py::test_mlp_block": {"trace": "traces/mlp.json",
                                                        "code": "traces/mlp.py"}}

#: Console messages Chromium logs with --enable-logging=stderr look like
#: ``[...:INFO:CONSOLE(12)] "Uncaught TypeError: ...", source: file:///... (12)``; CSP
#: violations (an attempted fetch) are logged the same way as "Refused to ...".
CONSOLE_LINE = re.compile(r":CONSOLE[^\]]*\]\s*(.*)")


def run_chromium(tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *extra,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    return [match.group(1) for line in stderr.splitlines()
            if (match := CONSOLE_LINE.search(line))]


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def of(self, tag: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag]


@pytest.fixture
def report(tmp_path: Path) -> Path:
    page = tmp_path / "report.html"
    page.write_text(render_html(sample_results(), trace_links=TRACE_LINKS), encoding="utf-8")
    return page


@needs_chromium
def test_console_capture_sees_errors(tmp_path: Path) -> None:
    """The harness itself: a page that throws must show up, or the next test proves nothing."""
    page = tmp_path / "throws.html"
    page.write_text("<!DOCTYPE html><title>x</title><p>x</p>"
                    "<script>null.perfguardCanary();</script>", encoding="utf-8")
    result = run_chromium(tmp_path, page, "--dump-dom")
    messages = console_messages(result.stderr)
    assert any("Uncaught" in m and "perfguardCanary" in m for m in messages), result.stderr[-3000:]


@needs_chromium
def test_report_renders_in_chromium(tmp_path: Path, report: Path) -> None:
    result = run_chromium(tmp_path, report, "--dump-dom")
    assert result.returncode == 0, result.stderr[-3000:]
    messages = console_messages(result.stderr)
    assert messages == [], messages  # no uncaught error, no CSP refusal, no log noise

    dom = _Elements()
    dom.feed(result.stdout)
    # The charts are in the rendered DOM, with their bars and points.
    svgs = {a.get("id"): a for a in dom.of("svg")}
    for chart_id in ("chart-launches", "chart-bytes", "chart-memory", "chart-changes",
                     "chart-roofline"):
        assert chart_id in svgs, f"{chart_id} not rendered"
        assert svgs[chart_id]["role"] == "img" and "chart" in svgs[chart_id]["class"]
    assert len(dom.of("rect")) > 30
    assert len([c for c in dom.of("circle") if c.get("class") == "roof-point"]) == 4
    # What a person reads first: the errored tests, then the regressed one.
    entries = [a for t, a in dom.elements if "test-entry" in a.get("class", "").split()]
    assert len(entries) == 9
    assert [e["data-status"] for e in entries[:3]] == ["errored", "errored", "regressed"]
    assert entries[2]["id"].startswith("test-tests-test-models-py-test-mlp-block-")
    # Hostile test ids, kernel names, shapes and error messages stayed text: the only
    # script is the report's own, and no element came from them.
    assert len(dom.of("script")) == 1 and dom.of("img") == [] and dom.of("b") == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in result.stdout
    assert "&lt;/details&gt;&lt;script&gt;alert(7)&lt;/script&gt;" in result.stdout
    # Every bar chart drew its bars: 7 tests x 2 modes (the memory chart: 6 tests, the
    # seventh has no peak memory).
    for chart_id, bars in (("chart-launches", 14), ("chart-bytes", 14), ("chart-memory", 12)):
        chart = result.stdout.split(f'id="{chart_id}"')[1].split("</svg>")[0]
        assert chart.count("<rect ") == bars + 2, chart_id  # plus the two legend swatches
    # The trace links are there and local.
    hrefs = [a["href"] for a in dom.of("a") if not a["href"].startswith("#")]
    assert hrefs == ["traces/mlp.json", "traces/mlp.py"]


@needs_chromium
def test_report_makes_no_network_requests(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    dom = _Elements()
    dom.feed(text)
    for _, attrs in dom.elements:
        for name in ("src", "href", "xlink:href", "action", "poster", "data"):
            value = attrs.get(name, "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (name, value)
    assert not re.search(r"url\(|@import", text)
    csp = [a for a in dom.of("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]


@needs_chromium
def test_report_screenshot(tmp_path: Path, report: Path) -> None:
    shot = tmp_path / "report.png"
    result = run_chromium(tmp_path, report, f"--screenshot={shot}", "--window-size=1280,2400",
                          "--hide-scrollbars")
    assert result.returncode == 0, result.stderr[-3000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2400)
    # A blank page compresses to a few kB; charts, tables and text do not.
    assert len(data) > 60_000
