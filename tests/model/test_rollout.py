"""Rollout semantics: what each config edit of a canary rollout changes, run against the real entry point.

Each test runs the stack twice, before and after one edit, and compares the two
recordings by URN (`diff_recordings`): the blast radius `pulumi preview` would show.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from mlplatform.tools.offline.recording import Recording, RecordingDiff, diff_recordings
from tests.model.helpers import (
    DEPLOYMENT,
    HPA,
    INFERENCE_SERVICE,
    MODEL_VERSION,
    PDB,
    PROMETHEUS_RULE,
    SERVICE,
    SPLIT_TYPES,
    model_config,
    promoted,
    run_model,
    with_canary,
)
from tests.support.types import K8S_SERVICE_PROFILE

STEPS = (10, 25, 50, 75, 100)
WORKLOAD_TYPES = (DEPLOYMENT, SERVICE, HPA, PDB)
API_PARAMS = pytest.mark.parametrize("api", sorted(SPLIT_TYPES))


@pytest.fixture(scope="module")
def runs() -> dict[tuple[str, str], Recording]:
    """Every config of the walk, for both traffic APIs, run once and shared."""
    configs: dict[str, dict[str, Any]] = {
        "stable-only": model_config(),
        **{f"canary-{w}": with_canary(w) for w in (0, *STEPS)},
        "promoted": promoted(),
    }
    return {
        (api, key): run_model({**values, "trafficApi": api}) for api in SPLIT_TYPES for key, values in configs.items()
    }


def _changed_types(diff: RecordingDiff) -> set[str]:
    return {after.type for _, after in diff.changed}


def _objects(recording: Recording, version_object: str) -> dict[str, Any]:
    """URN -> inputs of one version's Deployment, Service, HPA and PDB."""
    return {
        r.urn: r.inputs
        for r in recording.resources
        if r.type in WORKLOAD_TYPES and r.metadata.get("name") == version_object
    }


@API_PARAMS
@pytest.mark.parametrize("before,after", list(pairwise(STEPS)))
def test_weight_step_changes_only_the_split_and_the_inference_service(runs, api, before, after):
    """A rollout step must not restart, add or remove anything: only routing and its record move."""
    diff = diff_recordings(runs[(api, f"canary-{before}")], runs[(api, f"canary-{after}")])
    assert diff.added == [] and diff.removed == []
    assert _changed_types(diff) == {SPLIT_TYPES[api], INFERENCE_SERVICE}, diff.changed_urns
    assert diff.pod_templates_changed() == []


@API_PARAMS
def test_weight_steps_keep_every_urn(runs, api):
    """Logical names never depend on the weight, so the engine sees the same resources at every step."""
    urn_sets = {w: {r.urn for r in runs[(api, f"canary-{w}")].resources} for w in STEPS}
    assert all(urns == urn_sets[STEPS[0]] for urns in urn_sets.values())


@API_PARAMS
def test_weights_sum_to_100_at_every_step(runs, api):
    """A split whose weights do not add up sends an unintended share of traffic somewhere."""
    for w in (0, *STEPS):
        recording = runs[(api, f"canary-{w}")]
        assert sum(recording.stack_outputs["weights"].values()) == 100
        assert recording.stack_outputs["weights"]["fraud-detector-v6"] == w


@API_PARAMS
def test_starting_a_rollout_leaves_stable_untouched(runs, api):
    """Adding a canary creates the canary's objects; stable's pods must not notice."""
    before, after = runs[(api, "stable-only")], runs[(api, "canary-10")]
    diff = diff_recordings(before, after)
    assert diff.removed == []
    assert _objects(before, "fraud-detector-v5") == _objects(after, "fraud-detector-v5")
    added_workloads = {r.metadata["name"] for r in diff.added if r.type in WORKLOAD_TYPES}
    assert added_workloads == {"fraud-detector-v6"}
    assert diff.pod_templates_changed() == []


@API_PARAMS
def test_promotion_keeps_the_former_canary_running(runs, api):
    """Promotion must be zero-restart: v6's Deployment, Service, HPA and PDB keep URN and inputs."""
    before, after = runs[(api, "canary-100")], runs[(api, "promoted")]
    diff = diff_recordings(before, after)
    canary_before = _objects(before, "fraud-detector-v6")
    assert len(canary_before) == len(WORKLOAD_TYPES)
    assert _objects(after, "fraud-detector-v6") == canary_before
    assert diff.added == []
    assert diff.pod_templates_changed() == []


@API_PARAMS
def test_promotion_removes_the_old_stable_and_updates_records(runs, api):
    """Only v5's objects go; the split, the records and the alert rule follow the new roles."""
    diff = diff_recordings(runs[(api, "canary-100")], runs[(api, "promoted")])
    removed = {(r.type, r.metadata.get("name")) for r in diff.removed if r.type.startswith("kubernetes:")}
    assert removed == {(t, "fraud-detector-v5") for t in (*WORKLOAD_TYPES, MODEL_VERSION)}
    assert _changed_types(diff) == {SPLIT_TYPES[api], INFERENCE_SERVICE, MODEL_VERSION, PROMETHEUS_RULE}
    # The engine deletes removed resources only after every update of the run, so the
    # split has stopped routing to v5 by the time its Deployment and Service go.
    split = next(after for _, after in diff.changed if after.type == SPLIT_TYPES[api])
    assert "fraud-detector-v5" not in str(split.inputs["spec"])


@API_PARAMS
def test_rollback_to_weight_zero_keeps_the_canary_pods(runs, api):
    """Rollback by weight 0 is a routing change only: the canary's pods stay up for debugging."""
    diff = diff_recordings(runs[(api, "canary-25")], runs[(api, "canary-0")])
    assert diff.added == [] and diff.removed == []
    assert _changed_types(diff) == {SPLIT_TYPES[api], INFERENCE_SERVICE}
    assert diff.pod_templates_changed() == []


@API_PARAMS
def test_rollback_by_removing_the_canary_leaves_stable_untouched(runs, api):
    """Removing the canary deletes only its objects and gives stable all traffic again."""
    before, after = runs[(api, "canary-25")], runs[(api, "stable-only")]
    diff = diff_recordings(before, after)
    assert diff.added == []
    removed = {(r.type, r.metadata.get("name")) for r in diff.removed if r.type.startswith("kubernetes:")}
    assert removed == {(t, "fraud-detector-v6") for t in (*WORKLOAD_TYPES, MODEL_VERSION)}
    assert _changed_types(diff) == {SPLIT_TYPES[api], INFERENCE_SERVICE, PROMETHEUS_RULE}
    assert _objects(before, "fraud-detector-v5") == _objects(after, "fraud-detector-v5")
    assert after.stack_outputs["weights"] == {"fraud-detector-v5": 100}


@API_PARAMS
def test_weight_changes_never_touch_the_alert_rule(runs, api):
    """The alert rule has no weight in it, so no weight step can rewrite it."""
    specs = [runs[(api, f"canary-{w}")].one(PROMETHEUS_RULE).inputs for w in (0, *STEPS)]
    assert all(spec == specs[0] for spec in specs)


def test_switching_traffic_api_touches_only_routing_objects(runs):
    """Moving from SMI to the Gateway API must not restart the model either."""
    diff = diff_recordings(runs[("smi", "canary-25")], runs[("gateway", "canary-25")])
    touched = {r.type for r in diff.added + diff.removed} | _changed_types(diff)
    assert touched <= set(SPLIT_TYPES.values()) | {K8S_SERVICE_PROFILE}
    assert diff.pod_templates_changed() == []
