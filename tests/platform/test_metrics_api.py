"""`metrics.k8s.io` in mode existing: the platform installs metrics-server, or reads the APIService the
stack says the cluster serves. Without the API the model servers' HPAs never scale."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime import mocks as pulumi_mocks

from mlplatform.configuration import ConfigError
from mlplatform.platform.metrics_api import API_SERVICE
from mlplatform.tools.offline.engine import run_entry_point
from mlplatform.tools.offline.mocks import RecordingMocks
from tests.support.helpers import ROOT, deep_merge, platform_config, qualify, run_platform
from tests.support.types import HELM_RELEASE, K8S_API_SERVICE

UPSTREAM_REPO = "https://kubernetes-sigs.github.io/metrics-server"


class _ReadsToo(RecordingMocks):
    """The recording mocks, plus the reads (`Resource.get`) the program makes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, str]] = []

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        if args.resource_id:
            self.reads.append((args.typ, args.resource_id))
        return super().new_resource(args)


def _existing(**overrides: Any) -> dict[str, Any]:
    base = platform_config(
        cluster={"mode": "existing"}, mlflow={"backend": "in-cluster", "artifactBucket": "ml-artifacts"}
    )
    return deep_merge(base, overrides)


def _metrics_releases(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [r.inputs for r in run_platform(values).of_type(HELM_RELEASE) if r.inputs["chart"] == "metrics-server"]


def test_mode_existing_installs_the_pinned_chart_by_default():
    (release,) = _metrics_releases(_existing())
    assert (release["version"], release["repositoryOpts"]["repo"]) == ("3.13.1", UPSTREAM_REPO)
    assert release["namespace"] == "kube-system"
    assert release["values"]["resources"]["requests"] == {"cpu": "50m", "memory": "64Mi"}


def test_a_cluster_that_serves_the_api_gets_a_read_not_a_second_metrics_server():
    """Installing where one runs would fail on the APIService another release owns; the read checks the claim."""
    mocks = _ReadsToo()
    config = qualify("mlplatform", _existing(cluster={"metricsApi": "served"}))
    recording = run_entry_point(ROOT, stack="dev", config=config, mocks=mocks)
    assert [r for r in recording.of_type(HELM_RELEASE) if r.inputs["chart"] == "metrics-server"] == []
    assert (K8S_API_SERVICE, API_SERVICE) in mocks.reads


def test_mode_aws_leaves_it_to_the_eks_add_on():
    assert _metrics_releases(platform_config()) == []


def test_mode_aws_refuses_the_existing_cluster_key():
    with pytest.raises(ConfigError, match=r"cluster\.metricsApi.*EKS metrics-server add-on") as error:
        run_platform(platform_config(cluster={"metricsApi": "install"}))
    assert "mlplatform:cluster.metricsApi" in str(error.value)


def test_destroy_removes_metrics_server_before_any_namespace():
    """An APIService registered but unserved makes every namespace deletion hang: it must go first."""
    recording = run_platform(_existing())
    (release,) = [r for r in recording.of_type(HELM_RELEASE) if r.inputs["chart"] == "metrics-server"]
    namespaces = [r for r in recording.kubernetes_objects if r.kind == "Namespace"]
    assert len(namespaces) >= 5
    assert all(recording.depends_on(release, namespace) for namespace in namespaces)
