"""Monitoring: kube-prometheus-stack values, the Linkerd proxy PodMonitor and the ML alerts."""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from mlplatform.offline import Recording, run_program
from mlplatform.platform.config import ChartsConfig, MonitoringConfig
from mlplatform.platform.monitoring import Monitoring, MonitoringArgs
from mlplatform.platform.sizing import platform_sizes

RELEASE = "kubernetes:helm.sh/v3:Release"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
CONFIG = MonitoringConfig(retention="30d", storage_size_gib=100, replicas=2, grafana=False)


@pytest.fixture(scope="module")
def recording() -> Recording:
    def program() -> None:
        monitoring = Monitoring(
            "monitoring",
            MonitoringArgs(
                chart=ChartsConfig().kube_prometheus_stack,
                config=CONFIG,
                # Outputs, as the namespaces component passes them.
                namespace=pulumi.Output.from_input("observability"),
                training_namespace=pulumi.Output.from_input("ml-training"),
                sizes=platform_sizes("dev"),
            ),
        )
        # Stands in for a consumer of the URL, such as Linkerd viz.
        k8s.core.v1.ConfigMap("consumer", data={"url": monitoring.prometheus_url})

    return run_program(program, project="mlplatform", stack="dev")


@pytest.fixture(scope="module")
def values(recording: Recording) -> dict[str, Any]:
    return recording.one(RELEASE, "monitoring-kube-prometheus-stack").inputs["values"]


@pytest.fixture(scope="module")
def alerts(recording: Recording) -> dict[str, dict[str, Any]]:
    groups = recording.one(PROMETHEUS_RULE).inputs["spec"]["groups"]
    assert [g["name"] for g in groups] == ["ml-pipeline-alerts"]
    return {rule["alert"]: rule for rule in groups[0]["rules"]}


def test_release_is_pinned_with_a_predictable_name(recording, values):
    """The Prometheus URL is derived from the service name, which fullnameOverride fixes."""
    release = recording.one(RELEASE, "monitoring-kube-prometheus-stack").inputs
    pinned = ChartsConfig().kube_prometheus_stack
    assert (release["name"], release["chart"]) == ("kube-prometheus-stack", "kube-prometheus-stack")
    assert (release["version"], release["repositoryOpts"]["repo"]) == (pinned.version, pinned.repo)
    assert release["namespace"] == "observability"
    assert values["fullnameOverride"] == "kube-prometheus-stack"


def test_prometheus_sized_from_config(values):
    """Retention, replicas and disk are what the stack config says, and data survives restarts."""
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "30d"
    assert spec["replicas"] == 2
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["resources"]["requests"]["storage"] == "100Gi"
    assert values["grafana"]["enabled"] is False


def test_selects_monitors_and_rules_created_outside_the_chart(values):
    """Our PodMonitor and rules, and the model stacks', carry no chart release label."""
    spec = values["prometheus"]["prometheusSpec"]
    for key in (
        "podMonitorSelectorNilUsesHelmValues",
        "serviceMonitorSelectorNilUsesHelmValues",
        "ruleSelectorNilUsesHelmValues",
    ):
        assert spec[key] is False, key


def test_prometheus_url_points_at_the_service_and_waits_for_the_release(recording):
    """Linkerd viz and the model stacks query this URL; it must exist before they use it."""
    consumer = recording.one("kubernetes:core/v1:ConfigMap", "consumer")
    assert consumer.inputs["data"]["url"] == (
        "http://kube-prometheus-stack-prometheus.observability.svc.cluster.local:9090"
    )
    assert recording.depends_on(consumer, recording.one(RELEASE, "monitoring-kube-prometheus-stack"))


def test_custom_resources_wait_for_the_chart_crds(recording):
    """PodMonitor and PrometheusRule kinds only exist once the chart installed their CRDs."""
    release = recording.one(RELEASE, "monitoring-kube-prometheus-stack")
    for token in (POD_MONITOR, PROMETHEUS_RULE):
        resource = recording.one(token)
        assert recording.depends_on(resource, release), resource
        assert resource.metadata["namespace"] == "observability"


def test_pod_monitor_scrapes_every_linkerd_proxy_admin_port(recording):
    """Golden metrics for viz and the rollout gate come from each proxy's admin port."""
    spec = recording.one(POD_MONITOR).inputs["spec"]
    assert spec["namespaceSelector"] == {"any": True}
    [endpoint] = spec["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("linkerd-admin", "/metrics")


def _expand(template: str, match: re.Match[str]) -> str:
    return re.sub(r"\$\{?(\d+)\}?", lambda m: match.group(int(m.group(1))) or "", template)


def _relabel(target: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus relabeling for the actions the PodMonitor uses; None when the target is dropped."""
    labels = dict(target)
    for rule in rules:
        action, regex = rule.get("action", "replace"), re.compile(rule.get("regex", "(.*)"))
        value = rule.get("separator", ";").join(labels.get(s, "") for s in rule.get("sourceLabels", []))
        if action == "keep" and not regex.fullmatch(value):
            return None
        if action == "drop" and regex.fullmatch(value):
            return None
        if action == "replace" and (match := regex.fullmatch(value)):
            result = _expand(rule.get("replacement", "$1"), match)
            if result:
                labels[rule["targetLabel"]] = result
            else:
                labels.pop(rule["targetLabel"], None)
        if action == "labeldrop":
            labels = {k: v for k, v in labels.items() if not regex.fullmatch(k)}
        if action == "labelmap":
            for name, val in list(labels.items()):
                if match := regex.fullmatch(name):
                    labels[_expand(rule.get("replacement", "$1"), match)] = val
    return {k: v for k, v in labels.items() if not k.startswith("__")}


PROXY_TARGET = {
    "job": "monitoring/linkerd-proxies",
    "__meta_kubernetes_namespace": "ml-serving",
    "__meta_kubernetes_pod_name": "fraud-detector-v2-7d9f-abcde",
    "__meta_kubernetes_pod_container_name": "linkerd-proxy",
    "__meta_kubernetes_pod_container_port_name": "linkerd-admin",
    "__meta_kubernetes_pod_label_linkerd_io_proxy_deployment": "fraud-detector-v2",
    "__meta_kubernetes_pod_label_linkerd_io_control_plane_ns": "linkerd",
}


def test_proxy_metrics_get_the_labels_the_rollout_gate_queries(recording):
    """response_total{namespace, deployment, direction} only matches if these labels exist."""
    rules = recording.one(POD_MONITOR).inputs["spec"]["podMetricsEndpoints"][0]["relabelings"]
    labels = _relabel(PROXY_TARGET, rules)
    assert labels is not None
    assert labels["namespace"] == "ml-serving"
    assert labels["pod"] == "fraud-detector-v2-7d9f-abcde"
    assert labels["deployment"] == "fraud-detector-v2"
    assert labels["job"] == "monitoring/linkerd-proxies"


def test_proxy_job_label_does_not_clobber_the_scrape_job(recording):
    """Meshed Jobs' pods carry linkerd.io/proxy-job, which must not overwrite Prometheus' `job`."""
    rules = recording.one(POD_MONITOR).inputs["spec"]["podMetricsEndpoints"][0]["relabelings"]
    target = {**PROXY_TARGET, "__meta_kubernetes_pod_label_linkerd_io_proxy_job": "train-resnet"}
    del target["__meta_kubernetes_pod_label_linkerd_io_proxy_deployment"]
    labels = _relabel(target, rules)
    assert labels is not None
    assert labels["job"] == "monitoring/linkerd-proxies"
    assert labels["k8s_job"] == "train-resnet"


def test_only_the_proxy_container_is_scraped(recording):
    """An application container exposing an admin port must not be mistaken for a proxy."""
    rules = recording.one(POD_MONITOR).inputs["spec"]["podMetricsEndpoints"][0]["relabelings"]
    assert _relabel({**PROXY_TARGET, "__meta_kubernetes_pod_container_name": "model-server"}, rules) is None


def test_three_platform_alerts(alerts):
    """The reference design names exactly these alerts."""
    assert set(alerts) == {"ModelTrainingFailed", "InferenceServiceHighLatency", "ModelDriftDetected"}


def test_training_failure_alert(alerts):
    """A failed training Job in the training namespace pages after 5 minutes."""
    rule = alerts["ModelTrainingFailed"]
    assert "kube_job_failed" in rule["expr"]
    assert 'namespace="ml-training"' in rule["expr"]
    assert (rule["for"], rule["labels"]["severity"]) == ("5m", "critical")


def test_latency_alert_aggregates_buckets_before_the_quantile(alerts):
    """A p99 over unsummed per-pod buckets is not the service's p99."""
    rule = alerts["InferenceServiceHighLatency"]
    expr = re.sub(r"\s+", " ", rule["expr"])
    assert expr.startswith("histogram_quantile(0.99, sum by (le, ")
    assert "rate(inference_request_duration_seconds_bucket[5m])" in expr
    assert expr.endswith("> 0.1")
    assert (rule["for"], rule["labels"]["severity"]) == ("2m", "warning")


def test_drift_alert(alerts):
    """Drift above 0.2 held for 10 minutes signals a retrain."""
    rule = alerts["ModelDriftDetected"]
    assert rule["expr"] == "ml_model_drift_score > 0.2"
    assert (rule["for"], rule["labels"]["severity"]) == ("10m", "warning")


def test_alerts_name_the_model_in_their_annotations(alerts):
    """On-call must see which model (or training run) an alert is about."""
    for name, rule in alerts.items():
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
    for name in ("InferenceServiceHighLatency", "ModelDriftDetected"):
        text = alerts[name]["annotations"]["summary"] + alerts[name]["annotations"]["description"]
        assert "{{ $labels.model }}" in text and "{{ $labels.version }}" in text, name
    assert "{{ $labels.job_name }}" in alerts["ModelTrainingFailed"]["annotations"]["description"]
