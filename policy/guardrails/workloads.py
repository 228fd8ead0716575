"""Rules on pods, wherever they are declared: a Pod, or the template of a workload."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from .model import Resource, Violation, get_path

# Where each kind keeps its pod spec.
POD_SPEC_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_POOL_LABEL = ("mlplatform.io/node-pool", "gpu")

_DIGEST = re.compile(r"@sha256:[a-f0-9]{64}$")
_TAG = re.compile(r":([\w][\w.-]{0,127})$")


def pod_spec(resource: Resource) -> Mapping[str, Any] | None:
    if not resource.type.startswith("kubernetes:") or resource.kind not in POD_SPEC_PATHS:
        return None
    spec = get_path(resource.props, *POD_SPEC_PATHS[resource.kind])
    return spec if isinstance(spec, Mapping) else None


def containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, container) for init, regular and ephemeral containers."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            yield f"{key}[{container.get('name', '?')}]", container


def _where(resource: Resource) -> str:
    return f"{resource.kind} {resource.namespace}/{resource.object_name}"


def uses_gpu(spec: Mapping[str, Any]) -> bool:
    for _, container in containers(spec):
        for section in ("requests", "limits"):
            if GPU_RESOURCE in (get_path(container, "resources", section) or {}):
                return True
    return False


def check_gpu_scheduling(resource: Resource) -> list[Violation]:
    """A GPU pod tolerates the GPU taint and selects the GPU pool."""
    spec = pod_spec(resource)
    if spec is None or not uses_gpu(spec):
        return []
    problems = []
    tolerated = any(
        t.get("key") == GPU_TAINT_KEY and t.get("effect") in (None, "", "NoSchedule")
        for t in spec.get("tolerations") or []
    ) or any(t.get("operator") == "Exists" and not t.get("key") for t in spec.get("tolerations") or [])
    if not tolerated:
        problems.append(f"does not tolerate the GPU taint {GPU_TAINT_KEY}:NoSchedule, so it never schedules")
    key, value = GPU_POOL_LABEL
    selected = (spec.get("nodeSelector") or {}).get(key) == value or _affinity_selects(spec, key, value)
    if not selected:
        problems.append(f"does not select the GPU pool (nodeSelector {key}: {value})")
    return [Violation(f"{_where(resource)} asks for {GPU_RESOURCE} but {p}", resource.urn) for p in problems]


def _affinity_selects(spec: Mapping[str, Any], key: str, value: str) -> bool:
    terms = (
        get_path(
            spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"
        )
        or []
    )
    return bool(terms) and all(
        any(
            e.get("key") == key and e.get("operator") == "In" and e.get("values") == [value]
            for e in term.get("matchExpressions") or []
        )
        for term in terms
    )


def check_gpu_namespace_quota(resources: list[Resource], quota_namespaces: list[str]) -> list[Violation]:
    """A GPU pod runs in a namespace with a GPU quota: one in the config, or a ResourceQuota
    that caps nvidia.com/gpu declared in the same stack."""
    with_quota = set(quota_namespaces)
    for r in resources:
        hard = get_path(r.props, "spec", "hard") or {}
        if r.is_kubernetes("ResourceQuota") and any(GPU_RESOURCE in key for key in hard):
            with_quota.add(r.namespace)
    return [
        Violation(
            f"{_where(r)} asks for {GPU_RESOURCE} in namespace '{r.namespace}', which has no GPU quota "
            f"(namespaces with one: {sorted(with_quota)})",
            r.urn,
        )
        for r in resources
        if (spec := pod_spec(r)) is not None and uses_gpu(spec) and r.namespace not in with_quota
    ]


def check_container_resources(resource: Resource) -> list[Violation]:
    """Every container has cpu and memory requests and a memory limit."""
    spec = pod_spec(resource)
    if spec is None:
        return []
    violations = []
    for where, container in containers(spec):
        if where.startswith("ephemeralContainers"):
            continue  # the API forbids resources on ephemeral containers
        requests = get_path(container, "resources", "requests") or {}
        limits = get_path(container, "resources", "limits") or {}
        missing = [f"requests.{k}" for k in ("cpu", "memory") if k not in requests]
        missing += ["limits.memory"] if "memory" not in limits else []
        if missing:
            violations.append(Violation(f"{_where(resource)} {where} has no {', '.join(missing)}", resource.urn))
    return violations


def check_privileged(resource: Resource, allowed_daemonsets: list[str]) -> list[Violation]:
    """No privileged container, host namespaces or privilege escalation outside the listed DaemonSets."""
    spec = pod_spec(resource)
    if spec is None:
        return []
    if resource.kind == "DaemonSet" and f"{resource.namespace}/{resource.object_name}" in allowed_daemonsets:
        return []
    violations = [
        Violation(f"{_where(resource)} sets {key}: true", resource.urn)
        for key in ("hostNetwork", "hostPID", "hostIPC")
        if spec.get(key) is True
    ]
    for where, container in containers(spec):
        context = container.get("securityContext") or {}
        if context.get("privileged") is True:
            violations.append(Violation(f"{_where(resource)} {where} runs privileged", resource.urn))
        added = get_path(context, "capabilities", "add") or []
        if "SYS_ADMIN" in added or "ALL" in added:
            violations.append(Violation(f"{_where(resource)} {where} adds capabilities {added}", resource.urn))
    return violations


def image_problem(image: str) -> str | None:
    """Why an image reference does not name one build, or None when it does."""
    if _DIGEST.search(image):
        return None
    tag = _TAG.search(image.rsplit("/", 1)[-1])
    if tag is None:
        return "has no tag"
    if tag.group(1) == "latest":
        return "uses the moving tag 'latest'"
    return None


def check_images_pinned(resource: Resource) -> list[Violation]:
    spec = pod_spec(resource)
    if spec is None:
        return []
    return [
        Violation(f"{_where(resource)} {where} image '{image}' {problem}: pin a version tag or a digest", resource.urn)
        for where, container in containers(spec)
        if (problem := image_problem(image := str(container.get("image", "")))) is not None
    ]


def check_images_from_mirror(resource: Resource, mirror: str) -> list[Violation]:
    spec = pod_spec(resource)
    if spec is None or not mirror:
        return []
    prefix = mirror.rstrip("/") + "/"
    return [
        Violation(
            f"{_where(resource)} {where} image '{container.get('image')}' is not from the image mirror {prefix}",
            resource.urn,
        )
        for where, container in containers(spec)
        if not str(container.get("image", "")).startswith(prefix)
    ]
