"""What one offline run of a program registered, and what changes between two runs.

`engine.run_program` produces a `Recording`; the tests, `render` and `diff` read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlplatform.tools.offline.secrets import contains_secret, unwrap_secrets


@dataclass
class RecordedResource:
    """One registered resource: its inputs as the program declared them (secret
    markers kept), the mock's outputs, and the options that shape the graph."""

    urn: str
    type: str
    name: str
    custom: bool
    raw_inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    parent: str = ""
    provider: str = ""
    dependencies: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    protect: bool = False
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)
    aliases: list[Any] = field(default_factory=list)

    @property
    def inputs(self) -> dict[str, Any]:
        """Inputs with secrets unwrapped: what tests assert on."""
        return unwrap_secrets(self.raw_inputs)

    def input_is_secret(self, key: str) -> bool:
        return contains_secret(self.raw_inputs.get(key))

    @property
    def is_kubernetes_object(self) -> bool:
        return self.custom and self.type.startswith("kubernetes:") and "helm.sh" not in self.type

    @property
    def kind(self) -> str:
        return self.type.rsplit(":", 1)[-1]

    @property
    def metadata(self) -> dict[str, Any]:
        return self.inputs.get("metadata") or {}

    def __repr__(self) -> str:  # short, so assertion failures stay readable
        return f"<{self.type} {self.name}>"


@dataclass
class Recording:
    """Everything one run of a program registered, in registration order."""

    project: str
    stack: str
    resources: list[RecordedResource]
    stack_outputs: dict[str, Any]
    # Config key paths whose `secure:` values the run saw only as placeholders.
    secret_placeholders: list[str] = field(default_factory=list)

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str | None = None) -> RecordedResource:
        found = [r for r in self.of_type(type_token) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_token)]
            raise AssertionError(
                f"expected exactly one {type_token}"
                + (f" named {name!r}" if name else "")
                + f", found {len(found)} (registered: {names})"
            )
        return found[0]

    def by_urn(self, urn: str) -> RecordedResource:
        for r in self.resources:
            if r.urn == urn:
                return r
        raise KeyError(urn)

    def by_name(self, name: str) -> RecordedResource:
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise AssertionError(f"expected one resource named {name!r}, found {found}")
        return found[0]

    def children_of(self, parent: RecordedResource) -> list[RecordedResource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def depends_on(self, resource: RecordedResource, other: RecordedResource) -> bool:
        """True when `resource` waits for `other`, directly or through a property."""
        direct = set(resource.dependencies)
        for deps in resource.property_dependencies.values():
            direct.update(deps)
        return other.urn in direct

    @property
    def kubernetes_objects(self) -> list[RecordedResource]:
        return [r for r in self.resources if r.is_kubernetes_object]


@dataclass
class RecordingDiff:
    """What changes between two runs of a program, by URN: the blast radius of a config edit."""

    added: list[RecordedResource]
    removed: list[RecordedResource]
    changed: list[tuple[RecordedResource, RecordedResource]]

    @property
    def changed_urns(self) -> list[str]:
        return [after.urn for _, after in self.changed]

    def pod_templates_changed(self) -> list[str]:
        """URNs of workloads whose pod template differs (a change that restarts pods)."""
        changed = []
        for before, after in self.changed:
            spec_before = before.inputs.get("spec") or {}
            spec_after = after.inputs.get("spec") or {}
            has_template = "template" in spec_before or "template" in spec_after
            if has_template and spec_before.get("template") != spec_after.get("template"):
                changed.append(after.urn)
        return changed


def diff_recordings(before: Recording, after: Recording) -> RecordingDiff:
    """Compare the declared inputs of two runs resource by resource (matched by URN)."""
    old = {r.urn: r for r in before.resources}
    new = {r.urn: r for r in after.resources}
    return RecordingDiff(
        added=[new[u] for u in new if u not in old],
        removed=[old[u] for u in old if u not in new],
        changed=[(old[u], new[u]) for u in new if u in old and old[u].inputs != new[u].inputs],
    )
