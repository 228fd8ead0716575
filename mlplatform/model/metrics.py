"""The model server's own metrics: a PodMonitor on the port `serving.metrics` declares.

kube-prometheus-stack ignores `prometheus.io/*` annotations; a PodMonitor is
what makes its Prometheus scrape a pod. This one selects every live version's
pods (`app: <model>`), in the model's namespace, on the named container port
`metrics` that the serving Deployments then carry.

The series get the labels the rollout gate and the alerts select on:
`deployment` (`<model>-<version>`, the gate's `ml_model_accuracy` query),
`model` and `model_version` (the drift alert's annotations). The port is not the
serving port, so the model's Linkerd Server and AuthorizationPolicy, which admit
only the allowed clients, do not apply to it; the cluster's default policy does,
under which the unmeshed Prometheus can scrape it as it scrapes the proxies.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.model.serving import METRICS_PORT_NAME, selector_labels
from mlplatform.model.serving_config import MetricsEndpointConfig

API_VERSION = "monitoring.coreos.com/v1"


def model_metrics_relabelings() -> list[dict[str, str | list[str]]]:
    pod_label = "__meta_kubernetes_pod_label_"
    return [
        # `app.kubernetes.io/instance` of a serving pod is its Deployment's name.
        {
            "sourceLabels": [pod_label + labels.prometheus_label(labels.INSTANCE_LABEL)],
            "action": "replace",
            "targetLabel": "deployment",
        },
        {"sourceLabels": [pod_label + "app"], "action": "replace", "targetLabel": "model"},
        {
            "sourceLabels": [pod_label + "version"],
            "action": "replace",
            "targetLabel": labels.MODEL_VERSION_METRIC_LABEL,
        },
    ]


@dataclass
class ModelMetricsArgs:
    model_name: str
    endpoint: MetricsEndpointConfig
    namespace: pulumi.Input[str]


class ModelMetrics(pulumi.ComponentResource):
    """PodMonitor `<model>` scraping the model server's metrics endpoint on every version's pods."""

    pod_monitor: k8s.apiextensions.CustomResource
    pod_monitor_name: str

    def __init__(self, name: str, args: ModelMetricsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:model:ModelMetrics", name, None, opts)
        model = self.pod_monitor_name = args.model_name
        self.pod_monitor = k8s.apiextensions.CustomResource(
            f"{name}-pod-monitor",
            api_version=API_VERSION,
            kind="PodMonitor",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=model,
                namespace=args.namespace,
                labels=labels.k8s_labels("metrics", name=model, instance=model),
            ),
            spec={
                "namespaceSelector": {"matchNames": [args.namespace]},
                "selector": {"matchLabels": selector_labels(model)},
                "podMetricsEndpoints": [
                    {
                        "port": METRICS_PORT_NAME,
                        "path": args.endpoint.path,
                        "interval": args.endpoint.interval,
                        "relabelings": model_metrics_relabelings(),
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"podMonitor": self.pod_monitor_name})
