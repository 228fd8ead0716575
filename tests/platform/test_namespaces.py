"""PlatformNamespaces: names, mesh membership and the teams' GPU quotas."""

from __future__ import annotations

import pulumi
import pytest

from mlplatform import labels
from mlplatform.platform.config import NamespacesConfig, TeamConfig
from mlplatform.platform.namespaces import PlatformNamespaces, PlatformNamespacesArgs
from mlplatform.tools.offline.engine import RecordedResource, Recording, run_program
from tests.support.helpers import build
from tests.support.types import K8S_NAMESPACE, K8S_RESOURCE_QUOTA

NAMESPACE = K8S_NAMESPACE
QUOTA = K8S_RESOURCE_QUOTA
INJECT = "linkerd.io/inject"

CONFIG = NamespacesConfig(
    serving="serving",
    training="training",
    mlflow="registry",
    monitoring="observability",
    teams=[
        TeamConfig(name="team-fraud", gpu_requests=4, gpu_limits=8),
        TeamConfig(name="team-vision", gpu_requests=8, gpu_limits=16),
    ],
)


@pytest.fixture(scope="module")
def recording() -> Recording:
    def program():
        namespaces = PlatformNamespaces("namespaces", PlatformNamespacesArgs(config=CONFIG))
        for attr in ("serving", "training", "mlflow", "monitoring", "teams"):
            pulumi.export(attr, getattr(namespaces, attr))

    return run_program(program, project="mlplatform", stack="dev")


def _namespace(recording: Recording, name: str) -> RecordedResource:
    found = [r for r in recording.of_type(NAMESPACE) if r.metadata.get("name") == name]
    assert len(found) == 1, [r.metadata.get("name") for r in recording.of_type(NAMESPACE)]
    return found[0]


def _annotations(recording: Recording, name: str) -> dict[str, str]:
    return _namespace(recording, name).metadata.get("annotations") or {}


def test_namespaces_are_named_from_config(recording):
    """Model stacks find namespaces by the names exported here; they must be exactly the configured ones."""
    assert recording.stack_outputs == {
        "serving": "serving",
        "training": "training",
        "mlflow": "registry",
        "monitoring": "observability",
        "teams": ["team-fraud", "team-vision"],
    }
    names = sorted(r.metadata["name"] for r in recording.of_type(NAMESPACE))
    assert names == sorted(["serving", "training", "registry", "observability", "team-fraud", "team-vision"])


@pytest.mark.parametrize("name", ["serving", "registry", "team-fraud", "team-vision"])
def test_serving_mlflow_and_teams_are_meshed(recording, name):
    """Every pod there gets the Linkerd proxy: mTLS, golden metrics, and TrafficSplit for canaries."""
    assert _annotations(recording, name)[INJECT] == labels.MESH_INJECT_ANNOTATION[INJECT]


def test_training_is_explicitly_not_meshed(recording):
    """NCCL peer traffic on dynamic ports and Jobs that must terminate both break under a sidecar proxy."""
    assert _annotations(recording, "training") == {INJECT: "disabled"}


def test_monitoring_is_left_to_the_cluster_default(recording):
    """Prometheus scrapes proxies from outside the mesh; nothing forces injection there."""
    assert INJECT not in _annotations(recording, "observability")


def test_namespaces_carry_common_labels(recording):
    """Ownership labels let `kubectl get ns -l app.kubernetes.io/part-of=mlplatform` find the platform's namespaces."""
    common = labels.k8s_labels("namespaces", instance="namespaces")
    assert recording.of_type(NAMESPACE)
    for namespace in recording.of_type(NAMESPACE):
        assert common.items() <= namespace.metadata["labels"].items(), namespace


def test_each_team_gets_its_gpu_quota(recording):
    """GPU quotas stop one team from starving the others; values come from each team's config."""
    quotas = {r.metadata["namespace"]: r.inputs["spec"]["hard"] for r in recording.of_type(QUOTA)}
    assert quotas == {
        "team-fraud": {"requests.nvidia.com/gpu": "4", "limits.nvidia.com/gpu": "8"},
        "team-vision": {"requests.nvidia.com/gpu": "8", "limits.nvidia.com/gpu": "16"},
    }


def test_quota_waits_for_its_namespace(recording):
    """The quota takes the namespace's name as an Output, so it is created after the namespace exists."""
    quota = next(r for r in recording.of_type(QUOTA) if r.metadata["namespace"] == "team-fraud")
    assert recording.depends_on(quota, _namespace(recording, "team-fraud"))


def test_no_teams_means_no_quotas():
    """A platform without teams still exports an (empty) team list for the model stacks."""

    def program():
        namespaces = PlatformNamespaces("namespaces", PlatformNamespacesArgs(config=build(NamespacesConfig)))
        pulumi.export("teams", namespaces.teams)

    recording = run_program(program, project="mlplatform", stack="dev")
    assert recording.of_type(QUOTA) == []
    assert recording.stack_outputs["teams"] == []
