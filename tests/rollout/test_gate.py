"""The analysis gate's queries and judgement, with Prometheus' answers stubbed."""

from __future__ import annotations

import re
import socket

import pytest

from mlplatform.model.config import AnalysisConfig
from mlplatform.tools.rollout.gate import PrometheusClient, PrometheusError, Queries, evaluate

NS, DEP, STABLE = "ml-serving", "fraud-detector-v6", "fraud-detector-v5"


class StubPrometheus:
    """Answers each query by which Deployment and metric it names."""

    def __init__(self, canary: dict[str, float | None], stable: dict[str, float | None] | None = None):
        self.answers = {DEP: canary, STABLE: stable or {}}
        self.queries: list[str] = []

    def query(self, promql: str) -> float | None:
        self.queries.append(promql)
        deployment = DEP if f'deployment="{DEP}"' in promql else STABLE
        for metric, marker in (("accuracy", "ml_model_accuracy"), ("p99", "histogram_quantile"),
                               ("requests", "increase("), ("success", "classification")):
            if marker in promql:
                return self.answers[deployment].get(metric)
        raise AssertionError(promql)


HEALTHY = {"requests": 600.0, "success": 0.999, "p99": 120.0, "accuracy": 0.93}


def _verdict(canary, stable=None, **analysis):
    client = StubPrometheus(canary, stable)
    return evaluate(client, AnalysisConfig(**analysis), namespace=NS, deployment=DEP, stable_deployment=STABLE), client


def test_queries_match_the_documented_promql() -> None:
    """The gate must measure exactly what the runbook and the alerts describe."""
    q = Queries.for_deployment(NS, DEP, "1m")
    sel = '{namespace="ml-serving", deployment="fraud-detector-v6", direction="inbound"}'
    ok = '{namespace="ml-serving", deployment="fraud-detector-v6", direction="inbound", classification!="failure"}'
    assert q.success_rate == f"sum(rate(response_total{ok}[1m])) / sum(rate(response_total{sel}[1m]))"
    assert q.p99_latency_ms == f"histogram_quantile(0.99, sum by (le) (rate(response_latency_ms_bucket{sel}[1m])))"
    assert q.requests == f"sum(increase(response_total{sel}[1m]))"
    assert q.accuracy == 'avg(ml_model_accuracy{namespace="ml-serving", deployment="fraud-detector-v6"})'


def test_healthy_canary_passes_with_numbers() -> None:
    """A canary within every threshold is healthy, and the verdict carries what was measured."""
    verdict, _ = _verdict(HEALTHY)
    assert verdict.healthy and verdict.reasons == []
    assert (verdict.requests, verdict.success_rate, verdict.p99_latency_ms) == (600.0, 0.999, 120.0)
    assert verdict.thresholds.min_success_rate == 0.99


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"success": 0.95}, r"success rate 95.00% is below 99.00%"),
        ({"p99": 900.0}, r"p99 latency 900ms is above 500ms"),
        ({"requests": 3.0}, r"not enough traffic: 3 requests in the last 1m, need at least 50"),
        ({"requests": None, "success": None, "p99": None}, r"not enough traffic: 0 requests"),
        ({"p99": float("inf")}, r"p99 latency infms is above 500ms"),
    ],
)
def test_unhealthy_canary_fails_with_reason(change, reason) -> None:
    """Each threshold, crossed alone, fails the gate and says which number crossed it."""
    verdict, _ = _verdict({**HEALTHY, **change})
    assert not verdict.healthy
    assert any(re.search(reason, r) for r in verdict.reasons), verdict.reasons


def test_accuracy_gauge_only_when_configured() -> None:
    """The quality gauge is optional; when set, a low or missing gauge fails the gate."""
    _, client = _verdict(HEALTHY)
    assert not any("ml_model_accuracy" in q for q in client.queries)
    low, _ = _verdict({**HEALTHY, "accuracy": 0.85}, min_accuracy=0.9)
    assert low.reasons == ["accuracy 0.850 is below 0.900"]
    missing, _ = _verdict({**HEALTHY, "accuracy": None}, min_accuracy=0.9)
    assert not missing.healthy


def test_compare_with_stable() -> None:
    """A canary worse than stable fails even above the absolute floor; no stable traffic skips it."""
    worse, _ = _verdict({**HEALTHY, "success": 0.992}, {"success": 0.999}, compare_with_stable=True)
    assert worse.reasons == ["canary success rate 99.20% is worse than stable's 99.90%"]
    alone, _ = _verdict(HEALTHY, {}, compare_with_stable=True)
    assert alone.healthy and alone.notes


def test_unreachable_prometheus_is_a_clear_error() -> None:
    """No answer must never look like a verdict; the error tells how to reach Prometheus."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = PrometheusClient(f"http://127.0.0.1:{port}", timeout=2, hint="port-forward it")
    with pytest.raises(PrometheusError, match=rf"cannot reach Prometheus at http://127.0.0.1:{port}: .*; port-forward it$"):
        client.query("up")
