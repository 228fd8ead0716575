"""The serving workloads: what every version's pods run, how they are secured, placed and scaled."""

from __future__ import annotations

from typing import Any

import pytest

from mlplatform.tools.offline.engine import Recording
from tests.model.helpers import (
    DEPLOYMENT,
    GPU_NODE_SELECTOR,
    GPU_TAINT,
    HPA,
    PDB,
    SERVICE,
    SERVICE_ACCOUNT,
    SERVING_NAMESPACE,
    TRACKING_URI,
    model_config,
    run_model,
    with_canary,
)


@pytest.fixture(scope="module")
def rollout() -> Recording:
    return run_model(with_canary(10))


@pytest.fixture(scope="module")
def gpu() -> Recording:
    return run_model(model_config(serving={"gpus": 1}))


@pytest.fixture(scope="module")
def custom() -> Recording:
    return run_model(
        model_config(
            serving={"runtime": "custom", "port": 9000}, stable={"image": "ghcr.io/example/fraud-custom:5.0.0"}
        )
    )


def _deployment(recording: Recording, name: str = "fraud-detector-v5") -> dict[str, Any]:
    return next(r.inputs for r in recording.of_type(DEPLOYMENT) if r.metadata["name"] == name)


def _pod(recording: Recording, name: str = "fraud-detector-v5") -> dict[str, Any]:
    return _deployment(recording, name)["spec"]["template"]


def _container(recording: Recording, name: str = "fraud-detector-v5") -> dict[str, Any]:
    (container,) = _pod(recording, name)["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def test_one_deployment_and_service_per_live_version(rollout):
    """Each version is addressable on its own, which is what the split routes between."""
    for kind in (DEPLOYMENT, SERVICE, HPA, PDB):
        names = {r.metadata["name"] for r in rollout.of_type(kind)}
        expected = {"fraud-detector-v5", "fraud-detector-v6"} | ({"fraud-detector"} if kind == SERVICE else set())
        assert names == expected, kind
    assert {r.metadata["namespace"] for r in rollout.kubernetes_objects if r.metadata.get("namespace")} == {
        SERVING_NAMESPACE
    }


def test_version_service_selects_its_version_and_apex_selects_the_model(rollout):
    """The apex Service spans all versions; the version Services must not leak into each other."""
    services = {r.metadata["name"]: r.inputs["spec"] for r in rollout.of_type(SERVICE)}
    assert services["fraud-detector"]["selector"] == {"app": "fraud-detector"}
    assert services["fraud-detector-v6"]["selector"] == {"app": "fraud-detector", "version": "v6"}
    pod_labels = _pod(rollout, "fraud-detector-v6")["metadata"]["labels"]
    assert pod_labels["app"] == "fraud-detector" and pod_labels["version"] == "v6"
    assert pod_labels["app.kubernetes.io/part-of"] == "mlplatform"


def test_pods_carry_no_role_or_weight(rollout):
    """Role and weight in a pod template would restart pods at every rollout step."""
    template = str(_pod(rollout, "fraud-detector-v6"))
    assert "canary" not in template and "stable" not in template


def test_pods_are_meshed_and_not_annotated_for_scraping(rollout, custom):
    """Injection gives mTLS and golden metrics. No `prometheus.io/*` annotations: the platform's
    Prometheus ignores them, so they would only suggest a scrape that never happens."""
    annotations = _pod(rollout)["metadata"]["annotations"]
    assert annotations == {"linkerd.io/inject": "enabled"}
    assert _pod(custom)["metadata"]["annotations"] == {"linkerd.io/inject": "enabled"}


def test_mlflow_runtime_serves_the_version_model_uri(rollout):
    """By default the pod runs the real MLflow scoring server on the version's registry URI."""
    container = _container(rollout, "fraud-detector-v6")
    argv = container["command"] + container["args"]
    assert argv[:3] == ["mlflow", "models", "serve"]
    assert argv[argv.index("--model-uri") + 1] == "models:/fraud_detector/6"
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--port") + 1] == "8080"
    assert argv[argv.index("--workers") + 1] == "2"
    assert argv[argv.index("--env-manager") + 1] == "local"
    env = _env(container)
    assert env["MLFLOW_TRACKING_URI"] == TRACKING_URI
    assert env["MODEL_URI"] == "models:/fraud_detector/6"
    assert env["MAX_BATCH_SIZE"] == "32"


def test_mlflow_runtime_probes_its_real_endpoints(rollout):
    """The MLflow scoring server answers /health and /ping; probing other paths would never pass."""
    container = _container(rollout)
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/ping"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"


def test_custom_runtime_keeps_the_image_entrypoint(custom):
    """A custom image serves the model itself, on the reference design's paths."""
    container = _container(custom)
    assert "command" not in container and "args" not in container
    assert container["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"


def test_pods_run_locked_down(rollout):
    """Non-root, read-only root filesystem, no capabilities, default seccomp: the platform's baseline."""
    pod = _pod(rollout)["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "fraud-detector"
    context = _container(rollout)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsNonRoot"] is True


def test_writable_dirs_are_empty_dirs(rollout):
    """With a read-only root, MLflow's downloads and caches need $HOME and /tmp on emptyDirs."""
    pod = _pod(rollout)["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in _container(rollout)["volumeMounts"]}
    env = _env(_container(rollout))
    for path in ("/tmp", env["HOME"]):
        assert "emptyDir" in volumes[mounts[path]], path


def test_resources_come_from_config():
    """Requests and limits are what the scheduler and the HPA's utilisation are computed from."""
    resources = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "3", "memory": "6Gi"}}
    recording = run_model(model_config(serving={"resources": resources}))
    assert _container(recording)["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "1Gi"},
        "limits": {"cpu": "3", "memory": "6Gi", "ephemeral-storage": "4Gi"},
    }


def test_cpu_only_serving_stays_off_the_gpu_pool(rollout):
    """A CPU model on a GPU node would hold an expensive node for nothing."""
    pod = _pod(rollout)["spec"]
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert "nvidia.com/gpu" not in _container(rollout)["resources"]["limits"]


def test_gpu_serving_lands_on_the_platform_gpu_pool(gpu):
    """GPUs per replica need the device plugin's resource plus the pool's selector and taint toleration."""
    pod = _pod(gpu)["spec"]
    assert pod["nodeSelector"] == GPU_NODE_SELECTOR
    assert pod["tolerations"] == [{**GPU_TAINT, "operator": "Equal"}]
    assert _container(gpu)["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_rolling_update_never_drops_capacity(rollout):
    """maxUnavailable 0: a new pod is Ready before an old one is removed."""
    spec = _deployment(rollout)["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    # The HPA owns the replica count; a declared one would be reset by every `pulumi up`.
    assert "replicas" not in spec


def test_pods_spread_across_zones_and_nodes(rollout):
    """One zone or node going down must not take a whole version with it."""
    constraints = _pod(rollout)["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in constraints} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for constraint in constraints:
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
        assert constraint["labelSelector"]["matchLabels"] == {"app": "fraud-detector", "version": "v5"}


def test_hpa_scales_the_version_on_cpu():
    """The HPA bounds and CPU target are the config's, per version."""
    recording = run_model(model_config(serving={"replicas": {"min": 3, "max": 20, "targetCpuUtilization": 65}}))
    hpa = recording.one(HPA).inputs["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fraud-detector-v5"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 20)
    assert hpa["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 65}}}
    ]


def test_pdb_allows_one_voluntary_disruption_per_version(rollout):
    """Drains proceed one pod at a time and never deadlock at the HPA minimum."""
    pdb = next(r.inputs["spec"] for r in rollout.of_type(PDB) if r.metadata["name"] == "fraud-detector-v6")
    assert pdb == {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "fraud-detector", "version": "v6"}}}


def test_service_account_has_no_api_token(rollout):
    """The model server never talks to the Kubernetes API, so no token is mounted."""
    account = rollout.one(SERVICE_ACCOUNT)
    assert account.metadata["name"] == "fraud-detector"
    assert account.inputs["automountServiceAccountToken"] is False


def test_model_namespace_overrides_the_platform_serving_namespace():
    """A model may live in its own meshed namespace instead of the platform's shared one."""
    recording = run_model(model_config(model={"name": "fraud-detector", "namespace": "fraud"}))
    assert {r.metadata.get("namespace") for r in recording.kubernetes_objects} == {"fraud"}
    assert recording.stack_outputs["namespace"] == "fraud"


SKIP_AWAIT = "pulumi.com/skipAwait"


def test_up_waits_for_serving_readiness_by_default(rollout):
    """By default `pulumi up` holds until each version has rolled out: no object opts out of the await."""
    assert len([*rollout.of_type(DEPLOYMENT), *rollout.of_type(SERVICE)]) == 5
    for resource in [*rollout.of_type(DEPLOYMENT), *rollout.of_type(SERVICE)]:
        assert SKIP_AWAIT not in (resource.metadata.get("annotations") or {}), resource.name


def test_await_readiness_off_skips_the_wait_on_every_deployment_and_service():
    """`awaitReadiness: false` annotates every Deployment and Service, the apex included,
    and leaves the pod template alone, so switching it rolls no pods."""
    default = run_model(with_canary(10))
    skipped = run_model(with_canary(10, serving={"awaitReadiness": False}))
    awaited_kinds = [*skipped.of_type(DEPLOYMENT), *skipped.of_type(SERVICE)]
    assert len(awaited_kinds) == 5  # two Deployments, two version Services, the apex Service
    for resource in awaited_kinds:
        assert resource.metadata["annotations"][SKIP_AWAIT] == "true", resource.name
    for name in ("fraud-detector-v5", "fraud-detector-v6"):
        assert _pod(skipped, name) == _pod(default, name)


def test_scratch_is_bounded_from_config():
    """Model servers write only to their emptyDirs (read-only root); each is bounded, and so is the pod's disk."""
    recording = run_model(
        model_config(serving={"scratch": {"ephemeralStorageLimit": "8Gi", "emptyDirSizeLimit": "3Gi"}})
    )
    pod = _deployment(recording)["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["requests"]["ephemeral-storage"] == "1Gi"
    assert resources["limits"]["ephemeral-storage"] == "8Gi"
    assert {v["name"]: v["emptyDir"]["sizeLimit"] for v in pod["volumes"] if "emptyDir" in v} == {
        "tmp": "3Gi",
        "home": "3Gi",
    }
