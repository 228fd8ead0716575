"""The model's PrometheusRule: canary gates as alerts, and stable's success rate always."""

from __future__ import annotations

from typing import Any

import pytest

from mlplatform.tools.offline.engine import Recording
from tests.model.helpers import PROMETHEUS_RULE, SERVING_NAMESPACE, model_config, run_model, with_canary


def _rules(recording: Recording) -> dict[str, dict[str, Any]]:
    (group,) = recording.one(PROMETHEUS_RULE).inputs["spec"]["groups"]
    return {rule["alert"]: rule for rule in group["rules"]}


@pytest.fixture(scope="module")
def rollout() -> Recording:
    return run_model(with_canary(10, analysis={"minSuccessRate": 0.995, "maxP99LatencyMs": 200, "interval": "2m"}))


def test_canary_alerts_exist_only_during_a_rollout(rollout):
    """Canary alerts without a canary would either never fire or fire on nothing."""
    assert set(_rules(rollout)) == {"ModelStableSuccessRateLow", "ModelCanarySuccessRateLow", "ModelCanaryLatencyHigh"}
    assert set(_rules(run_model(model_config()))) == {"ModelStableSuccessRateLow"}


def test_canary_success_rate_uses_the_threshold_and_proxy_metrics(rollout):
    """The alert reads Linkerd's inbound counters for the canary Deployment, against analysis.minSuccessRate."""
    expr = _rules(rollout)["ModelCanarySuccessRateLow"]["expr"]
    selector = f'namespace="{SERVING_NAMESPACE}", deployment="fraud-detector-v6", direction="inbound"'
    assert f'response_total{{{selector}, classification="success"}}[2m]' in expr
    assert f"response_total{{{selector}}}[2m]" in expr
    assert "< 0.995" in expr
    # No verdict from a handful of requests: the same minimum the rollout gate uses.
    assert ">= 50" in expr


def test_canary_latency_uses_the_p99_threshold(rollout):
    """p99 from the summed latency histogram of the canary, against analysis.maxP99LatencyMs."""
    expr = _rules(rollout)["ModelCanaryLatencyHigh"]["expr"]
    assert expr.startswith("histogram_quantile(0.99, sum by (le) (rate(response_latency_ms_bucket{")
    assert 'deployment="fraud-detector-v6"' in expr
    assert expr.endswith("> 200")


def test_stable_alert_watches_the_stable_deployment(rollout):
    """Stable's health is alerted on whether or not a rollout is under way."""
    rule = _rules(rollout)["ModelStableSuccessRateLow"]
    assert 'deployment="fraud-detector-v5"' in rule["expr"]
    assert rule["labels"]["severity"] == "critical"


def test_alerts_hold_for_the_gate_failure_threshold(rollout):
    """An alert fires after as many failed intervals as `rollout watch` tolerates (3 x 2m)."""
    assert {rule["for"] for rule in _rules(rollout).values()} == {"6m"}


def test_alerts_name_the_model_and_version(rollout):
    """Routing and silencing need the model, version and role as labels."""
    labels = _rules(rollout)["ModelCanaryLatencyHigh"]["labels"]
    assert labels == {"severity": "warning", "model": "fraud-detector", "version": "v6", "role": "canary"}
    assert "canary.weight" in _rules(rollout)["ModelCanaryLatencyHigh"]["annotations"]["description"]
