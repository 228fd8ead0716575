"""NetworkPolicy, the second layer: default deny in every owned namespace, and the flows the platform needs.

Assertions go through `tests.support.network_policy.Policies`, which evaluates the recorded
policies the way a CNI would: "may this pod reach that one on this port?".
"""

from __future__ import annotations

import pytest

from mlplatform.tools.offline.engine import Recording
from tests.support.helpers import platform_config, run_platform
from tests.support.network_policy import NETWORK_POLICY, Address, Pod, Policies
from tests.support.types import K8S_NAMESPACE, K8S_NETWORK_POLICY

NAMESPACE = K8S_NAMESPACE
VPC_CIDR = "10.0.0.0/16"
MLFLOW = Pod("mlflow", {"app.kubernetes.io/name": "mlflow", "app.kubernetes.io/instance": "mlflow"})
POSTGRES = Pod("mlflow", {"app.kubernetes.io/name": "mlflow-postgres", "app.kubernetes.io/instance": "mlflow"})
TRAINING_LABELS = {"app.kubernetes.io/component": "training", "app": "fraud-detector"}
TRAINER = Pod("ml-training", TRAINING_LABELS)
TEAM_TRAINER = Pod("team-a", TRAINING_LABELS)
TEAM_NOTEBOOK = Pod("team-a", {"app": "notebook"})
MODEL_POD = Pod("ml-serving", {"app": "fraud-detector"})
PROMETHEUS = Pod(
    "monitoring", {"app.kubernetes.io/name": "prometheus", "prometheus": "kube-prometheus-stack-prometheus"}
)
GRAFANA = Pod("monitoring", {"app.kubernetes.io/name": "grafana"})
OPERATOR = Pod("monitoring", {"app": "kube-prometheus-stack-operator"})
KUBE_DNS = Pod("kube-system", {"k8s-app": "kube-dns"})
LINKERD_DESTINATION = Pod("linkerd", {"linkerd.io/control-plane-component": "destination"})
VIZ = Pod("linkerd-viz", {"component": "metrics-api"})
OUTSIDER = Pod("default", {"app": "anything"})
RDS = Address("10.0.12.34")
S3 = Address("52.218.128.10")
API_SERVER = Address("10.0.1.20")


@pytest.fixture(scope="module")
def aws_mode() -> Recording:
    return run_platform(platform_config())


@pytest.fixture(scope="module")
def existing_mode() -> Recording:
    config = platform_config(
        cluster={"mode": "existing", "kubeconfig": "/home/ci/.kube/config"},
        nodePools=None,
        mlflow={
            "backend": "in-cluster",
            "artifactBucket": "ml-artifacts",
            "s3EndpointUrl": "http://minio.storage.svc:9000",
            "s3CredentialsSecret": "minio-credentials",
        },
    )
    return run_platform(config)


def _policies(recording: Recording) -> Policies:
    return Policies(recording.of_type(NETWORK_POLICY))


def _owned_namespaces(recording: Recording) -> list[str]:
    """The namespaces PlatformNamespaces creates for workloads (not those the charts install into)."""
    return [
        r.metadata["name"]
        for r in recording.of_type(NAMESPACE)
        if r.metadata["labels"].get("app.kubernetes.io/component") == "namespaces"
    ]


def test_every_owned_namespace_denies_by_default(aws_mode):
    """A namespace the platform creates starts closed: whatever is not allowed below is dropped."""
    namespaces = _owned_namespaces(aws_mode)
    assert set(namespaces) >= {"ml-serving", "ml-training", "mlflow", "monitoring", "team-a"}
    policies = _policies(aws_mode)
    for namespace in namespaces:
        spec = policies.named(namespace, "default-deny")
        assert spec == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, namespace
        assert not policies.allows(OUTSIDER, Pod(namespace, {"app": "new"}), 8080), namespace
        assert not policies.allows(Pod(namespace, {"app": "new"}), S3, 443), namespace


def test_every_owned_namespace_resolves_names(aws_mode):
    policies = _policies(aws_mode)
    namespaces = _owned_namespaces(aws_mode)
    assert len(namespaces) >= 5
    for namespace in namespaces:
        pod = Pod(namespace, {"app": "any"})
        assert policies.allows(pod, KUBE_DNS, 53, "UDP") and policies.allows(pod, KUBE_DNS, 53, "TCP"), namespace
        assert not policies.allows(pod, Pod("kube-system", {"k8s-app": "metrics-server"}), 53, "UDP"), namespace


@pytest.mark.parametrize("namespace", ["ml-serving", "mlflow", "team-a"])
def test_meshed_namespaces_keep_linkerd_working(aws_mode, namespace):
    """Proxies reach the control plane, Prometheus scrapes them, viz taps them; no other port opens."""
    policies = _policies(aws_mode)
    pod = Pod(namespace, {"app": "any"})
    for port in (8080, 8086, 8090):
        assert policies.allows(pod, LINKERD_DESTINATION, port)
    assert not policies.allows(pod, LINKERD_DESTINATION, 9990)
    assert policies.allows(PROMETHEUS, pod, 4191)
    assert not policies.allows(GRAFANA, pod, 4191)
    assert policies.allows(VIZ, pod, 4190)
    assert not policies.allows(VIZ, pod, 4191)
    assert not policies.allows(OUTSIDER, pod, 4191)


def test_training_pods_reach_mlflow_from_training_and_team_namespaces(aws_mode):
    """Unmeshed trainers call MLflow's port; meshed ones arrive on the proxy's inbound port."""
    policies = _policies(aws_mode)
    for trainer in (TRAINER, TEAM_TRAINER):
        assert policies.allows(trainer, MLFLOW, 5000)
        assert policies.allows(trainer, MLFLOW, 4143)
        assert not policies.allows(trainer, MLFLOW, 4191)
    assert not policies.allows(TEAM_NOTEBOOK, MLFLOW, 5000)
    assert not policies.allows(OUTSIDER, MLFLOW, 5000)


def test_prometheus_scrapes_model_servers_own_metrics(aws_mode):
    """A model stack may declare a metrics port; only Prometheus reaches it, and only in serving."""
    policies = _policies(aws_mode)
    assert policies.allows(PROMETHEUS, MODEL_POD, 9102)
    assert not policies.allows(GRAFANA, MODEL_POD, 9102)
    assert not policies.allows(PROMETHEUS, TEAM_NOTEBOOK, 9102)


def test_model_servers_load_models_from_mlflow(aws_mode):
    policies = _policies(aws_mode)
    assert policies.allows(MODEL_POD, MLFLOW, 4143)
    assert not policies.allows(MODEL_POD, RDS, 5432)


def test_trainers_talk_to_each_other_and_fetch_datasets(aws_mode):
    """NCCL picks its ports at run time; datasets live on S3 or GCS."""
    policies = _policies(aws_mode)
    assert policies.allows(TRAINER, Pod("ml-training", TRAINING_LABELS | {"worker": "1"}), 29500)
    assert policies.allows(TRAINER, S3, 443)
    assert not policies.allows(TRAINER, S3, 80)
    assert not policies.allows(TRAINER, Pod("team-a", TRAINING_LABELS), 29500)


def test_mlflow_reaches_rds_in_the_vpc_and_s3_over_https(aws_mode):
    policies = _policies(aws_mode)
    assert policies.allows(MLFLOW, RDS, 5432)
    assert not policies.allows(MLFLOW, Address("192.168.1.1"), 5432)
    assert policies.allows(MLFLOW, S3, 443)
    assert not policies.allows(MLFLOW, S3, 80)
    assert not policies.allows(MLFLOW, API_SERVER, 6443)


def test_in_cluster_postgres_admits_only_mlflow(existing_mode):
    policies = _policies(existing_mode)
    assert policies.allows(MLFLOW, POSTGRES, 5432)
    assert policies.allows(MLFLOW, POSTGRES, 4143)
    assert not policies.allows(MODEL_POD, POSTGRES, 5432)
    assert not policies.allows(Pod("mlflow", {"app": "other"}), POSTGRES, 5432)
    assert not policies.allows(MLFLOW, Address("10.0.12.34"), 5432)


def test_mlflow_reaches_an_s3_compatible_store_on_its_port(existing_mode):
    """The endpoint's port (9000 here), in the cluster or outside, and nothing else."""
    policies = _policies(existing_mode)
    assert policies.allows(MLFLOW, Pod("storage", {"app": "minio"}), 9000)
    assert policies.allows(MLFLOW, Address("203.0.113.7"), 9000)
    assert not policies.allows(MLFLOW, S3, 443)


def test_prometheus_scrapes_pods_and_nodes(aws_mode):
    policies = _policies(aws_mode)
    assert policies.allows(PROMETHEUS, Pod("nvidia-device-plugin", {"app": "dcgm-exporter"}), 9400)
    assert policies.allows(PROMETHEUS, Address("10.0.3.4"), 10250)
    assert policies.allows(PROMETHEUS, Address("10.0.3.4"), 9100)
    assert not policies.allows(PROMETHEUS, S3, 443)
    assert policies.allows(GRAFANA, PROMETHEUS, 9090)
    assert policies.allows(VIZ, PROMETHEUS, 9090)
    assert not policies.allows(OUTSIDER, PROMETHEUS, 9090)


def test_monitoring_reaches_the_api_server_and_serves_the_operator_webhook(aws_mode, existing_mode):
    """In mode aws the API server's endpoints are in the VPC; in mode existing the platform cannot know."""
    policies = _policies(aws_mode)
    assert policies.allows(OPERATOR, API_SERVER, 443)
    assert policies.allows(API_SERVER, OPERATOR, 10250)
    assert not policies.allows(Address("198.51.100.1"), OPERATOR, 10250)
    assert not policies.allows(OPERATOR, Address("198.51.100.1"), 443)
    assert _policies(existing_mode).allows(OPERATOR, Address("198.51.100.1"), 6443)


def test_team_services_may_call_models_through_the_proxy(aws_mode):
    """Egress from a team to serving opens on 4143 only; the model's own policy and Linkerd decide the rest."""
    policies = _policies(aws_mode)
    model = Pod("ml-serving", {"app": "fraud-detector"})
    assert policies.egress_allows(TEAM_NOTEBOOK, model, 4143)
    assert not policies.egress_allows(TEAM_NOTEBOOK, model, 8080)
    # The serving namespace's default deny holds until a model stack admits its clients.
    assert not policies.allows(TEAM_NOTEBOOK, model, 4143)


def _policy(recording, namespace: str, name: str) -> dict:
    return next(
        p.inputs["spec"]
        for p in recording.of_type(K8S_NETWORK_POLICY)
        if p.inputs["metadata"]["name"] == name and p.inputs["metadata"]["namespace"] == namespace
    )


def test_api_server_proxy_reaches_prometheus_and_mlflow(dev_platform):
    """The rollout gate reads both through the API server's service proxy. On EKS the proxied request
    comes from the control plane's ENIs in the VPC: an ipBlock of the VPC CIDR is all a policy can name."""
    prometheus = _policy(dev_platform, "monitoring", "allow-prometheus")
    mlflow = _policy(dev_platform, "mlflow", "allow-mlflow")
    for spec, port in ((prometheus, 9090), (mlflow, 5000)):
        admitted = [
            rule
            for rule in spec["ingress"]
            if any(peer.get("ipBlock", {}).get("cidr") == "10.0.0.0/16" for peer in rule["from"])
        ]
        assert admitted and port in [p["port"] for p in admitted[0]["ports"]]
