"""Every platform workload with more than one replica survives a node drain and a zone outage:
a PodDisruptionBudget and a spread over zones and hosts, as the model servers have."""

from __future__ import annotations

from mlplatform.scheduling import SPREAD_TOPOLOGY_KEYS
from mlplatform.tools.offline.engine import Recording
from tests.support.types import HELM_RELEASE, K8S_DEPLOYMENT, K8S_POD_DISRUPTION_BUDGET

DEPLOYMENT = K8S_DEPLOYMENT
PDB = K8S_POD_DISRUPTION_BUDGET


def _mlflow(recording: Recording):
    return next(d for d in recording.of_type(DEPLOYMENT) if d.inputs["metadata"]["name"] == "mlflow")


def _prometheus_values(recording: Recording) -> dict:
    release = next(r for r in recording.of_type(HELM_RELEASE) if r.inputs["chart"] == "kube-prometheus-stack")
    return release.inputs["values"]["prometheus"]


def test_prod_mlflow_has_a_budget_and_a_spread(prod_platform):
    """prod runs MLflow twice; one drain must not take both replicas."""
    deployment = _mlflow(prod_platform)
    assert deployment.inputs["spec"]["replicas"] == 2
    selector = deployment.inputs["spec"]["selector"]["matchLabels"]
    budgets = [p for p in prod_platform.of_type(PDB) if p.inputs["spec"]["selector"]["matchLabels"] == selector]
    assert len(budgets) == 1 and budgets[0].inputs["spec"]["maxUnavailable"] == 1
    spread = deployment.inputs["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == list(SPREAD_TOPOLOGY_KEYS)
    assert all(c["labelSelector"]["matchLabels"] == selector for c in spread)


def test_prod_prometheus_has_a_budget_and_a_spread(prod_platform):
    prometheus = _prometheus_values(prod_platform)
    assert prometheus["prometheusSpec"]["replicas"] == 2
    assert prometheus["podDisruptionBudget"]["enabled"] is True
    spread = prometheus["prometheusSpec"]["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == list(SPREAD_TOPOLOGY_KEYS)
    assert spread[0]["labelSelector"]["matchLabels"]["prometheus"] == "kube-prometheus-stack-prometheus"


def test_single_replicas_get_no_budget(dev_platform):
    """A budget over one replica would only block node drains."""
    assert not any(p.inputs["metadata"]["name"] == "mlflow" for p in dev_platform.of_type(PDB))
    assert "topologySpreadConstraints" not in _mlflow(dev_platform).inputs["spec"]["template"]["spec"]
    assert _prometheus_values(dev_platform)["podDisruptionBudget"]["enabled"] is False


def test_mlflow_scratch_is_bounded(dev_platform):
    """MLflow buffers artifact uploads in /tmp; bounded, an oversized upload evicts MLflow alone."""
    pod = _mlflow(dev_platform).inputs["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert (resources["requests"]["ephemeral-storage"], resources["limits"]["ephemeral-storage"]) == ("1Gi", "6Gi")
    assert {v["name"]: v["emptyDir"]["sizeLimit"] for v in pod["volumes"] if "emptyDir" in v} == {
        "tmp": "2Gi",
        "home": "2Gi",
    }
