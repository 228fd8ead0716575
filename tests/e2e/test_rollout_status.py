"""The rollout state on the cluster, with the real engine and API server: the status subresource of the
model's InferenceService record holds it, `kubectl get` shows it, and Pulumi never sees it as drift.

`rollout next` before the step's dwell records the step start and refuses; the record's status then
holds phase, weight, step start and failed checks, and its printer columns (the Table kubectl prints)
show them. `pulumi preview` afterwards shows 0 changes, and so does a preview after an `up` that
changed the record's spec (an abort): the engine neither owns nor resets `status`.

Its own model name, so its objects never meet the walk's in test_model_stack_rollout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mlplatform.tools import kube
from mlplatform.tools.rollout import state
from tests.e2e.control_plane import ControlPlane
from tests.e2e.pulumi_cli import PulumiCli
from tests.e2e.test_model_stack_rollout import GROUP, SERVING, STACK_CONFIG, _changes

pytestmark = pytest.mark.e2e

MODEL = "fraud-status"
STACK = "fraud-status-e2e"
RECORD = f"/apis/{GROUP}/v1/namespaces/{SERVING}/inferenceservices/{MODEL}"


def _rollout(project: Path, api: ControlPlane, outputs: Path, *args: str) -> tuple[int, list[dict]]:
    executable = shutil.which("mlplatform", path=str(Path(sys.executable).parent))
    assert executable, "the mlplatform CLI is installed with the project (pip install -e .)"
    command, *rest = args
    argv = [
        executable,
        "rollout",
        command,
        STACK,
        "--project-dir",
        str(project),
        "--json",
        "--platform-outputs",
        str(outputs),
        *rest,
    ]
    env = {k: v for k, v in os.environ.items() if k != "ROLLOUT_STATUS_FILE"}
    env["KUBECONFIG"] = str(api.admin_kubeconfig)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _table(api: ControlPlane) -> dict[str, object]:
    """The record as `kubectl get` prints it: the API server's Table of the CRD's printer columns."""
    request = urllib.request.Request(
        f"{api.url}{RECORD}", headers={**api._auth(), "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    )
    with urllib.request.urlopen(request, context=api.ssl_context(), timeout=30) as response:
        table = json.load(response)
    names = [c["name"] for c in table["columnDefinitions"]]
    return dict(zip(names, table["rows"][0]["cells"], strict=True))


def test_status_writes_are_not_drift(
    pulumi: PulumiCli, control_plane: ControlPlane, platform_stack: str, tmp_path: Path
) -> None:
    api = control_plane
    project = tmp_path / "model"
    config = STACK_CONFIG.format(platform=platform_stack, window="10s").replace(
        "name: fraud-detector\n", f"name: {MODEL}\n"
    )
    config = config.replace("runId: fraud-e2e-r1", "runId: fraud-status-r1")
    pulumi.model_stack(project, STACK, config)
    pulumi.up(project, STACK)
    outputs = tmp_path / "platform-outputs.json"
    outputs.write_text(pulumi.run("stack", "output", "--json", "--stack", platform_stack, cwd=project).stdout)

    code, events = _rollout(project, api, outputs, "next", "--from", "10")
    assert code == 1 and events[-1]["event"] == "refused" and "left" in events[-1]["reason"], events
    status = api.get(RECORD)["status"]
    assert (status["phase"], status["weight"], status["failedChecks"], status["canaryVersion"]) == (
        "Progressing",
        10,
        0,
        "v6",
    ), status
    columns = _table(api)
    assert (columns["Phase"], columns["Weight"], columns["Checks"]) == ("Progressing", 10, 0), columns
    assert columns["Step age"], columns

    # The judge's carried evidence survives the API server (nothing prunes it), written and read back
    # through the rollout tool's own status store as `watch` writes it at a step.
    store = state.KubeStatusStore(
        kube.KubeClient(kube.from_kubeconfig(api.admin_kubeconfig)), group=GROUP, namespace=SERVING, name=MODEL
    )
    stepped = state.new_step("v6", 10, time.time(), evidence={"version": 1, "tests": {"errorRate": {"maxEValue": 3}}})
    store.put(stepped)
    assert api.get(RECORD)["status"]["judgeEvidence"] == stepped.evidence
    read_back = store.get()
    assert read_back is not None and read_back.evidence == stepped.evidence

    assert _changes(pulumi.preview(project, STACK)) == {}, "a status write must not be drift"

    code, events = _rollout(project, api, outputs, "abort", "--reason", "e2e: status survives up")
    assert code == 0, events
    pulumi.up(project, STACK)
    status = api.get(RECORD)["status"]
    assert status["phase"] == "Aborted" and status["abort"]["reason"] == "e2e: status survives up", status
    assert _changes(pulumi.preview(project, STACK)) == {}
    pulumi.destroy(project, STACK)
