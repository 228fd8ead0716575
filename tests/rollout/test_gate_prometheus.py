"""The gate and the CLI against a real Prometheus scraping Linkerd-shaped series.

Prometheus (the Debian package's binary) scrapes a local exporter every second;
the gate's window is 10s, so every test settles in seconds. Live scraping was
chosen over promtool-backfilled blocks: `watch` needs series that keep moving
while it runs, and it exercises the real exposition format and rate() on
counters exactly as the proxies produce them.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import pytest

from mlplatform.model.config import AnalysisConfig
from mlplatform.tools.rollout import cli
from mlplatform.tools.rollout.gate import PrometheusClient, Queries, evaluate
from mlplatform.tools.stackfile import editor as stackfile
from mlplatform.tools.stackfile import rules
from tests.rollout.conftest import STACK, STACK_TEXT
from tests.support.helpers import build
from tests.support.linkerd_exporter import LinkerdExporter, Traffic

pytestmark = pytest.mark.integration

NS = "mlserve-test"
WINDOW = "10s"
DATA_TIMEOUT = 30.0


def _wait_for_requests(url: str, deployment: str, at_least: float) -> None:
    """Until the window holds `at_least` requests of the deployment (bounded)."""
    client = PrometheusClient(url)
    query = Queries.for_deployment(NS, deployment, WINDOW).requests
    deadline = time.monotonic() + DATA_TIMEOUT
    while (client.query(query) or 0) < at_least:
        if time.monotonic() > deadline:
            pytest.fail(f"no {at_least} requests for {deployment} in Prometheus after {DATA_TIMEOUT}s")
        time.sleep(0.5)


def _project(tmp_path: Path, version: str, weight: int = 10) -> Path:
    """A stack whose canary Deployment (`fraud-detector-<version>`) only this test feeds."""
    text = (
        STACK_TEXT.replace("version: v6", f"version: {version}")
        .replace("weight: 10  # the first step", f"weight: {weight}  # the first step")
        .replace("interval: 20s", f"interval: {WINDOW}")
    )
    (tmp_path / f"Pulumi.{STACK}.yaml").write_text(text)
    return tmp_path


# Each test's canary is its own Deployment, fed from the start of the session so
# the windows fill once, in parallel, instead of once per test.
TRAFFIC = {
    # Stable, which every canary here is judged against.
    "v5": Traffic(rps=40, error_ratio=0.002, latency_ms=40),
    "v60": Traffic(rps=40, latency_ms=30, accuracy=0.93),
    "v61": Traffic(rps=40, latency_ms=40),
    "v62": Traffic(rps=40, error_ratio=0.05, latency_ms=40),
    "v63": Traffic(rps=40, latency_ms=900),
    "v65": Traffic(rps=40, error_ratio=0.05, latency_ms=40),
    "v66": Traffic(rps=40, latency_ms=40),
}


@pytest.fixture(scope="session")
def fed(exporter: LinkerdExporter, prometheus: str) -> str:
    for version, traffic in TRAFFIC.items():
        exporter.set_traffic(NS, f"fraud-detector-{version}", traffic)
    for version, traffic in TRAFFIC.items():
        _wait_for_requests(prometheus, f"fraud-detector-{version}", at_least=traffic.rps * 5)
    return prometheus


def _run(prometheus: str, project: Path, *args: str) -> tuple[int, list[dict]]:
    """Run a rollout command with --json; the exit code and its events."""
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    command, *rest = args
    parsed = parser.parse_args(
        ["rollout", command, STACK, "--project-dir", str(project), "--json", *rest]
        + (["--prometheus-url", prometheus] if command in ("next", "watch", "promote", "status", "explain") else [])
        # The gate against a real Prometheus is the point here; the dwell is tests/rollout/test_dwell.py's.
        + (["--skip-dwell", "gate test"] if command == "next" else [])
    )
    stream = io.StringIO()
    code = cli.run(parsed, stream=stream)
    return code, [json.loads(line) for line in stream.getvalue().splitlines()]


def _weight(project: Path) -> int:
    return rules.require_canary(stackfile.load(project / f"Pulumi.{STACK}.yaml").config).weight


def test_gate_reads_real_linkerd_series(fed) -> None:
    """The PromQL must evaluate over real scraped series to the numbers the proxies produced."""
    verdict = evaluate(
        PrometheusClient(fed),
        build(AnalysisConfig, interval=WINDOW, min_requests=50, min_accuracy=0.9),
        namespace=NS,
        deployment="fraud-detector-v60",
    )
    assert verdict.healthy, verdict.reasons
    assert verdict.success_rate == pytest.approx(1.0)
    assert (
        verdict.p99_latency_ms is not None and 20 <= verdict.p99_latency_ms <= 30
    )  # inside the (20, 30] bucket the observations fell in
    assert verdict.accuracy == pytest.approx(0.93)


def test_healthy_canary_advances(fed, tmp_path) -> None:
    """`next` on a healthy canary writes the next step (10 -> 25) into the stack file."""
    project = _project(tmp_path, "v61")
    code, events = _run(fed, project, "next")
    assert code == 0, events
    assert events[-1]["event"] == "advanced" and events[-1]["weight"] == 25
    assert _weight(project) == 25


def test_next_dry_run_does_not_write(fed, tmp_path) -> None:
    """`--dry-run` evaluates the real gate but leaves the file alone."""
    project = _project(tmp_path, "v61")
    before = (project / f"Pulumi.{STACK}.yaml").read_bytes()
    code, events = _run(fed, project, "next", "--dry-run")
    assert code == 0 and events[-1]["written"] is False
    assert (project / f"Pulumi.{STACK}.yaml").read_bytes() == before


@pytest.mark.parametrize(
    ("version", "reason"),
    [("v62", "success rate 9"), ("v63", "p99 latency")],
    ids=["5pct-errors", "p99-900ms"],
)
def test_failing_canary_is_refused_with_numbers(fed, tmp_path, version, reason) -> None:
    """An unhealthy canary stays where it is, and the refusal carries the measured numbers."""
    project = _project(tmp_path, version)
    before = (project / f"Pulumi.{STACK}.yaml").read_bytes()
    code, events = _run(fed, project, "next")
    assert code == 1
    gate = next(e for e in events if e["event"] == "gate")["gate"]
    assert not gate["healthy"] and any(reason in r for r in gate["reasons"]), gate["reasons"]
    if TRAFFIC[version].error_ratio:
        assert gate["success_rate"] == pytest.approx(0.95, abs=0.02)
    else:
        assert gate["p99_latency_ms"] > 500
    assert (project / f"Pulumi.{STACK}.yaml").read_bytes() == before


def test_zero_traffic_is_refused(fed, tmp_path) -> None:
    """A canary nobody called proved nothing: no series at all must not pass as 'no errors'."""
    project = _project(tmp_path, "v64")
    code, events = _run(fed, project, "next")
    assert code == 1
    gate = next(e for e in events if e["event"] == "gate")["gate"]
    assert gate["requests"] == 0
    assert gate["outcome"] == "not-yet" or "still inconclusive" in gate["reasons"][0]
    assert any("not enough traffic: 0 canary requests" in r for r in gate["reasons"])
    assert _weight(project) == 10


def test_watch_aborts_at_once_on_a_decisive_failure(fed, tmp_path) -> None:
    """5% errors: the sequential tests reject at the first check, so watch writes weight 0 without
    waiting for failureThreshold (2) checks in a row, and the reason carries the statistic."""
    project = _project(tmp_path, "v65")
    code, events = _run(fed, project, "watch", "--interval", "0.2", "--max-checks", "10")
    assert code == 1
    checks = [e for e in events if e["event"] == "check"]
    assert len(checks) == 1 and checks[0]["gate"]["decisive"]
    assert events[-1]["event"] == "aborted" and "e-value" in events[-1]["reason"]
    assert "consecutive" not in events[-1]["reason"]
    assert _weight(project) == 0


def test_watch_advances_after_dwell(fed, tmp_path) -> None:
    """A healthy canary is moved a step each time its dwell has passed, up to 100%, then stops; each new
    step waits for a whole window of its own evidence ('not yet') before it passes."""
    project = _project(tmp_path, "v66", weight=50)
    code, events = _run(fed, project, "watch", "--interval", "1", "--dwell-seconds", "0", "--max-checks", "40")
    assert code == 0
    assert [e["weight"] for e in events if e["event"] == "advanced"] == [75, 100]
    outcomes = [(e["weight"], e["gate"]["outcome"]) for e in events if e["event"] == "check"]
    assert (75, "not-yet") in outcomes and (100, "not-yet") in outcomes
    assert events[-1]["event"] == "ready"
    assert _weight(project) == 100


@pytest.mark.parametrize(("version", "outcome"), [("v61", "pass"), ("v62", "fail")], ids=["equal", "5pct-errors"])
def test_explain_judges_canary_against_stable_through_prometheus(fed, tmp_path, version, outcome) -> None:
    """The judge end to end over real scraped series: an equal canary passes the comparison with stable,
    one with 5% errors against stable's 0.2% is rejected by the sequential test; `explain` says so."""
    project = _project(tmp_path, version)
    deadline = time.monotonic() + DATA_TIMEOUT
    while True:
        # The evidence grows with every scrape: a regression is rejected once there is enough of it.
        code, events = _run(fed, project, "explain")
        assert code == 0
        (event,) = [e for e in events if e["event"] == "explain"]
        record = event["verdict"]
        error_rate = record["comparisons"]["errorRate"]
        crossed = error_rate["eValue"] == "inf" or error_rate["eValue"] >= error_rate["threshold"]
        if crossed or outcome == "pass" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert record["outcome"] == outcome, record["reasons"]
    assert error_rate["stable"]["requests"] > 0 and error_rate["canary"]["requests"] > 0
    assert crossed is (outcome == "fail"), error_rate
    assert record["comparisons"]["latency"]["boundaryLe"] is not None
