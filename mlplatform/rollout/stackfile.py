"""Rollout steps as edits of a model stack's `Pulumi.<stack>.yaml`.

Git holds which version runs where, so every rollout step is a change to the
stack file that a human can review and `pulumi preview` can show. The edits
keep the file's comments and key order (ruamel.yaml round-trip), are checked
with the stack's own pydantic model before anything is written, and replace the
file atomically: a reader never sees half a file, and a refused edit leaves it
byte-identical.

Trade-off: ruamel attaches a comment to the node before it, so deleting the
`canary` block (on promote) also drops comment lines that sat right under it.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from mlplatform.configuration import ConfigError, validate_config
from mlplatform.model.config import NAMESPACE, ModelStackConfig

STACKS_DIR = Path("stacks") / "model"
CANARY_KEY = f"{NAMESPACE}:canary"
STABLE_KEY = f"{NAMESPACE}:stable"
VERSION_FIELDS = ("version", "image", "modelUri")


class StackFileError(Exception):
    """The stack file cannot be read, is invalid, or the edit is not allowed. Nothing was written."""


@dataclass(frozen=True)
class StackFile:
    """A stack file as read from disk: its path, stack name and validated config."""

    path: Path
    stack: str
    config: ModelStackConfig


def stack_path(stack: str, project_dir: Path | str | None = None) -> Path:
    """`<project_dir>/Pulumi.<stack>.yaml`; the project defaults to `stacks/model`."""
    base = Path(project_dir) if project_dir is not None else STACKS_DIR
    return base / f"Pulumi.{stack}.yaml"


def stack_name(path: Path) -> str:
    name = path.name
    if not (name.startswith("Pulumi.") and name.endswith((".yaml", ".yml"))):
        raise StackFileError(f"{path}: not a stack file (expected Pulumi.<stack>.yaml)")
    return name[len("Pulumi.") :].rsplit(".", 1)[0]


def _yaml() -> YAML:
    yaml = YAML()  # round-trip mode
    yaml.preserve_quotes = True
    # The layout the stack files use (and `pulumi config set` writes): sequences
    # indented under their key. A wide line limit keeps long image refs on one line.
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def _read_document(path: Path) -> CommentedMap:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise StackFileError(f"{path}: no such stack file") from None
    try:
        document = _yaml().load(text)
    except YAMLError as err:
        raise StackFileError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(document, CommentedMap) or not isinstance(document.get("config"), CommentedMap):
        raise StackFileError(f"{path}: has no `config:` mapping")
    return document


def _plain(value: Any) -> Any:
    """ruamel's scalar subclasses (ScalarFloat, ScalarInt...) as plain Python values,
    so pydantic's strict fields judge the value and not its wrapper type."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def config_values(document: CommentedMap) -> dict[str, Any]:
    """The `mlmodel:` keys of a stack document, prefix stripped, as plain values."""
    prefix = f"{NAMESPACE}:"
    return {
        key[len(prefix) :]: _plain(value)
        for key, value in document["config"].items()
        if isinstance(key, str) and key.startswith(prefix)
    }


def _validate(document: CommentedMap, path: Path) -> ModelStackConfig:
    return validate_config(ModelStackConfig, config_values(document), stack=stack_name(path), namespace=NAMESPACE)


def load(path: Path | str) -> StackFile:
    """Read and validate a stack file. Raises StackFileError or ConfigError."""
    path = Path(path)
    config = _validate(_read_document(path), path)
    return StackFile(path=path, stack=stack_name(path), config=config)


def _dump(document: CommentedMap) -> str:
    buffer = io.StringIO()
    _yaml().dump(document, buffer)
    return buffer.getvalue()


def _write_atomically(path: Path, text: str) -> None:
    # The temp file lives in the same directory so os.replace is a rename on one
    # filesystem: readers see the old file or the new one, never a partial write.
    mode = path.stat().st_mode & 0o777
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class EditResult:
    """What an edit did: the config before and after, and the new file text."""

    path: Path
    before: ModelStackConfig
    after: ModelStackConfig
    text: str
    written: bool


Edit = Callable[[CommentedMap, ModelStackConfig], None]


def apply_edit(path: Path | str, edit: Edit, *, dry_run: bool = False) -> EditResult:
    """Load, edit in memory, re-validate, then write atomically (unless `dry_run`).

    `edit` mutates the `config:` mapping and may raise StackFileError to refuse.
    A file that is invalid before the edit, or would be after it, is not written.
    """
    path = Path(path)
    document = _read_document(path)
    before = _validate(document, path)
    edit(document["config"], before)
    text = _dump(document)
    try:
        after = _validate(_yaml().load(text), path)
    except ConfigError as err:
        raise StackFileError(f"{path}: the edit would make the stack invalid, nothing written:\n{err}") from None
    if not dry_run:
        _write_atomically(path, text)
    return EditResult(path=path, before=before, after=after, text=text, written=not dry_run)


# -- the edits of a rollout ---------------------------------------------------


def _require_canary(config: ModelStackConfig) -> None:
    if config.canary is None:
        raise StackFileError(f"no canary in the stack (no `{CANARY_KEY}` key): start one with `rollout start`")


def set_weight(weight: int) -> Edit:
    """Move the canary to `weight` percent: a one-line change."""

    def edit(config_map: CommentedMap, config: ModelStackConfig) -> None:
        _require_canary(config)
        config_map[CANARY_KEY]["weight"] = weight

    return edit


def abort(reason: str) -> Edit:
    """Weight 0: stable takes all traffic, the canary pods stay for debugging.
    The reason goes into a comment on the weight line, so the file says why."""

    def edit(config_map: CommentedMap, config: ModelStackConfig) -> None:
        _require_canary(config)
        canary = config_map[CANARY_KEY]
        canary["weight"] = 0
        if reason:
            canary.yaml_add_eol_comment(f"aborted: {' '.join(reason.split())}", "weight")

    return edit


def start_canary(version: str, image: str, model_uri: str) -> Edit:
    """Put a new canary at the first step, right after `stable` in the file.

    Refused while another canary takes traffic; an aborted canary (weight 0)
    is replaced.
    """

    def edit(config_map: CommentedMap, config: ModelStackConfig) -> None:
        if config.canary is not None and config.canary.weight > 0:
            raise StackFileError(
                f"a rollout is under way: canary {config.canary.version} at {config.canary.weight}%; "
                "promote or abort it first"
            )
        canary = CommentedMap()
        canary["version"] = version
        canary["image"] = image
        canary["modelUri"] = model_uri
        canary["weight"] = config.steps[0]
        if CANARY_KEY in config_map:
            config_map[CANARY_KEY] = canary
            return
        keys = list(config_map.keys())
        position = keys.index(STABLE_KEY) + 1 if STABLE_KEY in keys else len(keys)
        config_map.insert(position, CANARY_KEY, canary)

    return edit


def promote() -> Edit:
    """Stable takes the canary's version, image and model URI; the canary block goes.
    Only at weight 100: promoting earlier would skip the last gated step."""

    def edit(config_map: CommentedMap, config: ModelStackConfig) -> None:
        _require_canary(config)
        assert config.canary is not None
        if config.canary.weight != 100:
            raise StackFileError(
                f"canary {config.canary.version} is at {config.canary.weight}%; promote only at 100%"
            )
        canary = config_map[CANARY_KEY]
        stable = config_map[STABLE_KEY]
        # Edit stable in place so its comments and key order survive.
        for key in VERSION_FIELDS:
            stable[key] = canary[key]
        del config_map[CANARY_KEY]

    return edit
