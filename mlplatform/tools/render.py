"""`mlplatform render`: run a stack's real program offline and write out what it declares.

No cloud account, cluster or Pulumi CLI is needed: the program runs under the
recording mocks of `mlplatform.tools.offline.engine`, with plausible provider answers (AZs,
account id, ARNs). A model stack's StackReference to the platform is answered
by rendering the referenced platform stack first, so the model stack sees the
outputs that platform config would really produce.

What is written:
- `manifests/NNN-<kind>-<namespace>-<name>.yaml`: every Kubernetes object, one per
  file, numbered in apply order (CRDs and namespaces first);
- `plan.yaml`: the non-Kubernetes resources (type, name, properties) and the Helm
  releases (chart, repo, version, namespace, values);
- `outputs.yaml`: the stack outputs.
Files are ordered by apply phase, then kind, namespace and name, and keys are
written sorted (apiVersion, kind and metadata first): the same input renders the
same bytes, which a GitOps hand-off needs. Secrets are replaced by `[secret]`
unless `show_secrets` is set; a secret mapping (a Secret's `stringData`) keeps its
keys, so a redacted Secret is still one that `kubectl apply` accepts.
"""

from __future__ import annotations

import base64
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlplatform.model.platform_outputs import PLATFORM_STACK_KEY
from mlplatform.tools.offline.engine import project_name, run_entry_point
from mlplatform.tools.offline.mocks import RecordingMocks
from mlplatform.tools.offline.recording import RecordedResource, Recording
from mlplatform.tools.offline.secrets import REDACTED, redact_secrets, unwrap_secrets
from mlplatform.tools.stackfile.reader import stack_file as stack_file_path
from mlplatform.tools.stackfile.reader import stack_files

PLATFORM_PROJECT = "mlplatform"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"

# Lower ranks are applied first: definitions and namespaces before what lives in them,
# configuration before the workloads that mount it, custom resources last.
_APPLY_RANK = {
    "CustomResourceDefinition": 0,
    "Namespace": 1,
    "ResourceQuota": 2,
    "LimitRange": 2,
    "PriorityClass": 2,
    "StorageClass": 2,
    "ServiceAccount": 3,
    "Secret": 3,
    "ConfigMap": 3,
    "PersistentVolumeClaim": 3,
    "ClusterRole": 3,
    "ClusterRoleBinding": 3,
    "Role": 3,
    "RoleBinding": 3,
    "Service": 4,
    "Deployment": 5,
    "StatefulSet": 5,
    "DaemonSet": 5,
    "Job": 5,
    "CronJob": 5,
    "HorizontalPodAutoscaler": 6,
    "PodDisruptionBudget": 6,
}
_CUSTOM_RESOURCE_RANK = 7


@dataclass
class RenderResult:
    recording: Recording
    manifests: list[Path]
    plan_path: Path
    outputs_path: Path


class RenderError(Exception):
    """The project or stack cannot be rendered (missing files, unknown stack)."""


def find_platform_dir(start: Path) -> Path | None:
    """The nearest directory at or above `start` holding the platform project."""
    for candidate in [start, *start.parents]:
        pulumi_yaml = candidate / "Pulumi.yaml"
        if pulumi_yaml.is_file() and project_name(candidate) == PLATFORM_PROJECT:
            return candidate
    return None


def render_stack(
    project_dir: Path,
    stack: str,
    *,
    platform_dir: Path | None = None,
    config: Mapping[str, Any] | None = None,
    secret_keys: Iterable[str] = (),
    platform_outputs: dict[str, dict[str, Any]] | None = None,
) -> Recording:
    """Run one stack offline. A StackReference `org/mlplatform/<s>` is answered with the
    outputs of platform stack `<s>`, itself rendered from `platform_dir`.

    `config` (fully qualified keys) replaces the stack file's config, e.g. an edited copy
    of it for `mlplatform diff`; the stack file must exist all the same.
    `platform_outputs` caches rendered platform outputs by platform stack name; callers
    that render several stacks pass one dict so each platform stack renders once."""
    project_dir = Path(project_dir).resolve()
    if not (project_dir / "Pulumi.yaml").is_file():
        raise RenderError(f"{project_dir} has no Pulumi.yaml: not a Pulumi project")
    stack_file = stack_file_path(project_dir, stack)
    if not stack_file.is_file():
        known = list(stack_files(project_dir))
        raise RenderError(f"no stack '{stack}' in {project_dir} (stack files found: {', '.join(known) or 'none'})")
    platform_dir = platform_dir or find_platform_dir(project_dir)
    cache = platform_outputs if platform_outputs is not None else {}

    def resolve(reference: str) -> dict[str, Any]:
        platform_stack = reference.rsplit("/", 1)[-1]
        if platform_dir is None:
            raise RenderError(f"StackReference '{reference}': no platform project found above {project_dir}")
        if platform_stack not in cache:
            try:
                cache[platform_stack] = render_stack(platform_dir, platform_stack).stack_outputs
            except RenderError as err:
                raise RenderError(
                    f"{PLATFORM_STACK_KEY} = '{reference}': the platform stack cannot be answered offline: {err}"
                ) from None
        return cache[platform_stack]

    return run_entry_point(
        project_dir,
        stack=stack,
        config=config,
        secret_keys=secret_keys,
        mocks=RecordingMocks(resolve_stack_reference=resolve),
    )


def apply_order(resources: list[RecordedResource]) -> list[RecordedResource]:
    """Kubernetes objects by apply phase, then kind, namespace and name.

    Registration order is no order at all: components register from concurrent
    asyncio tasks, and two runs of one config interleave them differently. Sorting on
    the objects' own identity makes the same config render the same files."""
    objects = [r for r in resources if r.is_kubernetes_object]
    return sorted(objects, key=_identity)


def _identity(resource: RecordedResource) -> tuple[int, str, str, str, str]:
    metadata = resource.metadata
    return (
        _APPLY_RANK.get(resource.kind, _CUSTOM_RESOURCE_RANK),
        resource.kind,
        str(metadata.get("namespace") or ""),
        str(metadata.get("name") or resource.name),
        resource.urn,
    )


def _sorted_keys(value: Any) -> Any:
    """Mappings with their keys sorted, at any depth (lists keep their order: it means something)."""
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def _dump(document: Any) -> str:
    """YAML whose key order is the document's own, which callers make stable."""
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _visible(value: Any, show_secrets: bool) -> Any:
    return unwrap_secrets(value) if show_secrets else redact_secrets(value)


def manifest_of(resource: RecordedResource, *, show_secrets: bool = False) -> dict[str, Any]:
    """The object as `kubectl apply` would receive it: apiVersion and kind first."""
    body = _sorted_keys(_visible(resource.raw_inputs, show_secrets))
    ordered = {"apiVersion": body.pop("apiVersion", None), "kind": body.pop("kind", resource.kind)}
    ordered["metadata"] = body.pop("metadata", {})
    ordered.update(body)
    if ordered["kind"] == "Secret" and not show_secrets and isinstance(ordered.get("data"), dict):
        # `data` values must be base64; a redacted one stays valid base64 of the placeholder.
        encoded = base64.b64encode(REDACTED.encode()).decode()
        ordered["data"] = {k: encoded if v == REDACTED else v for k, v in ordered["data"].items()}
    return ordered


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-") or "unnamed"


def plan_of(recording: Recording, *, show_secrets: bool = False) -> dict[str, Any]:
    releases, others = [], []
    for resource in recording.resources:
        if not resource.custom:
            continue
        inputs = _visible(resource.raw_inputs, show_secrets)
        if resource.type == HELM_RELEASE:
            releases.append(
                {
                    "name": inputs.get("name", resource.name),
                    "namespace": inputs.get("namespace"),
                    "chart": inputs.get("chart"),
                    "repo": (inputs.get("repositoryOpts") or {}).get("repo"),
                    "version": inputs.get("version"),
                    "values": inputs.get("values") or {},
                }
            )
        elif not resource.is_kubernetes_object:
            others.append({"type": resource.type, "name": resource.name, "properties": inputs})
    others.sort(key=lambda r: (r["type"], r["name"]))
    releases.sort(key=lambda r: (str(r["namespace"] or ""), str(r["name"])))
    return {
        "stack": recording.stack,
        "project": recording.project,
        "resources": _sorted_keys(others),
        "helmReleases": _sorted_keys(releases),
    }


def write_render(recording: Recording, out_dir: Path, *, show_secrets: bool = False) -> RenderResult:
    out_dir = Path(out_dir)
    manifest_dir = out_dir / "manifests"
    manifest_dir.mkdir(parents=True, exist_ok=True)
    for stale in manifest_dir.glob("*.yaml"):
        stale.unlink()
    written = []
    for index, resource in enumerate(apply_order(recording.resources), start=1):
        manifest = manifest_of(resource, show_secrets=show_secrets)
        metadata = manifest.get("metadata") or {}
        parts = [f"{index:03d}", resource.kind, metadata.get("namespace") or "", metadata.get("name") or resource.name]
        path = manifest_dir / ("-".join(_slug(p) for p in parts if p) + ".yaml")
        path.write_text(_dump(manifest))
        written.append(path)
    plan_path = out_dir / "plan.yaml"
    plan_path.write_text(_dump(plan_of(recording, show_secrets=show_secrets)))
    outputs_path = out_dir / "outputs.yaml"
    outputs_path.write_text(_dump(_sorted_keys(_visible(recording.stack_outputs, show_secrets))))
    return RenderResult(recording=recording, manifests=written, plan_path=plan_path, outputs_path=outputs_path)


def resource_tree(recording: Recording) -> str:
    """The component tree with each resource's type, then counts per type."""
    children: dict[str, list[RecordedResource]] = {}
    known = {r.urn for r in recording.resources}
    roots: list[RecordedResource] = []
    for resource in recording.resources:
        if resource.parent in known:
            children.setdefault(resource.parent, []).append(resource)
        else:
            roots.append(resource)
    # Sorted for the same reason as the manifests: registration order varies between runs.
    roots.sort(key=lambda r: (r.type, r.name))
    for siblings in children.values():
        siblings.sort(key=lambda r: (r.type, r.name))

    lines = [f"{recording.project}-{recording.stack} (pulumi:pulumi:Stack)"]

    def walk(nodes: list[RecordedResource], prefix: str) -> None:
        for position, node in enumerate(nodes):
            last = position == len(nodes) - 1
            below = children.get(node.urn, [])
            count = f" [{_count_descendants(node.urn, children)} resources]" if below else ""
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{node.name} ({node.type}){count}")
            walk(below, prefix + ("   " if last else "│  "))

    walk(roots, "")
    counts = Counter(r.type for r in recording.resources if r.custom)
    lines.append("")
    lines.append(f"{sum(counts.values())} resources, {len(recording.resources) - sum(counts.values())} components")
    for type_token, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"  {count:4d}  {type_token}")
    return "\n".join(lines)


def _count_descendants(urn: str, children: dict[str, list[RecordedResource]]) -> int:
    return sum(1 + _count_descendants(child.urn, children) for child in children.get(urn, []))
