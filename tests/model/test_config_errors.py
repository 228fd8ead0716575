"""Invalid model configs fail at the entry point, name the key and the value, and declare nothing."""

from __future__ import annotations

from typing import Any

import pytest

from mlplatform.configuration import ConfigError
from mlplatform.tools.offline.engine import recording_of
from tests.model.helpers import CANARY, STABLE, model_config, run_model, with_canary


def _training(**overrides: Any) -> dict[str, Any]:
    return {
        "runId": "r1",
        "image": "ghcr.io/example/train:1.0.0",
        "dataSource": {"type": "s3", "path": "s3://data/train"},
        **overrides,
    }


# (id, config, substrings the error message must contain)
INVALID: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("weight-above-100", with_canary(101), ("mlmodel:canary.weight = 101", "less than or equal to 100")),
    ("weight-negative", with_canary(-1), ("mlmodel:canary.weight = -1", "greater than or equal to 0")),
    ("weight-fraction", with_canary(12.5), ("mlmodel:canary.weight = 12.5", "integer")),
    ("weight-string", with_canary("10"), ("mlmodel:canary.weight = '10'", "integer")),
    ("weight-boolean", with_canary(True), ("mlmodel:canary.weight = true", "integer")),
    (
        "canary-same-version",
        model_config(canary={**CANARY, "version": STABLE["version"], "weight": 10}),
        ("canary.version 'v5' must differ from stable.version 'v5'",),
    ),
    (
        "canary-changes-nothing",
        model_config(canary={**STABLE, "version": "v6", "weight": 10}),
        ("canary must change the image or the model URI",),
    ),
    (
        "model-name-uppercase",
        model_config(model={"name": "Fraud-Detector"}),
        ("mlmodel:model.name = 'Fraud-Detector'",),
    ),
    ("model-name-too-long", model_config(model={"name": "f" * 64}), ("mlmodel:model.name = 'ffff", "pattern")),
    ("unknown-traffic-api", model_config(trafficApi="istio"), ("mlmodel:trafficApi = 'istio'", "'smi' or 'gateway'")),
    (
        "steps-not-increasing",
        model_config(steps=[10, 50, 25, 100]),
        ("mlmodel:steps = [10, 50, 25, 100]", "strictly increase"),
    ),
    ("last-step-not-100", model_config(steps=[10, 25, 50, 75, 90]), ("mlmodel:steps", "the last step must be 100")),
    (
        "replicas-min-above-max",
        model_config(serving={"replicas": {"min": 5, "max": 2}}),
        ("mlmodel:serving.replicas", "replicas.min (5) must be <= replicas.max (2)"),
    ),
    (
        "privileged-port",
        model_config(serving={"port": 80}),
        ("mlmodel:serving.port = 80", "greater than or equal to 1024"),
    ),
    ("too-many-gpus", model_config(serving={"gpus": 9}), ("mlmodel:serving.gpus = 9",)),
    ("unknown-top-level-key", model_config(canaryWeight=10), ("mlmodel:canaryWeight is not a known key", "canary")),
    (
        "unknown-nested-key",
        model_config(serving={"replica": {"min": 1}}),
        ("mlmodel:serving.replica is not a known key",),
    ),
    ("missing-allowed-clients", model_config(allowedClients=None), ("mlmodel:allowedClients is required",)),
    ("empty-allowed-clients", model_config(allowedClients=[]), ("mlmodel:allowedClients = []", "at least 1")),
    (
        "bad-model-uri",
        model_config(stable={"modelUri": "http://mlflow/fraud"}),
        ("mlmodel:stable.modelUri = 'http://mlflow/fraud'",),
    ),
    (
        "bad-image",
        with_canary(10, canary={"image": "Registry/Bad Image"}),
        ("mlmodel:canary.image = 'Registry/Bad Image'",),
    ),
    ("bad-version-label", model_config(stable={"version": "V5.1"}), ("mlmodel:stable.version = 'V5.1'",)),
    (
        "dwell-length-mismatch",
        model_config(analysis={"dwellMinutes": [5, 10, 15]}),
        ("analysis.dwellMinutes has 3 entries but steps has 5",),
    ),
    (
        "distributed-sklearn",
        model_config(training=_training(framework="sklearn", workers=2)),
        ("mlmodel:training", "needs framework 'pytorch', got 'sklearn'"),
    ),
    (
        "route-path-relative",
        model_config(
            serving={"routes": [{"name": "predict", "method": "POST", "pathRegex": "invocations", "timeout": "5s"}]}
        ),
        ("mlmodel:serving.routes[0].pathRegex = 'invocations'", "must start with /"),
    ),
    ("bad-platform-stack", model_config(platformStack="a/b/c/d"), ("mlmodel:platformStack = 'a/b/c/d'",)),
    (
        # A gate on a gauge nothing scrapes could never pass: refused, naming both keys.
        "accuracy-gate-without-metrics-endpoint",
        model_config(analysis={"minAccuracy": 0.9}),
        ("analysis.minAccuracy (0.9)", "serving.metrics"),
    ),
    (
        "metrics-on-the-serving-port",
        model_config(serving={"port": 8080, "metrics": {"port": 8080}}),
        ("mlmodel:serving", "metrics.port must differ from port (8080)"),
    ),
    (
        "metrics-on-the-proxy-admin-port",
        model_config(serving={"metrics": {"port": 4191}}),
        ("mlmodel:serving.metrics.port = 4191", "belong to the Linkerd proxy"),
    ),
]


@pytest.mark.parametrize("values,expected", [pytest.param(v, e, id=i) for i, v, e in INVALID])
def test_invalid_config_fails_early_naming_the_key(values, expected):
    """A bad stack file must stop `pulumi preview` with the key and value, before any resource exists."""
    with pytest.raises(ConfigError) as caught:
        run_model(values, stack="fraud-detector-prod")
    message = str(caught.value)
    assert "stack 'fraud-detector-prod'" in message
    for fragment in expected:
        assert fragment in message
    assert recording_of(caught.value).resources == []
