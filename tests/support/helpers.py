"""Test helpers: minimal valid configs and runners that execute the real entry
points under the recording mocks of `mlplatform.tools.offline.engine`."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from mlplatform.configuration import validate_config
from mlplatform.platform.config import CONFIG_NAMESPACE, PlatformConfig
from mlplatform.tools.offline.engine import Recording, run_entry_point

ModelT = TypeVar("ModelT", bound=BaseModel)

ROOT = Path(__file__).resolve().parents[2]


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in, recursively for nested dicts; a None override removes the key."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def build(model: type[ModelT], **fields: Any) -> ModelT:
    """`model(**fields)`, validated the same way, in a form type checkers read right: they take only
    `Field(default=...)` as a default, not the positional `Field(2, ...)` the config models use, so a call
    of the class that leaves such a field out looks to them like a missing argument."""
    return model.model_validate(fields)


def must_search(pattern: str, text: str, flags: int = 0) -> re.Match[str]:
    """`re.search` where the test needs a match: a miss fails naming the pattern, not with None's AttributeError."""
    match = re.search(pattern, text, flags)
    assert match is not None, f"no match for {pattern!r} in {text[:200]!r}"
    return match


def platform_config(**overrides: Any) -> dict[str, Any]:
    """A minimal valid `mlplatform:` namespace (unqualified keys), deep-merged with overrides.

    `platform_config(mesh={"ha": True})` changes one key and keeps the rest.
    """
    base: dict[str, Any] = {
        "environment": "dev",
        # A documentation range (RFC 5737): the public endpoint admits only it.
        "cluster": {"mode": "aws", "name": "mlp-test", "region": "us-west-2", "publicAccessCidrs": ["203.0.113.0/24"]},
        "namespaces": {"teams": [{"name": "team-a", "gpuRequests": 2, "gpuLimits": 4}]},
    }
    return deep_merge(base, overrides)


def validate_platform(values: dict[str, Any], *, stack: str = "dev", secret_keys: Iterable[str] = ()) -> PlatformConfig:
    """`values` (unqualified `mlplatform:` keys) validated as the platform's entry point validates them, without
    running it; `secret_keys` are the key paths given as Pulumi secrets."""
    return validate_config(
        PlatformConfig, values, stack=stack, namespace=CONFIG_NAMESPACE, secret_keys=set(secret_keys)
    )


def existing_cluster_config(**overrides: Any) -> dict[str, Any]:
    """`platform_config` for mode `existing` (a kind cluster) with an in-cluster MLflow and an S3-compatible store,
    deep-merged with overrides: the smallest platform that needs no AWS account."""
    base = platform_config(
        cluster={"mode": "existing", "context": "kind-ml"},
        mlflow={
            "backend": "in-cluster",
            "artifactBucket": "mlflow-artifacts",
            "s3EndpointUrl": "http://minio.minio:9000",
        },
    )
    return deep_merge(base, overrides)


def qualify(namespace: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"{namespace}:{key}": value for key, value in values.items()}


def run_platform(
    values: dict[str, Any] | None = None, *, stack: str = "dev", secret_keys: tuple[str, ...] = ()
) -> Recording:
    """Run the platform's real `__main__.py` with `values` as its `mlplatform:` config;
    `secret_keys` are the fully qualified key paths given as Pulumi secrets."""
    config = qualify("mlplatform", values if values is not None else platform_config())
    config["aws:region"] = "us-west-2"
    return run_entry_point(ROOT, stack=stack, config=config, secret_keys=secret_keys)
