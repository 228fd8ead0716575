"""Secrets in a stack's config: which fields must be Pulumi secrets, and plain-text values that look like
credentials. `configuration.validate_config` runs both checks; the markers are re-exported there."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.config import JsonDict

from mlplatform.config_paths import is_secret_field, key_path
from mlplatform.credentials import credential_kind

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
