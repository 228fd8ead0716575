"""The config reference tables of docs/configuration.md, generated from the pydantic models.

`python -m mlplatform.tools.docs` rewrites the blocks between the `<!-- config:NAME -->`
markers in docs/configuration.md (or the file it is given); a test fails when that page and
the models disagree, so the reference cannot drift from the code.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from mlplatform.model.config import CONFIG_NAMESPACE as MODEL_CONFIG_NAMESPACE
from mlplatform.model.config import ModelStackConfig
from mlplatform.platform.config import CONFIG_NAMESPACE as PLATFORM_CONFIG_NAMESPACE
from mlplatform.platform.config import PlatformConfig

# The page the tables live in, relative to the repository root (the command's default).
REFERENCE_PAGE = Path("docs") / "configuration.md"

TABLES: dict[str, tuple[type[BaseModel], str]] = {
    "platform": (PlatformConfig, PLATFORM_CONFIG_NAMESPACE),
    "model": (ModelStackConfig, MODEL_CONFIG_NAMESPACE),
}


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The config model a field holds (directly, optionally, or as list items)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is not None and str(origin) == "typing.Literal":
        return " \\| ".join(f"`{a}`" for a in args)
    if str(annotation).startswith("typing.Literal"):
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "map"
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return f"{' or '.join(_type_name(a) for a in rest)} (optional)"
    if origin is not None and args:  # Annotated and friends
        return _type_name(args[0])
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "object"
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


_NO_VALUE = object()


def _default_value(field: Any) -> Any:
    if field.is_required():
        return _NO_VALUE
    value = field.default_factory() if field.default_factory is not None else field.default
    return _NO_VALUE if value is PydanticUndefined else value


def _default(value: Any) -> str:
    if value is _NO_VALUE:
        return "**required**"
    if isinstance(value, BaseModel):
        return "(see below)"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return "(see the example stacks)"
    return f"`{json.dumps(value)}`"


def _rows(
    model: type[BaseModel], prefix: str, defaults: BaseModel | None = None
) -> Iterator[tuple[str, str, str, str]]:
    """One row per key. `defaults` is the parent's default instance, whose values win over
    the nested model's own defaults (the system pool's scaling is 2/2/4, not ScalingConfig's)."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        value = getattr(defaults, name) if defaults is not None else _default_value(field)
        yield key, _type_name(field.annotation), _default(value), description
        nested = _submodel(field.annotation)
        if nested is not None:
            list_like = get_origin(field.annotation) is list or any(
                get_origin(a) is list for a in get_args(field.annotation)
            )
            nested_defaults = value if isinstance(value, BaseModel) else None
            yield from _rows(nested, f"{key}[]." if list_like else f"{key}.", nested_defaults)


def config_table(model: type[BaseModel], namespace: str) -> str:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for key, type_name, default, description in _rows(model, f"{namespace}:"):
        lines.append(f"| `{key}` | {type_name} | {default} | {description} |")
    return "\n".join(lines)


def _marker_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- config:{name} -->\n)(.*?)(<!-- /config:{name} -->)", re.S)


def render_reference(text: str, source: str = str(REFERENCE_PAGE)) -> str:
    """`text` with every config table regenerated; `source` names the file in errors."""
    for name, (model, namespace) in TABLES.items():
        pattern = _marker_pattern(name)
        if not pattern.search(text):
            raise ValueError(f"{source} has no <!-- config:{name} --> block")
        table = config_table(model, namespace)
        text = pattern.sub(lambda m, table=table: m.group(1) + table + "\n" + m.group(3), text)
    return text


def main(argv: list[str] | None = None) -> int:
    page = Path(argv[0]) if argv else REFERENCE_PAGE
    text = page.read_text()
    updated = render_reference(text, str(page))
    if updated != text:
        page.write_text(updated)
        print(f"updated the config reference in {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
