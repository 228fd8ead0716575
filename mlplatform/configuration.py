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
from collections.abc import Iterable, Mapping
from typing import Any, Self, TypeVar

import pulumi
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from mlplatform import pem
from mlplatform.config_fields import SECRET as SECRET
from mlplatform.config_fields import SECRET_PLACEHOLDER_PREFIX as SECRET_PLACEHOLDER_PREFIX
from mlplatform.config_fields import SECRET_UNLESS_PATH as SECRET_UNLESS_PATH
from mlplatform.config_fields import (
    allowed_keys,
    credential_kind,
    is_secret_field,
    key_path,
    plaintext_credentials,
    unsecured_secrets,
)
from mlplatform.config_fields import is_secret_placeholder as is_secret_placeholder

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
        allowed = allowed_keys(model, loc[:-1])
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
    hidden = _is_secret(loc, secret_keys) or is_secret_field(model, loc)
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


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    if "-----BEGIN " in text:
        # PEM: name its blocks, never echo them (a private key pasted into the wrong key is a secret).
        return f"<{pem.describe(value if isinstance(value, str) else text)}>"
    if credential_kind(text) is not None:
        return "[redacted]"  # reported on its own by `plaintext_credentials`
    return text if len(text) <= 120 else text[:117] + "..."
