"""ModelVersion and InferenceService records: what `kubectl get modelversions,inferenceservices` shows."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from mlplatform.platform.crds import crd_manifest
from mlplatform.tools.offline.engine import Recording
from tests.model.helpers import CRD_GROUP, INFERENCE_SERVICE, MODEL_VERSION, model_config, run_model, with_canary
from tests.support.types import custom_resource


def _schema(kind: str) -> dict[str, Any]:
    (version,) = crd_manifest(kind, CRD_GROUP)["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def _pruned(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the API server would drop because the structural schema does not declare them."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict) and "properties" in schema:
        found = []
        for key, item in value.items():
            if key in schema["properties"]:
                found += _pruned(item, schema["properties"][key], f"{path}.{key}")
            elif "additionalProperties" not in schema:
                found.append(f"{path}.{key}")
        return found
    if isinstance(value, list) and "items" in schema:
        return [p for i, item in enumerate(value) for p in _pruned(item, schema["items"], f"{path}[{i}]")]
    return []


@pytest.fixture(scope="module")
def rollout() -> Recording:
    return run_model(with_canary(25))


def _versions(recording: Recording) -> dict[str, dict[str, Any]]:
    return {r.metadata["name"]: r.inputs["spec"] for r in recording.of_type(MODEL_VERSION)}


def test_one_model_version_per_live_version_with_its_role(rollout):
    """The records say which version is stable and which is canary, and where each is loaded from."""
    versions = _versions(rollout)
    assert set(versions) == {"fraud-detector-v5", "fraud-detector-v6"}
    assert versions["fraud-detector-v5"] == {
        "modelName": "fraud_detector",
        "version": "v5",
        "modelUri": "models:/fraud_detector/5",
        "role": "stable",
        "deployment": {"canary": False, "production": True},
        "source": {"type": "registry"},
    }
    assert versions["fraud-detector-v6"]["role"] == "canary"
    assert versions["fraud-detector-v6"]["deployment"] == {"canary": True, "production": False}


def test_inference_service_mirrors_the_rollout(rollout):
    """One object answers "what serves, from where, at what weight"."""
    spec = rollout.one(INFERENCE_SERVICE).inputs["spec"]
    assert spec["modelRef"] == {"name": "fraud_detector", "version": "v5"}
    assert spec["servingRuntime"] == "mlflow"
    assert spec["replicas"] == {"min": 2, "max": 10, "targetCPUUtilization": 70}
    assert spec["stable"] == {"version": "v5", "modelUri": "models:/fraud_detector/5", "weight": 75}
    canary = spec["canary"]
    assert (canary["enabled"], canary["weight"]) == (True, 25)
    assert "trafficWeight" not in canary  # deprecated in the CRD schema; `weight` is the one field
    assert canary["canaryModelRef"] == {"name": "fraud_detector", "version": "v6"}
    assert canary["modelUri"] == "models:/fraud_detector/6"


def test_inference_service_without_a_canary():
    """No rollout: the canary is disabled and stable carries all traffic."""
    spec = run_model(model_config(serving={"runtime": "custom"})).one(INFERENCE_SERVICE).inputs["spec"]
    assert spec["canary"] == {"enabled": False}
    assert spec["stable"]["weight"] == 100
    assert spec["servingRuntime"] == "custom"


@pytest.mark.parametrize("kind,token", [("ModelVersion", MODEL_VERSION), ("InferenceService", INFERENCE_SERVICE)])
@pytest.mark.parametrize("canary", [True, False])
def test_records_validate_against_the_platform_crds(kind, token, canary):
    """A record the API server rejects, or silently prunes, would misreport what is live."""
    recording = run_model(with_canary(10) if canary else model_config())
    schema = _schema(kind)
    assert len(recording.of_type(token)) == (2 if canary and kind == "ModelVersion" else 1)
    for record in recording.of_type(token):
        body = record.inputs
        assert body["apiVersion"] == f"{CRD_GROUP}/v1"
        jsonschema.validate(body, schema)
        assert _pruned(body["spec"], schema["properties"]["spec"], "spec") == []


def test_record_apiversion_follows_the_platform_crd_group():
    """The records must use the group the platform installed its CRDs under."""
    recording = run_model(model_config(), platform={"crdGroup": "ml.acme.io"})
    assert {r.type for r in recording.resources if r.type.startswith("kubernetes:ml.")} == {
        custom_resource("ml.acme.io/v1", "ModelVersion"),
        custom_resource("ml.acme.io/v1", "InferenceService"),
    }
