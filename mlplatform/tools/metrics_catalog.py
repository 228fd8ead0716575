"""Which scrape target produces which metric, and a check that every alert and gate query is fed.

An alert on a series nothing scrapes never fires, and a gate on one never
passes; neither says so. This catalog names, for each scrape target the
platform or a model stack can declare, the series it produces, and how to
tell from a rendered stack (the resources a program registered) whether that
target is declared at all:

| target | declared by | series |
|---|---|---|
| Linkerd proxy | the platform's PodMonitor on `linkerd-admin` | `response_total`, `response_latency_ms_*`, ... |
| kube-state-metrics | the kube-prometheus-stack release (on by default) | `kube_job_*`, `kube_pod_*`, ... |
| node exporter | the kube-prometheus-stack release (on by default) | `node_*` |
| DCGM exporter | the platform's `dcgm-exporter` DaemonSet and PodMonitor | the counters it is configured with |
| model PodMonitor | a model stack with `serving.metrics` | `ml_model_accuracy`, `ml_model_drift_score` |

Only the metrics the platform relies on, or documents for users, are listed:
a chart's full output is much larger, and an unlisted series is an error
worth looking at rather than a silent pass. `metric_names` is a small
extractor for the PromQL this project writes (selectors, functions,
aggregations, joins, binary operators), not a general PromQL parser.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mlplatform.model.serving import METRICS_PORT_NAME as MODEL_METRICS_PORT
from mlplatform.platform.gpu_metrics import COUNTERS as DCGM_COUNTERS
from mlplatform.platform.gpu_metrics import NAME as DCGM_NAME
from mlplatform.platform.monitoring import LINKERD_ADMIN_PORT

LINKERD_PROXY = "Linkerd proxy"
KUBE_STATE_METRICS = "kube-state-metrics"
NODE_EXPORTER = "node exporter"
DCGM_EXPORTER = "DCGM exporter"
MODEL_POD_MONITOR = "model PodMonitor"

# The metrics a model server exposes on its `serving.metrics` endpoint for the
# platform to use: the accuracy gauge the rollout gate reads and the drift score
# the drift alert reads (both 0..1; docs/platform.md documents their labels).
MODEL_METRICS = frozenset({"ml_model_accuracy", "ml_model_drift_score"})
# The Linkerd proxy's `response_latency_ms` bucket bounds (its `le` labels, in ms): what the
# test exporter serves and the judge's replay simulates.
LINKERD_LATENCY_BUCKETS_MS = (
    1,
    2,
    3,
    4,
    5,
    10,
    20,
    30,
    40,
    50,
    100,
    200,
    300,
    400,
    500,
    1000,
    2000,
    3000,
    4000,
    5000,
    10000,
    20000,
    30000,
    40000,
    50000,
)


def _histogram(name: str) -> set[str]:
    return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}


CATALOG: Mapping[str, frozenset[str]] = {
    # https://linkerd.io/2-edge/reference/proxy-metrics/
    LINKERD_PROXY: frozenset(
        {"request_total", "response_total", "tcp_open_total", "tcp_open_connections", "tcp_close_total"}
        | _histogram("response_latency_ms")
    ),
    # kube-state-metrics' job and pod metrics (docs/metrics/workload/*.md).
    KUBE_STATE_METRICS: frozenset(
        {
            "kube_job_failed",
            "kube_job_complete",
            "kube_job_labels",
            "kube_job_status_failed",
            "kube_job_status_succeeded",
            "kube_job_status_active",
            "kube_pod_status_phase",
            "kube_pod_labels",
            "kube_pod_container_resource_requests",
            "kube_pod_container_status_restarts_total",
            "kube_deployment_status_replicas_available",
            "kube_node_status_allocatable",
        }
    ),
    NODE_EXPORTER: frozenset(
        {
            "node_cpu_seconds_total",
            "node_memory_MemAvailable_bytes",
            "node_memory_MemTotal_bytes",
            "node_filesystem_avail_bytes",
            "node_filesystem_size_bytes",
        }
    ),
    DCGM_EXPORTER: frozenset(field for field, _, _ in DCGM_COUNTERS),
    MODEL_POD_MONITOR: MODEL_METRICS,
}


class RegisteredResource(Protocol):
    """What the check needs of a registered resource (`mlplatform.tools.offline.recording.RecordedResource` has it)."""

    type: str
    name: str

    @property
    def inputs(self) -> dict[str, Any]: ...


POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


def _pod_monitor_ports(resources: Iterable[RegisteredResource]) -> dict[str, set[str]]:
    """PodMonitor name -> the container port names it scrapes."""
    ports: dict[str, set[str]] = {}
    for resource in resources:
        if resource.type == POD_MONITOR:
            name = resource.inputs["metadata"]["name"]
            endpoints = resource.inputs["spec"].get("podMetricsEndpoints", [])
            ports[name] = {endpoint.get("port", "") for endpoint in endpoints}
    return ports


def declared_targets(resources: Iterable[RegisteredResource]) -> set[str]:
    """The catalog's targets that these resources (one rendered stack) declare."""
    resources = list(resources)
    targets: set[str] = set()
    monitors = _pod_monitor_ports(resources)
    if any(LINKERD_ADMIN_PORT in ports for ports in monitors.values()):
        targets.add(LINKERD_PROXY)
    for resource in resources:
        if resource.type == HELM_RELEASE and resource.inputs.get("chart") == "kube-prometheus-stack":
            values = resource.inputs.get("values") or {}
            if values.get("kubeStateMetrics", {}).get("enabled", True):
                targets.add(KUBE_STATE_METRICS)
            if values.get("nodeExporter", {}).get("enabled", True):
                targets.add(NODE_EXPORTER)
    daemon_sets = {r.inputs["metadata"]["name"] for r in resources if r.type == DAEMON_SET}
    if DCGM_NAME in daemon_sets and DCGM_NAME in monitors:
        targets.add(DCGM_EXPORTER)
    if any(MODEL_METRICS_PORT in ports and name != DCGM_NAME for name, ports in monitors.items()):
        targets.add(MODEL_POD_MONITOR)
    return targets


def produced_by(targets: Iterable[str]) -> dict[str, str]:
    """Metric name -> the declared target that produces it."""
    return {metric: target for target in targets for metric in CATALOG[target]}


# -- PromQL -------------------------------------------------------------------
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
# Label lists: `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left (...)`.
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "Inf",
        "NaN",
        "atan2",
    }
)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects.

    Strings, label matchers, range and subquery brackets and label lists are
    removed first; what remains is functions and aggregations (an identifier
    followed by `(`), keywords, numbers and durations, and the metric names.
    """
    text = _STRING.sub(" ", expr)
    text = _BRACES.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        before = text[match.start() - 1] if match.start() else " "
        after = text[match.end() :].lstrip()[:1]
        if after == "(" or word in _KEYWORDS:
            continue
        # Part of a number or duration such as `1e3`, `5m` or `0.99`.
        if before.isdigit() or before == ".":
            continue
        names.add(word)
    return names


@dataclass(frozen=True)
class Unfed:
    """A metric an alert or query reads that no declared target produces."""

    metric: str
    where: str
    """`PrometheusRule <namespace>/<name>: alert <Alert>` or the gate query's name."""

    def __str__(self) -> str:
        return f"{self.where} reads {self.metric}, which no declared scrape target produces"


def rule_expressions(resources: Iterable[RegisteredResource]) -> dict[str, str]:
    """`PrometheusRule <name>: alert <Alert>` -> expression, for every rule the resources declare."""
    expressions: dict[str, str] = {}
    for resource in resources:
        if resource.type != PROMETHEUS_RULE:
            continue
        rule_name = resource.inputs["metadata"]["name"]
        for group in resource.inputs["spec"]["groups"]:
            for rule in group["rules"]:
                kind, name = ("alert", rule["alert"]) if "alert" in rule else ("record", rule["record"])
                expressions[f"PrometheusRule {rule_name}: {kind} {name}"] = rule["expr"]
    return expressions


def unfed(expressions: Mapping[str, str], targets: Iterable[str]) -> list[Unfed]:
    """Every (metric, where) in `expressions` that none of `targets` produces."""
    produced = produced_by(targets)
    return [
        Unfed(metric, where)
        for where, expr in expressions.items()
        for metric in sorted(metric_names(expr))
        if metric not in produced
    ]
