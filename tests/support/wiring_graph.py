"""The rendered graph the wiring check (tests/support/wiring.py) reads: objects, releases, pods.

A `Graph` is the union of one or more recordings (a model stack is checked with
the platform stack it reads), plus what the installed charts and EKS provide
(tests/support/wiring_provided.py). Pod templates are seen as admitted, after the webhooks
of the installed charts (the Linkerd proxy injector) have mutated them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from mlplatform.tools.offline.engine import Recording
from tests.support.types import HELM_RELEASE
from tests.support.wiring_provided import (
    ANY_NAMESPACE,
    CHART_INJECTIONS,
    CHART_PROVIDED,
    DEFAULT_STORAGE_CLASS,
    EKS_PROVIDED,
    Provided,
)

CLUSTER_SCOPED = {
    "Namespace", "CustomResourceDefinition", "StorageClass", "PersistentVolume", "ClusterRole",
    "ClusterRoleBinding", "PriorityClass", "IngressClass", "RuntimeClass", "CSIDriver",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService", "GatewayClass",
}  # fmt: skip
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def describe(manifest: dict[str, Any]) -> str:
    """`Kind namespace/name`, the way every problem names the object that refers."""
    meta = manifest.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{manifest['kind']} {where}{meta.get('name')}"


@dataclass
class PodTemplate:
    owner: dict[str, Any]
    path: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    spec: dict[str, Any]

    @property
    def containers(self) -> list[dict[str, Any]]:
        return [*(self.spec.get("initContainers") or []), *(self.spec.get("containers") or [])]

    @property
    def port_names(self) -> set[str]:
        return {p["name"] for c in self.containers for p in c.get("ports") or [] if p.get("name")}

    def __str__(self) -> str:
        return f"{describe(self.owner)} {self.path}"


@dataclass
class Release:
    name: str
    chart: str
    namespace: str
    create_namespace: bool
    values: dict[str, Any]


@dataclass
class Graph:
    """Every Kubernetes object and Helm release of the recordings, as plain manifests.

    The manifests are copies: a test may break one on purpose and check again.
    """

    objects: list[dict[str, Any]]
    releases: list[Release] = field(default_factory=list)

    @classmethod
    def of(cls, *recordings: Recording) -> Graph:
        objects = [copy.deepcopy(r.inputs) for rec in recordings for r in rec.kubernetes_objects]
        releases = [
            Release(
                name=r.inputs.get("name") or r.name,
                chart=r.inputs.get("chart", ""),
                namespace=r.inputs.get("namespace") or "default",
                create_namespace=bool(r.inputs.get("createNamespace")),
                values=r.inputs.get("values") or {},
            )
            for rec in recordings
            for r in rec.resources
            if r.type == HELM_RELEASE
        ]
        return cls(objects, releases)

    # -- lookups -----------------------------------------------------------------------
    def of_kind(self, *kinds: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in kinds]

    def find(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return next((o for o in self.of_kind(kind) if namespace_of(o) == namespace and name_of(o) == name), None)

    def charts(self) -> dict[str, Release]:
        return {r.chart: r for r in self.releases}

    def provided(self) -> list[Provided]:
        """What EKS and the installed charts create, plus the namespaces releases create."""
        charts = self.charts()
        entries = [*EKS_PROVIDED, *(p for chart in charts for p in CHART_PROVIDED.get(chart, ()))]
        entries += [
            Provided("Namespace", None, r.namespace, f"helm release {r.name} has createNamespace")
            for r in self.releases
            if r.create_namespace
        ]
        return entries

    def exists(self, kind: str, namespace: str | None, name: str) -> bool:
        if kind == "StorageClass" and name == DEFAULT_STORAGE_CLASS:
            classes = self.of_kind("StorageClass")
            marked = [c for c in classes if annotations_of(c).get(DEFAULT_CLASS_ANNOTATION) == "true"]
            return bool(marked) or any(p.kind == kind and p.name == name for p in self.provided())
        if self.find(kind, namespace, name) is not None:
            return True
        return any(
            p.kind == kind and p.name == name and p.namespace in (namespace, ANY_NAMESPACE) for p in self.provided()
        )

    def pod_templates(self) -> list[PodTemplate]:
        """Every pod template, as the installed charts' admission webhooks would admit it."""
        templates = []
        for owner in self.of_kind(*POD_TEMPLATE_PATHS, "Pod"):
            path = POD_TEMPLATE_PATHS.get(owner["kind"], ())
            template = copy.deepcopy(dig(owner, path) if path else owner) or {}
            meta = template.get("metadata") or {}
            pod = PodTemplate(
                owner=owner,
                path=".".join(path) or "(pod)",
                namespace=namespace_of(owner) or "default",
                labels=dict(meta.get("labels") or {}),
                annotations=dict(meta.get("annotations") or {}),
                spec=template.get("spec") or {},
            )
            self._admit(pod)
            templates.append(pod)
        for chart_pod in (p for p in self.provided() if p.kind == "Pod"):
            pod = PodTemplate(
                owner={"kind": "Pod", "metadata": {"name": chart_pod.name, "namespace": chart_pod.namespace}},
                path="(a chart's pod)",
                namespace=chart_pod.namespace or "default",
                labels=dict(chart_pod.labels),
                annotations={},
                spec={"containers": [{"name": chart_pod.name, "ports": [{"name": n} for n in chart_pod.port_names]}]},
            )
            self._admit(pod)
            templates.append(pod)
        return templates

    def _admit(self, pod: PodTemplate) -> None:
        for chart, release in self.charts().items():
            injection = CHART_INJECTIONS.get(chart)
            if injection is None:
                continue
            namespace = self.find("Namespace", None, pod.namespace)
            opted = pod.annotations.get(injection.opt_in_annotation) or annotations_of(namespace or {}).get(
                injection.opt_in_annotation
            )
            if opted != "enabled":
                continue
            pod.spec.setdefault("containers", []).append(
                {"name": injection.container, "ports": [{"name": n} for n in injection.port_names]}
            )
            pod.labels.update({k: v.format(release_namespace=release.namespace) for k, v in injection.labels.items()})
            if injection.workload_label_prefix:
                pod.labels[f"{injection.workload_label_prefix}{pod.owner['kind'].lower()}"] = name_of(pod.owner)

    def pods_selected(
        self, namespace: str | None, selector: dict[str, Any], *, label_selector: bool
    ) -> list[PodTemplate]:
        """Pod templates in `namespace` (None: any) whose labels `selector` matches.

        `label_selector` distinguishes a LabelSelector (matchLabels/matchExpressions)
        from a Service's plain map.
        """
        selector = selector if label_selector else {"matchLabels": selector}
        return [
            pod
            for pod in self.pod_templates()
            if (namespace is None or pod.namespace == namespace) and matches(selector, pod.labels)
        ]


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes LabelSelector matches `labels`; an empty selector matches everything."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


# -- small readers ------------------------------------------------------------
def dig(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        value = (value or {}).get(key)
    return value


def name_of(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def namespace_of(obj: dict[str, Any]) -> str | None:
    if obj.get("kind") in CLUSTER_SCOPED:
        return None
    return (obj.get("metadata") or {}).get("namespace") or "default"


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def annotations_of(obj: dict[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def qualified(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name
