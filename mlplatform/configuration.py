"""Reading and validating a stack's configuration, shared by every entry point.

Entry points (`__main__.py` of the platform and of the model stacks) call
`load_config` once, before declaring any resource. A bad value raises
`ConfigError`, whose message names the stack, the key path, the value and
what is allowed, so a typo in `Pulumi.prod.yaml` stops `pulumi preview`
before anything is registered.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Self, TypeVar, get_args, get_origin

import pulumi
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict
from pydantic_core import ErrorDetails

from mlplatform import pem
from mlplatform.credentials import credential_kind

ModelT = TypeVar("ModelT", bound=BaseModel)

# Config namespaces a stack file may hold besides its own project's: the providers
# this program uses, and Pulumi's own (`pulumi:tags`...). Anything else is a typo
# (`mlmodl:canary`) or a key pasted from the other project, and would be ignored by
# the program: for `canary` that deletes the canary on the next `pulumi up`.
PROVIDER_NAMESPACES = ("aws", "kubernetes", "tls", "random", "pulumi")
# The two projects of this repository, so a key of one in the other's stack gets a precise hint.
PROJECT_NAMESPACES = {
    "mlplatform": "the platform project (Pulumi.<stack>.yaml at the top)",
    "mlmodel": "the model-stack project (stacks/model)",
}

# `Field(json_schema_extra=SECRET)`: the value is a credential and must be set as a
# Pulumi secret. SECRET_UNLESS_PATH: same, unless the value is a one-line file path
# (a kubeconfig given by path holds nothing secret; its contents may hold a token).
SECRET: JsonDict = {"secret": True}
SECRET_UNLESS_PATH: JsonDict = {"secret": "unless-path"}
# What an offline run (`mlplatform render`, `diff`) sees in place of a `secure:` value it
# cannot decrypt: `[secret:<key path>]` (see mlplatform.tools.stackfile.reader). Validators that
# inspect a secret's content skip it; `pulumi up` always hands them the real value.
SECRET_PLACEHOLDER_PREFIX = "[secret:"


def is_secret_placeholder(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SECRET_PLACEHOLDER_PREFIX) and value.endswith("]")


class ConfigModel(BaseModel):
    """Base for every config model: camelCase keys as Pulumi config uses them,
    unknown keys rejected (a misspelt key must not be silently ignored), and
    immutable once validated."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    @classmethod
    def defaults(cls) -> Self:
        """The model with every field at its default, validated: the `default_factory` of a nested
        section. Not the class itself: type checkers read `Field(2, ...)` as a field without a
        default (only `default=` counts for them), so they would see the class as needing arguments."""
        return cls.model_validate({})


class CrossFieldError(ValueError):
    """A rule across several fields of one model. `paths` are relative to that model
    (`"canary.image"`); the error message shows them as full key paths
    (`mlmodel:canary.image`), so the user knows which lines of the stack file to edit.
    A path with a namespace (`aws:region`) is shown as it is."""

    def __init__(self, message: str, *paths: str):
        super().__init__(message)
        self.paths = paths


class ConfigError(Exception):
    """A stack's configuration is invalid. Raised before any resource exists."""

    def __init__(self, stack: str, problems: list[str]):
        self.stack = stack
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        lines = [f"invalid configuration for stack '{stack}' ({len(problems)} {noun}):"]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


def read_runtime_config() -> tuple[dict[str, Any], set[str]]:
    """Every key of the running stack's config, of every namespace, JSON-decoded where
    the value is structured, and the set of keys Pulumi marks secret (fully qualified;
    `ns:a.b` when a secret was set with `--path`)."""
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = {}
    merged.update(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    secret_keys = set(runtime_config.get_config_secret_keys_env()) | set(
        runtime_config._SECRET_KEYS.get()  # private: the SDK has no public accessor
    )
    return {key: _decode(raw) for key, raw in merged.items()}, secret_keys


def read_namespace(namespace: str) -> tuple[dict[str, Any], set[str]]:
    """Every `namespace:key` of the running stack's config, and the secret key paths in it
    (`cluster`, or `cluster.kubeconfig` for a secret set with `--path`).

    Reading the whole namespace (rather than only the keys the model knows) is what
    lets an unknown top-level key, such as `mlplatform:nodepools`, be reported.
    """
    everything, secret_keys = read_runtime_config()
    return _in_namespace(everything, secret_keys, namespace)


def _in_namespace(
    everything: Mapping[str, Any], secret_keys: Iterable[str], namespace: str
) -> tuple[dict[str, Any], set[str]]:
    prefix = f"{namespace}:"
    values = {key[len(prefix) :]: value for key, value in everything.items() if key.startswith(prefix)}
    secrets = {key[len(prefix) :] for key in secret_keys if key.startswith(prefix)}
    return values, secrets


def _decode(raw: Any) -> Any:
    """Pulumi hands structured config to the language host as JSON text."""
    if not isinstance(raw, str):
        return raw
    stripped = raw.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return raw
    return raw


def validate_config(
    model: type[ModelT],
    values: dict[str, Any],
    *,
    stack: str,
    namespace: str,
    secret_keys: set[str] | frozenset[str] = frozenset(),
    other_config: Mapping[str, Any] | None = None,
) -> ModelT:
    """Validate `values` against `model`, or raise `ConfigError` naming every bad key.

    `secret_keys` are the key paths (without namespace) given as Pulumi secrets; a
    field marked SECRET whose value is not under one of them is an error.
    `other_config` is the stack's whole config (fully qualified keys), for rules that
    compare with another namespace (`aws:region`); models read it from the
    validation context under "config"."""
    leaked = plaintext_credentials(model, values, secret_keys, namespace=namespace)
    try:
        config = model.model_validate(values, context={"config": dict(other_config or {})})
    except ValidationError as err:
        problems = [_describe(model, error, namespace=namespace, secret_keys=secret_keys) for error in err.errors()]
        raise ConfigError(stack, leaked + problems) from None
    if leaked:
        raise ConfigError(stack, leaked)
    problems = unsecured_secrets(config, secret_keys, namespace=namespace)
    if problems:
        raise ConfigError(stack, problems)
    return config


def load_config(model: type[ModelT], namespace: str) -> ModelT:
    """Read and validate the running stack's config namespace. Call once, at the entry point.

    The stack's keys of every namespace are checked first: a key that belongs to no
    known namespace is an error, so a misspelt `mlmodl:canary` never goes unnoticed."""
    everything, secret_keys = read_runtime_config()
    stack = pulumi.get_stack()
    problems = foreign_namespace_problems(everything, namespace)
    if problems:
        raise ConfigError(stack, problems)
    values, secrets = _in_namespace(everything, secret_keys, namespace)
    return validate_config(
        model, values, stack=stack, namespace=namespace, secret_keys=secrets, other_config=everything
    )


def foreign_namespace_problems(keys: Iterable[str], namespace: str) -> list[str]:
    """One problem per config key whose namespace is neither `namespace` (the project's)
    nor a provider's, with the closest known namespace as a suggestion.

    Both `pulumi up` (through `load_config`) and the offline commands (which read the
    stack file themselves) ask this function, so they agree on what is a typo."""
    allowed = (namespace, *PROVIDER_NAMESPACES)
    problems = []
    for full_key in sorted(keys):
        prefix, sep, rest = full_key.partition(":")
        if not sep or prefix in allowed:
            continue
        if prefix in PROJECT_NAMESPACES:
            hint = (
                f"'{prefix}:' keys belong to {PROJECT_NAMESPACES[prefix]}, not to this stack "
                f"(whose keys are '{namespace}:...')"
            )
        else:
            candidates = (*allowed, *(p for p in PROJECT_NAMESPACES if p not in allowed))
            close = difflib.get_close_matches(prefix, candidates, n=1, cutoff=0.6)
            if not close:
                hint = f"unknown config namespace '{prefix}'; known namespaces: {', '.join(allowed)}"
            elif close[0] in allowed:
                hint = f"unknown config namespace '{prefix}'; did you mean '{close[0]}:{rest}'?"
            else:
                hint = (
                    f"unknown config namespace '{prefix}'; did you mean '{close[0]}:{rest}'? Those keys "
                    f"belong to {PROJECT_NAMESPACES[close[0]]}, not to this stack"
                )
        problems.append(f"{full_key}: {hint}; this program would ignore the key")
    return problems


def unsecured_secrets(config: BaseModel, secret_keys: Iterable[str], *, namespace: str) -> list[str]:
    """One problem per set value of a SECRET field whose key path is not a Pulumi secret.

    A path is covered by a secret at it or above it: `pulumi config set --secret cluster`
    covers `cluster.kubeconfig`, and so does `--secret --path cluster.kubeconfig`."""
    covered = set(secret_keys)
    problems = []
    for path, value, marker in _marked_secret_values(config, ""):
        if marker == SECRET_UNLESS_PATH["secret"] and _is_file_path(value):
            continue
        if any(path == c or path.startswith((f"{c}.", f"{c}[")) for c in covered):
            continue
        problems.append(
            f"{namespace}:{path} must be a Pulumi secret; set it with: pulumi config set --secret --path '{path}' ..."
        )
    return problems


def _marked_secret_values(value: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    if isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            child = getattr(value, name)
            if child is None:
                continue
            child_path = f"{path}.{field.alias or name}" if path else (field.alias or name)
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            if extra.get("secret"):
                yield child_path, child, extra["secret"]
            else:
                yield from _marked_secret_values(child, child_path)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _marked_secret_values(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _marked_secret_values(item, f"{path}.{key}")


def plaintext_credentials(
    model: type[BaseModel], values: Any, secret_keys: Iterable[str], *, namespace: str
) -> list[str]:
    """One problem per plain-text value (not a Pulumi secret, in a field not marked SECRET)
    that looks like a credential. The value is never shown, only what it looks like."""
    covered = set(secret_keys)
    problems = []
    for loc, value in _string_leaves(values, ()):
        path = key_path("", loc).removeprefix(":")
        if any(path == c or path.startswith((f"{c}.", f"{c}[")) for c in covered):
            continue
        if _is_secret_field(model, loc) or is_secret_placeholder(value):
            continue  # a secret field in plain text is reported by `unsecured_secrets`
        kind = credential_kind(value)
        if kind is not None:
            problems.append(
                f"{namespace}:{path} = [redacted]: the value looks like {kind}, and this key is plain text in a "
                "stack file that Git keeps forever; put credentials only in secret keys (or a Kubernetes "
                "Secret the key names), and rotate this one"
            )
    return problems


def _string_leaves(value: Any, loc: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _string_leaves(item, (*loc, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _string_leaves(item, (*loc, index))


def _is_file_path(value: Any) -> bool:
    return isinstance(value, str) and "\n" not in value and not value.lstrip().startswith(("{", "apiVersion"))


def key_path(namespace: str, loc: tuple[Any, ...]) -> str:
    """`("nodePools", "gpu", "minSize")` -> `mlplatform:nodePools.gpu.minSize`."""
    if not loc:
        return f"{namespace}:"
    head, *rest = loc
    path = f"{namespace}:{head}"
    for part in rest:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _describe(
    model: type[BaseModel],
    error: ErrorDetails,
    *,
    namespace: str,
    secret_keys: set[str] | frozenset[str],
) -> str:
    loc = tuple(part for part in error["loc"] if not _is_union_tag(part))
    where = key_path(namespace, loc)
    kind = error["type"]
    if kind == "missing":
        return f"{where} is required but not set"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"{where} is not a known key{hint}"
    message = error["msg"]
    given = error.get("input")
    is_placeholder = isinstance(given, str) and given.startswith(SECRET_PLACEHOLDER_PREFIX)
    if is_placeholder and kind.endswith(("_type", "_attributes_type")):
        # An offline run's placeholder for a `secure:` value (see mlplatform.tools.stackfile.reader):
        # a whole object made secret cannot be decrypted without the stack's secrets provider.
        path = where.partition(":")[2]
        return (
            f"{where} is a secure: value, which an offline run cannot decrypt, and here it must be structured "
            f"({message}); make only its secret fields secrets: pulumi config set --secret --path '{path}.<field>' ..."
        )
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, CrossFieldError) and cause.paths:
            fields = " / ".join(_join_path(where, loc, path) for path in cause.paths)
            return f"{fields}: {message}"
        if isinstance(error.get("input"), dict):
            # A cross-field rule: its message names the keys involved, and the whole
            # object as "the value" would only bury them.
            return f"{where.rstrip(':') if not loc else where}: {message}"
    hidden = _is_secret(loc, secret_keys) or _is_secret_field(model, loc)
    shown = "[secret]" if hidden else _show(error.get("input"))
    return f"{where} = {shown}: {message}"


def _join_path(where: str, loc: tuple[Any, ...], relative: str) -> str:
    if ":" in relative:  # already qualified: a key of another namespace, e.g. aws:region
        return relative
    if not loc:
        return f"{where}{relative}"
    return f"{where}{relative}" if relative.startswith("[") else f"{where}.{relative}"


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the chosen union member or validator name into the location
    # (e.g. "function-after[...]"); users never wrote those, so hide them.
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _is_secret(loc: tuple[Any, ...], secret_keys: Iterable[str]) -> bool:
    """Whether the value at `loc` was given as a secret (at it or above it): never shown."""
    if not loc:
        return False
    path = key_path("", loc).removeprefix(":")
    return any(path == s or path.startswith((f"{s}.", f"{s}[")) for s in secret_keys)


def _is_secret_field(model: type[BaseModel], loc: tuple[Any, ...]) -> bool:
    """Whether `loc` is (or is inside) a field marked SECRET: its value is never shown, even
    when it was set in plain text by mistake (that mistake is reported on its own)."""
    return any(
        field is not None and isinstance(field.json_schema_extra, dict) and bool(field.json_schema_extra.get("secret"))
        for field, _type in _walk(model, loc)
    )


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    if "-----BEGIN " in text:
        # PEM: name its blocks, never echo them (a private key pasted into the wrong key is a secret).
        return f"<{pem.describe(value if isinstance(value, str) else text)}>"
    if credential_kind(text) is not None:
        return "[redacted]"  # reported on its own by `plaintext_credentials`
    return text if len(text) <= 120 else text[:117] + "..."


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The camelCase keys accepted at `loc` inside `model`, for 'unknown key' errors."""
    steps = list(_walk(model, loc))
    if len(steps) < len(loc):
        return []
    current = steps[-1][1] if steps else model
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(f.alias or n for n, f in current.model_fields.items())
    return []


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> Iterator[tuple[Any, Any]]:
    """Follows `loc` down from `model`: for each part, the field it names (None for a list
    index) and the type it leads to. Stops early where `loc` leaves the models."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            current = _element_type(current)
            yield None, current
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return
        field = _field_by_alias(current, part)
        if field is None:
            return
        current = _element_type(field.annotation) if _is_container(field.annotation) else field.annotation
        current = _unwrap_optional(current)
        yield field, current


def _field_by_alias(model: type[BaseModel], key: str):
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _is_container(tp: Any) -> bool:
    return get_origin(_unwrap_optional(tp)) in (list, tuple, dict)


def _element_type(tp: Any) -> Any:
    tp = _unwrap_optional(tp)
    args = get_args(tp)
    return _unwrap_optional(args[-1]) if args else tp


def _unwrap_optional(tp: Any) -> Any:
    args = [a for a in get_args(tp) if a is not type(None)]
    if get_origin(tp) is not None and len(args) == 1 and get_origin(tp) not in (list, tuple, dict):
        return args[0]
    return tp
