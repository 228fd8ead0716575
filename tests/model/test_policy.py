"""Mesh policy: the ServiceProfile's routes and retry budget, and who may call the model."""

from __future__ import annotations

import pytest

from mlplatform.tools.offline.engine import Recording
from tests.model.helpers import (
    AUTHZ_POLICY,
    MESH_TLS_AUTHN,
    SERVER,
    SERVICE_PROFILE,
    SERVING_NAMESPACE,
    model_config,
    run_model,
    with_canary,
)
from tests.support.network_policy import NETWORK_POLICY, Pod, Policies

CLIENTS = [
    {"serviceAccount": "api-gateway", "namespace": "api-gateway"},
    {"serviceAccount": "batch-scorer", "namespace": "team-fraud"},
]


@pytest.fixture(scope="module")
def recording() -> Recording:
    return run_model(with_canary(10, allowedClients=CLIENTS))


def test_service_profile_is_named_for_the_apex_service(recording):
    """Linkerd finds a profile by the Service's FQDN; any other name is silently ignored."""
    profile = recording.one(SERVICE_PROFILE)
    assert profile.metadata["name"] == f"fraud-detector.{SERVING_NAMESPACE}.svc.cluster.local"
    assert profile.metadata["namespace"] == SERVING_NAMESPACE


def test_service_profile_routes_default_to_the_mlflow_endpoints(recording):
    """Predictions are never retried (not idempotent); health and metadata reads are."""
    routes = {r["name"]: r for r in recording.one(SERVICE_PROFILE).inputs["spec"]["routes"]}
    assert routes["predict"] == {
        "name": "predict",
        "condition": {"method": "POST", "pathRegex": "/invocations"},
        "timeout": "5s",
        "isRetryable": False,
    }
    assert routes["health"]["isRetryable"] is True and routes["health"]["timeout"] == "2s"
    assert set(routes) == {"predict", "health", "ping", "model-metadata"}


def test_custom_runtime_gets_the_reference_design_routes():
    """A custom server serves the reference paths, so the profile must describe those."""
    recording = run_model(model_config(serving={"runtime": "custom"}))
    routes = {r["name"]: r for r in recording.one(SERVICE_PROFILE).inputs["spec"]["routes"]}
    assert routes["predict"]["condition"] == {"method": "POST", "pathRegex": "/v1/predict"}
    assert routes["batch-predict"]["timeout"] == "30s" and routes["batch-predict"]["isRetryable"] is False
    assert routes["model-metadata"]["condition"] == {"method": "GET", "pathRegex": "/v1/models/.*"}


def test_retry_budget_comes_from_config():
    """The budget caps the extra load retries may add during an incident."""
    budget = {"retryRatio": 0.1, "minRetriesPerSecond": 5, "ttl": "30s"}
    recording = run_model(model_config(serving={"retryBudget": budget}))
    assert recording.one(SERVICE_PROFILE).inputs["spec"]["retryBudget"] == {
        "retryRatio": 0.1,
        "minRetriesPerSecond": 5,
        "ttl": "30s",
    }


def test_server_covers_every_version_on_the_serving_port(recording):
    """The Server must select canary pods too, or a canary would be reachable by anyone."""
    server = recording.one(SERVER).inputs["spec"]
    assert server["podSelector"] == {"matchLabels": {"app": "fraud-detector"}}
    assert server["port"] == "http"
    assert server["proxyProtocol"] == "HTTP/1"
    assert server["accessPolicy"] == "deny"


def test_only_the_configured_identities_are_allowed(recording):
    """Exactly the allowed clients' mTLS identities: one more would widen access, one less would break a caller."""
    authn = recording.one(MESH_TLS_AUTHN).inputs["spec"]
    assert authn == {
        "identities": [
            "api-gateway.api-gateway.serviceaccount.identity.linkerd.cluster.local",
            "batch-scorer.team-fraud.serviceaccount.identity.linkerd.cluster.local",
        ]
    }
    assert recording.stack_outputs["allowedIdentities"] == authn["identities"]


def test_identities_follow_the_trust_domain():
    """Identities are minted in the mesh's trust domain; a mismatch would deny every client."""
    recording = run_model(model_config(trustDomain="prod.example.org"))
    assert recording.one(MESH_TLS_AUTHN).inputs["spec"]["identities"] == [
        "api-gateway.api-gateway.serviceaccount.identity.linkerd.prod.example.org"
    ]


def test_authorization_policy_ties_the_server_to_the_authentication(recording):
    """Linkerd ignores a policy whose references do not resolve, so names and groups must match exactly."""
    server, authn = recording.one(SERVER), recording.one(MESH_TLS_AUTHN)
    policy = recording.one(AUTHZ_POLICY)
    assert policy.inputs["spec"] == {
        "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": server.metadata["name"]},
        "requiredAuthenticationRefs": [
            {"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": authn.metadata["name"]}
        ],
    }
    assert recording.depends_on(policy, server) and recording.depends_on(policy, authn)


def test_authorization_objects_do_not_change_with_the_rollout():
    """Access control is per model, not per version: a rollout step never reopens or narrows it."""
    before, after = run_model(with_canary(10)), run_model(model_config(stable={"version": "v6"}))
    for kind in (SERVER, MESH_TLS_AUTHN, AUTHZ_POLICY, NETWORK_POLICY):
        assert before.one(kind).inputs == after.one(kind).inputs, kind


def test_network_policy_admits_the_clients_namespaces_on_the_proxy_port(recording):
    """The second layer: only the allowed clients' namespaces reach any version's pods, and only through
    the proxy's inbound port; the serving namespace's default deny (platform) covers everything else."""
    policies = Policies(recording.of_type(NETWORK_POLICY))
    for version in ("v5", "v6"):
        model_pod = Pod(SERVING_NAMESPACE, {"app": "fraud-detector", "version": version})
        for namespace in ("api-gateway", "team-fraud"):
            assert policies.allows(Pod(namespace, {"app": "caller"}), model_pod, 4143), (namespace, version)
            assert not policies.allows(Pod(namespace, {"app": "caller"}), model_pod, 8080), (namespace, version)
        assert not policies.allows(Pod("team-vision", {"app": "caller"}), model_pod, 4143)
    # Other models' pods are not opened by this model's policy.
    (policy,) = recording.of_type(NETWORK_POLICY)
    assert policy.inputs["spec"]["podSelector"] == {"matchLabels": {"app": "fraud-detector"}}
    assert policy.metadata["namespace"] == SERVING_NAMESPACE
