"""`mlplatform diff`: the blast radius of a config edit, without cloud credentials.

The stack's program runs offline twice, once with its stack file and once with the
edited config (`--set`/`--unset` on top of the stack file, or another config file
given with `--against`), and the two recordings are compared resource by resource
(matched by URN). The report names every resource whose declared inputs change,
which input keys and leaf paths change, what is added or removed, and whether a pod
template changes, i.e. whether the edit restarts pods.

Trade-off: this compares what the program declares, not what the providers would
do with it. A change the provider treats as a replacement (an immutable field) is
reported as a change; `pulumi preview` against real state remains the final word.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlplatform.configuration import ConfigError
from mlplatform.tools.offline.engine import project_name, read_stack_file
from mlplatform.tools.offline.recording import RecordedResource, Recording, diff_recordings
from mlplatform.tools.offline.secrets import REDACTED, redact_secrets
from mlplatform.tools.render import RenderError, render_stack
from mlplatform.tools.stackfile.reader import stack_file

# Paths listed per changed resource; beyond this the report says how many more.
MAX_PATHS = 20
_INDEX = re.compile(r"\[(\d+)\]")
_SEGMENT = re.compile(r"^([^.\[\]]+)((?:\[\d+\])*)$")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_MISSING = "(absent)"

# A position in an input tree: keys and list indexes.
KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Override:
    """One edit of the config: `key` set to `value`, or removed when `remove` is true."""

    key: str
    value: Any = None
    remove: bool = False

    def __str__(self) -> str:
        if self.remove:
            return f"--unset {self.key}"
        return f"--set {self.key}={_flow(self.value)}"


def parse_assignment(text: str, *, stack: str) -> Override:
    """`canary.weight=25` -> Override("canary.weight", 25); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(stack, [f"--set {text!r}: expected KEY=VALUE, e.g. canary.weight=25"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        problem = str(err).splitlines()[0]
        raise ConfigError(stack, [f"--set {key.strip()}: value {raw!r} is not valid YAML ({problem})"]) from None
    return Override(key.strip(), value)


def _split_key(key: str, namespace: str, *, stack: str) -> tuple[str, list[str | int]]:
    """`canary.weight` or `mlmodel:canary.weight` -> ("mlmodel:canary", ["weight"]);
    `namespaces.teams[0].gpuLimits` -> ("mlplatform:namespaces", ["teams", 0, "gpuLimits"])."""
    qualified = key if ":" in key else f"{namespace}:{key}"
    prefix, _, path = qualified.partition(":")
    parts: list[str | int] = []
    for segment in path.split("."):
        match = _SEGMENT.match(segment)
        if not prefix or match is None:
            example = f"canary.weight, {namespace}:canary.weight or teams[0].name"
            raise ConfigError(stack, [f"{key!r} is not a config key; write e.g. {example}"])
        parts.append(match.group(1))
        parts.extend(int(i) for i in _INDEX.findall(match.group(2)))
    head = parts[0]
    if isinstance(head, int):
        raise ConfigError(stack, [f"{key!r} must start with a key name, not an index"])
    return f"{prefix}:{head}", parts[1:]


def apply_overrides(
    config: Mapping[str, Any], overrides: Iterable[Override], *, namespace: str, stack: str
) -> dict[str, Any]:
    """A copy of `config` (fully qualified keys) with each override applied in order.

    Missing objects on the way are created, so `--set canary.weight=25` on a stack
    without a canary yields `{canary: {weight: 25}}`, which the config model then
    reports as incomplete. Indexing past the end of a list or into a scalar is an error.
    """
    result = copy.deepcopy(dict(config))
    for override in overrides:
        top, path = _split_key(override.key, namespace, stack=stack)
        if not path:
            if override.remove:
                result.pop(top, None)
            else:
                result[top] = copy.deepcopy(override.value)
            continue
        container: Any = result.setdefault(top, {})
        shown = top
        for position, part in enumerate(path):
            last = position == len(path) - 1
            if isinstance(part, int):
                if not isinstance(container, list) or part >= len(container):
                    raise ConfigError(stack, [f"{override.key}: {shown} has no item [{part}]"])
                items: list[Any] = container
                if not last:
                    container = items[part]
                elif override.remove:
                    del items[part]
                else:
                    items[part] = copy.deepcopy(override.value)
                shown += f"[{part}]"
            else:
                if not isinstance(container, dict):
                    raise ConfigError(stack, [f"{override.key}: {shown} is not an object, cannot set .{part} in it"])
                mapping: dict[str, Any] = container
                if not last:
                    container = mapping.setdefault(part, {})
                elif override.remove:
                    mapping.pop(part, None)
                else:
                    mapping[part] = copy.deepcopy(override.value)
                shown += f".{part}"
    return result


# -- the report ------------------------------------------------------------------
@dataclass
class PathChange:
    path: str
    before: Any
    after: Any


@dataclass
class ChangedResource:
    urn: str
    type: str
    name: str
    keys: list[str]
    paths: list[PathChange]
    more_paths: int = 0
    pod_template_changed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "keys": self.keys,
            "paths": [asdict(change) for change in self.paths],
            "morePaths": self.more_paths,
            "podTemplateChanged": self.pod_template_changed,
        }


@dataclass
class ResourceRef:
    urn: str
    type: str
    name: str


@dataclass
class DiffReport:
    """What an edit changes, by resource. Values under secrets are shown as `[secret]`."""

    project: str
    stack: str
    edit: list[str]
    changed: list[ChangedResource] = field(default_factory=list)
    added: list[ResourceRef] = field(default_factory=list)
    removed: list[ResourceRef] = field(default_factory=list)

    @property
    def pod_templates_changed(self) -> list[str]:
        return [c.urn for c in self.changed if c.pod_template_changed]

    def changed_of_type(self, type_token: str) -> list[ChangedResource]:
        return [c for c in self.changed if c.type == type_token]

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "stack": self.stack,
            "edit": self.edit,
            "changed": [change.to_json() for change in self.changed],
            "added": [asdict(ref) for ref in self.added],
            "removed": [asdict(ref) for ref in self.removed],
            "podTemplatesChanged": self.pod_templates_changed,
            "summary": {
                "changed": len(self.changed),
                "added": len(self.added),
                "removed": len(self.removed),
                "podTemplatesChanged": len(self.pod_templates_changed),
            },
        }


def _ref(resource: RecordedResource) -> ResourceRef:
    return ResourceRef(urn=resource.urn, type=resource.type, name=resource.name)


def _changed_paths(before: Any, after: Any, path: KeyPath = ()) -> list[KeyPath]:
    """Leaf paths, as tuples of keys and indexes, where two input trees differ."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[KeyPath] = []
        for key in list(before) + [k for k in after if k not in before]:
            if key not in before or key not in after:
                found.append((*path, key))
            else:
                found.extend(_changed_paths(before[key], after[key], (*path, key)))
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        found = []
        for index, (b, a) in enumerate(zip(before, after, strict=True)):
            found.extend(_changed_paths(b, a, (*path, index)))
        return found
    return [] if before == after else [path]


def _format_path(path: KeyPath) -> str:
    """`spec.backends[0].weight`; keys that are not identifiers are quoted: `spec.hard["limits.nvidia.com/gpu"]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f'["{part}"]'
    return text


def _at(value: Any, path: KeyPath) -> Any:
    """The value at `path` in a redacted tree; `[secret]` if a secret lies on the way."""
    for part in path:
        if value == REDACTED:
            return REDACTED
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                return _MISSING
            value = value[part]
        else:
            if not isinstance(value, dict) or part not in value:
                return _MISSING
            value = value[part]
    return value


def compare(before: Recording, after: Recording, *, edit: Sequence[str] = ()) -> DiffReport:
    """The report for two recordings of the same stack."""
    diff = diff_recordings(before, after)
    report = DiffReport(project=before.project, stack=before.stack, edit=list(edit))
    restarts = set(diff.pod_templates_changed())
    for old, new in diff.changed:
        old_inputs, new_inputs = old.inputs, new.inputs
        keys = sorted(k for k in set(old_inputs) | set(new_inputs) if old_inputs.get(k) != new_inputs.get(k))
        paths = sorted(_changed_paths(old_inputs, new_inputs), key=_format_path)
        shown_before, shown_after = redact_secrets(old.raw_inputs), redact_secrets(new.raw_inputs)
        report.changed.append(
            ChangedResource(
                urn=new.urn,
                type=new.type,
                name=new.name,
                keys=keys,
                paths=[
                    PathChange(_format_path(p), _at(shown_before, p), _at(shown_after, p)) for p in paths[:MAX_PATHS]
                ],
                more_paths=max(0, len(paths) - MAX_PATHS),
                pod_template_changed=new.urn in restarts,
            )
        )
    # Registration order depends on when Outputs resolve; sort so two runs print the same.
    report.changed.sort(key=lambda c: (c.type, c.name))
    report.added = sorted((_ref(r) for r in diff.added), key=lambda r: (r.type, r.name))
    report.removed = sorted((_ref(r) for r in diff.removed), key=lambda r: (r.type, r.name))
    return report


def diff_stack(
    project_dir: Path,
    stack: str,
    *,
    overrides: Sequence[Override] = (),
    against: Path | None = None,
    platform_dir: Path | None = None,
    base: Path | None = None,
) -> DiffReport:
    """Run `stack` with its stack file and with the edited config, and compare.

    The edited config is `against` (another stack file) if given, else the stack's own
    file; `overrides` apply on top. StackReferences resolve as `mlplatform render` does.
    With `base` (another stack file, e.g. the PR's base branch's), that file is the before
    and the stack's own file the after: a PR's blast radius, read base -> PR.
    """
    if base is not None:
        return _diff_from_base(Path(project_dir).resolve(), stack, Path(base), platform_dir)
    project_dir = Path(project_dir).resolve()
    if not (project_dir / "Pulumi.yaml").is_file():
        raise RenderError(f"{project_dir} has no Pulumi.yaml: not a Pulumi project")
    project = project_name(project_dir)
    source = Path(against) if against is not None else stack_file(project_dir, stack)
    if against is not None and not source.is_file():
        raise RenderError(f"--against {source}: no such config file")
    # Edits are checked before anything runs: a malformed key fails in milliseconds.
    config, secret_keys = read_stack_file(source, project) if source.is_file() else ({}, [])
    config = apply_overrides(config, overrides, namespace=project, stack=stack)
    # The edited config runs first: if it is invalid, that is the answer, and nothing else runs.
    platform_outputs: dict[str, dict[str, Any]] = {}
    after = render_stack(
        project_dir,
        stack,
        platform_dir=platform_dir,
        config=config,
        secret_keys=secret_keys,
        platform_outputs=platform_outputs,
    )
    before = render_stack(project_dir, stack, platform_dir=platform_dir, platform_outputs=platform_outputs)
    edit = ([f"--against {against}"] if against is not None else []) + [str(o) for o in overrides]
    return compare(before, after, edit=edit)


def _diff_from_base(project_dir: Path, stack: str, base: Path, platform_dir: Path | None) -> DiffReport:
    if not (project_dir / "Pulumi.yaml").is_file():
        raise RenderError(f"{project_dir} has no Pulumi.yaml: not a Pulumi project")
    if not base.is_file():
        raise RenderError(f"--base {base}: no such config file")
    config, secret_keys = read_stack_file(base, project_name(project_dir))
    platform_outputs: dict[str, dict[str, Any]] = {}
    after = render_stack(project_dir, stack, platform_dir=platform_dir, platform_outputs=platform_outputs)
    before = render_stack(
        project_dir,
        stack,
        platform_dir=platform_dir,
        config=config,
        secret_keys=secret_keys,
        platform_outputs=platform_outputs,
    )
    return compare(before, after, edit=[f"--base {base}"])


def _flow(value: Any) -> str:
    """A value on one line, as YAML flow style writes it."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def _show(value: Any) -> str:
    if value == _MISSING:
        return value
    text = _flow(value)
    return text if len(text) <= 80 else text[:77] + "..."


def format_report(report: DiffReport) -> str:
    """The report as text for a terminal or a PR comment."""
    lines = [f"{report.project}/{report.stack}: {' '.join(report.edit) or '(no edit)'}", ""]
    for entry in report.changed:
        restart = "  [pod template changed: pods restart]" if entry.pod_template_changed else ""
        lines.append(f"~ {entry.name} ({entry.type})  inputs: {', '.join(entry.keys)}{restart}")
        for change in entry.paths:
            lines.append(f"    {change.path}: {_show(change.before)} -> {_show(change.after)}")
        if entry.more_paths:
            lines.append(f"    ... and {entry.more_paths} more paths")
    for entry in report.added:
        lines.append(f"+ {entry.name} ({entry.type})")
    for entry in report.removed:
        lines.append(f"- {entry.name} ({entry.type})")
    if not (report.changed or report.added or report.removed):
        lines.append("no resource changes")
    lines.append("")
    pods = report.pod_templates_changed
    lines.append(
        f"{len(report.changed)} changed, {len(report.added)} added, {len(report.removed)} removed; "
        + (f"{len(pods)} pod template(s) changed" if pods else "no pod template changed")
    )
    return "\n".join(lines)
