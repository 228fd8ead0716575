"""What the workflow-loop scenarios share: the model stack they put up, the events act is given,
and readers of what a run left (the split, the record, the artifacts, the comment)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mlplatform.tools import kube
from mlplatform.tools.ci.pr_comment import Preview, read_preview
from mlplatform.tools.rollout import state
from tests.e2e.control_plane import ControlPlane
from tests.e2e.pulumi_cli import PulumiCli
from tests.support.helpers import ROOT
from tests.support.model_stack import model_stack_config
from tests.workflows.act import REPOSITORY, Act, ActRun
from tests.workflows.git_repo import Repository, git

MODEL_PROJECT = "stacks/model"
STACK = "fraud-detector-act"
SERVING = "ml-serving"
VARIABLES = {
    "AWS_REGION": "us-east-1",
    "AWS_PREVIEW_ROLE_ARN": "arn:aws:iam::123456789012:role/mlplatform-preview",
    "AWS_DEPLOY_ROLE_ARN": "arn:aws:iam::123456789012:role/mlplatform-deploy",
    "AWS_DEPLOY_MODELS_ROLE_ARN": "arn:aws:iam::123456789012:role/mlplatform-deploy-models",
    "MLFLOW_TRACKING_URI": "http://127.0.0.1:1",
    "EKS_CLUSTER_NAME": "mlplatform-e2e",
}
# The preview of a weight step: the split and the rollout record, nothing else.
WEIGHT_STEP = [
    ("update", "InferenceService fraud-detector-inference-service"),
    ("update", "TrafficSplit fraud-detector-split"),
]
RECORD = f"/apis/ml.example.com/v1/namespaces/{SERVING}/inferenceservices/fraud-detector"


def model_stack_up(repository: Repository, pulumi: PulumiCli, platform_stack: str, extra: str = "") -> Path:
    """The model stack at 10%, its file committed on main and pushed, up on the simulated cluster. The
    simulated platform's stack file goes to the repository's root with it, as a real repository holds the
    platform stack its model stacks reference: `mlplatform diff` (the PR's blast radius) renders it offline;
    it is never deployed here (no push event's diff holds it)."""
    shutil.copy(ROOT / "tests" / "e2e" / "platform" / "Pulumi.sim.yaml", repository.clone / "Pulumi.sim.yaml")
    # A commit of its own, before the model stack's: the stack's commit changes the model stack alone.
    repository.commit("the simulated platform's stack file")
    project = repository.clone / MODEL_PROJECT
    pulumi.stack_init(project, STACK)
    stack_file = project / f"Pulumi.{STACK}.yaml"
    stack_file.write_text(stack_file.read_text() + "config:\n" + model_stack_config(platform_stack, extra=extra))
    repository.commit(f"{STACK}: a canary at 10%")
    repository.push("main")
    pulumi.up(project, STACK)
    return stack_file


def remove_model_stack(repository: Repository, pulumi: PulumiCli) -> None:
    """Destroyed and removed from the session's backend, so the next scenario can create it again."""
    project = repository.clone / MODEL_PROJECT
    pulumi.destroy(project, STACK)
    pulumi.run("stack", "rm", "--yes", "--stack", STACK, cwd=project)


def only_this_canary(repository: Repository) -> None:
    """The example prod stack's canary takes traffic in this repository, and rollout.yml would watch it
    too (it is not on the simulated cluster): main sets it to 0 first, so the matrix is this test's stack."""
    prod = repository.clone / MODEL_PROJECT / "Pulumi.fraud-detector-prod.yaml"
    text = prod.read_text()
    stepped = re.sub(r"(\n    weight: )\d+", r"\g<1>0", text, count=1)
    assert stepped != text, "the example prod stack has no canary weight to zero"
    prod.write_text(stepped)
    repository.commit("fraud-detector-prod: no canary (the act scenarios watch their own stack)")


def set_weight(stack_file: Path, old: str, new: str) -> None:
    text = stack_file.read_text()
    assert text.count(f"    weight: {old}\n") == 1, text
    stack_file.write_text(text.replace(f"    weight: {old}\n", f"    weight: {new}\n"))


def split(api: ControlPlane) -> dict[str, int]:
    found = api.get(f"/apis/split.smi-spec.io/v1alpha2/namespaces/{SERVING}/trafficsplits/fraud-detector")
    assert found is not None, "the TrafficSplit exists"
    return {backend["service"]: backend["weight"] for backend in found["spec"]["backends"]}


def start_step_now(api: ControlPlane, version: str, weight: int) -> None:
    """Record on the InferenceService that the canary's step starts now, as `rollout start` or an advance
    does. The judge then reads only the traffic from here on: the session's Prometheus still holds the same
    deployments' samples from earlier scenarios (a failing canary among them) inside the last dwell, which
    a first check with no recorded start would judge."""
    group = RECORD.split("/")[2]
    store = state.KubeStatusStore(
        kube.KubeClient(kube.from_kubeconfig(api.admin_kubeconfig)), group=group, namespace=SERVING,
        name=RECORD.rsplit("/", 1)[-1],
    )  # fmt: skip
    store.put(state.new_step(version, weight, time.time()))


def record_status(api: ControlPlane) -> dict:
    record = api.get(RECORD)
    assert record is not None, "the InferenceService record exists"
    return record.get("status", {})


def _repo() -> dict[str, Any]:
    return {"full_name": REPOSITORY, "name": REPOSITORY.split("/")[1], "owner": {"login": REPOSITORY.split("/")[0]}}


def push_event(repository: Repository, before: str) -> dict:
    """The `push` payload GitHub sends for a push to main."""
    return {"ref": "refs/heads/main", "before": before, "after": repository.sha(), "repository": _repo()}


def merge(act: Act, repository: Repository, branch: str, number: int) -> tuple[str, str]:
    """PR `number` from `branch` merged into main with a merge commit, pushed, and known to the GitHub
    stand-in (`commits/SHA/pulls`); the clone is left on main. Returns (main before, PR head)."""
    head = repository.sha(branch)
    git(repository.clone, "checkout", "--quiet", "main")
    git(repository.clone, "reset", "--quiet", "--hard", "origin/main")
    before = repository.sha()
    git(repository.clone, "merge", "--quiet", "--no-ff", "-m", f"Merge pull request #{number} from {branch}", branch)
    repository.push("main")
    act.github.merged(number=number, head_sha=head, merge_commit_sha=repository.sha())
    return before, head


def artifact(act: Act, name: str) -> Path:
    """The directory the upload-artifact stand-in kept for `name` (the newest run's)."""
    (entry,) = [a for a in act.github.artifacts() if a["name"] == name][-1:] or [None]
    assert entry, f"no artifact {name}: {[a['name'] for a in act.github.artifacts()]}"
    return act.workdir / "artifacts" / str(entry["workflow_run"]["id"]) / name


def artifact_preview(directory: Path) -> Preview:
    (path,) = directory.glob("*.preview.json")
    return read_preview(path.read_text())


def watch_events(run: ActRun) -> list[str]:
    """The `event` of each JSON line `rollout watch --json` printed in the run's log."""
    events = []
    for entry in run.log:
        line = str(entry.get("msg", "")).strip()
        if line.startswith("{") and '"event"' in line:
            with contextlib.suppress(json.JSONDecodeError):
                events.append(str(json.loads(line).get("event")))
    return events


def rollout_cli(project: Path, api: ControlPlane, pulumi: PulumiCli, platform_stack: str, *args: str) -> list[dict]:
    """`mlplatform rollout VERB STACK ... --json` as a user runs it in the clone, against the simulated
    cluster's record; its events. Fails on a non-zero exit."""
    outputs = project.parent.parent.parent / "platform-outputs.json"
    if not outputs.exists():
        outputs.write_text(pulumi.run("stack", "output", "--json", "--stack", platform_stack, cwd=project).stdout)
    executable = shutil.which("mlplatform", path=str(Path(sys.executable).parent))
    assert executable, "the mlplatform CLI is installed with the project (pip install -e .)"
    verb, *rest = args
    argv = [executable, "rollout", verb, STACK, "--project-dir", str(project), "--json",
            "--platform-outputs", str(outputs), *rest]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "ROLLOUT_STATUS_FILE"}
    env.update(KUBECONFIG=str(api.admin_kubeconfig), PYTHONPATH=str(project.parent.parent))
    done = subprocess.run(argv, cwd=project.parent.parent, capture_output=True, text=True, timeout=300, env=env,
                          check=False)  # fmt: skip
    assert done.returncode == 0, f"rollout {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
