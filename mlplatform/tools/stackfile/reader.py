"""Reading a `Pulumi.<stack>.yaml` strictly: the one reader of stack files for
`render`, `diff`, the rollout verbs and the CI helpers.

PyYAML keeps the last of two equal keys without a word, so a stack file with two
`mlmodel:canary` blocks would render one and apply whatever the Pulumi CLI makes
of it (it refuses the file). This reader refuses what the Pulumi CLI refuses, and
says where: duplicate keys at any depth, malformed YAML, tabs used as
indentation, bytes that are not UTF-8, and a document that is not a mapping.
Each becomes a `StackFileError` (a `ConfigError`, so every command exits 2 on it)
naming the file, line and column. A file that exists but cannot be read
(permission) is a `StackFileIOError`: the rollout verbs exit 4 on it.

Two parses of the same text, one set of errors: `safe` (plain dicts, for
readers) and `round_trip` (ruamel's commented maps, for the editor, which must
keep comments and positions). Both need only ruamel.

`secure:` values cannot be decrypted without the stack's secrets provider. The
offline commands replace each by the placeholder `[secret:<key path>]` and record
its key path, so the program sees a Pulumi secret where the real run would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, TypeVar

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from mlplatform.configuration import (
    SECRET_PLACEHOLDER_PREFIX,
    ConfigError,
    foreign_namespace_problems,
    validate_config,
)

# The names' one parser, re-exported so readers of stack files need one import.
from mlplatform.tools.stackfile.atomic import StackFileIOError as StackFileIOError
from mlplatform.tools.stackfile.names import stack_file, stack_files, stack_of  # noqa: F401

ModelT = TypeVar("ModelT", bound=BaseModel)


class StackFileError(ConfigError):
    """A stack file that cannot be read as Pulumi reads it. Names file, line and column."""

    def __init__(self, path: Path | PurePath, problem: str, line: int | None = None, column: int | None = None):
        where = str(path) + (f":{line}" if line else "") + (f":{column}" if line and column else "")
        self.path = Path(path)
        self.line = line
        self.column = column
        super().__init__(_stack_or_file(path), [f"{where}: {problem}"])
        # One line, where first: the position is the message (ConfigError's header would bury it).
        self.args = (f"{where}: {problem}",)


# -- stack names ---------------------------------------------------------------


def stack_name(path: Path | PurePath | str) -> str:
    """The stack a stack file belongs to; StackFileError for a file that is not `Pulumi.<stack>.yaml`."""
    stack = stack_of(path)
    if stack is None:
        raise StackFileError(Path(path), "not a stack file (expected Pulumi.<stack>.yaml)")
    return stack


def _stack_or_file(path: Path | PurePath | str) -> str:
    return stack_of(path) or PurePath(path).name


# -- reading ---------------------------------------------------------------------


def read_text(path: Path) -> str:
    """The file as UTF-8 text. Missing or not UTF-8: StackFileError; unreadable: StackFileIOError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StackFileError(path, "no such stack file") from None
    except OSError as err:
        raise StackFileIOError(f"{path}: cannot read the stack file: {err.strerror or err}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = raw.rfind(b"\n", 0, err.start) + 1
        line = raw.count(b"\n", 0, err.start) + 1
        column = len(raw[line_start : err.start].decode("utf-8", errors="replace")) + 1
        raise StackFileError(
            path, f"is not UTF-8 (byte 0x{raw[err.start]:02x}); save it as UTF-8", line, column
        ) from None


def round_trip_yaml(explicit_start: bool = False) -> YAML:
    """ruamel's round-trip loader and dumper, with the layout the stack files use (and
    `pulumi config set` writes): sequences indented under their key. A wide line limit
    keeps long image refs on one line."""
    yaml = YAML()  # round-trip mode; it refuses duplicate keys as the safe pure loader does
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    yaml.explicit_start = explicit_start
    return yaml


def _loader(round_trip: bool) -> YAML:
    if round_trip:
        return round_trip_yaml()
    return YAML(typ="safe", pure=True)  # the pure loader is the one that refuses duplicate keys


def parse(path: Path, text: str, *, round_trip: bool = False) -> dict[str, Any]:
    """The document of `text` (read from `path`) as a mapping whose `config:` is a mapping.

    `round_trip` returns ruamel's CommentedMap (comments and positions kept) for the editor."""
    try:
        document = _loader(round_trip).load(text)
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "syntax error"
        if "found duplicate key" in problem:
            problem = problem.split(" with value")[0]
            problem += " (the Pulumi CLI refuses a key given twice; keep one)"
        elif "\\t" in problem or "\t" in problem:
            problem = problem.replace("'\\t'", "a tab").replace("\t", "a tab")
            problem += " (YAML indents with spaces, never tabs)"
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        raise StackFileError(path, f"not valid YAML: {problem}", line, column) from None
    except YAMLError as err:
        raise StackFileError(path, f"not valid YAML: {str(err).splitlines()[0]}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise StackFileError(path, f"must be a mapping with a `config:` key, but is a {_kind(document)}", 1, 1)
    config = document.get("config")
    if config is not None and not isinstance(config, dict):
        raise StackFileError(path, f"`config:` must be a mapping of keys to values, but is a {_kind(config)}")
    return document


def _kind(value: Any) -> str:
    return "list" if isinstance(value, list) else "scalar" if not isinstance(value, dict) else "mapping"


def read_stack_document(path: Path) -> dict[str, Any]:
    """The whole stack file as a mapping, or `StackFileError` saying where it is wrong."""
    return parse(Path(path), read_text(path))


def config_block(path: Path, text: str | None = None) -> dict[str, Any]:
    """The `config:` mapping of a stack file (of `text` when given: e.g. a file as `git show` printed it),
    read strictly. What the CI helpers read: no validation of the values, so one invalid stack cannot
    stop the other stacks' jobs, but never a lax parse."""
    document = parse(Path(path), text) if text is not None else read_stack_document(path)
    return dict(document.get("config") or {})


@dataclass
class StackConfig:
    """The `config:` block of a stack file, keys fully qualified, `secure:` values replaced."""

    values: dict[str, Any]
    # Key paths given as Pulumi secrets, fully qualified: `mlplatform:cluster.kubeconfig`.
    secret_paths: list[str] = field(default_factory=list)


def read_stack_config(path: Path, project: str) -> StackConfig:
    """The `config:` block of a stack file: keys qualified with the project's namespace
    where they have none (as Pulumi does), and every `secure:` value, at any depth,
    replaced by a `[secret:<key path>]` placeholder whose key path is recorded."""
    return stack_config_of(read_stack_document(path).get("config") or {}, project)


def stack_config_of(config: dict[str, Any], project: str) -> StackConfig:
    """`read_stack_config` for a `config:` mapping already read (the editor's round-trip parse)."""
    result = StackConfig(values={})
    for key, value in config.items():
        full_key = str(key) if ":" in str(key) else f"{project}:{key}"
        result.values[full_key] = _placeholders(value, full_key, result.secret_paths)
    return result


def _placeholders(value: Any, path: str, secrets: list[str]) -> Any:
    if isinstance(value, dict) and set(value) == {"secure"} and isinstance(value["secure"], str):
        secrets.append(path)
        return placeholder(path)
    if isinstance(value, dict):
        return {k: _placeholders(v, f"{path}.{k}", secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholders(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    return value


def placeholder(key_path: str) -> str:
    """What an offline run sees in place of a `secure:` value it cannot decrypt."""
    return f"{SECRET_PLACEHOLDER_PREFIX}{key_path}]"


# -- validating ------------------------------------------------------------------


def validate_stack_file(path: Path, model: type[ModelT], namespace: str) -> ModelT:
    """Read a stack file strictly and validate its `namespace:` keys as `pulumi up` would:
    keys of foreign namespaces refused, `secure:` values accepted as opaque placeholders
    (and counted as secrets), cross-namespace rules (`aws:region`) applied.

    For commands that read a stack file without running its program (the rollout
    verbs); `render` and `diff` get the same checks through the program's `load_config`."""
    return validate_stack_config(read_stack_config(path, namespace), model, namespace, stack=_stack_or_file(path))


def validate_stack_config(stack_config: StackConfig, model: type[ModelT], namespace: str, *, stack: str) -> ModelT:
    """The checks of `validate_stack_file` on a `config:` block already read."""
    problems = foreign_namespace_problems(stack_config.values, namespace)
    if problems:
        raise ConfigError(stack, problems)
    prefix = f"{namespace}:"
    values = {k[len(prefix) :]: v for k, v in stack_config.values.items() if k.startswith(prefix)}
    secrets = {p[len(prefix) :] for p in stack_config.secret_paths if p.startswith(prefix)}
    return validate_config(
        model, values, stack=stack, namespace=namespace, secret_keys=secrets, other_config=stack_config.values
    )
