"""Monitoring: kube-prometheus-stack values, the Linkerd proxy PodMonitor and the ML alerts.

Alertmanager's receivers and Grafana's password are in test_alerting.py, the
DCGM exporter in test_gpu_metrics.py, and whether every alert reads a scraped
series in tests/test_metrics_catalog.py."""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from mlplatform.platform.charts_config import ChartsConfig
from mlplatform.platform.monitoring import Monitoring, MonitoringArgs
from mlplatform.platform.monitoring_config import MonitoringConfig
from mlplatform.platform.sizing import platform_sizes
from mlplatform.tools.offline.engine import Recording, run_program
from tests.support.helpers import build
from tests.support.relabeling import relabel
from tests.support.types import HELM_RELEASE, K8S_CONFIG_MAP, K8S_DAEMON_SET, K8S_POD_MONITOR, K8S_PROMETHEUS_RULE

RELEASE = HELM_RELEASE
POD_MONITOR = K8S_POD_MONITOR
LINKERD_MONITOR = "monitoring-linkerd-proxies"
PROMETHEUS_RULE = K8S_PROMETHEUS_RULE
CONFIG = build(MonitoringConfig, retention="30d", storage_size_gib=100, replicas=2, grafana=False)
SERVING_POD_LABELS = {
    "__meta_kubernetes_pod_label_app_kubernetes_io_component": "model-server",
    "__meta_kubernetes_pod_label_app_kubernetes_io_name": "fraud-detector",
    "__meta_kubernetes_pod_label_app_kubernetes_io_version": "v2",
}


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


def test_selects_pod_monitors_and_rules_in_every_namespace(values):
    """A model stack's PodMonitor and rule live in its serving namespace, not in monitoring.

    The operator reads a nil namespace selector as "Prometheus' own namespace only"."""
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["podMonitorNamespaceSelector"] == {}
    assert spec["ruleNamespaceSelector"] == {}


def test_kube_state_metrics_exports_the_training_job_labels(values):
    """kube_job_labels carries only allowlisted labels; the training alert joins on these three."""
    assert values["kube-state-metrics"]["metricLabelsAllowlist"] == [
        "jobs=[app.kubernetes.io/name,app.kubernetes.io/component,app.kubernetes.io/part-of]"
    ]


def test_prometheus_url_points_at_the_service_and_waits_for_the_release(recording):
    """Linkerd viz and the model stacks query this URL; it must exist before they use it."""
    consumer = recording.one(K8S_CONFIG_MAP, "consumer")
    assert consumer.inputs["data"]["url"] == (
        "http://kube-prometheus-stack-prometheus.observability.svc.cluster.local:9090"
    )
    assert recording.depends_on(consumer, recording.one(RELEASE, "monitoring-kube-prometheus-stack"))


def test_custom_resources_wait_for_the_chart_crds(recording):
    """PodMonitor and PrometheusRule kinds only exist once the chart installed their CRDs."""
    release = recording.one(RELEASE, "monitoring-kube-prometheus-stack")
    monitors_and_rules = recording.of_type(POD_MONITOR) + recording.of_type(PROMETHEUS_RULE)
    assert len(monitors_and_rules) == 3  # the Linkerd and DCGM PodMonitors, the rule
    for resource in monitors_and_rules:
        assert recording.depends_on(resource, release), resource
        assert resource.metadata["namespace"] == "observability"


def test_pod_monitor_scrapes_every_linkerd_proxy_admin_port(recording):
    """Golden metrics for viz and the rollout gate come from each proxy's admin port."""
    spec = recording.one(POD_MONITOR, LINKERD_MONITOR).inputs["spec"]
    assert spec["namespaceSelector"] == {"any": True}
    [endpoint] = spec["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("linkerd-admin", "/metrics")


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
    rules = recording.one(POD_MONITOR, LINKERD_MONITOR).inputs["spec"]["podMetricsEndpoints"][0]["relabelings"]
    labels = relabel(PROXY_TARGET, rules)
    assert labels is not None
    assert labels["namespace"] == "ml-serving"
    assert labels["pod"] == "fraud-detector-v2-7d9f-abcde"
    assert labels["deployment"] == "fraud-detector-v2"
    assert labels["job"] == "monitoring/linkerd-proxies"


def test_proxy_job_label_does_not_clobber_the_scrape_job(recording):
    """Meshed Jobs' pods carry linkerd.io/proxy-job, which must not overwrite Prometheus' `job`."""
    rules = recording.one(POD_MONITOR, LINKERD_MONITOR).inputs["spec"]["podMetricsEndpoints"][0]["relabelings"]
    target = {**PROXY_TARGET, "__meta_kubernetes_pod_label_linkerd_io_proxy_job": "train-resnet"}
    del target["__meta_kubernetes_pod_label_linkerd_io_proxy_deployment"]
    labels = relabel(target, rules)
    assert labels is not None
    assert labels["job"] == "monitoring/linkerd-proxies"
    assert labels["k8s_job"] == "train-resnet"


def test_only_the_proxy_container_is_scraped(recording):
    """An application container exposing an admin port must not be mistaken for a proxy."""
    rules = recording.one(POD_MONITOR, LINKERD_MONITOR).inputs["spec"]["podMetricsEndpoints"][0]["relabelings"]
    assert relabel({**PROXY_TARGET, "__meta_kubernetes_pod_container_name": "model-server"}, rules) is None


def test_serving_proxies_get_model_and_version_labels(recording):
    """The platform's latency alert groups by model and model_version, which only serving pods' proxies carry.

    Not `version`: the proxy's `proxy_build_info` has one, which Prometheus would rename."""
    rules = recording.one(POD_MONITOR, LINKERD_MONITOR).inputs["spec"]["podMetricsEndpoints"][0]["relabelings"]
    labels = relabel({**PROXY_TARGET, **SERVING_POD_LABELS}, rules)
    assert labels is not None
    assert (labels["model"], labels["model_version"]) == ("fraud-detector", "v2")
    assert "version" not in labels
    other = {**SERVING_POD_LABELS, "__meta_kubernetes_pod_label_app_kubernetes_io_component": "mlflow"}
    labels = relabel({**PROXY_TARGET, **other}, rules)
    assert labels is not None
    assert "model" not in labels and "model_version" not in labels


def test_platform_alerts(alerts):
    """Drift moved to the model stacks (it needs their metrics endpoint); GPU idleness joined."""
    assert set(alerts) == {"ModelTrainingFailed", "InferenceServiceHighLatency", "GpuIdle"}


def test_training_failure_alert_joins_the_job_to_its_model(alerts):
    """A failed training Job pages after 5 minutes, with the model's name as a label."""
    rule = alerts["ModelTrainingFailed"]
    expr = rule["expr"]
    assert '(kube_job_failed{condition="true"} == 1) * on (namespace, job_name)' in expr
    assert "group_left (label_app_kubernetes_io_name) kube_job_labels{" in expr
    assert 'label_app_kubernetes_io_component="training"' in expr
    assert expr.startswith("label_replace(") and '"model", "$1", "label_app_kubernetes_io_name"' in expr
    assert (rule["for"], rule["labels"]["severity"]) == ("5m", "critical")


def test_latency_alert_reads_the_proxy_histogram_per_model_version(alerts):
    """A p99 over unsummed per-pod buckets is not the service's p99; the threshold is 100ms."""
    rule = alerts["InferenceServiceHighLatency"]
    expr = re.sub(r"\s+", " ", rule["expr"])
    assert expr.startswith("histogram_quantile(0.99, sum by (le, namespace, model, model_version) ")
    assert 'rate(response_latency_ms_bucket{direction="inbound", model!=""}[5m])' in expr
    assert expr.endswith("> 100")
    assert (rule["for"], rule["labels"]["severity"]) == ("2m", "warning")


def test_gpu_idle_alert(alerts):
    """A GPU held by a pod and averaging under 5% over 30 minutes is reported, with who holds it."""
    rule = alerts["GpuIdle"]
    assert rule["expr"] == 'avg_over_time(DCGM_FI_DEV_GPU_UTIL{pod!=""}[30m]) < 5'
    assert (rule["for"], rule["labels"]["severity"]) == ("30m", "warning")
    assert "{{ $labels.namespace }}/{{ $labels.pod }}" in rule["annotations"]["summary"]


def test_alerts_name_the_model_in_their_annotations(alerts):
    """On-call must see which model (or training run) an alert is about."""
    for name, rule in alerts.items():
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
    for name in ("InferenceServiceHighLatency", "ModelTrainingFailed"):
        text = alerts[name]["annotations"]["summary"] + alerts[name]["annotations"]["description"]
        assert "{{ $labels.model }}" in text, name
    assert "{{ $labels.model_version }}" in alerts["InferenceServiceHighLatency"]["annotations"]["summary"]
    assert "{{ $labels.job_name }}" in alerts["ModelTrainingFailed"]["annotations"]["description"]


def test_no_gpu_idle_alert_without_the_exporter():
    """Without DCGM nothing produces GPU utilisation, so the alert would never fire."""
    recording = run_program(
        lambda: Monitoring(
            "monitoring",
            MonitoringArgs(
                chart=ChartsConfig().kube_prometheus_stack,
                config=build(MonitoringConfig, gpu_metrics=False),
                namespace="monitoring",
                sizes=platform_sizes("dev"),
            ),
        ),
        project="mlplatform",
        stack="dev",
    )
    rules = recording.one(PROMETHEUS_RULE).inputs["spec"]["groups"][0]["rules"]
    assert {rule["alert"] for rule in rules} == {"ModelTrainingFailed", "InferenceServiceHighLatency"}
    assert recording.of_type(K8S_DAEMON_SET) == []
