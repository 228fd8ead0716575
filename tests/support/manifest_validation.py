"""Strict validation of Kubernetes manifests, as the API server's field validation would do it.

Built-in kinds are checked against the Kubernetes OpenAPI schema (PyPI
`kubernetes-validate`, strict mode: unknown fields are errors); our ML kinds against
the CRDs the platform installs; third-party kinds against `tests/schemas/*.yaml`,
written from their upstream CRDs (required fields, types, enums, no unknown fields
where the upstream schema is structural).
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from mlplatform.platform.cluster_config import ClusterConfig
from mlplatform.platform.crds import CRD_KINDS, crd_manifest

# kubernetes-validate parses its 1.4 MB definitions file on every call (about 8 ms); the
# suite validates a few hundred objects, so keep each parsed schema file in memory.
kubernetes_validate.utils.schema_contents = cache(kubernetes_validate.utils.schema_contents)

KUBERNETES_VERSION = ClusterConfig.model_fields["kubernetes_version"].default
CRD_GROUP = "ml.example.com"
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"


def strict(schema: Any) -> Any:
    """A CRD's structural schema as jsonschema must read it under strict field validation:
    objects with declared properties take no other key unless they preserve unknown fields."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    if result.get("x-kubernetes-int-or-string") and "anyOf" not in result:
        result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return result


def _own_crd_schema(kind: str) -> dict[str, Any]:
    version = crd_manifest(kind, CRD_GROUP)["spec"]["versions"][0]
    return strict(version["schema"]["openAPIV3Schema"])


@cache
def custom_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> JSON schema, for our ML kinds and the third-party kinds we emit."""
    schemas = {(f"{CRD_GROUP}/v1", kind): _own_crd_schema(kind) for kind in CRD_KINDS}
    for path in sorted(SCHEMA_DIR.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        jsonschema.Draft202012Validator.check_schema(document["schema"])
        schemas[(document["apiVersion"], document["kind"])] = document["schema"]
    return schemas


def _where(error: jsonschema.ValidationError, prefix: str = "") -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return f"{prefix}{path}" if path else prefix.rstrip(".") or "(root)"


def problems(manifest: dict[str, Any]) -> list[str]:
    """Why the API server would reject `manifest` under strict field validation; empty if it would not."""
    manifest = copy.deepcopy(manifest)
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        return []
    except kubernetes_validate.ValidationError as err:
        return [f"{_where(err)}: {err.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        pass  # not a built-in kind: a custom resource

    key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
    schema = custom_schemas().get(key)
    if schema is None:
        return [f"no schema for {key[1]} {key[0]}: write one in tests/schemas/ from its upstream CRD"]
    found = [f"{_where(e)}: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(manifest)]
    # A custom resource's metadata is still a built-in ObjectMeta; check it as part of one.
    carrier = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": manifest.get("metadata") or {}}
    try:
        kubernetes_validate.validate(carrier, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        found.append(f"{_where(err)}: {err.message}")
    return found
