"""The breaks `tests/test_wiring.py` makes in a rendered example, one rule at a time.

Each entry: the example case, the change to its graph, the rule that must catch it, and the
problem that rule must report (naming the referring object, the field and the target).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.wiring import Graph


def _object(graph: Graph, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in graph.of_kind(kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def _drop(graph: Graph, kind: str, name: str) -> None:
    graph.objects.remove(_object(graph, kind, name))


def _rename_container_port(graph: Graph) -> None:
    container = _object(graph, "Deployment", "fraud-detector-v5")["spec"]["template"]["spec"]["containers"][0]
    assert [p["name"] for p in container["ports"]] == ["http"]
    container["ports"][0]["name"] = "web"


def _set(kind: str, name: str, path: str | tuple[str, ...], value: Any) -> Callable[[Graph], None]:
    """Set the field at `path` (dotted, or a tuple where a key holds a dot) of one object."""
    keys = path.split(".") if isinstance(path, str) else list(path)

    def mutate(graph: Graph) -> None:
        target: Any = _object(graph, kind, name)
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        # A mistyped path would only add a field: the test then fails on the problem not reported.
        target[int(keys[-1]) if isinstance(target, list) else keys[-1]] = value

    return mutate


SA_USER = "Deployment ml-serving/fraud-detector-v5 spec.template.spec.serviceAccountName"
BROKEN = {
    "service-selector": (
        "fraud-detector-prod-smi",
        _set("Service", "fraud-detector-v6", "spec.selector", {"app": "fraud-detector", "version": "v7"}),
        "service_selectors",
        "Service ml-serving/fraud-detector-v6 spec.selector {'app': 'fraud-detector', 'version': 'v7'}: "
        "matches no pod template",
    ),
    "pdb-selector": (
        "fraud-detector-prod-gateway",
        _set("PodDisruptionBudget", "fraud-detector-v6", "spec.selector.matchLabels.version", "v7"),
        "service_selectors",
        "PodDisruptionBudget ml-serving/fraud-detector-v6 spec.selector: matches no pod template",
    ),
    "service-target-port": (
        "fraud-detector-prod-smi",
        _rename_container_port,
        "named_ports",
        "Service ml-serving/fraud-detector-v5 spec.ports[0].targetPort: no container of "
        "Deployment ml-serving/fraud-detector-v5 spec.template names port 'http'",
    ),
    "probe-port": (
        "fraud-detector-dev-gateway",
        _rename_container_port,
        "named_ports",
        "Deployment ml-serving/fraud-detector-v5 spec.template.spec.containers[0].readinessProbe.httpGet.port: "
        "container 'model-server' names no port 'http'",
    ),
    "server-port": (
        "fraud-detector-prod-gateway",
        _set("Server", "fraud-detector", "spec.port", "grpc"),
        "named_ports",
        "Server ml-serving/fraud-detector spec.port: no container of "
        "Deployment ml-serving/fraud-detector-v6 spec.template names port 'grpc'",
    ),
    "pod-monitor-port": (
        "platform-dev",
        _set("PodMonitor", "linkerd-proxies", "spec.podMetricsEndpoints.0.port", "admin-http"),
        "named_ports",
        "PodMonitor monitoring/linkerd-proxies spec.podMetricsEndpoints[0].port: no container of "
        "Deployment mlflow/mlflow spec.template names port 'admin-http'",
    ),
    "service-account": (
        "fraud-detector-dev-smi",
        lambda g: _drop(g, "ServiceAccount", "fraud-detector"),
        "references",
        f"{SA_USER}: refers to ServiceAccount ml-serving/fraud-detector, which does not exist",
    ),
    "secret": (
        "platform-prod",
        lambda g: _drop(g, "Secret", "mlflow-backend"),
        "references",
        "Deployment mlflow/mlflow spec.template.spec.volumes[2].secret.secretName: "
        "refers to Secret mlflow/mlflow-backend, which does not exist",
    ),
    "pvc": (
        "fraud-detector-dev-smi",
        lambda g: _drop(g, "PersistentVolumeClaim", "fraud-detector-checkpoints"),
        "references",
        "Job team-fraud/fraud-detector-train-fraud-2024-06-r1 spec.template.spec.volumes[0].persistentVolumeClaim"
        ".claimName: refers to PersistentVolumeClaim team-fraud/fraud-detector-checkpoints, which does not exist",
    ),
    "storage-class": (
        "fraud-detector-dev-gateway",
        _set("PersistentVolumeClaim", "fraud-detector-checkpoints", "spec.storageClassName", "efs-sc"),
        "references",
        "PersistentVolumeClaim team-fraud/fraud-detector-checkpoints spec.storageClassName: "
        "refers to StorageClass efs-sc, which does not exist",
    ),
    "namespace-across-stacks": (
        "fraud-detector-prod-smi",
        lambda g: _drop(g, "Namespace", "ml-serving"),
        "references",
        "Service ml-serving/fraud-detector metadata.namespace: refers to Namespace ml-serving, which does not exist",
    ),
    "scale-target": (
        "fraud-detector-prod-smi",
        _set("HorizontalPodAutoscaler", "fraud-detector-v6", "spec.scaleTargetRef.name", "fraud-detector-v7"),
        "references",
        "HorizontalPodAutoscaler ml-serving/fraud-detector-v6 spec.scaleTargetRef: "
        "refers to Deployment ml-serving/fraud-detector-v7, which does not exist",
    ),
    "traffic-split-backend": (
        "fraud-detector-prod-smi",
        _set("TrafficSplit", "fraud-detector", "spec.backends.1.service", "fraud-detector-v7"),
        "traffic_backends",
        "TrafficSplit ml-serving/fraud-detector spec.backends[1].service: "
        "Service ml-serving/fraud-detector-v7 does not exist",
    ),
    "http-route-backend": (
        "fraud-detector-dev-gateway",
        _set("HTTPRoute", "fraud-detector", "spec.rules.0.backendRefs.0.name", "fraud-detector-v4"),
        "traffic_backends",
        "HTTPRoute ml-serving/fraud-detector spec.rules[0].backendRefs[0]: "
        "Service ml-serving/fraud-detector-v4 port 8080 does not exist",
    ),
    "http-route-port": (
        "fraud-detector-prod-gateway",
        _set("HTTPRoute", "fraud-detector", "spec.parentRefs.0.port", 9000),
        "traffic_backends",
        "HTTPRoute ml-serving/fraud-detector spec.parentRefs[0]: "
        "Service ml-serving/fraud-detector port 9000 does not exist",
    ),
    "service-profile-name": (
        "fraud-detector-prod-smi",
        _set(
            "ServiceProfile",
            "fraud-detector.ml-serving.svc.cluster.local",
            "metadata.name",
            "fraud-detecter.ml-serving.svc.cluster.local",
        ),
        "service_profiles",
        "ServiceProfile ml-serving/fraud-detecter.ml-serving.svc.cluster.local metadata.name: "
        "'fraud-detecter.ml-serving.svc.cluster.local' is no Service's FQDN",
    ),
    "authorization-target": (
        "fraud-detector-dev-smi",
        _set("AuthorizationPolicy", "fraud-detector-clients", "spec.targetRef.name", "fraud-detector-v5"),
        "authorization_targets",
        "AuthorizationPolicy ml-serving/fraud-detector-clients spec.targetRef: "
        "Server ml-serving/fraud-detector-v5 does not exist",
    ),
    "authorization-authentication": (
        "fraud-detector-prod-gateway",
        lambda g: _drop(g, "MeshTLSAuthentication", "fraud-detector-clients"),
        "authorization_targets",
        "AuthorizationPolicy ml-serving/fraud-detector-clients spec.requiredAuthenticationRefs[0]: "
        "MeshTLSAuthentication ml-serving/fraud-detector-clients does not exist",
    ),
    "pod-monitor-selector": (
        "platform-prod",
        _set("PodMonitor", "linkerd-proxies", "spec.selector.matchExpressions.0.key", "linkerd.io/control-plane"),
        "monitor_selectors",
        "PodMonitor monitoring/linkerd-proxies spec.selector: matches no pod template",
    ),
    "unmeshed-namespace": (
        "platform-dev",
        _set("Namespace", "mlflow", ("metadata", "annotations", "linkerd.io/inject"), "disabled"),
        "monitor_selectors",
        "PodMonitor monitoring/linkerd-proxies spec.selector: matches no pod template",
    ),
}
