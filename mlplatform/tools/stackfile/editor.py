"""Rollout steps as edits of a model stack's `Pulumi.<stack>.yaml`.

Git holds which version runs where, so every rollout step is a change to the
stack file that a human can review and `pulumi preview` can show. Every edit is
checked with the stack's own pydantic model before anything is written, and
replaces the file atomically: a reader never sees half a file, and a refused or
failed edit leaves it byte-identical, with no temporary file behind.

Two kinds of edit:
- a weight step and an abort change one line in place (`weightline`), so the
  rest of the file stays byte for byte what it was;
- start and promote add or remove blocks through a ruamel.yaml round trip,
  which keeps comments and key order, and here also the line endings and a
  `---` marker. Trade-off: ruamel attaches a comment to the node before it, so
  deleting the `canary` block (on promote) also drops comment lines right under it.

Errors (the reader's, one type each): StackFileError (exit 2) for a file that is
missing, malformed or invalid, with `file:line:column` where the parser gives one;
StackFileIOError (exit 4) when the file cannot be read or written (permission,
read-only file system, disk full).

Reads: `read` reads and validates the file once; `apply_edit` takes that
document, so a verb that checks the file and then edits it reads it once.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from mlplatform.configuration import ConfigError
from mlplatform.model.config import CONFIG_NAMESPACE, ModelStackConfig
from mlplatform.tools.stackfile import rules, weightline
from mlplatform.tools.stackfile.atomic import StackFileIOError as StackFileIOError
from mlplatform.tools.stackfile.atomic import write_atomically as write_atomically
from mlplatform.tools.stackfile.reader import (
    StackFileError,
    read_text,
    round_trip_yaml,
    stack_config_of,
    stack_file,
    stack_name,
    validate_stack_config,
)
from mlplatform.tools.stackfile.reader import parse as _parse

STACKS_DIR = Path("stacks") / "model"
CANARY_KEY = f"{CONFIG_NAMESPACE}:canary"
STABLE_KEY = f"{CONFIG_NAMESPACE}:stable"
VERSION_FIELDS = ("version", "image", "modelUri")
ABORTED = "aborted:"


@dataclass
class StackDocument:
    """A stack file's text, its round-trip parse and its validated config, as an edit sees them."""

    path: Path
    text: str
    document: CommentedMap
    config: ModelStackConfig

    @property
    def config_map(self) -> CommentedMap:
        return self.document["config"]

    @property
    def stack(self) -> str:
        return stack_name(self.path)


StackFile = StackDocument  # what `load` returns: the same read, named for callers that only look


def stack_path(stack: str, project_dir: Path | str | None = None) -> Path:
    """`<project_dir>/Pulumi.<stack>.yaml`; the project defaults to `stacks/model`."""
    return stack_file(project_dir if project_dir is not None else STACKS_DIR, stack)


def parse(path: Path, text: str) -> CommentedMap:
    """The round-trip document of `text`; the reader's errors, and a `config:` mapping required."""
    document = _parse(path, text, round_trip=True)
    if not isinstance(document, CommentedMap) or not isinstance(document.get("config"), CommentedMap):
        raise StackFileError(path, "has no `config:` mapping")
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
    prefix = f"{CONFIG_NAMESPACE}:"
    return {
        key[len(prefix) :]: _plain(value)
        for key, value in document["config"].items()
        if isinstance(key, str) and key.startswith(prefix)
    }


def _validate(document: CommentedMap, path: Path) -> ModelStackConfig:
    # The checks `pulumi up` and `render` apply, from the one shared place: keys of a
    # misspelt namespace refused, `secure:` values taken as opaque placeholders.
    config = _plain(dict(document["config"]))
    return validate_stack_config(
        stack_config_of(config, CONFIG_NAMESPACE), ModelStackConfig, CONFIG_NAMESPACE, stack=stack_name(path)
    )


def read(path: Path | str) -> StackDocument:
    """Read, parse and validate, once. Raises StackFileError, StackFileIOError or ConfigError."""
    path = Path(path)
    text = read_text(path)
    document = parse(path, text)
    return StackDocument(path=path, text=text, document=document, config=_validate(document, path))


def load(path: Path | str) -> StackDocument:
    """Read and validate a stack file (an alias of `read` for callers that only look)."""
    return read(path)


# -- writing -------------------------------------------------------------------


def _has_document_marker(text: str) -> bool:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped == "---" or stripped.startswith("--- ")
    return False


def _dump(document: CommentedMap, like: str) -> str:
    """The document as text, with the line endings and `---` marker of the text it came from."""
    buffer = io.StringIO()
    round_trip_yaml(explicit_start=_has_document_marker(like)).dump(document, buffer)
    text = buffer.getvalue()
    return text.replace("\n", "\r\n") if "\r\n" in like else text


@dataclass(frozen=True)
class EditResult:
    """What an edit did: the config and text before and after, and whether it was written."""

    path: Path
    before: ModelStackConfig
    after: ModelStackConfig
    previous_text: str
    text: str
    written: bool

    @property
    def changed(self) -> bool:
        return self.text != self.previous_text


# An edit returns the new text of the file; it may raise rules.Refused or StackFileError.
Edit = Callable[[StackDocument], str]


def apply_edit(source: Path | str | StackDocument, edit: Edit, *, dry_run: bool = False) -> EditResult:
    """Edit, re-validate the result, then write atomically (unless `dry_run` or nothing changed).

    `source` is a path (read here) or a document the caller read already, under the same lock.
    A file that is invalid before the edit, or would be after it, is not written.
    """
    current = source if isinstance(source, StackDocument) else read(source)
    text = edit(current)
    try:
        after = _validate(parse(current.path, text), current.path)
    except (ConfigError, StackFileError) as err:
        raise StackFileError(current.path, f"the edit would make the stack invalid, nothing written:\n{err}") from None
    write = not dry_run and text != current.text
    if write:
        write_atomically(current.path, text)
    return EditResult(
        path=current.path, before=current.config, after=after, previous_text=current.text, text=text, written=write
    )


# -- the edits of a rollout ---------------------------------------------------


def _weight_edit(current: StackDocument, weight: int, comment: str | None) -> str:
    try:
        text = weightline.replace(current.text, current.config_map[CANARY_KEY], weight, comment)
    except weightline.WeightLineError as err:
        raise StackFileError(current.path, f"cannot edit the canary weight in place: {err}") from None
    # The edit must have changed the weight and nothing else the program reads.
    expected = config_values(current.document)
    expected["canary"] = {**expected["canary"], "weight": weight}
    if config_values(parse(current.path, text)) != expected:
        raise StackFileError(current.path, "cannot edit the canary weight in place: the result reads differently")
    return text


def set_weight(weight: int) -> Edit:
    """Move the canary to `weight` percent: one token on one line."""

    def edit(current: StackDocument) -> str:
        rules.require_canary(current.config)
        return _weight_edit(current, weight, comment=None)

    return edit


def abort_reason(current: StackDocument) -> str | None:
    """The reason of an earlier abort, from the weight line's comment; None if not aborted."""
    if current.config.canary is None or current.config.canary.weight != 0:
        return None
    try:
        comment = weightline.locate(current.text, current.config_map[CANARY_KEY]).comment
    except weightline.WeightLineError:
        return None
    if comment is None or not comment.startswith(ABORTED):
        return None
    return comment[len(ABORTED) :].strip()


def abort(reason: str) -> Edit:
    """Weight 0: stable takes all traffic, the canary pods stay for debugging.
    The reason goes into the weight line's comment, so the file says why. A canary
    already aborted keeps the first reason: the file is left as it is."""

    def edit(current: StackDocument) -> str:
        rules.require_canary(current.config)
        if abort_reason(current) is not None:
            return current.text
        comment = f"{ABORTED} {' '.join(reason.split())}" if reason.strip() else None
        return _weight_edit(current, 0, comment)

    return edit


def start_canary(version: str, image: str, model_uri: str) -> Edit:
    """Put a new canary at the first step, right after `stable` in the file.

    Refused while another canary takes traffic; an aborted canary (weight 0)
    is replaced.
    """

    def edit(current: StackDocument) -> str:
        rules.require_no_live_canary(current.config)
        config_map = current.config_map
        canary = CommentedMap()
        canary["version"] = version
        canary["image"] = image
        canary["modelUri"] = model_uri
        canary["weight"] = current.config.steps[0]
        if CANARY_KEY in config_map:
            config_map[CANARY_KEY] = canary
        else:
            keys = list(config_map.keys())
            position = keys.index(STABLE_KEY) + 1 if STABLE_KEY in keys else len(keys)
            config_map.insert(position, CANARY_KEY, canary)
        return _dump(current.document, like=current.text)

    return edit


def promote() -> Edit:
    """Stable takes the canary's version, image and model URI; the canary block goes."""

    def edit(current: StackDocument) -> str:
        rules.require_promotable(current.config)
        config_map = current.config_map
        canary = config_map[CANARY_KEY]
        stable = config_map[STABLE_KEY]
        # Edit stable in place so its comments and key order survive.
        for key in VERSION_FIELDS:
            stable[key] = canary[key]
        del config_map[CANARY_KEY]
        return _dump(current.document, like=current.text)

    return edit
