"""Reading and validating a stack's configuration, shared by every entry point.

Entry points (`__main__.py` of the platform and of the model stacks) call
`load_config` once, before declaring any resource. A bad value raises
`ConfigError`, whose message names the stack, the key path, the value and
what is allowed, so a typo in `Pulumi.prod.yaml` stops `pulumi preview`
before anything is registered.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar, get_args, get_origin

import pulumi
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

ModelT = TypeVar("ModelT", bound=BaseModel)


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


class ConfigError(Exception):
    """A stack's configuration is invalid. Raised before any resource exists."""

    def __init__(self, stack: str, problems: list[str]):
        self.stack = stack
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        lines = [f"invalid configuration for stack '{stack}' ({len(problems)} {noun}):"]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


def read_namespace(namespace: str) -> tuple[dict[str, Any], set[str]]:
    """Every `namespace:key` of the running stack's config, JSON-decoded where the
    value is structured, and the set of keys that are secrets.

    Reading the whole namespace (rather than only the keys the model knows) is what
    lets an unknown top-level key, such as `mlplatform:nodepools`, be reported.
    """
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = {}
    merged.update(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    secret_keys = set(runtime_config.get_config_secret_keys_env()) | set(
        runtime_config._SECRET_KEYS.get()  # noqa: SLF001 - the SDK has no public accessor
    )
    prefix = f"{namespace}:"
    values: dict[str, Any] = {}
    secrets: set[str] = set()
    for full_key, raw in merged.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix) :]
        values[key] = _decode(raw)
        if full_key in secret_keys:
            secrets.add(key)
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
) -> ModelT:
    """Validate `values` against `model`, or raise `ConfigError` naming every bad key."""
    try:
        return model.model_validate(values)
    except ValidationError as err:
        problems = [
            _describe(model, error, namespace=namespace, secret_keys=secret_keys)
            for error in err.errors()
        ]
        raise ConfigError(stack, problems) from None


def load_config(model: type[ModelT], namespace: str) -> ModelT:
    """Read and validate the running stack's config namespace. Call once, at the entry point."""
    values, secrets = read_namespace(namespace)
    return validate_config(
        model, values, stack=pulumi.get_stack(), namespace=namespace, secret_keys=secrets
    )


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
    error: dict[str, Any],
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
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        if isinstance(error.get("input"), dict):
            # A cross-field rule: its message names the keys involved, and the whole
            # object as "the value" would only bury them.
            return f"{where.rstrip(':') if not loc else where}: {message}"
    shown = "[secret]" if loc and loc[0] in secret_keys else _show(error.get("input"))
    return f"{where} = {shown}: {message}"


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the chosen union member or validator name into the location
    # (e.g. "function-after[...]"); users never wrote those, so hide them.
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The camelCase keys accepted at `loc` inside `model`, for 'unknown key' errors."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            current = _element_type(current)
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = _field_by_alias(current, part)
        if field is None:
            return []
        current = _element_type(field.annotation) if _is_container(field.annotation) else field.annotation
        current = _unwrap_optional(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(f.alias or n for n, f in current.model_fields.items())
    return []


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
