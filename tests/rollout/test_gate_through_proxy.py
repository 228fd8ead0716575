"""The gate's real PromQL through the API server's service proxy path, end to end, against a real Prometheus.

Between the rollout CLI and the Debian package's Prometheus stands a loopback stand-in of the API
server's proxy (tests.support.fake_apiserver_proxy): it serves
`/api/v1/namespaces/monitoring/services/kube-prometheus-stack-prometheus:9090/proxy/...`, checks
the kubeconfig's token and forwards to Prometheus. The platform's outputs name Prometheus by its
in-cluster URL and no `PROMETHEUS_URL` is set, so the default path is the one taken; the verdict
must be the one a direct query gives.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlplatform.model.config import AnalysisConfig
from mlplatform.tools import kube
from mlplatform.tools.rollout.gate import PrometheusClient, evaluate
from mlplatform.tools.service_proxy import ServiceProxy, ServiceRef, Via
from tests.model.helpers import PLATFORM_OUTPUTS
from tests.rollout.test_gate_prometheus import NS, WINDOW, _project, _run, _wait_for_requests, _weight
from tests.support.fake_apiserver_proxy import FakeApiServer
from tests.support.helpers import build
from tests.support.linkerd_exporter import LinkerdExporter, Traffic

pytestmark = pytest.mark.integration

PROMETHEUS_URL = "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090"
SERVICE = ServiceRef("monitoring", "kube-prometheus-stack-prometheus", 9090)
TRAFFIC = {
    "v5": Traffic(rps=40, error_ratio=0.002, latency_ms=40),
    "v70": Traffic(rps=40, latency_ms=40),
    "v71": Traffic(rps=40, error_ratio=0.05, latency_ms=40),
}


def test_the_platform_url_names_this_service() -> None:
    assert ServiceRef.parse(PROMETHEUS_URL) == SERVICE


@pytest.fixture(scope="module")
def fed(exporter: LinkerdExporter, prometheus: str) -> str:
    for version, traffic in TRAFFIC.items():
        exporter.set_traffic(NS, f"fraud-detector-{version}", traffic)
    for version, traffic in TRAFFIC.items():
        _wait_for_requests(prometheus, f"fraud-detector-{version}", at_least=traffic.rps * 5)
    return prometheus


@pytest.fixture
def api_server(fed: str, tmp_path: Path, monkeypatch) -> Iterator[FakeApiServer]:
    server = FakeApiServer(backends={SERVICE.proxy_path(): fed}).start()
    monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig(tmp_path)))
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    yield server
    server.stop()


def test_the_verdict_through_the_proxy_is_the_direct_one(fed, api_server) -> None:
    """Every query of the judge, at one instant, through the proxy path and straight to Prometheus."""
    at = datetime.now(UTC)
    proxied = PrometheusClient.through(ServiceProxy(kube.KubeClient.discover(), SERVICE, Via("Prometheus", "-")))
    verdicts = [
        evaluate(
            client,
            build(AnalysisConfig, interval=WINDOW, min_requests=50),
            namespace=NS,
            deployment=f"fraud-detector-{version}",
            stable_deployment="fraud-detector-v5",
            since=at - timedelta(seconds=60),
            at=at,
            canary_weight=10,
        ).to_dict()
        for version in ("v70", "v71")
        for client in (proxied, PrometheusClient(fed))
    ]
    assert verdicts[0] == verdicts[1] and verdicts[0]["healthy"]
    assert verdicts[2] == verdicts[3] and not verdicts[2]["healthy"]
    assert api_server.requests and all(
        r.startswith(f"GET {SERVICE.proxy_path('/api/v1/')}query") for r in api_server.requests
    )


def _outputs(tmp_path: Path) -> Path:
    path = tmp_path / "platform-outputs.json"
    path.write_text(json.dumps({**PLATFORM_OUTPUTS, "prometheusUrl": PROMETHEUS_URL}))
    return path


def test_rollout_next_reads_the_gate_through_the_proxy_by_default(api_server, tmp_path) -> None:
    """No --prometheus-url and no PROMETHEUS_URL: the CLI derives the proxy path from the platform's
    outputs and the kubeconfig, and a healthy canary advances on what it read there."""
    project = _project(tmp_path, "v70")
    code, events = _run_without_url(project, "next", "--platform-outputs", str(_outputs(tmp_path)))
    assert code == 0, events
    assert events[-1]["event"] == "advanced" and _weight(project) == 25
    assert any("/services/kube-prometheus-stack-prometheus:9090/proxy/api/v1/query" in r for r in api_server.requests)


def test_a_forbidden_proxy_names_the_grant_and_changes_nothing(fed, tmp_path, monkeypatch) -> None:
    """The identity lacks `get services/proxy` (here: the stand-in grants no service): exit 3, the file
    as it was, and the message names the verb, the resource and the override."""
    server = FakeApiServer().start()
    try:
        monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig(tmp_path)))
        monkeypatch.delenv("PROMETHEUS_URL", raising=False)
        project = _project(tmp_path, "v70")
        code, events = _run_without_url(project, "next", "--platform-outputs", str(_outputs(tmp_path)))
    finally:
        server.stop()
    assert code == 3
    assert "may not `get` the resource `services/proxy`" in events[-1]["error"]
    assert _weight(project) == 10


def _run_without_url(project: Path, *args: str) -> tuple[int, list[dict]]:
    # `_run` passes --prometheus-url; the empty value leaves the default (the proxy) in charge.
    return _run("", project, *args)
