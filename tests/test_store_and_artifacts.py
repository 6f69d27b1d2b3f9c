"""Atomic baseline writes, and the optional artifacts (traces, junit properties)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_perfguard._files import atomic_write
from pytest_perfguard.fixture import trace_folder_name


def test_interrupted_write_leaves_the_old_file_whole(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "baseline.json"
    path.write_text('{"old": true}\n')

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt  # Ctrl-C (or a killed CI job) in the middle of the write

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, '{"new": true, "half": ' + "x" * 100_000)
    assert path.read_text() == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["baseline.json"]  # no temp file left


def test_traces_and_junit_properties(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_x="""
import torch

def test_chain(perfguard):
    perfguard(lambda x: x * 2 + 1, torch.randn(2**20))
""")
    result = pytester.runpytest("--perfguard", "--perfguard-traces", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1)
    # One folder per measurement: a readable prefix and a hash of (test id, name).
    folder = trace_folder_name("test_x.py::test_chain", "default")
    assert folder.startswith("test_x.py_test_chain-default-")
    traces = pytester.path / ".perfguard" / "report" / "traces" / folder
    assert (traces / "trace.json").stat().st_size > 0
    code = (traces / "code.py").read_text()
    assert "cpp_fused_add_mul_0" in code
    html = (pytester.path / ".perfguard" / "report" / "report.html").read_text()
    assert f"traces/{folder}/trace.json" in html
    properties = {
        p.get("name"): p.get("value")
        for p in ET.parse(pytester.path / "junit.xml").iter("property")
    }
    assert properties["perfguard.eager.kernel_launches"] == "2"
    assert properties["perfguard.compiled.kernel_launches"] == "1"
    assert properties["perfguard.compiled.bytes_moved"] == "8388608"
