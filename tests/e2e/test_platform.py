"""The real platform, applied by the real engine to the simulated cluster.

`pulumi up` of the root project in mode existing (the `platform` fixture, from
tests/e2e/platform/Pulumi.sim.yaml): its Helm releases come from the chart
mirror on 127.0.0.1, with Helm's waits and the provider's awaits on. kwok plays
the kubelets, so every workload's pods are scheduled by the real scheduler,
under the real controllers, and become Ready; volumes bind through kwok's
provisioner stand-in for the StorageClass `kwok-volume`.

The platform's destroy is checked by the fixture when the session ends, once
the model stacks that use it are gone.
"""

from __future__ import annotations

from typing import Any

import pytest

from mlplatform import labels
from mlplatform.platform.charts_config import ChartsConfig
from tests.e2e.control_plane import ControlPlane
from tests.e2e.platform_stack import SIM_ONLY_SETTINGS, STACK, WEBHOOKS, PlatformStack, stack_settings
from tests.e2e.pulumi_cli import PulumiCli
from tests.e2e.simulated_cluster import GPU_NODES
from tests.support.types import HELM_RELEASE

pytestmark = pytest.mark.e2e

# Mode aws only: the autoscaler scales EKS node groups, which mode existing does not have.
AWS_ONLY_RELEASES = {"cluster-autoscaler"}
EXPECTED_RELEASES = {name.replace("_", "-") for name in ChartsConfig.model_fields} - AWS_ONLY_RELEASES
# Workloads the platform itself declares (not through a chart), which must be among those running.
PLATFORM_WORKLOADS = {
    ("StatefulSet", "mlflow", "mlflow-postgres"),
    ("Deployment", "mlflow", "mlflow"),
    ("DaemonSet", "monitoring", "dcgm-exporter"),
}
DEVICE_PLUGIN = "nvidia-device-plugin"
METRICS_API_SERVICE = "v1beta1.metrics.k8s.io"


def _workloads(api: ControlPlane) -> dict[tuple[str, str, str], dict[str, Any]]:
    found = {}
    for kind, path in (
        ("Deployment", "/apis/apps/v1/deployments"),
        ("StatefulSet", "/apis/apps/v1/statefulsets"),
        ("DaemonSet", "/apis/apps/v1/daemonsets"),
    ):
        for item in api.items(path):
            found[(kind, item["metadata"]["namespace"], item["metadata"]["name"])] = item
    return found


# DaemonSets that rightly schedule nowhere here, and why.
IDLE_DAEMONSETS = {
    ("nvidia-device-plugin", "nvidia-device-plugin-mps-control-daemon"): (
        "selects nodes labelled nvidia.com/mps.capable=true, which only MPS sharing sets; the platform time-slices"
    ),
}


def _available(kind: str, workload: dict[str, Any]) -> bool:
    status, spec = workload.get("status", {}), workload["spec"]
    if kind == "DaemonSet":
        wanted = status.get("desiredNumberScheduled", 0)
        idle = (workload["metadata"]["namespace"], workload["metadata"]["name"]) in IDLE_DAEMONSETS
        return (wanted == 0) if idle else (wanted > 0 and status.get("numberAvailable", 0) == wanted)
    wanted = spec.get("replicas", 1)
    ready = status.get("availableReplicas" if kind == "Deployment" else "readyReplicas", 0)
    return ready == wanted and status.get("observedGeneration") == workload["metadata"]["generation"]


def _owner_kind(pod: dict[str, Any]) -> str:
    owners = pod["metadata"].get("ownerReferences") or [{"kind": "none"}]
    return owners[0]["kind"]


def test_sim_only_settings_are_the_stack_files(platform: PlatformStack, pulumi: PulumiCli) -> None:
    """Each sim-only setting named in platform_stack.py is in the stack file, or set by `provision`."""
    assert stack_settings()["mlplatform:monitoring"]["grafana"] is False
    # The other two are set by `provision` (secrets where they are secret).
    config = pulumi.config(platform.project, STACK)
    assert set(config["mlplatform:mesh"]["identity"]) == {"trustAnchorPem", "issuerCertPem", "issuerKeyPem"}
    assert config["mlplatform:mlflow"]["databasePassword"]
    assert set(SIM_ONLY_SETTINGS) == {"mesh.identity", "mlflow.databasePassword", "monitoring.grafana"}


def test_every_release_is_deployed_from_the_mirror(
    platform: PlatformStack, pulumi: PulumiCli, control_plane: ControlPlane
) -> None:
    api = control_plane
    releases = {
        secret["metadata"]["labels"]["name"]: secret["metadata"]["labels"]["status"]
        for secret in api.items("/api/v1/secrets?labelSelector=owner%3Dhelm")
    }
    assert releases == dict.fromkeys(EXPECTED_RELEASES, "deployed")
    # ... each from the mirror, at the version the charts config pins.
    state = pulumi.stack_resources(platform.project, STACK, HELM_RELEASE)
    assert {r["outputs"]["name"] for r in state} == EXPECTED_RELEASES
    for release in state:
        pin = getattr(ChartsConfig(), release["outputs"]["name"].replace("-", "_"))
        repo = platform.chart_mirror or pin.repo
        assert release["inputs"]["repositoryOpts"]["repo"] == repo, release["outputs"]["name"]
        assert release["outputs"]["status"]["version"] == pin.version


def test_the_metrics_api_is_registered(platform: PlatformStack, control_plane: ControlPlane) -> None:
    """The model servers' HPAs read metrics.k8s.io: mode existing installs metrics-server, which registers it."""
    assert stack_settings()["mlplatform:cluster"]["metricsApi"] == "install"
    service = control_plane.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{METRICS_API_SERVICE}")
    assert service is not None, f"APIService {METRICS_API_SERVICE} is not registered"
    assert service["spec"]["group"] == "metrics.k8s.io"
    assert service["spec"]["service"] == {"namespace": "kube-system", "name": "metrics-server", "port": 443}
    deployment = control_plane.get("/apis/apps/v1/namespaces/kube-system/deployments/metrics-server")
    assert deployment is not None and _available("Deployment", deployment)


def test_every_workload_is_available(platform: PlatformStack, control_plane: ControlPlane) -> None:
    api = control_plane
    workloads = _workloads(api)
    assert set(workloads) >= PLATFORM_WORKLOADS, sorted(PLATFORM_WORKLOADS - set(workloads))
    # The charts' too: at least one of each kind per chart namespace.
    assert {namespace for _kind, namespace, _name in workloads} >= {"linkerd", "linkerd-viz", "monitoring"}
    unavailable = sorted(f"{kind} {ns}/{name}" for (kind, ns, name), w in workloads.items() if not _available(kind, w))
    assert unavailable == []


def test_gpu_nodes_run_only_gpu_pods_and_node_agents(platform: PlatformStack, control_plane: ControlPlane) -> None:
    api = control_plane
    pods = [p for p in api.items("/api/v1/pods") if p["spec"].get("nodeName") and p["status"].get("phase") == "Running"]
    device_plugin = [p for p in pods if p["metadata"]["name"].startswith(f"{DEVICE_PLUGIN}-")]
    # One per GPU node, none elsewhere.
    assert sorted(p["spec"]["nodeName"] for p in device_plugin if "mps" not in p["metadata"]["name"]) == sorted(
        GPU_NODES
    )
    assert {p["spec"]["nodeName"] for p in device_plugin} <= set(GPU_NODES)
    # On a GPU node: what asks for a GPU, and per-node agents (DaemonSets: the device
    # plugin, DCGM, node-exporter), nothing else.
    on_gpu_nodes = [p for p in pods if p["spec"]["nodeName"] in GPU_NODES]
    strays = [
        f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        for p in on_gpu_nodes
        if _owner_kind(p) != "DaemonSet"
        and not any(
            labels.GPU_RESOURCE in (c.get("resources", {}).get("limits") or {}) for c in p["spec"]["containers"]
        )
    ]
    assert on_gpu_nodes and strays == []
    dcgm = [p for p in pods if p["metadata"]["name"].startswith("dcgm-exporter-")]
    assert sorted(p["spec"]["nodeName"] for p in dcgm) == sorted(GPU_NODES)


def test_volumes_bind(platform: PlatformStack, control_plane: ControlPlane) -> None:
    api = control_plane
    claims = api.items("/api/v1/persistentvolumeclaims")
    assert {c["metadata"]["namespace"] for c in claims} >= {"mlflow"}, "the in-cluster Postgres claims a volume"
    assert {f"{c['metadata']['namespace']}/{c['metadata']['name']}": c["status"].get("phase") for c in claims} == {
        f"{c['metadata']['namespace']}/{c['metadata']['name']}": "Bound" for c in claims
    }


def test_team_quota_refuses_a_pod_over_it(platform: PlatformStack, control_plane: ControlPlane) -> None:
    api = control_plane
    (quota,) = api.items("/api/v1/namespaces/team-fraud/resourcequotas")
    limit = int(quota["spec"]["hard"][f"requests.{labels.GPU_RESOURCE}"])
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "greedy"},
        "spec": {
            "tolerations": [labels.toleration_for(labels.GPU_TAINT)],
            "nodeSelector": dict(labels.GPU_NODE_SELECTOR),
            "containers": [
                {
                    "name": "train",
                    "image": "busybox:1.36",
                    "resources": {"limits": {labels.GPU_RESOURCE: str(limit + 1)}},
                }
            ],
        },
    }
    with pytest.raises(AssertionError) as refused:
        api.request("POST", "/api/v1/namespaces/team-fraud/pods", pod)
    message = str(refused.value)
    assert " 403 " in message and f"exceeded quota: {quota['metadata']['name']}" in message, message
    assert api.find("/api/v1/namespaces/team-fraud/pods/greedy") is None


def test_webhooks_are_the_charts_with_their_failure_policies(
    platform: PlatformStack, control_plane: ControlPlane
) -> None:
    api = control_plane
    found = {}
    for kind in ("mutating", "validating"):
        for config in api.items(f"/apis/admissionregistration.k8s.io/v1/{kind}webhookconfigurations"):
            policies = {hook.get("failurePolicy", "Fail") for hook in config.get("webhooks") or []}
            (policy,) = policies
            found[(kind, config["metadata"]["name"])] = policy
    assert found == WEBHOOKS


def test_preview_after_up_and_after_refresh_changes_nothing(platform: PlatformStack, pulumi: PulumiCli) -> None:
    changes = [f"{s.op} {s.urn}" for s in pulumi.preview(platform.project, STACK) if s.op not in ("same", "read")]
    assert changes == [], "a preview straight after `up` must show no change"
    pulumi.refresh(platform.project, STACK)
    changes = [f"{s.op} {s.urn}" for s in pulumi.preview(platform.project, STACK) if s.op not in ("same", "read")]
    assert changes == [], "a preview after `refresh` must show no change"
