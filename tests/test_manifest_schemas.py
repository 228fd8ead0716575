"""Every Kubernetes object the stacks emit is one the API server would accept.

A misspelt field in a dict-typed Pulumi argument (`spec=`, `metadata=`) passes the
mocks silently and is only caught by the API server, or worse, pruned by it without
a word. So every object of every stack variant is validated here in strict mode,
where an unknown field is an error:

- built-in kinds against the Kubernetes OpenAPI schema (PyPI `kubernetes-validate`),
  for the platform's default Kubernetes version;
- our ML kinds against the openAPIV3Schema of the CRD the platform installs
  (`crd_manifest`), made strict the way the API server's field validation is;
- third-party kinds against `tests/schemas/*.yaml`, written from their upstream CRDs;
- the metadata of every custom resource against the built-in ObjectMeta.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

from mlplatform.tools.offline.engine import RecordedResource, Recording, run_entry_point
from tests.model.helpers import MODEL_STACK_DIR, model_config, run_model, with_canary
from tests.support.helpers import existing_cluster_config, run_platform
from tests.support.manifest_validation import KUBERNETES_VERSION, problems

GATEWAY_API_GROUPS = {"gateway.networking.k8s.io"}

PLATFORM_EXISTING = existing_cluster_config(mlflow={"s3CredentialsSecret": "minio-credentials"})
DISTRIBUTED_TRAINING = {
    "runId": "ddp-2024-07-r1",
    "image": "ghcr.io/example/fraud-detector-train:1.5.0",
    "dataSource": {"type": "s3", "path": "s3://example-fraud-data/2024-07/"},
    "workers": 4,
    "gpus": 1,
    "hyperparameters": {"learningRate": 0.001},
}


Platforms = dict[str, Recording]


def _model_example(stack: str, platform: str) -> Callable[[Platforms], Recording]:
    """An example stack file, its StackReference answered with the real platform stack's outputs."""

    def build(platforms: Platforms) -> Recording:
        outputs = platforms[platform].stack_outputs
        reference = f"organization/mlplatform/{platform}"
        return run_entry_point(MODEL_STACK_DIR, stack=stack, stack_references={reference: outputs})

    return build


BUILDERS: dict[str, Callable[[Platforms], Recording]] = {
    "platform-dev": lambda platforms: platforms["dev"],
    "platform-prod": lambda platforms: platforms["prod"],
    "platform-existing-cluster": lambda platforms: run_platform(PLATFORM_EXISTING),
    "fraud-detector-dev": _model_example("fraud-detector-dev", "dev"),
    "fraud-detector-prod": _model_example("fraud-detector-prod", "prod"),
    "model-gateway-api-gpu-serving": lambda platforms: run_model(
        with_canary(25, trafficApi="gateway", serving={"gpus": 1})
    ),
    "model-distributed-training": lambda platforms: run_model(
        model_config(team="team-fraud", training=DISTRIBUTED_TRAINING)
    ),
}


class Variants:
    """Each variant's recording, built on first use and shared by the module's tests."""

    def __init__(self, platforms: Platforms):
        self._platforms = platforms
        self._built: dict[str, Recording] = {}

    def __getitem__(self, name: str) -> Recording:
        if name not in self._built:
            self._built[name] = BUILDERS[name](self._platforms)
        return self._built[name]


@pytest.fixture(scope="module")
def variants(dev_platform: Recording, prod_platform: Recording) -> Variants:
    return Variants({"dev": dev_platform, "prod": prod_platform})


@pytest.fixture(params=sorted(BUILDERS))
def variant(request: pytest.FixtureRequest, variants: Variants) -> Recording:
    return variants[request.param]


def _report(resources: list[RecordedResource]) -> list[str]:
    return [f"{r.kind} {r.name}: {p}" for r in resources for p in problems(r.inputs)]


def _custom(resource: RecordedResource) -> bool:
    """Built-in API groups have no dot or end in k8s.io; the Gateway API is the exception, shipped as CRDs."""
    group = resource.type.split(":")[1].split("/")[0]
    return "." in group and (not group.endswith(".k8s.io") or group in GATEWAY_API_GROUPS)


# -- the stacks -----------------------------------------------------------------
def test_schemas_cover_the_default_kubernetes_version():
    """Validation must run against the version clusters are created with, not silently an older one."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
    assert kubernetes_validate.validate(namespace, KUBERNETES_VERSION, strict=True) == KUBERNETES_VERSION


def test_built_in_objects_validate_strictly(variant):
    """A misspelt or misplaced field in a Deployment, Job or Secret is rejected by `kubectl apply`."""
    objects = [r for r in variant.kubernetes_objects if not _custom(r)]
    assert objects
    assert _report(objects) == []


def test_custom_resources_validate_against_their_crds(variant):
    """TrafficSplit, Linkerd policy, Prometheus and ML records must match what their CRDs accept."""
    objects = [r for r in variant.kubernetes_objects if _custom(r)]
    assert objects
    assert _report(objects) == []


def test_every_variant_emits_the_kinds_it_is_meant_to_cover(variants):
    """The variants exist to reach these kinds; if one disappears, the check above proves less."""
    wanted = {
        "platform-existing-cluster": {"StatefulSet", "CustomResourceDefinition", "PodMonitor"},
        "fraud-detector-dev": {"Job", "ModelTraining", "TrafficSplit"},
        "fraud-detector-prod": {"TrafficSplit", "ServiceProfile", "Server", "AuthorizationPolicy"},
        "model-gateway-api-gpu-serving": {"HTTPRoute", "MeshTLSAuthentication"},
        "model-distributed-training": {"Job", "PersistentVolumeClaim", "ModelTraining"},
    }
    missing = {}
    for name, kinds in wanted.items():
        emitted = {r.kind for r in variants[name].kubernetes_objects}
        if kinds - emitted:
            missing[name] = kinds - emitted
    assert missing == {}


# -- the validators catch what they are for ---------------------------------------
def _first(recording: Recording, kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(r.inputs for r in recording.kubernetes_objects if r.kind == kind))


def _misspell_container_field(m):
    m["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"


def _misspell_backend_weight(m):
    m["spec"]["backends"][0]["wieght"] = m["spec"]["backends"][0].pop("weight")


def _misspell_model_version_field(m):
    m["spec"]["modelURI"] = m["spec"].pop("modelUri")


def _misspell_custom_resource_metadata(m):
    m["metadata"]["lables"] = m["metadata"].pop("labels")


def _bad_relabel_action(m):
    m["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["action"] = "Keepp"


@pytest.mark.parametrize(
    "kind,mutate,expected",
    [
        ("Deployment", _misspell_container_field, "'imagePullPolicyy' was unexpected"),
        ("TrafficSplit", _misspell_backend_weight, "'weight' is a required property"),
        ("ModelVersion", _misspell_model_version_field, "'modelURI' was unexpected"),
        ("AuthorizationPolicy", _misspell_custom_resource_metadata, "'lables' was unexpected"),
    ],
    ids=["built-in", "third-party", "own-crd", "custom-resource-metadata"],
)
def test_a_misspelt_field_is_reported(variants, kind, mutate, expected):
    """The check is only worth having if a typo in a component's spec dict makes it fail."""
    manifest = _first(variants["fraud-detector-prod"], kind)
    assert problems(manifest) == []
    mutate(manifest)
    assert any(expected in p for p in problems(manifest)), problems(manifest)


def test_an_invalid_enum_value_is_reported(dev_platform):
    """Enums written from upstream CRDs catch values the operator would reject."""
    manifest = _first(dev_platform, "PodMonitor")
    _bad_relabel_action(manifest)
    assert any("'Keepp' is not one of" in p for p in problems(manifest))


def test_a_service_backend_without_port_is_reported(variants):
    """Gateway API rejects a Service backendRef without a port (a CEL rule of the CRD)."""
    manifest = _first(variants["model-gateway-api-gpu-serving"], "HTTPRoute")
    del manifest["spec"]["rules"][0]["backendRefs"][0]["port"]
    assert any("'port' is a required property" in p for p in problems(manifest))


def test_a_kind_without_a_schema_is_reported():
    """A new third-party kind must get a schema before it can pass unchecked."""
    manifest = {"apiVersion": "monitoring.coreos.com/v1", "kind": "Probe", "metadata": {"name": "x"}, "spec": {}}
    assert problems(manifest) == [
        "no schema for Probe monitoring.coreos.com/v1: write one in tests/schemas/ from its upstream CRD"
    ]
