"""Pulumi's secret markers in recorded values: unwrap them, redact them, find them.

Kept apart from the engine so that a reader of recorded values (the rollout's
platform outputs, `render`) needs only the SDK's wire format, not a program run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pulumi.runtime import rpc

REDACTED = "[secret]"


def _each(value: Any, convert: Callable[[Any], Any]) -> Any:
    """`convert` applied to each item of a mapping or a list; any other value as it is."""
    if isinstance(value, dict):
        return {k: convert(v) for k, v in value.items()}
    if isinstance(value, list):
        return [convert(v) for v in value]
    return value


def unwrap_secrets(value: Any) -> Any:
    """The plain value with Pulumi's secret markers removed, at any depth."""
    return _each(rpc.unwrap_rpc_secret(value), unwrap_secrets)


def whole_numbers_as_ints(value: Any) -> Any:
    """Pulumi's wire format carries every number as a protobuf double, so a replica count
    of 3 arrives as 3.0; turn whole floats back into ints, at any depth."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return _each(value, whole_numbers_as_ints)


def redact_secrets(value: Any) -> Any:
    """The value with every secret replaced by a placeholder, at any depth.

    A secret mapping keeps its keys, each with the placeholder as its value: a
    Secret's `stringData` stays a mapping that `kubectl apply` accepts, and a reader
    still sees which keys it holds."""
    if rpc.is_rpc_secret(value):
        inner = rpc.unwrap_rpc_secret(value)
        if isinstance(inner, dict):
            return {k: _redact_all(v) for k, v in inner.items()}
        return REDACTED
    return _each(value, redact_secrets)


def _redact_all(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redact_all(v) for k, v in unwrap_secrets(value).items()}
    return REDACTED


def contains_secret(value: Any) -> bool:
    if rpc.is_rpc_secret(value):
        return True
    if isinstance(value, dict):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_secret(v) for v in value)
    return False
