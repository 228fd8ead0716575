"""A wiring check over the rendered graph: do the objects point at each other correctly?

Schema validation (tests/support/manifest_validation.py) proves each object is well formed
on its own; it cannot see a Service whose selector matches no pod, a probe on a
port the container does not name, or a TrafficSplit backend nobody declared. Those
break only once applied, silently. Each rule below is one function from a `Graph`
(tests/support/wiring_graph.py) to a `Findings`: the problems it found, and how many
references it examined, so a test can tell "all fine" from "nothing was checked".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.support.wiring_graph import (
    CLUSTER_SCOPED,
    Graph,
    PodTemplate,
    describe,
    dig,
    labels_of,
    matches,
    name_of,
    namespace_of,
    qualified,
)
from tests.support.wiring_provided import DEFAULT_STORAGE_CLASS


@dataclass
class Findings:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, problem: str) -> None:
        self.checked += 1
        if not ok:
            self.problems.append(problem)


# -- the rules ---------------------------------------------------------------------------
def service_selectors(graph: Graph) -> Findings:
    """Every Service, PodDisruptionBudget and Linkerd Server selects at least one pod template of its namespace."""
    found = Findings()
    for service in graph.of_kind("Service"):
        selector = (service.get("spec") or {}).get("selector")
        if selector:  # a Service without selector has hand-made Endpoints
            pods = graph.pods_selected(namespace_of(service), selector, label_selector=False)
            found.check(bool(pods), f"{describe(service)} spec.selector {selector}: matches no pod template")
    for owner, path in ((k, "spec.selector") for k in graph.of_kind("PodDisruptionBudget")):
        found.check(_selects(graph, owner, path), f"{describe(owner)} {path}: matches no pod template")
    for owner, path in ((k, "spec.podSelector") for k in graph.of_kind("Server")):
        found.check(_selects(graph, owner, path), f"{describe(owner)} {path}: matches no pod template")
    return found


def named_ports(graph: Graph) -> Findings:
    """Every port name a Service, probe, PodMonitor, ServiceMonitor or Server uses exists where it points."""
    found = Findings()

    def on_all(pods: list[PodTemplate], port: str, who: str) -> None:
        for pod in pods:
            found.check(port in pod.port_names, f"{who}: no container of {pod} names port {port!r}")

    for service in graph.of_kind("Service"):
        spec = service.get("spec") or {}
        pods = graph.pods_selected(namespace_of(service), spec.get("selector") or {}, label_selector=False)
        for i, port in enumerate(spec.get("ports") or []):
            if isinstance(port.get("targetPort"), str) and spec.get("selector"):
                on_all(pods, port["targetPort"], f"{describe(service)} spec.ports[{i}].targetPort")
    for pod in graph.pod_templates():
        for c, container in enumerate(pod.spec.get("containers") or []):
            names = {p["name"] for p in container.get("ports") or [] if p.get("name")}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                for handler in ("httpGet", "tcpSocket"):
                    port = ((container.get(probe) or {}).get(handler) or {}).get("port")
                    if isinstance(port, str):
                        where = f"{pod}.spec.containers[{c}].{probe}.{handler}.port"
                        found.check(port in names, f"{where}: container {container['name']!r} names no port {port!r}")
    for monitor in graph.of_kind("PodMonitor"):
        pods = _monitored_pods(graph, monitor)
        for i, endpoint in enumerate(monitor["spec"].get("podMetricsEndpoints") or []):
            if endpoint.get("port"):
                on_all(pods, endpoint["port"], f"{describe(monitor)} spec.podMetricsEndpoints[{i}].port")
    for monitor in graph.of_kind("ServiceMonitor"):
        for i, endpoint in enumerate(monitor["spec"].get("endpoints") or []):
            for service in _monitored_services(graph, monitor) if endpoint.get("port") else []:
                names = {p.get("name") for p in service["spec"].get("ports") or []}
                found.check(
                    endpoint["port"] in names,
                    f"{describe(monitor)} spec.endpoints[{i}].port: "
                    f"{describe(service)} names no port {endpoint['port']!r}",
                )
    for server in graph.of_kind("Server"):
        port = server["spec"].get("port")
        if isinstance(port, str):
            selector = server["spec"].get("podSelector") or {}
            pods = graph.pods_selected(namespace_of(server), selector, label_selector=True)
            on_all(pods, port, f"{describe(server)} spec.port")
    return found


def references(graph: Graph) -> Findings:
    """Every ServiceAccount, Secret, ConfigMap, PVC, StorageClass, namespace and scale
    target referred to exists: in the render, in a chart's output or on the EKS list."""
    found = Findings()
    for source, path, kind, namespace, name in _references(graph):
        shown = "the default StorageClass" if name == DEFAULT_STORAGE_CLASS else f"{kind} {qualified(namespace, name)}"
        found.check(graph.exists(kind, namespace, name), f"{source} {path}: refers to {shown}, which does not exist")
    return found


def traffic_backends(graph: Graph) -> Findings:
    """TrafficSplit services and backends, HTTPRoute parentRefs and backendRefs name existing Services and ports."""
    found = Findings()
    for split in graph.of_kind("TrafficSplit"):
        namespace, spec = namespace_of(split), split["spec"]
        found.check(
            graph.exists("Service", namespace, spec["service"]),
            f"{describe(split)} spec.service: Service {namespace}/{spec['service']} does not exist",
        )
        for i, backend in enumerate(spec.get("backends") or []):
            found.check(
                graph.exists("Service", namespace, backend["service"]),
                f"{describe(split)} spec.backends[{i}].service: "
                f"Service {namespace}/{backend['service']} does not exist",
            )
    for route in graph.of_kind("HTTPRoute"):
        refs = [(f"spec.parentRefs[{i}]", ref) for i, ref in enumerate(route["spec"].get("parentRefs") or [])]
        refs += [
            (f"spec.rules[{r}].backendRefs[{b}]", ref)
            for r, rule in enumerate(route["spec"].get("rules") or [])
            for b, ref in enumerate(rule.get("backendRefs") or [])
        ]
        for path, ref in refs:
            if ref.get("kind", "Service") == "Service" and ref.get("group", "") in ("", "core"):
                namespace = ref.get("namespace") or namespace_of(route)
                service = graph.find("Service", namespace, ref["name"])
                ports = [p["port"] for p in (service or {}).get("spec", {}).get("ports") or []]
                ok = service is not None and ("port" not in ref or ref["port"] in ports)
                missing = f"Service {namespace}/{ref['name']} port {ref.get('port')} does not exist"
                found.check(ok, f"{describe(route)} {path}: {missing}")
    return found


def service_profiles(graph: Graph) -> Findings:
    """A ServiceProfile applies only when named after a Service's FQDN; a typo disables it without a word."""
    found = Findings()
    fqdns = {f"{name_of(s)}.{namespace_of(s)}.svc.cluster.local" for s in graph.of_kind("Service")}
    for profile in graph.of_kind("ServiceProfile"):
        name = name_of(profile)
        found.check(name in fqdns, f"{describe(profile)} metadata.name: {name!r} is no Service's FQDN")
        if name in fqdns:
            found.check(
                name.split(".")[1] == namespace_of(profile),
                f"{describe(profile)} metadata.namespace: not the namespace of the Service it names",
            )
    return found


def authorization_targets(graph: Graph) -> Findings:
    """Every AuthorizationPolicy's target and required authentications exist in its namespace."""
    found = Findings()
    for policy in graph.of_kind("AuthorizationPolicy"):
        namespace, spec = namespace_of(policy), policy["spec"]
        refs = [("spec.targetRef", spec["targetRef"])]
        authentications = spec.get("requiredAuthenticationRefs") or []
        refs += [(f"spec.requiredAuthenticationRefs[{i}]", r) for i, r in enumerate(authentications)]
        for path, ref in refs:
            kind = ref["kind"]
            target_ns = None if kind == "Namespace" else ref.get("namespace") or namespace
            found.check(
                graph.exists(kind, target_ns, ref["name"]),
                f"{describe(policy)} {path}: {kind} {qualified(target_ns, ref['name'])} does not exist",
            )
    return found


def monitor_selectors(graph: Graph) -> Findings:
    """Every PodMonitor selects at least one pod, every ServiceMonitor at least one Service."""
    found = Findings()
    for monitor in graph.of_kind("PodMonitor"):
        pods = _monitored_pods(graph, monitor)
        found.check(bool(pods), f"{describe(monitor)} spec.selector: matches no pod template")
    for monitor in graph.of_kind("ServiceMonitor"):
        services = _monitored_services(graph, monitor)
        found.check(bool(services), f"{describe(monitor)} spec.selector: matches no Service")
    return found


RULES = {
    "service_selectors": service_selectors,
    "named_ports": named_ports,
    "references": references,
    "traffic_backends": traffic_backends,
    "service_profiles": service_profiles,
    "authorization_targets": authorization_targets,
    "monitor_selectors": monitor_selectors,
}


def check(graph: Graph) -> dict[str, Findings]:
    """Every rule's findings, by rule name."""
    return {name: rule(graph) for name, rule in RULES.items()}


# -- what refers to what ---------------------------------------------------------------------
def _references(graph: Graph) -> Iterator[tuple[str, str, str, str | None, str]]:
    """(referring object, field path, kind, namespace, name) for every reference by name."""
    for obj in graph.objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            yield describe(obj), "metadata.namespace", "Namespace", None, namespace_of(obj) or "default"
    for pod in graph.pod_templates():
        yield from _pod_references(pod)
    for claim in graph.of_kind("PersistentVolumeClaim"):
        yield from _storage_class(describe(claim), "spec.storageClassName", claim.get("spec") or {})
    for owner in graph.of_kind("StatefulSet"):
        for i, template in enumerate(owner["spec"].get("volumeClaimTemplates") or []):
            path = f"spec.volumeClaimTemplates[{i}].spec.storageClassName"
            yield from _storage_class(describe(owner), path, template.get("spec") or {})
    for release in graph.releases:
        for path, template in _walk(release.values, "values", "volumeClaimTemplate"):
            source = f"helm release {release.name}"
            yield from _storage_class(source, f"{path}.spec.storageClassName", template.get("spec") or {})
    for scaler in graph.of_kind("HorizontalPodAutoscaler"):
        target = scaler["spec"]["scaleTargetRef"]
        yield describe(scaler), "spec.scaleTargetRef", target["kind"], namespace_of(scaler), target["name"]


def _pod_references(pod: PodTemplate) -> Iterator[tuple[str, str, str, str | None, str]]:
    ns, spec, where, pre = pod.namespace, pod.spec, describe(pod.owner), pod.path
    yield where, f"{pre}.spec.serviceAccountName", "ServiceAccount", ns, spec.get("serviceAccountName") or "default"
    for i, secret in enumerate(spec.get("imagePullSecrets") or []):
        yield where, f"{pre}.spec.imagePullSecrets[{i}]", "Secret", ns, secret["name"]
    for i, volume in enumerate(spec.get("volumes") or []):
        base = f"{pre}.spec.volumes[{i}]"
        if "secret" in volume and not volume["secret"].get("optional"):
            yield where, f"{base}.secret.secretName", "Secret", ns, volume["secret"]["secretName"]
        if "configMap" in volume and not volume["configMap"].get("optional"):
            yield where, f"{base}.configMap.name", "ConfigMap", ns, volume["configMap"]["name"]
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            yield where, f"{base}.persistentVolumeClaim.claimName", "PersistentVolumeClaim", ns, claim
        for j, source in enumerate((volume.get("projected") or {}).get("sources") or []):
            for key, kind in (("secret", "Secret"), ("configMap", "ConfigMap")):
                if key in source and not source[key].get("optional"):
                    yield where, f"{base}.projected.sources[{j}].{key}.name", kind, ns, source[key]["name"]
    for field_name, c, container in (
        (f, c, container) for f in ("initContainers", "containers") for c, container in enumerate(spec.get(f) or [])
    ):
        base = f"{pre}.spec.{field_name}[{c}]"
        for i, env in enumerate(container.get("env") or []):
            source = env.get("valueFrom") or {}
            for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                if key in source and not source[key].get("optional"):
                    yield where, f"{base}.env[{i}].valueFrom.{key}.name", kind, ns, source[key]["name"]
        for i, env in enumerate(container.get("envFrom") or []):
            for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                if key in env and not env[key].get("optional"):
                    yield where, f"{base}.envFrom[{i}].{key}.name", kind, ns, env[key]["name"]


def _storage_class(source: str, path: str, spec: dict[str, Any]) -> Iterator[tuple[str, str, str, str | None, str]]:
    name = spec.get("storageClassName")
    if name != "":  # "" asks for no class at all: a statically provisioned volume
        yield source, path, "StorageClass", None, name or DEFAULT_STORAGE_CLASS


def _walk(value: Any, path: str, key: str) -> Iterable[tuple[str, dict[str, Any]]]:
    """(path, value) of every dict stored under `key` anywhere in `value`."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key and isinstance(v, dict):
                yield f"{path}.{k}", v
            else:
                yield from _walk(v, f"{path}.{k}", key)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]", key)


# -- small readers ------------------------------------------------------------
def _selects(graph: Graph, owner: dict[str, Any], path: str) -> bool:
    selector = dig(owner, tuple(path.split("."))) or {}
    return bool(graph.pods_selected(namespace_of(owner), selector, label_selector=True))


def _monitor_namespaces(monitor: dict[str, Any]) -> set[str] | None:
    """The namespaces a monitor's namespaceSelector covers; None for all. Default: its own."""
    selector = monitor["spec"].get("namespaceSelector") or {}
    if selector.get("any"):
        return None
    own = namespace_of(monitor)
    assert own is not None, "a ServiceMonitor or PodMonitor is namespaced"
    return set(selector.get("matchNames") or [own])


def _monitored_pods(graph: Graph, monitor: dict[str, Any]) -> list[PodTemplate]:
    namespaces = _monitor_namespaces(monitor)
    pods = graph.pods_selected(None, monitor["spec"].get("selector") or {}, label_selector=True)
    return [p for p in pods if namespaces is None or p.namespace in namespaces]


def _monitored_services(graph: Graph, monitor: dict[str, Any]) -> list[dict[str, Any]]:
    namespaces = _monitor_namespaces(monitor)
    selector = monitor["spec"].get("selector") or {}
    return [
        s
        for s in graph.of_kind("Service")
        if (namespaces is None or namespace_of(s) in namespaces) and matches(selector, labels_of(s))
    ]
