"""A model stack's whole rollout with the real pulumi engine against a real API server.

The promise under test: a rollout step is a reviewed edit of the stack file,
made by `mlplatform rollout`, previewed by `pulumi preview --diff` and applied
by `pulumi up`. Mocks cannot show what the engine does with such an edit;
here the engine diffs real state, the Kubernetes provider applies to
kube-apiserver, and the assertions read the objects back from the API.

One test walks the whole story, because each step starts from the state the
previous one left: up, 10 -> 25 -> 50 -> 75 -> 100, promote, a second canary
started and aborted, destroy. Every gate decision is real too: the canary's
Linkerd-shaped metrics are served to a real Prometheus, which `rollout next`
and `rollout promote` query.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mlplatform import labels
from mlplatform.model.config import DEFAULT_STEPS
from mlplatform.tools.rollout.gate import PrometheusClient, Queries
from tests.e2e.control_plane import ControlPlane
from tests.e2e.pulumi_cli import PulumiCli, Step
from tests.support.linkerd_exporter import HEALTHY, LinkerdExporter
from tests.support.model_stack import model_stack_config

pytestmark = pytest.mark.e2e

STACK = "fraud-detector-e2e"
MODEL = "fraud-detector"
SERVING = "ml-serving"
# Training runs in the model's team namespace (mlmodel:team), under its GPU quota.
TRAINING = "team-fraud"
GROUP = "ml.example.com"
WINDOW = "10s"
DATA_TIMEOUT = 60.0

# The stack file as a platform engineer writes it, canary at the first step: a template
# (`{platform}`, `{window}`) other tests format too.
STACK_CONFIG = model_stack_config(
    "{platform}",
    max_replicas=3,
    extra="""\
  mlmodel:analysis:
    interval: {window}
    minRequests: 20
  mlmodel:training:
    runId: fraud-e2e-r1
    image: ghcr.io/example/fraud-detector-train:1.4.0
    framework: pytorch
    gpus: 1
    epochs: 2
    dataSource:
      type: s3
      path: s3://example-fraud-data/2024-06/
""",
)


# -- helpers -----------------------------------------------------------------


def _platform_outputs_file(project: Path) -> Path:
    """Where the test saves the stand-in platform's `pulumi stack output --json`, as CI would."""
    return project.parent / "platform-outputs.json"


def _mlplatform(project: Path, prometheus: str, *args: str) -> list[dict[str, Any]]:
    """`mlplatform rollout <args> --json` as a user runs it; its events. Fails on a non-zero exit.

    The serving namespace comes from the platform's outputs (the stack sets no
    `model.namespace`), saved once with `pulumi stack output --json`."""
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
        str(_platform_outputs_file(project)),
        *rest,
    ]
    if command in ("next", "promote"):
        argv += ["--prometheus-url", prometheus]
    if command == "next":
        # The walk is about the engine; the dwell and the state on the cluster are test_rollout_status.py's.
        argv += ["--skip-dwell", "e2e walk"]
    env = {**os.environ, "ROLLOUT_STATUS_FILE": str(project.parent / "rollout-status.json")}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert result.returncode == 0, f"{' '.join(argv[1:])} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def _changes(steps: list[Step]) -> dict[str, list[str]]:
    """The steps that change something, by operation, as `<type> <name>`.

    `same` changes nothing, and `read` is the StackReference reading the
    platform's outputs again, as every preview does, or the aborted-canary check
    reading the live record; `discard` drops that read from the state when the
    canary takes no traffic (nothing on the cluster changes).
    """
    changes: dict[str, list[str]] = {}
    for step in steps:
        if step.op not in ("same", "read", "discard"):
            changes.setdefault(step.op, []).append(f"{step.type} {step.name}")
    return {op: sorted(names) for op, names in changes.items()}


def _split_weights(api: ControlPlane) -> dict[str, int]:
    split = api.get(f"/apis/split.smi-spec.io/v1alpha2/namespaces/{SERVING}/trafficsplits/{MODEL}")
    assert split is not None, "the TrafficSplit is missing"
    assert split["spec"]["service"] == MODEL
    return {backend["service"]: backend["weight"] for backend in split["spec"]["backends"]}


def _deployments(api: ControlPlane) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in api.items(f"/apis/apps/v1/namespaces/{SERVING}/deployments")}


def _revisions(api: ControlPlane) -> dict[str, tuple[str, int]]:
    """Each Deployment's uid and generation: a replace changes the first, any spec edit the second."""
    return {name: (d["metadata"]["uid"], d["metadata"]["generation"]) for name, d in _deployments(api).items()}


def wait_for_requests(prometheus: str, deployment: str, at_least: float, window: str = WINDOW) -> None:
    """Until Prometheus holds `at_least` of the deployment's requests over `window`, as the gate
    reads them (bounded by DATA_TIMEOUT)."""
    client = PrometheusClient(prometheus)
    query = Queries.for_deployment(SERVING, deployment, window).requests
    _wait_for(lambda: (client.query(query) or 0) >= at_least, f"requests of {deployment} in Prometheus", DATA_TIMEOUT)


WEIGHT_STEP_CHANGES = {
    "update": [
        f"kubernetes:{GROUP}/v1:InferenceService {MODEL}-inference-service",
        f"kubernetes:split.smi-spec.io/v1alpha2:TrafficSplit {MODEL}-split",
    ]
}


def _step(pulumi: PulumiCli, project: Path, api: ControlPlane, prometheus: str, weight: int) -> None:
    """`rollout next` to `weight`: the preview changes the split (and the rollout record) only; `up` applies it.

    No pod moves: the canary's and the stable's pods (uids, on the same ReplicaSets) are the ones before."""
    before = _revisions(api)
    pods_before = {version: _pods(api, version) for version in ("v5", "v6")}
    events = _mlplatform(project, prometheus, "next")
    assert events[-1]["weight"] == weight, events
    steps = pulumi.preview(project, STACK)
    assert _changes(steps) == WEIGHT_STEP_CHANGES, f"step to {weight}: {_changes(steps)}"
    # ... and within them only the spec: no label or annotation moves with a step.
    paths = [path for step in steps if step.op == "update" for path in step.diff_paths]
    assert paths and all(path.startswith("spec.") for path in paths), paths
    pulumi.up(project, STACK)
    assert _split_weights(api) == {f"{MODEL}-v5": 100 - weight, f"{MODEL}-v6": weight}
    assert _revisions(api) == before, "a weight step must not touch any Deployment"
    assert {version: _pods(api, version) for version in ("v5", "v6")} == pods_before, f"pods moved at {weight}"


def _pods(api: ControlPlane, version: str) -> dict[str, tuple[str, str, int]]:
    """The model's running pods of `version`: name -> (uid, owning ReplicaSet's uid, restarts)."""
    pods = {}
    for pod in api.items(f"/api/v1/namespaces/{SERVING}/pods?labelSelector=app%3D{MODEL},version%3D{version}"):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        (owner,) = pod["metadata"]["ownerReferences"]
        assert owner["kind"] == "ReplicaSet", owner
        restarts = sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses", []))
        pods[pod["metadata"]["name"]] = (pod["metadata"]["uid"], owner["uid"], restarts)
    return pods


def _wait_for(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)


def _assert_training_completes_on_a_gpu_node(api: ControlPlane, job: str) -> None:
    def succeeded() -> bool:
        status = api.get(f"/apis/batch/v1/namespaces/{TRAINING}/jobs/{job}").get("status", {})
        return bool(status.get("succeeded"))

    _wait_for(succeeded, f"the training Job {job} to complete")
    (pod,) = api.items(f"/api/v1/namespaces/{TRAINING}/pods?labelSelector=job-name%3D{job}")
    node = api.get(f"/api/v1/nodes/{pod['spec']['nodeName']}")
    for key, value in labels.GPU_NODE_SELECTOR.items():
        assert node["metadata"]["labels"].get(key) == value, f"training ran on {node['metadata']['name']}"
    assert pod["status"]["phase"] == "Succeeded"


# Where a model stack's objects live: a destroy must leave none of them.
STACK_OBJECT_PATHS = (
    f"/apis/apps/v1/namespaces/{SERVING}/deployments",
    f"/api/v1/namespaces/{SERVING}/services",
    f"/api/v1/namespaces/{SERVING}/serviceaccounts",
    f"/apis/autoscaling/v2/namespaces/{SERVING}/horizontalpodautoscalers",
    f"/apis/policy/v1/namespaces/{SERVING}/poddisruptionbudgets",
    f"/apis/split.smi-spec.io/v1alpha2/namespaces/{SERVING}/trafficsplits",
    f"/apis/linkerd.io/v1alpha2/namespaces/{SERVING}/serviceprofiles",
    f"/apis/policy.linkerd.io/v1beta3/namespaces/{SERVING}/servers",
    f"/apis/policy.linkerd.io/v1alpha1/namespaces/{SERVING}/authorizationpolicies",
    f"/apis/policy.linkerd.io/v1alpha1/namespaces/{SERVING}/meshtlsauthentications",
    f"/apis/networking.k8s.io/v1/namespaces/{SERVING}/networkpolicies",
    f"/apis/monitoring.coreos.com/v1/namespaces/{SERVING}/prometheusrules",
    f"/apis/{GROUP}/v1/namespaces/{SERVING}/modelversions",
    f"/apis/{GROUP}/v1/namespaces/{SERVING}/inferenceservices",
    f"/apis/batch/v1/namespaces/{TRAINING}/jobs",
    f"/api/v1/namespaces/{TRAINING}/services",
    f"/api/v1/namespaces/{TRAINING}/serviceaccounts",
    f"/api/v1/namespaces/{TRAINING}/persistentvolumeclaims",
    f"/apis/{GROUP}/v1/namespaces/{TRAINING}/modeltrainings",
)


def _objects(api: ControlPlane) -> set[str]:
    """Every object at STACK_OBJECT_PATHS, as `path name`: the platform's own (its NetworkPolicies in
    the serving namespace, the namespaces' default ServiceAccounts) are there before the stack too."""
    return {f"{path} {item['metadata']['name']}" for path in STACK_OBJECT_PATHS for item in api.items(path)}


# -- the story -----------------------------------------------------------------


def test_rollout_is_config_edits_applied_by_pulumi_up(  # noqa: PLR0915  one rollout told in order; its steps share one cluster
    pulumi: PulumiCli,
    control_plane: ControlPlane,
    platform_stack: str,
    prometheus: str,
    exporter: LinkerdExporter,
    tmp_path: Path,
) -> None:
    api = control_plane
    exporter.set_traffic(SERVING, f"{MODEL}-v6", HEALTHY)
    # The gate judges the canary against stable: stable takes traffic too.
    exporter.set_traffic(SERVING, f"{MODEL}-v5", HEALTHY)

    # 1. The CRDs a model stack needs exist before it runs.
    for crd in (f"modelversions.{GROUP}", f"inferenceservices.{GROUP}", "trafficsplits.split.smi-spec.io"):
        assert api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}"), crd

    # 2. `pulumi up` the model stack.
    project = tmp_path / "model"
    pulumi.model_stack(project, STACK, STACK_CONFIG.format(platform=platform_stack, window=WINDOW))
    before_up = _objects(api)
    pulumi.up(project, STACK)
    _platform_outputs_file(project).write_text(
        pulumi.run("stack", "output", "--json", "--stack", platform_stack, cwd=project).stdout
    )
    platform_outputs = json.loads(_platform_outputs_file(project).read_text())
    # What the destroy below must remove (so that check can fail): the stack's objects, by path.
    assert len(_objects(api) - before_up) >= len(STACK_OBJECT_PATHS)

    deployments = _deployments(api)
    assert set(deployments) == {f"{MODEL}-v5", f"{MODEL}-v6"}
    for version, deployment in (("v5", deployments[f"{MODEL}-v5"]), ("v6", deployments[f"{MODEL}-v6"])):
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["labels"]["version"] == version
        assert pod["metadata"]["annotations"]["linkerd.io/inject"] == "enabled"
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["spec"]["containers"]
        assert container["image"] == "ghcr.io/mlflow/mlflow:v3.15.1-full"
        assert f"models:/fraud_detector/{version[1:]}" in container["args"]
        # The HPA owns the replica count: the API server defaulted it, Pulumi did not set it.
        assert deployment["spec"]["replicas"] == 1
    services = {s["metadata"]["name"] for s in api.items(f"/api/v1/namespaces/{SERVING}/services")}
    assert services == {MODEL, f"{MODEL}-v5", f"{MODEL}-v6"}
    assert _split_weights(api) == {f"{MODEL}-v5": 90, f"{MODEL}-v6": 10}
    profile = api.get(
        f"/apis/linkerd.io/v1alpha2/namespaces/{SERVING}/serviceprofiles/{MODEL}.{SERVING}.svc.cluster.local"
    )
    assert profile and {r["name"] for r in profile["spec"]["routes"]}, "the ServiceProfile declares routes"
    assert api.get(f"/apis/policy.linkerd.io/v1beta3/namespaces/{SERVING}/servers/{MODEL}")
    authz = api.items(f"/apis/policy.linkerd.io/v1alpha1/namespaces/{SERVING}/authorizationpolicies")
    mtls = api.items(f"/apis/policy.linkerd.io/v1alpha1/namespaces/{SERVING}/meshtlsauthentications")
    assert len(authz) == 1 and len(mtls) == 1
    assert mtls[0]["spec"]["identities"] == ["api-gateway.api-gateway.serviceaccount.identity.linkerd.cluster.local"]
    # The second layer: the clients' namespaces, on the proxy's inbound port only.
    (network_policy,) = [
        policy
        for policy in api.items(f"/apis/networking.k8s.io/v1/namespaces/{SERVING}/networkpolicies")
        if policy["spec"]["podSelector"].get("matchLabels", {}).get("app") == MODEL
    ]
    (rule,) = network_policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 4143, "protocol": "TCP"}]
    assert [p["namespaceSelector"]["matchLabels"] for p in rule["from"]] == [
        {"kubernetes.io/metadata.name": "api-gateway"}
    ]
    versions = {v["metadata"]["name"] for v in api.items(f"/apis/{GROUP}/v1/namespaces/{SERVING}/modelversions")}
    assert versions == {f"{MODEL}-v5", f"{MODEL}-v6"}
    # The training Job: `up` does not wait for it (skipAwait: a run takes hours), but
    # its pod is scheduled on a GPU node, under the team's quota, and completes.
    (job,) = api.items(f"/apis/batch/v1/namespaces/{TRAINING}/jobs")
    assert job["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    # Under its own ServiceAccount, with the checkpoints on the platform's ReadWriteMany class.
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == f"{MODEL}-training"
    assert api.get(f"/api/v1/namespaces/{TRAINING}/serviceaccounts/{MODEL}-training")
    (claim,) = api.items(f"/api/v1/namespaces/{TRAINING}/persistentvolumeclaims")
    assert claim["spec"]["storageClassName"] == platform_outputs["storageClasses"]["readWriteMany"]
    _assert_training_completes_on_a_gpu_node(api, job["metadata"]["name"])
    assert (
        api.get(f"/api/v1/namespaces/{TRAINING}/persistentvolumeclaims/{claim['metadata']['name']}")["status"]["phase"]
        == "Bound"
    )
    # `up` waited for every serving Deployment to be available (awaitReadiness defaults to true).
    for name, deployment in _deployments(api).items():
        assert deployment["status"].get("availableReplicas", 0) >= 1, name
    canary_pods = _pods(api, "v6")
    assert canary_pods, "the canary's pods are running"
    # Idempotent: nothing to do straight after `up`, nor after `refresh` reads the cluster back.
    assert _changes(pulumi.preview(project, STACK)) == {}, "a preview straight after `up` must change nothing"
    pulumi.refresh(project, STACK)
    assert _changes(pulumi.preview(project, STACK)) == {}, "a preview after `refresh` must change nothing"
    first_revisions = _revisions(api)
    # Managed resources only: from the second `up` on, the aborted-canary check adds a read of the record.
    created = pulumi.resource_count(project, STACK, managed_only=True)

    # 3-4. A step is an edit of the stack file; the preview shows it; `up` applies it.
    # Enough of the canary's requests for the gate's window.
    wait_for_requests(prometheus, f"{MODEL}-v6", HEALTHY.rps * 5)
    # 5. Walk the steps to 100.
    for weight in DEFAULT_STEPS[1:]:
        _step(pulumi, project, api, prometheus, weight)
    assert pulumi.resource_count(project, STACK, managed_only=True) == created

    # ... then promote: v6 becomes stable; only v5's objects go.
    _mlplatform(project, prometheus, "promote")
    changes = _changes(pulumi.preview(project, STACK))
    assert "replace" not in changes and "create-replacement" not in changes, changes
    assert all(f"{MODEL}-v5" in name or "-v5-" in name for name in changes.get("delete", [])), changes
    assert f"kubernetes:apps/v1:Deployment {MODEL}-v5-deployment" in changes["delete"]
    pulumi.up(project, STACK)
    assert set(_deployments(api)) == {f"{MODEL}-v6"}
    # Neither replaced nor edited: promotion rolls no pod of the new stable, and only v5's pods go.
    assert _revisions(api)[f"{MODEL}-v6"] == first_revisions[f"{MODEL}-v6"]
    _wait_for(lambda: not _pods(api, "v5"), "v5's pods to be deleted")
    assert _pods(api, "v6") == canary_pods, "promotion must not restart the canary's pods"
    assert _split_weights(api) == {f"{MODEL}-v6": 100}

    # 6. A second canary, started and aborted: traffic returns to stable, nothing is deleted.
    _mlplatform(
        project,
        prometheus,
        "start",
        "--version",
        "v7",
        "--image",
        "ghcr.io/mlflow/mlflow:v3.15.1-full",
        "--model-uri",
        "models:/fraud_detector/7",
    )
    pulumi.up(project, STACK)
    assert _split_weights(api) == {f"{MODEL}-v6": 90, f"{MODEL}-v7": 10}
    before_abort = _revisions(api)
    _mlplatform(project, prometheus, "abort", "--reason", "e2e: v7 rejected by review")
    assert _changes(pulumi.preview(project, STACK)) == WEIGHT_STEP_CHANGES
    pulumi.up(project, STACK)
    assert _split_weights(api) == {f"{MODEL}-v6": 100, f"{MODEL}-v7": 0}
    assert _revisions(api) == before_abort

    # 7. `pulumi destroy` leaves nothing behind.
    pulumi.destroy(project, STACK)
    assert pulumi.resource_count(project, STACK) == 0
    leftovers = _objects(api) - before_up
    assert leftovers == set(), f"the model stack's destroy left these behind: {sorted(leftovers)}"
