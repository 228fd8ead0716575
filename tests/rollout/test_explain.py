"""`rollout explain`: the verdict re-derived from Prometheus at a chosen time, in words and as JSON."""

from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.judge.fake_prometheus import LE_LABELS, FakePrometheus
from mlplatform.tools.rollout import cli
from tests.rollout.conftest import STACK
from tests.support.fake_prometheus_http import HttpPrometheus

T0 = datetime(2026, 3, 1, tzinfo=UTC)
STEP_START = T0 + timedelta(hours=1)


def _served(canary_errors: int) -> HttpPrometheus:
    """Stable alone for an hour of 20 s intervals, then 15 intervals of both; the canary with `canary_errors`."""
    fake = FakePrometheus(T0, 20)
    for k in range(180 + 15):
        for deployment, errors, requests in (
            ("fraud-detector-v6", canary_errors, 100 if k >= 180 else 0),
            ("fraud-detector-v5", 1, 900),
        ):
            row = np.zeros(len(LE_LABELS), dtype=int)
            row[LE_LABELS.index("50")] = requests
            fake.version(deployment).add(requests, errors if requests else 0, row)
    return HttpPrometheus(fake)


@pytest.fixture
def bad_canary():
    server = _served(canary_errors=6)
    yield server.url
    server.close()


def _explain(project: Path, url: str, *extra: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "rollout",
            "explain",
            STACK,
            "--project-dir",
            str(project),
            "--prometheus-url",
            url,
            "--since",
            STEP_START.isoformat(),
            *extra,
        ]
    )
    stream = io.StringIO()
    return cli.run(args, stream=stream), stream.getvalue()


def test_explain_says_why_in_words(project: Path, bad_canary: str) -> None:
    """The words name the outcome, the window, the counts, the statistic against its threshold, and the reason."""
    code, text = _explain(project, bad_canary, "--at", "2026-03-01T01:05:00Z")
    assert code == 0
    assert "mlserve-test/fraud-detector-v6: FAIL (watch rolls back at once)" in text
    assert "window: 2026-03-01T01:00:00+00:00 to 2026-03-01T01:05:00+00:00 (15 intervals of 20s)" in text
    assert "bad/requests over 15 intervals: canary 90/1500, stable 15/13500" in text
    assert ">= 100: the evidence rejects" in text
    assert "because: canary's error rate is worse than stable's by more than 10%" in text


def test_explain_at_an_earlier_time_replays_that_verdict(project: Path, bad_canary: str) -> None:
    """--at before enough evidence: the same data says 'not yet', as the gate said then."""
    code, text = _explain(project, bad_canary, "--at", "2026-03-01T01:00:10Z", "--json")
    assert code == 0
    (event,) = [json.loads(line) for line in text.splitlines()]
    record = event["verdict"]
    assert record["outcome"] == "not-yet" and record["window"]["intervals"] == 0
    assert record["reasons"][0].startswith("not enough traffic: 0 canary requests in 0 intervals")


def test_explain_json_is_the_verdict_record(project: Path, bad_canary: str) -> None:
    """--json prints the record `watch` stores: queries, window, samples, statistics, thresholds, outcome."""
    _, text = _explain(project, bad_canary, "--at", "2026-03-01T01:05:00Z", "--json")
    record = json.loads(text)["verdict"]
    assert record["outcome"] == "fail"
    assert record["samples"] == {"canaryRequests": 1500.0, "stableRequests": 13500.0}
    assert record["comparisons"]["errorRate"]["eValue"] >= record["comparisons"]["errorRate"]["threshold"]
    assert record["queries"]["canary.errors"].startswith('sum(increase(response_total{namespace="mlserve-test"')
    assert record["thresholds"]["confidence"] == 0.99


def test_explain_refuses_a_bad_time(project: Path, bad_canary: str, capsys) -> None:
    with pytest.raises(SystemExit):
        _explain(project, bad_canary, "--at", "yesterday")
    assert "not a time: 'yesterday' (allowed: ISO 8601" in capsys.readouterr().err


def _steps_served() -> HttpPrometheus:
    """Stable alone for an hour of 20 s intervals, then two steps of 15 intervals; the canary at 2x stable's
    errors, so the second step's verdict depends on the evidence the first carried in."""
    fake = FakePrometheus(T0, 20)
    for k in range(180 + 30):
        canary = 0 if k < 180 else 100 if k < 195 else 300
        for deployment, requests, errors in (
            ("fraud-detector-v6", canary, [0, 1][k % 2] if canary == 100 else [1, 0, 1][k % 3]),
            ("fraud-detector-v5", 1000 - canary, 1),
        ):
            row = np.zeros(len(LE_LABELS), dtype=int)
            row[LE_LABELS.index("50")] = requests
            fake.version(deployment).add(requests, errors if requests else 0, row)
    return HttpPrometheus(fake)


def test_explain_replays_a_recorded_verdict_with_the_evidence_it_carried_in(project: Path, tmp_path: Path) -> None:
    """A verdict of the second step, recorded in the status as watch records it, replays to the same outcome
    and e-value only because explain carries in what the record says the first step left."""
    from mlplatform.tools.rollout.gate import PrometheusClient, evaluate
    from mlplatform.tools.stackfile import editor as stackfile

    server = _steps_served()
    try:
        analysis = stackfile.load(stackfile.stack_path(STACK, project)).config.analysis
        judge: dict[str, Any] = {
            "namespace": "mlserve-test",
            "deployment": "fraud-detector-v6",
            "stable_deployment": "fraud-detector-v5",
        }
        client = PrometheusClient(server.url)
        second_start = STEP_START + timedelta(minutes=5)
        first = evaluate(client, analysis, **judge, since=STEP_START, at=second_start, canary_weight=10)
        second = evaluate(
            client,
            analysis,
            **judge,
            since=second_start,
            at=second_start + timedelta(minutes=5),
            canary_weight=25,
            evidence=first.evidence_out,
        )
        alone = evaluate(
            client, analysis, **judge, since=second_start, at=second_start + timedelta(minutes=5), canary_weight=25
        )
        recorded = second.to_record()
        assert recorded["comparisons"]["errorRate"]["eValue"] != alone.comparisons["errorRate"]["eValue"]
        status = tmp_path / "status.json"
        status.write_text(json.dumps({"weight": 25, "lastVerdict": recorded}))
        code, text = _explain_args(project, server.url, "--record", str(status), "--json")
        assert code == 0, text
        event = json.loads(text)
        assert event["replayed"] is True and event["sameOutcome"] is True
        assert event["verdict"]["comparisons"] == recorded["comparisons"]
        _, words = _explain_args(project, server.url, "--record", str(status))
        assert "(15 carried from earlier steps)" in words and "same outcome" in words
    finally:
        server.close()


def test_explain_record_must_hold_a_verdict(project: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "message.txt"
    bogus.write_text("rollout: canary v6 10% -> 25%\n\nno record here\n")
    code, text = _explain_args(project, "http://127.0.0.1:9", "--record", str(bogus))
    assert code == 2 and "no verdict record found" in text


def _explain_args(project: Path, url: str, *extra: str) -> tuple[int, str]:
    """`_explain` without its --since (a replay brings its own window)."""
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["rollout", "explain", STACK, "--project-dir", str(project), "--prometheus-url", url, *extra]
    )
    stream = io.StringIO()
    return cli.run(args, stream=stream), stream.getvalue()


def test_explain_without_since_judges_the_step_as_watch_does(project: Path, tmp_path: Path) -> None:
    """No --since, no --record: the step start and the carried evidence come from the rollout status,
    so explain's verdict is the one `watch` would reach now."""
    from mlplatform.tools.rollout import state
    from mlplatform.tools.rollout.gate import PrometheusClient, evaluate
    from mlplatform.tools.stackfile import editor as stackfile

    server = _steps_served()
    try:
        analysis = stackfile.load(stackfile.stack_path(STACK, project)).config.analysis
        second_start = STEP_START + timedelta(minutes=5)
        first = evaluate(
            PrometheusClient(server.url),
            analysis,
            namespace="mlserve-test",
            deployment="fraud-detector-v6",
            stable_deployment="fraud-detector-v5",
            since=STEP_START,
            at=second_start,
            canary_weight=10,
        )
        status = tmp_path / "status.json"
        step = state.new_step("v6", 10, second_start.timestamp(), evidence=first.evidence_out)
        status.write_text(json.dumps(step.to_status()))
        at = (second_start + timedelta(minutes=5)).isoformat()
        _, text = _explain_args(project, server.url, "--status-file", str(status), "--at", at, "--json")
        event = json.loads(text)
        assert event["verdict"]["window"]["since"] == second_start.isoformat()
        assert event["verdict"]["comparisons"]["errorRate"]["carriedIntervals"] == 15
        assert event["source"] == f"step start and carried evidence from status file {status}"
    finally:
        server.close()
