"""What a rule sees: a resource's type, inputs and URN, and the violations it reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Resource:
    type: str
    """The type token, e.g. `kubernetes:apps/v1:Deployment`, `aws:s3/bucket:Bucket`."""
    props: Mapping[str, Any]
    """The inputs (resource policies) or the planned state (stack policies)."""
    urn: str = ""
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Input name -> URNs it was built from: how a bucket's encryption config names its bucket
    while the bucket's id is still unknown in a preview."""

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1] if self.urn else ""

    @property
    def kind(self) -> str:
        """The Kubernetes kind (`Deployment`) or the AWS resource (`Bucket`)."""
        return self.type.rsplit(":", 1)[-1]

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.props.get("metadata") or {}

    @property
    def namespace(self) -> str:
        return self.metadata.get("namespace") or "default"

    @property
    def object_name(self) -> str:
        """metadata.name, or the resource name when the provider will auto-name it."""
        return self.metadata.get("name") or self.name

    def is_kubernetes(self, *kinds: str) -> bool:
        return self.type.startswith("kubernetes:") and self.kind in kinds


@dataclass(frozen=True)
class Violation:
    message: str
    urn: str = ""


def get_path(value: Any, *path: str | int) -> Any:
    """value[path[0]][path[1]]..., or None where a step is missing."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, Sequence) or isinstance(value, str) or step >= len(value):
                return None
            value = value[step]
        else:
            if not isinstance(value, Mapping):
                return None
            value = value.get(step)
    return value
