"""The labels the platform's alerts select on, traced from the workloads the model stacks declare.

The training alert finds a model's Jobs by their labels as kube-state-metrics
exports them, and the latency alert groups proxy series by the `model` and
`model_version` the Linkerd PodMonitor derives from the serving pods' labels. Both
are agreements between a platform module and a model-stack module; these tests
take the labels from the rendered model stack and the selectors from the
rendered platform, so a change on either side that breaks the agreement fails
here instead of silencing an alert.
"""

from __future__ import annotations

import re

import pytest

from mlplatform.platform.alert_rules import TRAINING_JOB_LABELS
from mlplatform.tools.offline.engine import Recording
from tests.model.helpers import TEAM, run_model, with_canary
from tests.support.relabeling import relabel
from tests.support.types import K8S_DEPLOYMENT, K8S_JOB, K8S_POD_MONITOR, K8S_PROMETHEUS_RULE

JOB = K8S_JOB
DEPLOYMENT = K8S_DEPLOYMENT
POD_MONITOR = K8S_POD_MONITOR
PROMETHEUS_RULE = K8S_PROMETHEUS_RULE
TRAINING = {
    "runId": "r1",
    "image": "ghcr.io/example/train:1.0.0",
    "dataSource": {"type": "s3", "path": "s3://datasets/fraud/"},
}


@pytest.fixture(scope="module")
def model() -> Recording:
    return run_model(with_canary(10, training=TRAINING, team=TEAM))


def _platform_alert(platform: Recording, name: str) -> str:
    groups = platform.one(PROMETHEUS_RULE).inputs["spec"]["groups"]
    [rule] = [r for g in groups for r in g["rules"] if r["alert"] == name]
    return rule["expr"]


def _sanitise(key: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def test_training_jobs_carry_what_the_training_alert_joins_on(model, dev_platform):
    """kube_job_labels, as kube-state-metrics exports the rendered Job's allowlisted labels, matches the
    alert's selector, and the label the alert turns into `model` holds the model's name."""
    job_labels = model.one(JOB).metadata["labels"]
    exported = {f"label_{_sanitise(key)}": value for key, value in job_labels.items() if key in TRAINING_JOB_LABELS}
    expr = _platform_alert(dev_platform, "ModelTrainingFailed")
    selector = re.search(r"kube_job_labels\{([^}]*)\}", expr)
    assert selector is not None, expr
    matchers = dict(re.findall(r'(\w+)="([^"]*)"', selector.group(1)))
    assert matchers, expr
    for label, value in matchers.items():
        assert exported.get(label) == value, (label, exported)
    source = re.search(r'"model", "\$1", "(\w+)", "\(\.\+\)"', expr)
    assert source is not None, expr
    assert exported[source.group(1)] == "fraud-detector"


def test_serving_pods_give_their_proxy_series_model_and_version(model, dev_platform):
    """The Linkerd PodMonitor's relabelings, applied to a rendered canary pod as the injector leaves it."""
    [canary] = [d for d in model.of_type(DEPLOYMENT) if d.metadata["name"] == "fraud-detector-v6"]
    pod_labels = canary.inputs["spec"]["template"]["metadata"]["labels"]
    target = {
        "__meta_kubernetes_namespace": "ml-serving",
        "__meta_kubernetes_pod_name": "fraud-detector-v6-7d9f-abcde",
        "__meta_kubernetes_pod_container_name": "linkerd-proxy",
        # What the proxy injector adds to a meshed Deployment's pods.
        "__meta_kubernetes_pod_label_linkerd_io_control_plane_ns": "linkerd",
        "__meta_kubernetes_pod_label_linkerd_io_proxy_deployment": "fraud-detector-v6",
    } | {f"__meta_kubernetes_pod_label_{_sanitise(key)}": value for key, value in pod_labels.items()}
    monitor = dev_platform.one(POD_MONITOR, "monitoring-linkerd-proxies").inputs["spec"]
    labels = relabel(target, monitor["podMetricsEndpoints"][0]["relabelings"])
    assert labels is not None
    assert (labels["namespace"], labels["deployment"]) == ("ml-serving", "fraud-detector-v6")
    assert (labels["model"], labels["model_version"]) == ("fraud-detector", "v6")
    grouped = re.search(r"sum by \(([^)]*)\)", _platform_alert(dev_platform, "InferenceServiceHighLatency"))
    assert grouped is not None
    assert {"namespace", "model", "model_version"} <= {g.strip() for g in grouped.group(1).split(",")}
