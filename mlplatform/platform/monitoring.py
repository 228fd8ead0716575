"""Prometheus (kube-prometheus-stack), the Linkerd proxy scrape, and the ML alerts.

One Prometheus serves the whole platform: Linkerd viz, the canary rollout gate
and the model stacks' ServiceMonitors all read from it. Its selectors are opened
up so PodMonitors, ServiceMonitors and PrometheusRules created outside the chart,
in any namespace, are picked up without carrying the chart's release label. The
trade-off is that anyone who can create those objects in any namespace can add
scrape load and alerts; in a shared cluster, restrict that with RBAC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.platform.config import ChartConfig, MonitoringConfig
from mlplatform.platform.helm import pinned_release
from mlplatform.platform.sizing import PlatformSizes

# fullnameOverride fixes the service names (`<fullname>-prometheus`), so the URL
# below holds whatever the release is called.
FULLNAME = "kube-prometheus-stack"
PROMETHEUS_PORT = 9090
ALERT_GROUP = "ml-pipeline-alerts"

# Labels every alert names so one model's alert is told apart from another's.
MODEL_LABELS = ("namespace", "model", "version")


@dataclass
class MonitoringArgs:
    chart: ChartConfig
    config: MonitoringConfig
    namespace: pulumi.Input[str]
    """The monitoring namespace."""
    training_namespace: pulumi.Input[str]
    """Where training Jobs run; the ModelTrainingFailed alert watches it."""
    sizes: PlatformSizes
    """CPU and memory of the chart's pods."""


def _chart_values(config: MonitoringConfig, sizes: PlatformSizes) -> dict[str, Any]:
    return {
        "fullnameOverride": FULLNAME,
        "grafana": {
            "enabled": config.grafana,
            "resources": sizes.grafana.k8s(),
            # The dashboard and datasource sidecars.
            "sidecar": {"resources": sizes.grafana_sidecar.k8s()},
        },
        "kube-state-metrics": {"resources": sizes.kube_state_metrics.k8s()},
        # The chart's pod securityContext is merged with this: the host-network exporter
        # keeps its host access (see the README's exceptions) but gets the runtime's seccomp filter.
        "prometheus-node-exporter": {
            "resources": sizes.node_exporter.k8s(),
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        },
        "prometheusOperator": {
            "resources": sizes.prometheus_operator.k8s(),
            # The sidecar the operator adds to Prometheus and Alertmanager pods.
            "prometheusConfigReloader": {"resources": sizes.config_reloader.k8s()},
            # The create and patch Jobs of the admission webhook's certificate.
            "admissionWebhooks": {"patch": {"resources": sizes.admission_jobs.k8s()}},
        },
        "alertmanager": {"alertmanagerSpec": {"resources": sizes.alertmanager.k8s()}},
        "prometheus": {
            "prometheusSpec": {
                "resources": sizes.prometheus.k8s(),
                "retention": config.retention,
                "replicas": config.replicas,
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": f"{config.storage_size_gib}Gi"}},
                        }
                    }
                },
                # With the default (true) an empty selector only matches objects
                # labelled with this release; false makes it match every object.
                "podMonitorSelectorNilUsesHelmValues": False,
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "probeSelectorNilUsesHelmValues": False,
            }
        },
    }


def _proxy_relabelings() -> list[dict[str, Any]]:
    """Target labels for Linkerd proxy metrics, as viz and the rollout gate query them.

    Viz and the gate filter on `namespace`, `pod` and the workload label
    (`deployment`, ...), which the proxy injector records on each pod as
    `linkerd.io/proxy-<kind>`.
    """
    return [
        # Other containers of a meshed pod may also name a port *-admin.
        {"sourceLabels": ["__meta_kubernetes_pod_container_name"], "action": "keep", "regex": "linkerd-proxy"},
        {"sourceLabels": ["__meta_kubernetes_namespace"], "action": "replace", "targetLabel": "namespace"},
        {"sourceLabels": ["__meta_kubernetes_pod_name"], "action": "replace", "targetLabel": "pod"},
        {
            "sourceLabels": ["__meta_kubernetes_pod_label_linkerd_io_proxy_deployment"],
            "action": "replace",
            "targetLabel": "deployment",
        },
        # A Job's pod label would otherwise become `job` and clobber the scrape job.
        {
            "sourceLabels": ["__meta_kubernetes_pod_label_linkerd_io_proxy_job"],
            "action": "replace",
            "targetLabel": "k8s_job",
        },
        {"action": "labeldrop", "regex": "__meta_kubernetes_pod_label_linkerd_io_proxy_job"},
        # statefulset, daemonset, replicaset, cronjob... for non-Deployment workloads.
        {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_linkerd_io_proxy_(.+)"},
        {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_linkerd_io_(control_plane_ns|workload_ns)"},
    ]


def _model_annotation(what: str) -> str:
    return what + " (namespace {{ $labels.namespace }}, model {{ $labels.model }}, version {{ $labels.version }})"


def _alert_rules(training_namespace: str) -> list[dict[str, Any]]:
    by = ", ".join(MODEL_LABELS)
    return [
        {
            "alert": "ModelTrainingFailed",
            # A ModelTraining run is carried out by a Job in the training namespace,
            # and kube-state-metrics exports Jobs but not our CRs' status.
            # kube_job_failed tracks the Job's Failed condition (backoffLimit or
            # deadline exhausted); kube_job_status_failed would also fire on a pod
            # that failed once and was retried successfully.
            "expr": f'kube_job_failed{{namespace="{training_namespace}", condition="true"}} == 1',
            "for": "5m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "Training run {{ $labels.namespace }}/{{ $labels.job_name }} failed",
                "description": "The training Job {{ $labels.job_name }} in namespace {{ $labels.namespace }} "
                "has been in the Failed condition for 5 minutes; check its pods' logs and the status of "
                "the ModelTraining run it belongs to.",
            },
        },
        {
            "alert": "InferenceServiceHighLatency",
            # The quantile has to be taken over buckets summed across pods, per
            # model; a per-pod quantile cannot be averaged afterwards.
            "expr": "histogram_quantile(0.99, sum by (le, "
            + by
            + ") (rate(inference_request_duration_seconds_bucket[5m]))) > 0.1",
            "for": "2m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": _model_annotation("Inference p99 latency above 100ms"),
                "description": "p99 inference latency of model {{ $labels.model }} version {{ $labels.version }} "
                "in namespace {{ $labels.namespace }} is {{ $value | humanizeDuration }}, above 100ms, "
                "for 2 minutes.",
            },
        },
        {
            "alert": "ModelDriftDetected",
            "expr": "ml_model_drift_score > 0.2",
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": _model_annotation("Model drift score above 0.2"),
                "description": "Drift score of model {{ $labels.model }} version {{ $labels.version }} "
                "in namespace {{ $labels.namespace }} is {{ $value }}, above 0.2, for 10 minutes; "
                "consider retraining.",
            },
        },
    ]


class Monitoring(pulumi.ComponentResource):
    """kube-prometheus-stack plus the platform's PodMonitor and alert rules.

    Prometheus keeps its data on a ReadWriteOnce volume from the cluster's
    default StorageClass; with more than one replica each keeps a full copy
    (no deduplication across replicas without Thanos or a remote store).
    """

    release: k8s.helm.v3.Release
    prometheus_url: pulumi.Output[str]
    pod_monitor: k8s.apiextensions.CustomResource
    rules: k8s.apiextensions.CustomResource

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:platform:Monitoring", name, None, opts)
        namespace = pulumi.Output.from_input(args.namespace)

        self.release = pinned_release(
            f"{name}-kube-prometheus-stack",
            chart="kube-prometheus-stack",
            pin=args.chart,
            namespace=namespace,
            values=_chart_values(args.config, args.sizes),
            opts=pulumi.ResourceOptions(parent=self),
        )

        # Carrying the release in the Output makes consumers (Linkerd viz) wait
        # until Prometheus is installed.
        self.prometheus_url = pulumi.Output.all(namespace, self.release.id).apply(
            lambda values: f"http://{FULLNAME}-prometheus.{values[0]}.svc.cluster.local:{PROMETHEUS_PORT}"
        )

        # The CRDs come with the chart, so the custom resources wait for it.
        cr_opts = pulumi.ResourceOptions(parent=self, depends_on=[self.release])
        self.pod_monitor = k8s.apiextensions.CustomResource(
            f"{name}-linkerd-proxies",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="linkerd-proxies",
                namespace=namespace,
                labels=labels.k8s_labels("monitoring", name="linkerd-proxies"),
            ),
            spec={
                "namespaceSelector": {"any": True},
                # Only meshed pods carry this label, set by the proxy injector.
                "selector": {"matchExpressions": [{"key": "linkerd.io/control-plane-ns", "operator": "Exists"}]},
                "podMetricsEndpoints": [
                    {
                        "port": "linkerd-admin",
                        "path": "/metrics",
                        "interval": "10s",
                        "relabelings": _proxy_relabelings(),
                    }
                ],
            },
            opts=cr_opts,
        )

        self.rules = k8s.apiextensions.CustomResource(
            f"{name}-ml-alerts",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=ALERT_GROUP,
                namespace=namespace,
                labels=labels.k8s_labels("monitoring", name=ALERT_GROUP),
            ),
            spec={
                "groups": [
                    {
                        "name": ALERT_GROUP,
                        "rules": pulumi.Output.from_input(args.training_namespace).apply(_alert_rules),
                    }
                ]
            },
            opts=cr_opts,
        )

        self.register_outputs({"prometheus_url": self.prometheus_url})
