"""The traffic split, through both APIs: the same config must yield the same weights."""

from __future__ import annotations

from typing import Any

import pytest

from mlplatform.tools.offline.engine import Recording
from tests.model.helpers import (
    HTTP_ROUTE,
    SERVICE_PROFILE,
    SPLIT_TYPES,
    TRAFFIC_SPLIT,
    model_config,
    run_model,
    with_canary,
)
from tests.support.types import K8S_DEPLOYMENT, K8S_SERVICE

API_PARAMS = pytest.mark.parametrize("api", sorted(SPLIT_TYPES))


def _weights(recording: Recording, api: str) -> dict[str, int]:
    """Backend Service -> weight, read from whichever object carries the split."""
    spec = recording.one(SPLIT_TYPES[api]).inputs["spec"]
    if api == "smi":
        return {b["service"]: b["weight"] for b in spec["backends"]}
    per_rule = [{b["name"]: b["weight"] for b in rule["backendRefs"]} for rule in spec["rules"]]
    assert all(weights == per_rule[0] for weights in per_rule), "every rule must split the same way"
    return per_rule[0]


@API_PARAMS
@pytest.mark.parametrize("weight", [0, 10, 25, 50, 75, 100])
def test_split_weights_follow_the_canary_weight(api, weight):
    """Stable gets 100-w and the canary w, integers summing to 100 (0 keeps the canary backend listed)."""
    recording = run_model(with_canary(weight, trafficApi=api))
    weights = _weights(recording, api)
    assert weights == {"fraud-detector-v5": 100 - weight, "fraud-detector-v6": weight}
    assert all(isinstance(w, int) or float(w).is_integer() for w in weights.values())


@API_PARAMS
def test_without_a_canary_stable_takes_all_traffic(api):
    """No rollout under way: one backend at 100."""
    assert _weights(run_model(model_config(trafficApi=api)), api) == {"fraud-detector-v5": 100}


@API_PARAMS
def test_only_the_chosen_api_is_declared(api):
    """Declaring both would give the mesh two conflicting sources of routing."""
    recording = run_model(with_canary(10, trafficApi=api))
    other = next(t for a, t in SPLIT_TYPES.items() if a != api)
    assert recording.of_type(other) == []
    split = recording.one(SPLIT_TYPES[api])
    assert split.metadata["name"] == "fraud-detector"
    assert recording.stack_outputs["split"] == {"kind": split.kind, "name": "fraud-detector"}


def test_traffic_split_targets_the_apex_service():
    """SMI routes traffic addressed to the apex Service `<model>`."""
    spec = run_model(with_canary(10)).one(TRAFFIC_SPLIT).inputs["spec"]
    assert spec["service"] == "fraud-detector"


def test_http_route_attaches_to_the_apex_service_port():
    """Linkerd applies an outbound HTTPRoute whose parent is the Service (group core) and its port."""
    spec = run_model(with_canary(10, trafficApi="gateway", serving={"port": 9000})).one(HTTP_ROUTE).inputs["spec"]
    assert spec["parentRefs"] == [{"group": "core", "kind": "Service", "name": "fraud-detector", "port": 9000}]
    assert [len(rule["backendRefs"]) for rule in spec["rules"]] == [2] * 5  # four routes and the catch-all
    for rule in spec["rules"]:
        for ref in rule["backendRefs"]:
            assert (ref["group"], ref["kind"], ref["port"]) == ("", "Service", 9000)


def test_http_route_carries_the_route_timeouts():
    """With no ServiceProfile in gateway mode, the route is where per-route timeouts live."""
    rules = run_model(with_canary(10, trafficApi="gateway")).one(HTTP_ROUTE).inputs["spec"]["rules"]
    timed: dict[tuple[str, str], Any] = {
        (r["matches"][0]["method"], r["matches"][0]["path"]["value"]): r["timeouts"]["request"] for r in rules[:-1]
    }
    assert timed[("POST", "^(?:/invocations)$")] == "5s"
    assert timed[("GET", "^(?:/health)$")] == "2s"
    # The last rule catches every other request, so nothing falls outside the split.
    assert "matches" not in rules[-1] and "timeouts" not in rules[-1]


def test_gateway_mode_declares_no_service_profile():
    """Linkerd prefers a ServiceProfile over an HTTPRoute on the same Service, which would ignore the weights."""
    recording = run_model(with_canary(10, trafficApi="gateway"))
    assert recording.of_type(SERVICE_PROFILE) == []
    assert recording.stack_outputs["serviceProfile"] is None


@API_PARAMS
def test_split_waits_for_the_version_workloads(api):
    """A new canary must be rolled out and its Service exist before traffic is sent to it."""
    recording = run_model(with_canary(10, trafficApi=api))
    split = recording.one(SPLIT_TYPES[api])
    kinds = (K8S_DEPLOYMENT, K8S_SERVICE)
    versioned = [r for k in kinds for r in recording.of_type(k) if r.metadata["name"] != "fraud-detector"]
    assert len(versioned) == 4  # a Deployment and a Service per version
    for kind in (K8S_DEPLOYMENT, K8S_SERVICE):
        for resource in recording.of_type(kind):
            if resource.metadata["name"] != "fraud-detector":
                assert recording.depends_on(split, resource), resource
