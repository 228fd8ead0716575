"""The policy pack's rules on the seeded-bad fixtures, without the engine.

Each fixture must be caught by exactly the rule meant to catch it, and a stack
that follows every rule must pass them all: a rule that fires on everything
would pass the first check alone. The Kubernetes fixtures also run through the
real engine in the e2e tier (tests/e2e/test_policy_pack.py); the AWS ones only
here, since no AWS resource can be previewed offline.
"""

from __future__ import annotations

import json

import pytest

from policy.guardrails.catalog import BY_NAME, RULES, evaluate
from policy.guardrails.model import Resource
from tests.policy.fixtures import (
    FIXTURES,
    GOOD_IMAGE,
    SPLIT_URN,
    bucket_stack,
    gpu_job,
    k8s_resources,
    rds,
    security_group,
    service,
    split_services,
    traffic_split,
    trust,
    workload,
)
from tests.support.helpers import ROOT
from tests.support.types import AWS_IAM_ROLE

PACK_CONFIG = json.loads((ROOT / "policy" / "policy-config.json").read_text())


def pack_config(overrides: dict) -> dict:
    return {**PACK_CONFIG, **overrides}


def test_there_are_at_least_twenty_fixtures_covering_every_rule() -> None:
    assert len(FIXTURES) >= 20
    assert {f.rule for f in FIXTURES} == set(BY_NAME), "every rule needs a fixture that it alone catches"


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
def test_each_fixture_is_caught_by_exactly_its_rule(fixture) -> None:
    resources = k8s_resources(fixture.objects) + fixture.aws
    found = evaluate(resources, pack_config(fixture.config))
    assert set(found) == {fixture.rule}, f"{fixture.name} ({fixture.why}): {found}"


def test_a_stack_that_follows_every_rule_passes() -> None:
    objects = [
        workload(),
        gpu_job(),
        *split_services("web-api", "web-v1", "web-v2"),
        traffic_split({"web-v1": 75, "web-v2": 25}, apex="web-api"),
        service(
            "internal",
            type="LoadBalancer",
        )
        | {
            "metadata": {
                "name": "internal",
                "namespace": "team-fraud",
                "annotations": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"},
            }
        },
    ]
    aws = [
        *bucket_stack(),
        rds(),
        security_group("10.0.0.0/16"),
        Resource(
            AWS_IAM_ROLE,
            {"assumeRolePolicy": trust("system:serviceaccount:team-fraud:train")},
            "urn:pulumi:s::p::aws:iam/role:Role::train",
        ),
    ]
    assert evaluate(k8s_resources(objects) + aws, PACK_CONFIG) == {}


def test_every_rule_says_why_it_exists() -> None:
    for rule in RULES:
        # What the rule wants, then why: "...: <reason>" or "..., so <reason>".
        assert any(mark in rule.description for mark in (": ", " so ", "otherwise")), rule.name


@pytest.mark.parametrize(
    ("old", "new", "step_ok"),
    [
        ({"web-v1": 90, "web-v2": 10}, {"web-v1": 75, "web-v2": 25}, True),
        ({"web-v1": 75, "web-v2": 25}, {"web-v1": 49, "web-v2": 51}, False),
        # A rollback at 75%: all traffic back to the stable in one update.
        ({"web-v1": 25, "web-v2": 75}, {"web-v1": 100, "web-v2": 0}, True),
        # The same shape toward the canary is the jump the rule exists for.
        ({"web-v1": 75, "web-v2": 25}, {"web-v1": 0, "web-v2": 100}, False),
    ],
)
def test_the_step_rule_reads_the_old_weights_and_lets_rollbacks_through(old, new, step_ok) -> None:
    resources = k8s_resources([*split_services("web", "web-v1", "web-v2"), traffic_split(new)])
    config = pack_config({"canary-weight-step": {"splits": {SPLIT_URN: {"weights": old, "stable": "web-v1"}}}})
    assert ("canary-weight-step" not in evaluate(resources, config)) == step_ok


def test_without_a_recorded_stable_the_heaviest_old_backend_is_the_stable() -> None:
    resources = k8s_resources([*split_services("web", "web-v1", "web-v2"), traffic_split({"web-v1": 100, "web-v2": 0})])
    config = pack_config({"canary-weight-step": {"splits": {SPLIT_URN: {"weights": {"web-v1": 60, "web-v2": 40}}}}})
    assert "canary-weight-step" not in evaluate(resources, config)


def test_a_digest_pins_an_image_whatever_the_tag() -> None:
    pinned = workload()
    pinned["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/example/server@sha256:" + "a" * 64
    assert evaluate(k8s_resources([pinned]), PACK_CONFIG) == {}
    assert GOOD_IMAGE.endswith(":1.4.0")


def test_the_listed_daemonset_may_run_privileged() -> None:
    plugin = workload("DaemonSet", name="nvidia-device-plugin", namespace="nvidia-device-plugin", hostNetwork=True)
    plugin["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    found = evaluate(k8s_resources([plugin]), PACK_CONFIG)
    assert "no-privileged-containers" not in found
    plugin["metadata"]["namespace"] = "kube-system"
    assert "no-privileged-containers" in evaluate(k8s_resources([plugin]), PACK_CONFIG)


def test_the_step_rule_reads_config_numbers_as_the_engine_sends_them() -> None:
    """Policy config reaches the pack as JSON numbers, i.e. floats (25.0): the verdict and the
    message must not change."""
    resources = k8s_resources([*split_services("web", "web-v1", "web-v2"), traffic_split({"web-v1": 40, "web-v2": 60})])
    config = pack_config(
        {
            "canary-weight-step": {
                "maxStepPercent": 25.0,
                "splits": {SPLIT_URN: {"weights": {"web-v1": 90.0, "web-v2": 10.0}, "stable": "web-v1"}},
            }
        }
    )
    (violation,) = evaluate(resources, config)["canary-weight-step"]
    assert "from 10 to 60: +50 points" in violation.message and "maxStepPercent 25" in violation.message
