"""The whole platform program, as `pulumi up -s dev|prod` would run it, under mocks."""

from __future__ import annotations

import re

import pytest

from mlplatform.tools.offline.engine import Recording
from tests.support.helpers import ROOT, existing_cluster_config, platform_config, run_platform
from tests.support.types import (
    AWS_AUTOSCALING_TAG,
    AWS_EKS_CLUSTER,
    AWS_EKS_NODE_GROUP,
    AWS_RDS_INSTANCE,
    HELM_RELEASE,
    K8S_DEPLOYMENT,
    K8S_PROVIDER,
    K8S_SERVICE,
    K8S_STATEFUL_SET,
)

HELM = HELM_RELEASE


def _release(recording: Recording, chart: str):
    return next(r for r in recording.of_type(HELM) if r.inputs["chart"] == chart)


def _documented_outputs() -> set[str]:
    page = (ROOT / "docs" / "platform.md").read_text()
    section = page.split("## Stack outputs", 1)[1].split("\n## ", 1)[0]
    names = set()
    for cell in re.findall(r"^\| ([^|]+) \|", section, re.M):
        names.update(re.findall(r"`([A-Za-z]+)`", cell))
    return names


@pytest.mark.parametrize("stack", ["dev_platform", "prod_platform"])
def test_stack_exports_exactly_the_documented_outputs(stack, request):
    """Model stacks read these through a StackReference; docs/platform.md is their contract."""
    recording = request.getfixturevalue(stack)
    assert set(recording.stack_outputs) == _documented_outputs()


def test_kubeconfig_output_is_secret(dev_platform):
    """The kubeconfig grants cluster access: it must never show in plain text in the state or the console."""
    from pulumi.runtime import rpc

    assert rpc.is_rpc_secret(dev_platform.stack_outputs["kubeconfig"])


def test_every_kubernetes_object_and_release_uses_the_cluster_provider(dev_platform):
    """A default provider would deploy into whatever cluster the operator's kubeconfig points at."""
    provider = dev_platform.one(K8S_PROVIDER)
    assert dev_platform.kubernetes_objects and dev_platform.of_type(HELM_RELEASE)
    for resource in dev_platform.resources:
        if resource.custom and resource.type.startswith("kubernetes:"):
            assert resource.provider.startswith(provider.urn), resource


def test_viz_reads_the_platform_prometheus(dev_platform):
    """Linkerd viz without its own Prometheus must query the one kube-prometheus-stack installs."""
    viz = _release(dev_platform, "linkerd-viz")
    assert viz.inputs["values"]["prometheusUrl"] == dev_platform.stack_outputs["prometheusUrl"]
    assert viz.inputs["values"]["prometheus"]["enabled"] is False


def test_mlflow_pods_wait_for_the_mesh(dev_platform):
    """MLflow's namespace is meshed; pods admitted before the injector exists would run without mTLS."""
    deployment = next(r for r in dev_platform.of_type(K8S_DEPLOYMENT) if r.metadata["name"] == "mlflow")
    control_plane = _release(dev_platform, "linkerd-control-plane")
    assert dev_platform.depends_on(deployment, control_plane)


def test_prod_runs_linkerd_in_ha_and_dev_does_not(dev_platform, prod_platform):
    """`Pulumi.prod.yaml` sets mesh.ha; the control plane values must follow it."""
    prod_values = _release(prod_platform, "linkerd-control-plane").inputs["values"]
    dev_values = _release(dev_platform, "linkerd-control-plane").inputs["values"]
    assert prod_values["controllerReplicas"] == 3
    assert prod_values["enablePodDisruptionBudget"] is True
    assert "controllerReplicas" not in dev_values


def test_prod_database_is_multi_az_and_protected(prod_platform):
    """Losing the registry's database loses every model version's lineage."""
    database = prod_platform.one(AWS_RDS_INSTANCE)
    assert database.inputs["multiAz"] is True
    assert database.inputs["deletionProtection"] is True
    assert database.inputs["storageEncrypted"] is True
    assert database.inputs["publiclyAccessible"] is False


def test_nothing_is_exposed_outside_the_cluster(prod_platform):
    """No LoadBalancer or NodePort Service, and an EKS endpoint public only to named CIDRs."""
    assert prod_platform.of_type(K8S_SERVICE)
    for service in prod_platform.of_type(K8S_SERVICE):
        assert service.inputs["spec"].get("type", "ClusterIP") == "ClusterIP"
    cluster = prod_platform.one(AWS_EKS_CLUSTER)
    # Public only to the named CIDRs, never to every address (0.0.0.0/0 is refused in prod).
    assert all(not c.endswith("/0") for c in cluster.inputs["vpcConfig"]["publicAccessCidrs"])


def test_time_slicing_is_advertised_to_the_autoscaler():
    """With 4 pods per GPU, an empty GPU group must be known to offer 4x its GPUs, or pending pods never scale it up."""
    recording = run_platform(
        platform_config(devicePlugin={"timeSlicingReplicas": 4}, nodePools={"gpu": {"gpusPerNode": 2}})
    )
    tags = {t.inputs["tag"]["key"]: t.inputs["tag"]["value"] for t in recording.of_type(AWS_AUTOSCALING_TAG)}
    assert tags["k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"] == "8"


def test_existing_cluster_mode_creates_no_aws_resources():
    """Mode `existing` must run on kind, minikube or on-prem: no AWS resource, no AWS credentials needed."""
    recording = run_platform(existing_cluster_config())
    assert [r for r in recording.resources if r.type.startswith("aws:")] == []
    provider = recording.one(K8S_PROVIDER)
    assert provider.inputs["context"] == "kind-ml"
    assert recording.of_type(K8S_STATEFUL_SET), "MLflow needs its in-cluster Postgres"
    assert recording.stack_outputs["gpuPoolEnabled"] is False


def test_gpu_pool_can_be_switched_off():
    """A CPU-only dev platform must not pay for the autoscaler's GPU group."""
    recording = run_platform(platform_config(nodePools={"gpu": {"enabled": False}}))
    assert [n.name for n in recording.of_type(AWS_EKS_NODE_GROUP)] == ["cluster-system"]
    assert recording.stack_outputs["gpuPoolEnabled"] is False


def test_components_own_their_children(dev_platform):
    """Every resource sits under a component, so `pulumi stack --show-urns` reads as the architecture."""
    component_urns = {r.urn for r in dev_platform.resources if not r.custom}
    assert component_urns and any(r.custom and r.type != K8S_PROVIDER for r in dev_platform.resources)
    for resource in dev_platform.resources:
        if resource.custom and resource.type != K8S_PROVIDER:
            assert resource.parent in component_urns, resource
