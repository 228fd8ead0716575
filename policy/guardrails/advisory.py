"""Advisory rules: worth a look in review, not worth failing a deploy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import Resource, Violation, get_path
from .workloads import POD_SPEC_PATHS

REPLICATED = ("Deployment", "StatefulSet")


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector against labels; an empty selector selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values):
            return False
        if (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def _pod_labels(resource: Resource) -> Mapping[str, str]:
    path = (*POD_SPEC_PATHS[resource.kind][:-1], "metadata", "labels")
    return get_path(resource.props, *path) or {}


def _max_replicas(workload: Resource, resources: list[Resource]) -> int:
    replicas = int(get_path(workload.props, "spec", "replicas") or 1)
    for hpa in (r for r in resources if r.is_kubernetes("HorizontalPodAutoscaler")):
        target = get_path(hpa.props, "spec", "scaleTargetRef") or {}
        if hpa.namespace == workload.namespace and (target.get("kind"), target.get("name")) == (
            workload.kind,
            workload.object_name,
        ):
            replicas = max(replicas, int(get_path(hpa.props, "spec", "maxReplicas") or 1))
    return replicas


def check_pdb(resources: list[Resource]) -> list[Violation]:
    pdbs = [r for r in resources if r.is_kubernetes("PodDisruptionBudget")]
    return [
        Violation(
            f"{w.kind} {w.namespace}/{w.object_name} runs up to {_max_replicas(w, resources)} replicas "
            f"with no PodDisruptionBudget: a node drain may take them all at once",
            w.urn,
        )
        for w in resources
        if w.is_kubernetes(*REPLICATED)
        and _max_replicas(w, resources) > 1
        and not any(
            p.namespace == w.namespace and selects(get_path(p.props, "spec", "selector"), _pod_labels(w)) for p in pdbs
        )
    ]


def check_network_policy(resources: list[Resource], covered_namespaces: list[str]) -> list[Violation]:
    """Every workload is selected by a NetworkPolicy of the stack, or runs in a namespace the
    platform covers with a default-deny policy (config `coveredNamespaces`)."""
    policies = [r for r in resources if r.is_kubernetes("NetworkPolicy")]
    return [
        Violation(
            f"{w.kind} {w.namespace}/{w.object_name} is selected by no NetworkPolicy: any pod may reach it", w.urn
        )
        for w in resources
        if w.type.startswith("kubernetes:")
        and w.kind in POD_SPEC_PATHS
        and w.namespace not in covered_namespaces
        and not any(
            p.namespace == w.namespace and selects(get_path(p.props, "spec", "podSelector"), _pod_labels(w))
            for p in policies
        )
    ]
