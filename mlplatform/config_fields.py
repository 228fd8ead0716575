"""A config model's fields as the stack file names them: the key path of a location
(`mlplatform:nodePools.gpu.minSize`), which fields must be Pulumi secrets, and plain-text values that
look like credentials. One leaf of the ground: `configuration.validate_config` runs the checks and
re-exports the secret markers.

Credentials: a stack file is committed to Git. A credential pasted into a field that is not a Pulumi
secret (say, an AWS secret key into `mlflow.s3CredentialsSecret`, which names a Kubernetes Secret) is
then in the repository's history for good. Each shape here is specific enough that no legitimate name,
path, URL or image matches it: an AWS secret key is 40 characters of base64 with upper and lower case
and a digit (a Git commit SHA is lowercase hex, so it never matches).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.config import JsonDict


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


# -- credentials in plain text ----------------------------------------------------
_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a GitHub token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
)
_AWS_SECRET_KEY = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


def credential_kind(value: str) -> str | None:
    """What credential `value` looks like ("an AWS secret access key"...), or None."""
    for kind, pattern in _SHAPES:
        if pattern.search(value):
            return kind
    if "-----BEGIN " in value:
        # A certificate's base64 lines (the last one may be 40 characters) are public data.
        return None
    for match in _AWS_SECRET_KEY.finditer(value):
        token = match.group(0)
        if re.search(r"[A-Z]", token) and re.search(r"[a-z]", token) and re.search(r"[0-9]", token):
            return "an AWS secret access key"
    return None


# -- secrets -----------------------------------------------------------------------
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
        if is_secret_field(model, loc) or is_secret_placeholder(value):
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
