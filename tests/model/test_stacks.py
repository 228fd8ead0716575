"""The example stacks, exactly as their stack files declare them, and the stack's wiring."""

from __future__ import annotations

import pytest

from mlplatform.configuration import ConfigError
from mlplatform.tools.offline.engine import Recording, recording_of, run_entry_point
from tests.model.helpers import (
    DEPLOYMENT,
    EXAMPLE_STACK_REFERENCES,
    MODEL_STACK_DIR,
    TEAM,
    TRAFFIC_SPLIT,
    model_config,
    run_model,
)
from tests.support.types import K8S_HORIZONTAL_POD_AUTOSCALER, K8S_JOB, K8S_PROVIDER

JOB = K8S_JOB
PROVIDER = K8S_PROVIDER


@pytest.fixture(scope="module")
def prod() -> Recording:
    return run_entry_point(MODEL_STACK_DIR, stack="fraud-detector-prod", stack_references=EXAMPLE_STACK_REFERENCES)


@pytest.fixture(scope="module")
def dev() -> Recording:
    return run_entry_point(MODEL_STACK_DIR, stack="fraud-detector-dev", stack_references=EXAMPLE_STACK_REFERENCES)


def test_prod_example_is_mid_rollout_at_ten_percent(prod):
    """The prod stack file shows a rollout in progress: 90/10 between v5 and v6."""
    backends = {b["service"]: b["weight"] for b in prod.one(TRAFFIC_SPLIT).inputs["spec"]["backends"]}
    assert backends == {"fraud-detector-v5": 90, "fraud-detector-v6": 10}
    assert prod.stack_outputs["versions"] == {"fraud-detector-v5": "stable", "fraud-detector-v6": "canary"}
    assert prod.stack_outputs["weights"] == backends


def test_prod_example_uses_production_replica_bounds(prod):
    """Prod serves with at least three replicas per version, as the reference design asks."""
    hpas = prod.of_type(K8S_HORIZONTAL_POD_AUTOSCALER)
    assert {(h.inputs["spec"]["minReplicas"], h.inputs["spec"]["maxReplicas"]) for h in hpas} == {(3, 20)}


def test_dev_example_serves_stable_only_and_trains_on_the_gpu_pool(dev):
    """The dev stack file has no rollout under way and one training run, in its team's namespace."""
    assert dev.stack_outputs["weights"] == {"fraud-detector-v5": 100}
    assert {d.metadata["name"] for d in dev.of_type(DEPLOYMENT)} == {"fraud-detector-v5"}
    job = dev.one(JOB)
    assert job.metadata["namespace"] == TEAM == dev.stack_outputs["trainingNamespace"]
    assert dev.stack_outputs["trainingJob"] == job.metadata["name"]


def test_without_a_run_no_job_is_declared():
    """Training is optional; without it nothing is scheduled on the GPU pool."""
    recording = run_model(model_config())
    assert recording.of_type(JOB) == []
    assert recording.stack_outputs["trainingJob"] is None


def test_stack_exports(prod):
    """The outputs `mlplatform rollout` and humans read to see where a model stands."""
    assert set(prod.stack_outputs) == {
        "namespace",
        "apexService",
        "versions",
        "weights",
        "trafficApi",
        "split",
        "serviceProfile",
        "allowedIdentities",
        "inferenceService",
        "alertRule",
        "podMonitor",
        "trainingJob",
        "trainingNamespace",
    }
    assert prod.stack_outputs["apexService"] == "fraud-detector"
    assert prod.stack_outputs["trafficApi"] == "smi"


def test_every_kubernetes_object_uses_the_platform_cluster(prod):
    """One provider built from the platform's kubeconfig, so nothing lands in the ambient context by accident."""
    (provider,) = prod.of_type(PROVIDER)
    assert provider.inputs["kubeconfig"] == EXAMPLE_STACK_REFERENCES["organization/mlplatform/prod"]["kubeconfig"]
    assert provider.input_is_secret("kubeconfig")
    assert prod.kubernetes_objects
    assert all(r.provider.startswith(provider.urn) for r in prod.kubernetes_objects)


def test_without_a_platform_kubeconfig_the_ambient_one_is_used():
    """A platform on an existing cluster exports no kubeconfig; the provider then falls back to the ambient one."""
    recording = run_model(model_config(), platform={"kubeconfig": None})
    (provider,) = recording.of_type(PROVIDER)
    assert provider.inputs.get("kubeconfig") is None


def test_a_traffic_api_the_platform_lacks_fails_before_anything_is_declared():
    """Without the SMI extension a TrafficSplit is inert: refuse it up front rather than half-way through `up`."""
    expected = (
        r"mlmodel:trafficApi = 'smi': the platform stack \(mlmodel:platformStack = 'acme/mlplatform/dev'\) "
        r"offers only \['gateway'\]"
    )
    with pytest.raises(ConfigError, match=expected) as caught:
        run_model(model_config(trafficApi="smi"), platform={"trafficSplitApis": ["gateway"]})
    assert recording_of(caught.value).resources == []


def test_gateway_api_works_on_a_platform_without_smi():
    """The Gateway API needs no extension, so it is the way to split traffic when SMI is off."""
    recording = run_model(model_config(trafficApi="gateway"), platform={"trafficSplitApis": ["gateway"]})
    assert recording.stack_outputs["split"]["kind"] == "HTTPRoute"
