"""A model's own metrics endpoint: a named port on every version's pods and the PodMonitor that scrapes it."""

from __future__ import annotations

from typing import Any

import pytest

from mlplatform.tools.offline.engine import Recording
from tests.model.helpers import (
    DEPLOYMENT,
    PROMETHEUS_RULE,
    SERVING_NAMESPACE,
    model_config,
    run_model,
    with_canary,
)
from tests.support.relabeling import relabel
from tests.support.types import K8S_POD_MONITOR

POD_MONITOR = K8S_POD_MONITOR
METRICS = {"port": 9090, "path": "/stats/prometheus"}


@pytest.fixture(scope="module")
def declared() -> Recording:
    return run_model(with_canary(10, serving={"metrics": METRICS}, analysis={"minAccuracy": 0.9}))


def _rules(recording: Recording) -> dict[str, dict[str, Any]]:
    (group,) = recording.one(PROMETHEUS_RULE).inputs["spec"]["groups"]
    return {rule["alert"]: rule for rule in group["rules"]}


def test_every_version_exposes_the_named_metrics_port(declared):
    """The PodMonitor scrapes by port name, so stable and canary both need it."""
    deployments = declared.of_type(DEPLOYMENT)
    assert len(deployments) == 2
    for deployment in deployments:
        (container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
        assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container["ports"], deployment


def test_pod_monitor_selects_the_models_pods_on_that_port(declared):
    """In the model's namespace, every version (`app: <model>`), on the declared path."""
    monitor = declared.one(POD_MONITOR).inputs
    assert monitor["metadata"] == {**monitor["metadata"], "name": "fraud-detector", "namespace": SERVING_NAMESPACE}
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [SERVING_NAMESPACE]}
    assert monitor["spec"]["selector"] == {"matchLabels": {"app": "fraud-detector"}}
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/stats/prometheus")
    pod_labels = declared.of_type(DEPLOYMENT)[0].inputs["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app"] == "fraud-detector"


def test_series_get_the_labels_the_gate_and_the_drift_alert_select(declared):
    """The gate reads ml_model_accuracy{namespace, deployment}; the drift alert groups by model and version."""
    [endpoint] = declared.one(POD_MONITOR).inputs["spec"]["podMetricsEndpoints"]
    [canary] = [d for d in declared.of_type(DEPLOYMENT) if d.metadata["name"] == "fraud-detector-v6"]
    pod = canary.inputs["spec"]["template"]["metadata"]["labels"]
    target = {"namespace": SERVING_NAMESPACE} | {
        "__meta_kubernetes_pod_label_" + key.replace(".", "_").replace("/", "_").replace("-", "_"): value
        for key, value in pod.items()
    }
    labels = relabel(target, endpoint["relabelings"])
    assert labels is not None
    assert labels["deployment"] == "fraud-detector-v6"
    assert (labels["model"], labels["model_version"]) == ("fraud-detector", "v6")


def test_drift_alert_exists_with_the_endpoint(declared):
    """Drift above 0.2 for 10 minutes, per model version, in the model's namespace."""
    rule = _rules(declared)["ModelDriftDetected"]
    assert rule["expr"] == (
        "max by (namespace, model, model_version) "
        '(ml_model_drift_score{namespace="ml-serving", model="fraud-detector"})'
        " > 0.2"
    )
    assert (rule["for"], rule["labels"]["severity"]) == ("10m", "warning")
    assert "{{ $labels.model_version }}" in rule["annotations"]["summary"]


def test_no_endpoint_no_pod_monitor_no_drift_alert():
    """Without `serving.metrics` nothing scrapes the server, so nothing may read what it would export."""
    recording = run_model(model_config())
    assert recording.of_type(POD_MONITOR) == []
    assert "ModelDriftDetected" not in _rules(recording)
    (container,) = recording.of_type(DEPLOYMENT)[0].inputs["spec"]["template"]["spec"]["containers"]
    assert [p["name"] for p in container["ports"]] == ["http"]
    assert recording.stack_outputs["podMonitor"] is None


def test_stack_output_names_the_pod_monitor(declared):
    """Operators find the model's scrape configuration from the stack's outputs."""
    assert declared.stack_outputs["podMonitor"] == "fraud-detector"
