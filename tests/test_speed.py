"""What makes `pytest --perfguard` cheap, end to end: compile caches and a bounded, clean timer.

- perfguard compiles with inductor's FX-graph and AOT-autograd caches on, in its own cache
  folder. A cache hit replays inductor's byte count (``CachedMetricsDeltas``), so a hit, a
  miss and a damaged cache entry all give the same measurement.
- Timed calls whose threads waited for a CPU are not samples of the model (on 2 cores a
  stalled OpenMP thread team turns a 0.1 ms call into 30-100 ms): they are retaken. How the
  measured time compares with a plain timing depends on the machine's load, so no test
  asserts it: ``benchmarks/bench_timing.py`` shows it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# A model with a graph break: two graphs, one kernel each.
# On 2**16 float32 elements (262,144 bytes): eager runs mul and add, each reading its input
# and writing its output: 2 * (262,144 + 262,144) = 1,048,576 bytes. Compiled, the break keeps
# them apart: graph 1 reads x and writes y, graph 2 reads y and writes the result, the same
# 1,048,576 bytes in 2 launches.
MODELS = """
import torch


class Broken(torch.nn.Module):
    def forward(self, x):
        y = x * 2
        torch._dynamo.graph_break()
        return y + 1


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(64, 64)

    def forward(self, x):
        return torch.nn.functional.gelu(self.fc(x)) * 2 + 1


def test_inference(perfguard):
    result = perfguard(Broken(), torch.randn(2**16))
    assert result.compiled.graphs == 2
    assert result.compiled.graph_breaks == 1
    assert result.eager.kernel_launches == 2
    assert result.compiled.kernel_launches == 2
    assert result.eager.bytes_moved == 1_048_576
    assert result.compiled.bytes_moved == 1_048_576


def test_train(perfguard):
    torch.manual_seed(0)
    result = perfguard(Net(), torch.randn(32, 64), train=True)
    assert result.compiled.bytes_moved is not None and result.compiled.bytes_moved > 0
"""

# Inductor's own cache counters (process-wide; torch.compiler.reset does not clear them),
# written at the end of the inner session so the outer test knows hits from misses.
CACHE_STATS_CONFTEST = """
import json
import os


def pytest_sessionfinish(session):
    from torch._dynamo.utils import counters

    with open(os.environ["CACHE_STATS"], "w") as handle:
        json.dump({"inductor": dict(counters["inductor"]),
                   "aot_autograd": dict(counters["aot_autograd"])}, handle)
"""

#: Everything a measurement holds that must not depend on the compile cache.
DETERMINISTIC = ("kernel_launches", "kernels", "bytes_moved", "flops", "graphs", "graph_breaks",
                 "graph_break_details", "recompiles")


def _deterministic(results: dict) -> dict:
    return {key: {mode: {metric: entry["measurement"][mode][metric] for metric in DETERMINISTIC}
                  for mode in ("eager", "compiled")}
            for key, entry in results.items()}


def test_cache_hit_miss_and_damaged_entries_measure_alike(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, results_of
) -> None:
    """Three runs of the same tests in one fresh perfguard cache folder: all misses, all hits,
    then with every FX-graph and AOT-autograd entry truncated to half. Each run passes and
    the measurements (inference with a graph break; a training step, forward and backward
    graphs) are identical."""
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    cache = pytester.path / "perfguard-cache"
    stats_file = pytester.path / "cache-stats.json"
    monkeypatch.setenv("PERFGUARD_CACHE_DIR", str(cache))
    monkeypatch.setenv("CACHE_STATS", str(stats_file))
    pytester.makeconftest(CACHE_STATS_CONFTEST)
    pytester.makepyfile(test_cache=MODELS)

    runs: dict[str, tuple[dict, dict]] = {}
    for run in ("miss", "hit", "damaged"):
        if run == "damaged":
            # perfguard keeps one folder per CPU ISA level under its cache folder.
            entries = [p for sub in ("fxgraph", "aotautograd") for p in cache.glob(f"isa-*/{sub}/**/*")
                       if p.is_file()]
            assert entries, "the first run wrote no cache entries"
            for entry in entries:
                entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
        result = pytester.runpytest("--perfguard", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=2)
        runs[run] = (results_of(pytester), json.loads(stats_file.read_text()))

    miss, hit, damaged = (runs[r][1] for r in ("miss", "hit", "damaged"))
    # 2 graphs for inference, forward + backward for training: 4 FX graphs.
    assert miss["inductor"].get("fxgraph_cache_miss") == 4
    assert not miss["inductor"].get("fxgraph_cache_hit")
    assert hit["inductor"].get("fxgraph_cache_hit") == 4
    assert not hit["inductor"].get("fxgraph_cache_miss")
    assert hit["aot_autograd"].get("autograd_cache_hit", 0) >= 1
    assert damaged["inductor"].get("fxgraph_cache_miss") == 4  # unreadable entries: misses

    numbers = {run: _deterministic(results) for run, (results, _) in runs.items()}
    assert numbers["miss"] == numbers["hit"] == numbers["damaged"]
    train = numbers["hit"]["test_cache.py::test_train"]["compiled"]
    assert train["bytes_moved"] > 0


def test_user_inductor_cache_dir_is_respected(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """perfguard's folder by default; the user's TORCHINDUCTOR_CACHE_DIR when set."""
    ours, theirs = pytester.path / "perfguard-cache", pytester.path / "user-cache"
    monkeypatch.setenv("PERFGUARD_CACHE_DIR", str(ours))
    pytester.makepyfile(
        """
import torch

def test_chain(perfguard):
    perfguard(lambda x: x * 2 + 1, torch.randn(1024))
"""
    )
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    pytester.runpytest("--perfguard", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert any(ours.glob("isa-*/fxgraph/**/*")), "perfguard's cache folder got no FX-graph entry"

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(theirs))
    pytester.runpytest("--perfguard", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert any((theirs / "fxgraph").rglob("*")), "the user's cache folder got no FX-graph entry"


def test_user_workflow_caches_perfguards_compile_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """The workflow users copy restores the folder perfguard compiles in by default, and no
    step points TORCHINDUCTOR_CACHE_DIR elsewhere (which would take precedence over it)."""
    yaml = pytest.importorskip("yaml", reason="reading the workflow needs PyYAML")
    from pytest_perfguard.collectors.private.inductor import perfguard_cache_dir

    workflow = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "perfguard.yml"
    cpu = yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"]["cpu"]
    caches = [s for s in cpu["steps"] if str(s.get("uses", "")).startswith("actions/cache@")]
    cached = {p.strip() for s in caches for p in s["with"]["path"].splitlines() if p.strip()}
    assert "~/.cache/perfguard" in cached
    assert not any("TORCHINDUCTOR_CACHE_DIR" in str(s.get("run", "")) for s in cpu["steps"])
    monkeypatch.delenv("PERFGUARD_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert perfguard_cache_dir() == (Path.home() / ".cache" / "perfguard" / "inductor").resolve()


# 2**16 float32 elements: the compiled chain is one kernel reading x (262,144 bytes) and
# writing the result (262,144 bytes).
CHAIN = """
import torch

def test_chain(perfguard):
    perfguard(lambda x: (x * 2 + 1).relu(), torch.randn(2**16))
"""


def test_compiled_kernels_are_plain_inductor_code_named_in_the_profile(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, results_of
) -> None:
    """perfguard's compiles generate the same C++ as a plain compile (no profiler handle in
    the kernels: that cost ~12% more g++ time per kernel), yet the profiled call still sees
    the kernel: one launch, named, and the bytes of the chain."""
    cache = pytester.path / "perfguard-cache"
    monkeypatch.setenv("PERFGUARD_CACHE_DIR", str(cache))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    pytester.makepyfile(test_chain=CHAIN)
    pytester.runpytest("--perfguard", "-p", "no:cacheprovider").assert_outcomes(passed=1)

    compiled = results_of(pytester)["test_chain.py::test_chain"]["measurement"]["compiled"]
    assert compiled["kernel_launches"] == 1
    assert [k["name"] for k in compiled["kernels"]] == ["cpp_fused_add_mul_relu_0"]
    assert compiled["bytes_moved"] == 524_288
    sources = [p.read_text() for p in cache.rglob("*.cpp")]
    assert any('extern "C"' in s for s in sources), "no generated C++ kernel in the cache folder"
    assert not any("RAIIAtenRecordFunctionHandle" in s or "aoti_runtime/utils.h" in s
                   for s in sources)


def test_a_plain_compiles_cache_entry_never_serves_perfguard(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, results_of
) -> None:
    """With TORCHINDUCTOR_CACHE_DIR set, plain pytest and --perfguard share the user's
    folder. A plain compile's entry carries no byte count; perfguard's compiles are keyed
    apart (a no-op post-grad pass's uuid), so --perfguard compiles afresh (an FX-graph cache
    miss) and records the chain's bytes, and a second --perfguard run is a hit with the
    same numbers."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(pytester.path / "shared-cache"))
    stats_file = pytester.path / "cache-stats.json"
    monkeypatch.setenv("CACHE_STATS", str(stats_file))
    pytester.makeconftest(CACHE_STATS_CONFTEST)
    pytester.makepyfile(test_chain=CHAIN)

    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    plain = json.loads(stats_file.read_text())["inductor"]
    assert plain.get("fxgraph_cache_miss") == 1

    seen = []
    for _ in range(2):
        pytester.runpytest("--perfguard", "-p", "no:cacheprovider").assert_outcomes(passed=1)
        compiled = results_of(pytester)["test_chain.py::test_chain"]["measurement"]["compiled"]
        seen.append((json.loads(stats_file.read_text())["inductor"], compiled))
    (first_stats, first), (second_stats, second) = seen
    assert first_stats.get("fxgraph_cache_miss") == 1 and not first_stats.get("fxgraph_cache_hit")
    assert second_stats.get("fxgraph_cache_hit") == 1 and not second_stats.get("fxgraph_cache_miss")
    for compiled in (first, second):
        assert compiled["bytes_moved"] == 524_288
        assert compiled["kernel_launches"] == 1


@pytest.mark.parametrize("how", ["compile_options", "inductor_config"])
def test_cpp_wrapper_kernels_are_still_counted(
    pytester: pytest.Pytester, results_of, how: str
) -> None:
    """With ``cpp_wrapper`` (a measurement's compile option, or set in inductor's config by
    the project) the kernels are called from C++, out of Python's reach: perfguard compiles
    them with inductor's kernel profiling instead, and counts the same."""
    if how == "compile_options":
        source = CHAIN.replace("torch.randn(2**16))",
                               "torch.randn(2**16), compile_options={'cpp_wrapper': True})")
    else:
        source = CHAIN.replace("import torch\n",
                               "import torch\nimport torch._inductor.config\n"
                               "torch._inductor.config.cpp_wrapper = True\n")
    pytester.makepyfile(test_cpp_chain=source)
    pytester.runpytest("--perfguard", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    compiled = results_of(pytester)["test_cpp_chain.py::test_chain"]["measurement"]["compiled"]
    assert compiled["kernel_launches"] == 1
    assert [k["name"] for k in compiled["kernels"]] == ["cpp_fused_add_mul_relu_0"]
    assert compiled["bytes_moved"] == 524_288
