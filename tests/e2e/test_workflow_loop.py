"""The CI loop, run from the workflow files themselves with act (tests/workflows/act.py).

Each scenario builds a bare `origin` and a clone of this repository, puts a model
stack up on the simulated cluster (the e2e tier's platform and pulumi fixtures),
and runs a workflow as GitHub would for the event: the jobs' own shell steps, the
repository's checksum-verifying Pulumi CLI install (served the e2e tools' CLI on
127.0.0.1), and stand-ins for the third-party actions. A run is judged by the jobs
act reports and by what the stand-ins recorded, never by act's exit code alone.

Scenario 4: preview.yml on a PR that changes one weight previews exactly that
stack, and only its split moves; a failing `git diff` fails the job. The end of
scenario 2: a push to main that records an aborted canary (weight 0, as a
rollback commit does) is applied by deploy.yml, leaving the split at 100/0, and
the registry's `challenger` alias goes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.control_plane import ControlPlane
from tests.e2e.engine import PROGRAM_PACKAGES, _pins
from tests.e2e.pulumi_cli import PulumiCli
from tests.e2e.test_model_stack_rollout import SERVING, wait_for_requests
from tests.e2e.tools import provide_tools, terminal_progress
from tests.support.helpers import ROOT
from tests.support.linkerd_exporter import LinkerdExporter, Traffic
from tests.support.servers import free_port, wait_until_ready
from tests.workflows.act import BIN_STAND_INS, JOB_TOKEN, Act, ActRun, base_env
from tests.workflows.git_repo import Repository, git, make_repository, pull_request_event

pytestmark = pytest.mark.e2e

MODEL_PROJECT = "stacks/model"
STACK = "fraud-detector-act"
# The stack file of a model stack on the simulated cluster, canary at 10%.
STACK_CONFIG = """\
  mlmodel:platformStack: {platform}
  mlmodel:environment: dev
  mlmodel:model:
    name: fraud-detector
    registeredModel: fraud_detector
  mlmodel:team: team-fraud
  mlmodel:serving:
    replicas:
      min: 1
      max: 1
  mlmodel:stable:
    version: v5
    image: ghcr.io/mlflow/mlflow:v3.15.1-full
    modelUri: models:/fraud_detector/5
  mlmodel:canary:
    version: v6
    image: ghcr.io/mlflow/mlflow:v3.15.1-full
    modelUri: models:/fraud_detector/6
    weight: 10
  mlmodel:allowedClients:
    - serviceAccount: api-gateway
      namespace: api-gateway
"""
VARIABLES = {
    "AWS_REGION": "us-east-1",
    "AWS_PREVIEW_ROLE_ARN": "arn:aws:iam::123456789012:role/mlplatform-preview",
    "AWS_DEPLOY_ROLE_ARN": "arn:aws:iam::123456789012:role/mlplatform-deploy",
    "AWS_DEPLOY_MODELS_ROLE_ARN": "arn:aws:iam::123456789012:role/mlplatform-deploy-models",
    "MLFLOW_TRACKING_URI": "http://127.0.0.1:1",
    "EKS_CLUSTER_NAME": "mlplatform-e2e",
}
# The preview of a weight step: the split and the rollout record, nothing else.
# An MLflow server takes over a minute to answer on a loaded 2-core machine.
MLFLOW_READY_TIMEOUT = 240.0
WEIGHT_STEP = {
    "kubernetes:ml.example.com/v1:InferenceService fraud-detector-inference-service",
    "kubernetes:split.smi-spec.io/v1alpha2:TrafficSplit fraud-detector-split",
}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def act_binary(request: pytest.FixtureRequest) -> str:
    return provide_tools(tools=("act",), progress=terminal_progress(request.config))["act"]


def _pulumi_version() -> str:
    (version,) = [line.split("==")[1] for line in (ROOT / "requirements.txt").read_text().splitlines()
                  if line.startswith("pulumi==")]  # fmt: skip
    return version


@contextlib.contextmanager
def _release_server(e2e_tools: dict[str, str], root: Path, *, tampered: bool = False) -> Iterator[str]:
    """Pulumi's release layout (`v<version>/<tarball>` and its checksums file), on 127.0.0.1, holding the
    e2e tools' CLI under the version requirements.txt pins: what `.github/actions/pulumi-cli` downloads.
    `tampered`: the tarball is not the one its checksum line names."""
    version = _pulumi_version()
    release = root / f"v{version}"
    release.mkdir(parents=True)
    tarball = release / f"pulumi-v{version}-linux-x64.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name in ("pulumi", "pulumi-language-python", "pulumi-language-python-exec"):
            archive.add(Path(e2e_tools["pulumi"]).parent / name, arcname=f"pulumi/{name}")
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if tampered:
        with tarball.open("ab") as data:
            data.write(b"\0")
    (release / f"pulumi-{version}-checksums.txt").write_text(
        f"{'0' * 64}  pulumi-v{version}-darwin-arm64.tar.gz\n{digest}  {tarball.name}\n"
    )
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def cli_release(e2e_tools: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _release_server(e2e_tools, tmp_path_factory.mktemp("pulumi-release")) as url:
        yield url


def _pin(requirements: str, name: str) -> str:
    (pin,) = [line.strip() for line in (ROOT / requirements).read_text().splitlines()
              if line.lower().startswith(f"{name.lower()}==")]  # fmt: skip
    return pin


@pytest.fixture(scope="session")
def workflow_venv(e2e_tools: dict[str, str]) -> Path:
    """The `./venv` the workflows' `make setup` would build, less the provider packages whose plugins the
    e2e tier does not build (the engine wants a plugin for each one installed): the programs' packages,
    plus ruamel.yaml (the stack file editor) and mlflow (the registry client of the alias step), at their
    pins; kept in the tools' cache, keyed by the pins."""
    pins = [*_pins(PROGRAM_PACKAGES), _pin("requirements.txt", "ruamel.yaml"), _pin("requirements-dev.txt", "mlflow")]
    venv = Path(e2e_tools["CACHE"]) / f"workflow-python-{hashlib.sha256(' '.join(pins).encode()).hexdigest()[:12]}"
    if not (venv / ".pins").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *pins], check=True, timeout=1800
        )
        (venv / ".pins").write_text("\n".join(pins) + "\n")
    return venv


@pytest.fixture
def act(
    act_binary: str,
    pulumi: PulumiCli,
    workflow_venv: Path,
    cli_release: str,
    control_plane: ControlPlane,
    tmp_path: Path,
) -> Act:
    env = base_env(Path(sys.executable).parent, workflow_venv)
    # The engine's environment as the e2e tier sets it (backend, passphrase, plugins on PATH), but the
    # program is the workspace's: the setup-python stand-in points PYTHONPATH there.
    env.update({k: v for k, v in pulumi.env().items() if k.startswith("PULUMI_") or k == "PATH"})
    env.pop("PULUMI_PYTHON_CMD")
    # As on a runner, no KUBECONFIG: the `aws eks update-kubeconfig` stand-in writes the simulated
    # cluster's to ~/.kube/config, where the rollout tool finds it.
    env["PATH"] = f"{BIN_STAND_INS}{os.pathsep}{env['PATH']}"
    env["MLPLATFORM_ACT_KUBECONFIG"] = str(control_plane.admin_kubeconfig)
    return Act(binary=act_binary, env=env, variables={**VARIABLES, "PULUMI_DOWNLOAD_URL": cli_release},
               workdir=tmp_path / "act")  # fmt: skip


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    return make_repository(tmp_path / "github")


def _model_stack_up(repository: Repository, pulumi: PulumiCli, platform_stack: str) -> Path:
    """The model stack, its file committed on main and pushed, up on the simulated cluster."""
    project = repository.clone / MODEL_PROJECT
    pulumi.stack_init(project, STACK)
    stack_file = project / f"Pulumi.{STACK}.yaml"
    stack_file.write_text(stack_file.read_text() + "config:\n" + STACK_CONFIG.format(platform=platform_stack))
    repository.commit(f"{STACK}: a canary at 10%")
    repository.push("main")
    pulumi.up(project, STACK)
    return stack_file


def _remove_model_stack(repository: Repository, pulumi: PulumiCli) -> None:
    """Destroyed and removed from the session's backend, so the next scenario can create it again."""
    project = repository.clone / MODEL_PROJECT
    pulumi.destroy(project, STACK)
    pulumi.run("stack", "rm", "--yes", "--stack", STACK, cwd=project)


def _split(api: ControlPlane) -> dict[str, int]:
    split = api.get("/apis/split.smi-spec.io/v1alpha2/namespaces/ml-serving/trafficsplits/fraud-detector")
    return {backend["service"]: backend["weight"] for backend in split["spec"]["backends"]}


def _changes(preview_json: str) -> set[str]:
    steps = json.loads(preview_json).get("steps", [])
    return {
        f"{step['urn'].split('::')[-2].split('$')[-1]} {step['urn'].rsplit('::', 1)[-1]}"
        for step in steps
        if step["op"] not in ("same", "read")
    }


def test_preview_of_a_weight_step_previews_exactly_that_stack(
    act: Act, repository: Repository, pulumi: PulumiCli, platform_stack: str, control_plane: ControlPlane
) -> None:
    """Scenario 4: a PR that moves one stack's weight previews that stack alone, and only its split moves."""
    stack_file = _model_stack_up(repository, pulumi, platform_stack)
    try:
        repository.branch("step-25")
        stack_file.write_text(stack_file.read_text().replace("    weight: 10\n", "    weight: 25\n"))
        repository.commit(f"{STACK}: 10% -> 25%")
        run = act.run("pull_request", "preview.yml", pull_request_event(repository, base="main", head="step-25"),
                      repository.clone)  # fmt: skip
        print(f"act preview.yml: {run.seconds:.1f}s")
        assert run.jobs == {"preview/changed": "success", f"preview/preview {STACK}": "success"}, run.describe()
        assert run.pulumi_calls() == [("preview", MODEL_PROJECT, STACK)], run.describe()
        (call,) = [r for r in run.records if r["action"] == "pulumi"]
        assert call["version"] == _pulumi_version()
        assert _changes(call["output"]) == WEIGHT_STEP, call["output"][-2000:]
        (aws,) = [r for r in run.records if r["action"] == "configure-aws-credentials"]
        assert aws["role"] == VARIABLES["AWS_PREVIEW_ROLE_ARN"]
        # A preview applies nothing.
        assert _split(control_plane) == {"fraud-detector-v5": 90, "fraud-detector-v6": 10}
    finally:
        _remove_model_stack(repository, pulumi)


def test_a_failing_git_diff_fails_the_preview(act: Act, repository: Repository) -> None:
    """Scenario 4: the diff cannot be computed (the base branch is not on origin): the job fails, naming
    git's error, and no preview runs. Before pipefail this went green with an empty matrix."""
    stack_file = repository.clone / MODEL_PROJECT / "Pulumi.fraud-detector-dev.yaml"
    repository.branch("step")
    stack_file.write_text(stack_file.read_text() + "\n")
    repository.commit("touch a stack file")
    run = act.run("pull_request", "preview.yml", pull_request_event(repository, base="release", head="step"),
                  repository.clone)  # fmt: skip
    print(f"act preview.yml (broken diff): {run.seconds:.1f}s")
    assert run.jobs == {"preview/changed": "failure"}, run.describe()
    assert "origin/release...HEAD" in run.text, run.describe()
    assert run.pulumi_calls() == []
    assert run.returncode != 0


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow server on 127.0.0.1 holding fraud_detector versions 1-6, v6 as `challenger`."""
    import mlflow

    workdir = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    executable = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    with (workdir / "mlflow.log").open("w") as log:
        process = subprocess.Popen(
            [executable, "server", "--backend-store-uri", f"sqlite:///{workdir}/mlflow.db",
             "--default-artifact-root", str(workdir / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_until_ready(process, f"{uri}/health", name="mlflow server", log_path=workdir / "mlflow.log",
                         timeout=MLFLOW_READY_TIMEOUT, interval=0.3)  # fmt: skip
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = client.create_experiment("workflow-loop")
        client.create_registered_model("fraud_detector")
        for _ in range(6):
            run = client.create_run(experiment)
            client.create_model_version(
                "fraud_detector", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
            )
        client.set_registered_model_alias("fraud_detector", "champion", "5")
        client.set_registered_model_alias("fraud_detector", "challenger", "6")
        yield uri
    finally:
        try:
            os.killpg(process.pid, 15)
            process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, 9)
            process.wait(timeout=5)


def _aliases(uri: str) -> dict[str, str]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    return {alias: str(version) for alias, version in client.get_registered_model("fraud_detector").aliases.items()}


def push_event(repository: Repository, before: str) -> dict:
    """The `push` payload GitHub sends for a push to main."""
    from tests.workflows.act import REPOSITORY

    repo = {"full_name": REPOSITORY, "name": REPOSITORY.split("/")[1], "owner": {"login": REPOSITORY.split("/")[0]}}
    return {"ref": "refs/heads/main", "before": before, "after": repository.sha(), "repository": repo}


def test_deploy_of_an_aborted_canary_leaves_the_split_at_100_0(
    act: Act,
    repository: Repository,
    pulumi: PulumiCli,
    platform_stack: str,
    control_plane: ControlPlane,
    tracking_uri: str,
) -> None:
    """Scenario 2, its end: main records the abort (weight 0, the reason in the comment), deploy.yml's push run
    applies exactly that stack with the deploy-models role, the split is 100/0 and `challenger` is gone."""
    stack_file = _model_stack_up(repository, pulumi, platform_stack)
    try:
        assert _split(control_plane) == {"fraud-detector-v5": 90, "fraud-detector-v6": 10}
        before = repository.sha()
        stack_file.write_text(
            stack_file.read_text().replace("    weight: 10\n", "    weight: 0  # aborted: gate failed\n")
        )
        repository.commit(f"{STACK}: abort the canary")
        repository.push("main")
        act.variables["MLFLOW_TRACKING_URI"] = tracking_uri
        run = act.run("push", "deploy.yml", push_event(repository, before), repository.clone)
        print(f"act deploy.yml: {run.seconds:.1f}s")
        # up-platform is skipped by its `if:` (no platform stack changed): act reports no result for it.
        assert run.jobs == {"deploy/changed": "success", f"deploy/up {STACK}": "success"}, run.describe()
        assert run.pulumi_calls() == [("up", MODEL_PROJECT, STACK)], run.describe()
        (aws,) = [r for r in run.records if r["action"] == "configure-aws-credentials"]
        assert aws["role"] == VARIABLES["AWS_DEPLOY_MODELS_ROLE_ARN"]
        assert _split(control_plane) == {"fraud-detector-v5": 100, "fraud-detector-v6": 0}
        assert _aliases(tracking_uri) == {"champion": "5"}
    finally:
        _remove_model_stack(repository, pulumi)


def test_a_tampered_pulumi_release_fails_the_install(
    act: Act, repository: Repository, e2e_tools: dict[str, str], tmp_path: Path
) -> None:
    """The CLI install checks the tarball against the release's checksums file before unpacking it: a tarball
    that does not match fails the job, and pulumi never runs."""
    stack_file = repository.clone / MODEL_PROJECT / "Pulumi.fraud-detector-dev.yaml"
    repository.branch("step")
    stack_file.write_text(stack_file.read_text() + "\n")
    repository.commit("touch a stack file")
    with _release_server(e2e_tools, tmp_path / "tampered", tampered=True) as url:
        act.variables["PULUMI_DOWNLOAD_URL"] = url
        run = act.run("pull_request", "preview.yml", pull_request_event(repository, base="main", head="step"),
                      repository.clone)  # fmt: skip
    assert run.jobs == {"preview/changed": "success", "preview/preview fraud-detector-dev": "failure"}, run.describe()
    assert "pulumi-v" in run.text and ": FAILED" in run.text, run.describe()
    assert run.pulumi_calls() == []


# -- scenarios 2 and 3: a failing canary, rolled back by a scheduled rollout.yml run -----------------------

# The gate's window and the failed checks that abort; the watch's interval comes from the variables below.
ANALYSIS = """\
  mlmodel:analysis:
    interval: 5s
    minRequests: 20
    failureThreshold: 2
"""
FAILING = Traffic(rps=40, error_ratio=0.5, latency_ms=30)
# rollout.yml's watch, scaled to the test: a check a second, enough checks per run for the rollback.
WATCH_VARIABLES = {"ROLLOUT_WATCH_INTERVAL": "1", "ROLLOUT_WATCH_MAX_CHECKS": "20"}
ROLLED_BACK = {"fraud-detector-v5": 100, "fraud-detector-v6": 0}


def _only_this_canary(repository: Repository) -> None:
    """The example prod stack's canary takes traffic in this repository, and rollout.yml would watch it
    too (it is not on the simulated cluster): main sets it to 0 first, so the matrix is this test's stack."""
    prod = repository.clone / MODEL_PROJECT / "Pulumi.fraud-detector-prod.yaml"
    text = prod.read_text()
    stepped = re.sub(r"(\n    weight: )\d+", r"\g<1>0", text, count=1)
    assert stepped != text, "the example prod stack has no canary weight to zero"
    prod.write_text(stepped)
    repository.commit("fraud-detector-prod: no canary (the act scenarios watch their own stack)")


def _failing_canary_up(
    repository: Repository,
    pulumi: PulumiCli,
    platform_stack: str,
    exporter: LinkerdExporter,
    prometheus: str,
    act: Act,
) -> Path:
    """The stack up at 10% with the gate's analysis, its canary failing in Prometheus; act set to read it."""
    _only_this_canary(repository)
    exporter.set_traffic(SERVING, "fraud-detector-v6", FAILING)
    project = repository.clone / MODEL_PROJECT
    pulumi.stack_init(project, STACK)
    stack_file = project / f"Pulumi.{STACK}.yaml"
    config = STACK_CONFIG.format(platform=platform_stack) + ANALYSIS
    stack_file.write_text(stack_file.read_text() + "config:\n" + config)
    repository.commit(f"{STACK}: a canary at 10%")
    repository.push("main")
    pulumi.up(project, STACK)
    wait_for_requests(prometheus, "fraud-detector-v6", FAILING.rps * 2, window="5s")
    act.variables.update(WATCH_VARIABLES, PROMETHEUS_URL=prometheus)
    return stack_file


def _scheduled_watch(act: Act, repository: Repository) -> ActRun:
    run = act.run("schedule", "rollout.yml", {"schedule": "*/10 * * * *"}, repository.clone)
    print(f"act rollout.yml (schedule): {run.seconds:.1f}s")
    assert run.jobs == {"rollout/canaries": "success", f"rollout/watch {STACK}": "failure"}, run.describe()
    # The job failed because watch refused the canary (exit 1) and rolled it back, not for another reason.
    assert "aborted" in _watch_events(run), run.describe()
    (kube,) = [r for r in run.records if r["action"] == "aws eks update-kubeconfig"]
    assert kube["cluster"] == VARIABLES["EKS_CLUSTER_NAME"]
    return run


def _watch_events(run: ActRun) -> list[str]:
    """The `event` of each JSON line `rollout watch --json` printed in the run's log."""
    events = []
    for entry in run.log:
        line = str(entry.get("msg", "")).strip()
        if line.startswith("{") and '"event"' in line:
            with contextlib.suppress(json.JSONDecodeError):
                events.append(str(json.loads(line).get("event")))
    return events


def _record_status(api: ControlPlane) -> dict:
    record = api.get("/apis/ml.example.com/v1/namespaces/ml-serving/inferenceservices/fraud-detector")
    return record.get("status", {})


def test_a_scheduled_rollback_lands_on_main_and_the_next_deploy_keeps_it(
    act: Act,
    repository: Repository,
    pulumi: PulumiCli,
    platform_stack: str,
    control_plane: ControlPlane,
    exporter: LinkerdExporter,
    prometheus: str,
    tracking_uri: str,
) -> None:
    """Scenario 2: a scheduled rollout.yml run rolls the failing canary back and pushes the commit to main on
    origin; deploy.yml's push run for that commit passes the guard and leaves the split at 100/0."""
    stack_file = _failing_canary_up(repository, pulumi, platform_stack, exporter, prometheus, act)
    try:
        before = repository.sha()
        run = _scheduled_watch(act, repository)
        assert run.pulumi_calls() == [], "watch applies through the Automation API, not pulumi/actions"
        assert not [r for r in run.records if r["action"] == "gh"], "the push to main went through: no PR"
        assert _split(control_plane) == ROLLED_BACK
        assert _record_status(control_plane)["phase"] == "Aborted"
        # The rollback is the one new commit on origin's main, on top of what the run checked out.
        assert git(repository.origin, "rev-parse", "main~1") == before
        on_main = git(repository.origin, "show", f"main:{MODEL_PROJECT}/{stack_file.name}")
        # The judge aborts at once on a decisive statistic, and the weight line says why.
        assert "    weight: 0  # aborted: success rate" in on_main and "e-value" in on_main, on_main

        # The push of that commit to main runs deploy.yml, from main as origin has it.
        git(repository.clone, "fetch", "--quiet", "origin")
        git(repository.clone, "reset", "--quiet", "--hard", "origin/main")
        act.variables["MLFLOW_TRACKING_URI"] = tracking_uri
        deploy = act.run("push", "deploy.yml", push_event(repository, before), repository.clone)
        print(f"act deploy.yml after the rollback: {deploy.seconds:.1f}s")
        assert deploy.jobs == {"deploy/changed": "success", f"deploy/up {STACK}": "success"}, deploy.describe()
        assert deploy.pulumi_calls() == [("up", MODEL_PROJECT, STACK)], deploy.describe()
        assert _split(control_plane) == ROLLED_BACK
    finally:
        exporter.set_traffic(SERVING, "fraud-detector-v6", Traffic(rps=0))
        _remove_model_stack(repository, pulumi)


REFUSE_MAIN = """#!/bin/sh
# Branch protection: nothing but a PR merge updates main.
while read -r old new ref; do
  [ "$ref" = refs/heads/main ] && { echo "GH006: Protected branch update failed for refs/heads/main." >&2; exit 1; }
done
exit 0
"""


def test_a_refused_push_opens_the_rollback_pr_and_main_cannot_bring_the_canary_back(
    act: Act,
    repository: Repository,
    pulumi: PulumiCli,
    platform_stack: str,
    control_plane: ControlPlane,
    exporter: LinkerdExporter,
    prometheus: str,
) -> None:
    """Scenario 3: origin refuses pushes to main; the scheduled run rolls back, pushes a rollout/ branch and
    opens the PR (with the job's token, then test.yml dispatched on the branch for its checks); a deploy.yml
    run from the old main, which still gives the canary 10%, is refused by the guard, naming the abort."""
    stack_file = _failing_canary_up(repository, pulumi, platform_stack, exporter, prometheus, act)
    try:
        hook = repository.origin / "hooks" / "pre-receive"
        hook.write_text(REFUSE_MAIN)
        hook.chmod(0o755)
        old_main = repository.sha()
        run = _scheduled_watch(act, repository)
        assert _split(control_plane) == ROLLED_BACK
        assert git(repository.origin, "rev-parse", "main") == old_main, "main moved despite the hook"
        status = _record_status(control_plane)
        branch = status["abort"]["pr"]
        assert branch.startswith(f"rollout/{STACK}-"), status
        on_branch = git(repository.origin, "show", f"{branch}:{MODEL_PROJECT}/{stack_file.name}")
        assert "    weight: 0  # aborted:" in on_branch, on_branch
        # No App configured: the job's token opened the PR, and test.yml was dispatched on its branch.
        calls = [(r["args"][:2], r["token"]) for r in run.records if r["action"] == "gh"]
        assert calls == [(["pr", "create"], JOB_TOKEN), (["workflow", "run"], JOB_TOKEN)], run.records
        (dispatch,) = [r["args"] for r in run.records if r["action"] == "gh" and r["args"][:2] == ["workflow", "run"]]
        assert dispatch == ["workflow", "run", "test.yml", "--ref", branch]

        # Another merge re-runs deploy.yml from the old main, whose file still gives v6 10%: refused by name.
        before = git(repository.clone, "rev-parse", "HEAD~1")
        deploy = act.run("push", "deploy.yml", push_event(repository, before), repository.clone)
        print(f"act deploy.yml from the old main: {deploy.seconds:.1f}s")
        assert deploy.jobs == {"deploy/changed": "success", f"deploy/up {STACK}": "failure"}, deploy.describe()
        assert deploy.pulumi_calls() == [], "the guard stops the job before `up`"
        assert "refused: canary v6 was aborted on the cluster" in deploy.text, deploy.describe()
        assert branch in deploy.text, deploy.describe()
        assert _split(control_plane) == ROLLED_BACK
    finally:
        exporter.set_traffic(SERVING, "fraud-detector-v6", Traffic(rps=0))
        _remove_model_stack(repository, pulumi)


# -- scenario 1: a healthy canary advances across scheduled runs shorter than its dwell ---------------------

HEALTHY = Traffic(rps=40, latency_ms=30)
# Three steps, each dwelling 15 s; a run watches 3 checks 2 s apart, so no step completes within one run.
WALK = """\
  mlmodel:steps: [10, 50, 100]
  mlmodel:analysis:
    interval: 5s
    minRequests: 20
    dwellMinutes: [15s, 15s, 15s]
"""
WALK_VARIABLES = {"ROLLOUT_WATCH_INTERVAL": "2", "ROLLOUT_WATCH_MAX_CHECKS": "3"}
MAX_RUNS = 12


def _weight_on_main(repository: Repository, stack_file: Path) -> int:
    text = git(repository.origin, "show", f"main:{MODEL_PROJECT}/{stack_file.name}")
    (weight,) = re.findall(r"\n  mlmodel:canary:\n(?:    .*\n)*?    weight: (\d+)", text)
    return int(weight)


def test_a_healthy_canary_advances_across_scheduled_runs_shorter_than_its_dwell(
    act: Act,
    repository: Repository,
    pulumi: PulumiCli,
    platform_stack: str,
    control_plane: ControlPlane,
    exporter: LinkerdExporter,
    prometheus: str,
) -> None:
    """Scenario 1 (its walk): each scheduled rollout.yml run starts from main as origin has it, as a runner's
    checkout does; the step's start and its checks carry over in the record's status, so a 15 s dwell completes
    across runs of ~6 s of checks. The canary reaches 100% on main and on the cluster in at least 3 runs,
    each advance a commit pushed to main."""
    _only_this_canary(repository)
    for deployment in ("fraud-detector-v5", "fraud-detector-v6"):
        exporter.set_traffic(SERVING, deployment, HEALTHY)
    project = repository.clone / MODEL_PROJECT
    pulumi.stack_init(project, STACK)
    stack_file = project / f"Pulumi.{STACK}.yaml"
    stack_file.write_text(stack_file.read_text() + "config:\n" + STACK_CONFIG.format(platform=platform_stack) + WALK)
    repository.commit(f"{STACK}: a canary at 10%")
    repository.push("main")
    try:
        pulumi.up(project, STACK)
        wait_for_requests(prometheus, "fraud-detector-v6", HEALTHY.rps * 2, window="5s")
        act.variables.update(WALK_VARIABLES, PROMETHEUS_URL=prometheus)
        weights = [_weight_on_main(repository, stack_file)]
        runs = 0
        while weights[-1] < 100:
            assert runs < MAX_RUNS, f"still at {weights[-1]}% after {runs} runs: {weights}"
            git(repository.clone, "fetch", "--quiet", "origin")
            git(repository.clone, "reset", "--quiet", "--hard", "origin/main")
            run = act.run("schedule", "rollout.yml", {"schedule": "*/10 * * * *"}, repository.clone)
            runs += 1
            print(f"act rollout.yml run {runs}: {run.seconds:.1f}s, events {_watch_events(run)}")
            assert run.jobs == {"rollout/canaries": "success", f"rollout/watch {STACK}": "success"}, run.describe()
            assert "aborted" not in _watch_events(run), run.describe()
            weights.append(_weight_on_main(repository, stack_file))
        # Every step of the walk, in order, and at least one run that only dwelled (the dwell outlived it).
        assert sorted(set(weights)) == [10, 50, 100], weights
        assert runs >= 3 and len(weights) > len(set(weights)), weights
        assert _split(control_plane) == {"fraud-detector-v5": 0, "fraud-detector-v6": 100}
        assert _record_status(control_plane)["weight"] == 100
    finally:
        for deployment in ("fraud-detector-v5", "fraud-detector-v6"):
            exporter.set_traffic(SERVING, deployment, Traffic(rps=0))
        _remove_model_stack(repository, pulumi)
