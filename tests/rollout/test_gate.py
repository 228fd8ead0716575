"""The gate's queries and judgement, against the fake Prometheus of the replay benchmark."""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bench.judge.fake_prometheus import LE_LABELS, FakePrometheus
from mlplatform.model.config import AnalysisConfig
from mlplatform.tools.rollout import gate
from mlplatform.tools.rollout.gate import PrometheusClient, PrometheusError, Queries, evaluate
from tests.support.fake_prometheus_http import HttpPrometheus
from tests.support.helpers import build

NS, DEP, STABLE = "ml-serving", "fraud-detector-v6", "fraud-detector-v5"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
HISTORY = 60  # one-minute intervals of stable alone before the step
HEALTHY = (100, 0, "50")  # requests, errors, latency bucket per interval
STABLE_TRAFFIC = (900, 2, "50")


def _buckets(requests: int, le: str) -> np.ndarray:
    row = np.zeros(len(LE_LABELS), dtype=int)
    row[LE_LABELS.index(le)] = requests
    return row


def _fake(canary=HEALTHY, stable=STABLE_TRAFFIC, intervals: int = 5, accuracy: float | None = None) -> FakePrometheus:
    """Stable alone for an hour, then `intervals` minutes of both versions."""
    fake = FakePrometheus(T0, 60, accuracy=accuracy)
    for k in range(HISTORY + intervals):
        for deployment, (requests, errors, le) in ((DEP, canary if k >= HISTORY else (0, 0, "50")), (STABLE, stable)):
            fake.version(deployment).add(requests, errors, _buckets(requests, le))
    return fake


def _verdict(fake: FakePrometheus, intervals: int = 5, weight: int = 10, **analysis) -> gate.GateVerdict:
    since = T0 + timedelta(minutes=HISTORY)
    return evaluate(
        fake,
        AnalysisConfig(**{"interval": "1m", **analysis}),
        namespace=NS,
        deployment=DEP,
        stable_deployment=STABLE,
        since=since,
        at=since + timedelta(minutes=intervals),
        canary_weight=weight,
    )


def test_queries_match_the_documented_promql() -> None:
    """The gate must measure exactly what the runbook and the alerts describe."""
    q = Queries.for_deployment(NS, DEP, "1m")
    sel = '{namespace="ml-serving", deployment="fraud-detector-v6", direction="inbound"}'
    failed = '{namespace="ml-serving", deployment="fraud-detector-v6", direction="inbound", classification="failure"}'
    assert q.requests == f"sum(increase(response_total{sel}[1m]))"
    assert q.errors == f"sum(increase(response_total{failed}[1m]))"
    assert q.buckets == f"sum by (le) (increase(response_latency_ms_bucket{sel}[1m]))"
    assert q.accuracy == 'avg(ml_model_accuracy{namespace="ml-serving", deployment="fraud-detector-v6"})'
    inner = sel[:-1]
    assert q.slower_than("200", "1m") == (
        f'sum(increase(response_latency_ms_bucket{inner}, le="+Inf"}}[1m])) - '
        f'sum(increase(response_latency_ms_bucket{inner}, le="200"}}[1m]))'
    )


def test_healthy_canary_passes_and_records_everything() -> None:
    """A canary like stable passes; its record names the queries, window, samples, statistics and thresholds."""
    verdict = _verdict(_fake())
    assert (verdict.outcome, verdict.healthy, verdict.reasons) == (gate.PASS, True, [])
    assert (verdict.requests, verdict.stable_requests, verdict.intervals) == (500, 4500, 5)
    record = json.loads(json.dumps(verdict.to_record()))
    assert record["window"]["since"] == "2026-01-01T01:00:00+00:00" and record["window"]["intervals"] == 5
    assert record["samples"] == {"canaryRequests": 500, "stableRequests": 4500}
    error_rate = record["comparisons"]["errorRate"]
    assert error_rate["threshold"] == pytest.approx(100) and error_rate["eValue"] < 1
    assert record["comparisons"]["latency"]["boundaryLe"] == "50"
    assert record["comparisons"]["latency"]["boundaryFrom"] == "the hour before the step"
    assert "canary.requests" in record["queries"] and "stable.errors" in record["queries"]
    assert record["thresholds"]["max_error_rate_increase"] == 0.1


def test_a_canary_worse_than_stable_fails_decisively() -> None:
    """5% errors against stable's 0.2%, above the 99% floor's tolerance too: rejected, named, at once."""
    verdict = _verdict(_fake(canary=(100, 5, "50")))
    assert verdict.outcome == gate.FAIL and verdict.decisive
    assert any(
        re.search(r"canary's error rate is worse than stable's by more than 10% .* e-value", r) for r in verdict.reasons
    ), verdict.reasons


def test_a_slower_canary_fails_on_latency_alone() -> None:
    """All canary requests past stable's p99 bucket boundary, under the fixed 500 ms rail: the latency test fails."""
    verdict = _verdict(_fake(canary=(100, 0, "200")))
    assert verdict.outcome == gate.FAIL and verdict.decisive
    assert any("share of requests slower than 50ms" in r for r in verdict.reasons), verdict.reasons
    assert not any("p99 latency" in r for r in verdict.reasons)


@pytest.mark.parametrize(
    ("canary", "stable", "weight", "reason"),
    [
        ((3, 0, "50"), STABLE_TRAFFIC, 10, r"not enough traffic: 15 canary requests in 5 intervals .* at least 50"),
        ((0, 0, "50"), STABLE_TRAFFIC, 10, r"not enough traffic: 0 canary requests"),
        (HEALTHY, (0, 0, "50"), 10, r"stable has 0 requests since the step started, need 50 to compare"),
    ],
    ids=["few-requests", "no-canary-traffic", "stable-without-traffic"],
)
def test_too_little_evidence_is_not_yet(canary, stable, weight, reason) -> None:
    """Too few requests or no stable to compare with: 'not yet', never healthy, never a failure by itself."""
    verdict = _verdict(_fake(canary=canary, stable=stable), weight=weight)
    assert (verdict.outcome, verdict.healthy, verdict.decisive) == (gate.NOT_YET, False, False)
    assert any(re.search(reason, r) for r in verdict.reasons), verdict.reasons


def test_at_100_percent_stable_without_traffic_is_not_needed() -> None:
    """At 100% stable gets nothing by design: the guard rails decide, and the verdict says so."""
    verdict = _verdict(_fake(stable=(0, 0, "50")), weight=100)
    assert verdict.outcome == gate.PASS
    assert verdict.notes == ["the canary takes all traffic: no comparison with stable"]


def test_inconclusive_for_too_long_fails_with_the_reason() -> None:
    """'Not yet' turns into a named failure after maxInconclusiveSteps intervals."""
    verdict = _verdict(_fake(canary=(3, 0, "50"), intervals=4), intervals=4, max_inconclusive_steps=4)
    assert verdict.outcome == gate.FAIL and verdict.decisive
    assert verdict.reasons[0].startswith("still inconclusive after 4 intervals (maxInconclusiveSteps 4): not enough")


@pytest.mark.parametrize(
    ("canary", "reason", "decisive"),
    [
        ((100, 10, "50"), r"success rate 90.00% is below 99.00% at 99% confidence", True),
        ((100, 0, "1000"), r"p99 latency \d+ms is above 500ms", False),
    ],
)
def test_guard_rails_hold_without_stable(canary, reason, decisive) -> None:
    """The fixed thresholds stay, with the comparison off: the floor with a sequential test, the p99 as is."""
    verdict = _verdict(_fake(canary=canary), compare_with_stable=False)
    assert verdict.outcome == gate.FAIL and verdict.decisive is decisive
    assert any(re.search(reason, r) for r in verdict.reasons), verdict.reasons
    assert not any(name.startswith("stable.") for name in verdict.queries)


def test_one_unlucky_error_at_low_traffic_is_not_a_failure() -> None:
    """1 error in 50 requests is 98% < 99%, but it is not evidence that the canary is below the floor."""
    verdict = _verdict(_fake(canary=(50, 0, "50"), intervals=1), intervals=1, compare_with_stable=False)
    assert verdict.outcome == gate.PASS
    fake = _fake(canary=(50, 1, "50"), intervals=1)
    assert _verdict(fake, intervals=1, compare_with_stable=False).outcome == gate.PASS


def test_accuracy_gauge_only_when_configured() -> None:
    """The quality gauge is optional; when set, a low or missing gauge fails the gate."""
    assert "canary.accuracy" not in _verdict(_fake(accuracy=0.85)).queries
    low = _verdict(_fake(accuracy=0.85), min_accuracy=0.9)
    assert low.reasons == ["accuracy 0.850 is below 0.900"]
    assert _verdict(_fake(accuracy=None), min_accuracy=0.9).outcome == gate.FAIL


def _not_yet() -> gate.GateVerdict:
    return _verdict(_fake(canary=(3, 0, "50")))


def test_watch_acts_on_verdicts() -> None:
    """`not yet` neither advances nor counts; a decisive failure aborts at once; others after the threshold."""
    assert gate.act(_not_yet(), 2, 3, dwelled=True) == (gate.WAIT, 2)
    assert gate.act(_verdict(_fake()), 2, 3, dwelled=True) == (gate.ADVANCE, 0)
    assert gate.act(_verdict(_fake()), 0, 3, dwelled=False) == (gate.WAIT, 0)
    assert gate.act(_verdict(_fake(canary=(100, 5, "50"))), 0, 3, dwelled=True)[0] == gate.ABORT
    slow = _verdict(_fake(canary=(100, 0, "1000")), compare_with_stable=False)
    assert gate.act(slow, 1, 3, dwelled=True) == (gate.WAIT, 2)
    assert gate.act(slow, 2, 3, dwelled=True) == (gate.ABORT, 3)


def test_the_http_client_reads_what_the_fake_answers() -> None:
    """Range and vector queries over Prometheus' HTTP API give the verdict the in-memory answers give."""
    fake = _fake(canary=(100, 5, "50"))
    server = HttpPrometheus(fake)
    try:
        since = T0 + timedelta(minutes=HISTORY)
        verdict = evaluate(
            PrometheusClient(server.url),
            build(AnalysisConfig, interval="1m"),
            namespace=NS,
            deployment=DEP,
            stable_deployment=STABLE,
            since=since,
            at=since + timedelta(minutes=5),
            canary_weight=10,
        )
    finally:
        server.close()
    direct = _verdict(fake)
    assert verdict.to_record()["comparisons"] == direct.to_record()["comparisons"]
    assert verdict.outcome == gate.FAIL


def test_unreachable_prometheus_is_a_clear_error() -> None:
    """No answer must never look like a verdict; the error tells how to reach Prometheus."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = PrometheusClient(f"http://127.0.0.1:{port}", timeout=2, hint="port-forward it")
    with pytest.raises(
        PrometheusError, match=rf"cannot reach Prometheus at http://127.0.0.1:{port}: .*; port-forward it$"
    ):
        client.query("up")


def test_judge_settings_are_validated_with_key_value_and_range(tmp_path) -> None:
    """A confidence of 1 would never reject, 0 inconclusive steps would fail every first check: refused, named."""
    from mlplatform.configuration import ConfigError
    from mlplatform.tools.stackfile import editor as stackfile
    from tests.rollout.conftest import STACK_TEXT

    path = tmp_path / "Pulumi.fraud-detector-test.yaml"
    path.write_text(
        STACK_TEXT.replace(
            "    failureThreshold: 2\n",
            "    failureThreshold: 2\n    confidence: 1.5\n"
            "    maxInconclusiveSteps: 0\n    maxErrorRateIncrease: -0.1\n",
        )
    )
    with pytest.raises(ConfigError) as caught:
        stackfile.load(path)
    message = str(caught.value)
    assert "mlmodel:analysis.confidence = 1.5: Input should be less than 1" in message
    assert "mlmodel:analysis.maxInconclusiveSteps = 0: Input should be greater than or equal to 1" in message
    assert "mlmodel:analysis.maxErrorRateIncrease = -0.1: Input should be greater than or equal to 0" in message
