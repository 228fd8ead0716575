"""Names, labels, taints and tags that several components must agree on.

The GPU taint and node labels are declared on the node group, tolerated by the
device plugin and by every GPU workload, and exported for the model stacks: one
definition here keeps all of them in step.
"""

from __future__ import annotations

from collections.abc import Mapping

GPU_RESOURCE = "nvidia.com/gpu"

# Nodes of the GPU pool carry this taint so only pods that ask for GPUs land there.
GPU_TAINT: Mapping[str, str] = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}

# `nvidia.com/gpu.present=true` is what the device plugin chart's default node
# affinity matches when Node Feature Discovery is not installed.
NODE_POOL_LABEL = "mlplatform.io/node-pool"
GPU_NODE_LABELS: Mapping[str, str] = {"nvidia.com/gpu.present": "true", NODE_POOL_LABEL: "gpu"}
GPU_NODE_SELECTOR: Mapping[str, str] = {NODE_POOL_LABEL: "gpu"}
# Platform add-ons (cluster-autoscaler, ...) pin themselves to the system pool.
SYSTEM_NODE_LABELS: Mapping[str, str] = {NODE_POOL_LABEL: "system"}

MESH_INJECT_ANNOTATION: Mapping[str, str] = {"linkerd.io/inject": "enabled"}

# pulumi-kubernetes' opt-out of its await logic: `pulumi up` then returns once
# the API server accepts the object, without waiting for it to become ready.
SKIP_AWAIT_ANNOTATION: Mapping[str, str] = {"pulumi.com/skipAwait": "true"}

MANAGED_BY = "pulumi"
PART_OF = "mlplatform"

# The `app.kubernetes.io/*` keys of `k8s_labels`. The platform's alerts find a
# model's workloads by them: kube-state-metrics exports them for training Jobs
# (its label allowlist names them), and the Linkerd PodMonitor turns them into
# `model` and `model_version` labels on the serving pods' proxy metrics.
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
PART_OF_LABEL = "app.kubernetes.io/part-of"
VERSION_LABEL = "app.kubernetes.io/version"
INSTANCE_LABEL = "app.kubernetes.io/instance"
TRAINING_COMPONENT = "training"
MODEL_SERVER_COMPONENT = "model-server"
# The label a model server's version gets on its scraped series (the proxies' and
# the model's own). Not `version`: exporters set labels of that name themselves
# (the proxy's `proxy_build_info`, Python's `python_info`), which Prometheus
# would then rename to `exported_version`.
MODEL_VERSION_METRIC_LABEL = "model_version"


def toleration_for(taint: Mapping[str, str]) -> dict[str, str]:
    """The pod toleration that matches a node taint exactly."""
    return {"key": taint["key"], "operator": "Equal", "value": taint["value"], "effect": taint["effect"]}


def k8s_labels(component: str, *, name: str | None = None, instance: str | None = None) -> dict[str, str]:
    """The `app.kubernetes.io/*` labels every object of ours carries."""
    labels = {
        PART_OF_LABEL: PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        COMPONENT_LABEL: component,
    }
    if name:
        labels[NAME_LABEL] = name
    if instance:
        labels[INSTANCE_LABEL] = instance
    return labels


def aws_tags(environment: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Tags on every AWS resource, so cost and ownership can be traced to the stack."""
    return {"Project": PART_OF, "Environment": environment, "ManagedBy": MANAGED_BY, **(extra or {})}


def prometheus_label(kubernetes_label: str) -> str:
    """A Kubernetes label key as Prometheus names it: every character outside
    `[a-zA-Z0-9_]` becomes `_` (`app.kubernetes.io/name` -> `app_kubernetes_io_name`).
    kube-state-metrics prefixes it with `label_`, service discovery with
    `__meta_kubernetes_pod_label_`."""
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in kubernetes_label)
