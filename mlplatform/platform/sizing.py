"""CPU and memory for every platform pod the Helm charts run, as one function of the environment.

Every container gets a CPU request, a memory request and a memory limit; none gets a
CPU limit. Requests are what the scheduler packs nodes by, and with no request a
pod is the first the kubelet evicts under pressure. A memory limit stops one leaking
add-on from taking a node's memory from everything else. A CPU limit would only
throttle a busy Prometheus or proxy while the node has idle cores, so there is none.

dev sizes fit a two-node `m6i.large` system pool; prod sizes follow upstream's HA
values for Linkerd and leave Prometheus room for 30 days of retention. `staging`
is sized like prod, so it shows what prod will do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PodSize:
    cpu: str
    """CPU request."""
    memory: str
    """Memory request."""
    memory_limit: str

    def k8s(self) -> dict[str, Any]:
        """A container's `resources`, as most charts take it."""
        return {"requests": {"cpu": self.cpu, "memory": self.memory}, "limits": {"memory": self.memory_limit}}

    def linkerd(self) -> dict[str, Any]:
        """The shape Linkerd's charts take (`partials.resources`)."""
        return {"cpu": {"request": self.cpu}, "memory": {"request": self.memory, "limit": self.memory_limit}}


@dataclass(frozen=True)
class PlatformSizes:
    prometheus: PodSize
    alertmanager: PodSize
    prometheus_operator: PodSize
    config_reloader: PodSize
    """The config-reloader sidecar the operator adds to Prometheus and Alertmanager."""
    kube_state_metrics: PodSize
    grafana: PodSize
    grafana_sidecar: PodSize
    node_exporter: PodSize
    admission_jobs: PodSize
    linkerd_proxy: PodSize
    """Every Linkerd proxy, the model servers' and MLflow's included, and proxy-init."""
    linkerd_controller: PodSize
    linkerd_viz: PodSize
    linkerd_smi: PodSize
    device_plugin: PodSize
    cluster_autoscaler: PodSize
    metrics_server: PodSize


_DEV = PlatformSizes(
    prometheus=PodSize("250m", "1Gi", "2Gi"),
    alertmanager=PodSize("25m", "64Mi", "128Mi"),
    prometheus_operator=PodSize("50m", "64Mi", "128Mi"),
    config_reloader=PodSize("10m", "25Mi", "50Mi"),
    kube_state_metrics=PodSize("25m", "64Mi", "128Mi"),
    grafana=PodSize("50m", "128Mi", "256Mi"),
    grafana_sidecar=PodSize("10m", "64Mi", "128Mi"),
    node_exporter=PodSize("10m", "32Mi", "64Mi"),
    admission_jobs=PodSize("10m", "32Mi", "64Mi"),
    linkerd_proxy=PodSize("10m", "20Mi", "250Mi"),
    linkerd_controller=PodSize("10m", "50Mi", "250Mi"),
    linkerd_viz=PodSize("10m", "50Mi", "250Mi"),
    linkerd_smi=PodSize("10m", "32Mi", "64Mi"),
    device_plugin=PodSize("10m", "32Mi", "128Mi"),
    cluster_autoscaler=PodSize("50m", "128Mi", "300Mi"),
    # Upstream's documented request (100m, 200Mi) covers about 100 nodes; dev is far smaller.
    metrics_server=PodSize("50m", "64Mi", "128Mi"),
)

_PROD = PlatformSizes(
    prometheus=PodSize("1", "4Gi", "8Gi"),
    alertmanager=PodSize("50m", "128Mi", "256Mi"),
    prometheus_operator=PodSize("100m", "128Mi", "256Mi"),
    config_reloader=PodSize("10m", "25Mi", "50Mi"),
    kube_state_metrics=PodSize("100m", "256Mi", "512Mi"),
    grafana=PodSize("100m", "256Mi", "512Mi"),
    grafana_sidecar=PodSize("10m", "64Mi", "128Mi"),
    node_exporter=PodSize("50m", "64Mi", "128Mi"),
    admission_jobs=PodSize("10m", "32Mi", "64Mi"),
    # Upstream's values-ha.yaml: 100m and 20Mi requested, 250Mi limit.
    linkerd_proxy=PodSize("100m", "20Mi", "250Mi"),
    linkerd_controller=PodSize("100m", "50Mi", "250Mi"),
    linkerd_viz=PodSize("100m", "50Mi", "250Mi"),
    linkerd_smi=PodSize("50m", "32Mi", "128Mi"),
    device_plugin=PodSize("50m", "64Mi", "256Mi"),
    cluster_autoscaler=PodSize("100m", "300Mi", "600Mi"),
    metrics_server=PodSize("100m", "200Mi", "400Mi"),
)


def platform_sizes(environment: str) -> PlatformSizes:
    """dev gets the small sizes; staging and prod the production ones."""
    return _DEV if environment == "dev" else _PROD
