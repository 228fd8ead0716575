"""Key paths in a config model: how a location in the stack file reads (`mlplatform:nodePools.gpu.minSize`)
and which model field it lands on. Shared by the error messages (`configuration`) and the
secret checks (`config_secrets`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, get_args, get_origin

from pydantic import BaseModel


def key_path(namespace: str, loc: tuple[Any, ...]) -> str:
    """`("nodePools", "gpu", "minSize")` -> `mlplatform:nodePools.gpu.minSize`."""
    if not loc:
        return f"{namespace}:"
    head, *rest = loc
    path = f"{namespace}:{head}"
    for part in rest:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def is_secret_field(model: type[BaseModel], loc: tuple[Any, ...]) -> bool:
    """Whether `loc` is (or is inside) a field marked SECRET: its value is never shown, even
    when it was set in plain text by mistake (that mistake is reported on its own)."""
    return any(
        field is not None and isinstance(field.json_schema_extra, dict) and bool(field.json_schema_extra.get("secret"))
        for field, _type in _walk(model, loc)
    )


def allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
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
