"""The service proxy client: the API server path it builds from the platform's in-cluster URLs, and what
its errors say (the RBAC verb, resource and identity on a 403; no ready pods on a 503).

The API server here is tests.support.fake_apiserver_proxy on 127.0.0.1; the real one's RBAC and proxy
handler are tests/e2e/test_service_proxy.py's.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlplatform.tools import kube
from mlplatform.tools.rollout.prometheus import PrometheusClient, PrometheusError
from mlplatform.tools.service_proxy import FAILED_DEPENDENCY, LoopbackForwarder, ServiceProxy, ServiceRef, Via
from tests.support.fake_apiserver_proxy import USER, FakeApiServer


def _ref(url: str) -> ServiceRef:
    ref = ServiceRef.parse(url)
    assert ref is not None, url
    return ref


PROMETHEUS_URL = "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090"
PROMETHEUS = _ref(PROMETHEUS_URL)
MLFLOW = _ref("http://mlflow.mlflow.svc.cluster.local:5000")
VIA = Via("Prometheus", "PROMETHEUS_URL (or --prometheus-url)")


def test_the_proxy_path_is_built_from_the_platforms_in_cluster_url() -> None:
    """The platform names each service by its in-cluster URL; the proxy path and RBAC's resource name follow."""
    assert ServiceRef("monitoring", "kube-prometheus-stack-prometheus", 9090) == PROMETHEUS
    assert PROMETHEUS.proxy_path("/api/v1/query") == (
        "/api/v1/namespaces/monitoring/services/kube-prometheus-stack-prometheus:9090/proxy/api/v1/query"
    )
    assert MLFLOW.segment == "mlflow:5000"


def test_scheme_default_port_and_path_prefix_are_kept() -> None:
    """An https service is `https:name:port` to the API server; a URL's path is the service's base path."""
    ref = _ref("https://prom.obs.svc/prometheus/")
    assert ref == ServiceRef("obs", "prom", 443, "https", "/prometheus")
    assert (
        ref.proxy_path("/api/v1/query")
        == "/api/v1/namespaces/obs/services/https:prom:443/proxy/prometheus/api/v1/query"
    )


@pytest.mark.parametrize("url", ["http://127.0.0.1:9090", "https://prometheus.example.com", "http://prom:9090"])
def test_urls_outside_the_cluster_are_used_as_they_are(url: str) -> None:
    assert ServiceRef.parse(url) is None


class _Backend(BaseHTTPRequestHandler):
    """A Prometheus-shaped backend: `query=bad` is refused as Prometheus refuses a bad query."""

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query).get("query", [""])[0]
        if query == "bad":
            code, body = 400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 1"}
        else:
            code, body = 200, {"status": "success", "data": {"resultType": "scalar", "result": [0, "42"]}}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[FakeApiServer, kube.KubeClient]]:
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    server = FakeApiServer(
        backends={
            PROMETHEUS.proxy_path(): f"http://127.0.0.1:{backend.server_address[1]}",
            MLFLOW.proxy_path(): None,  # no ready pods
        }
    ).start()
    yield server, kube.KubeClient(kube.from_kubeconfig(server.kubeconfig(tmp_path)))
    server.stop()
    backend.shutdown()
    backend.server_close()


def test_queries_go_through_the_proxy_path_with_the_kube_credentials(api) -> None:
    server, client = api
    prometheus = PrometheusClient.through(ServiceProxy(client, PROMETHEUS, VIA))
    assert prometheus.query("up") == 42.0
    assert server.requests == [
        "GET /api/v1/namespaces/monitoring/services/kube-prometheus-stack-prometheus:9090/proxy/api/v1/query?query=up"
    ]


def test_prometheus_own_refusal_passes_through(api) -> None:
    """A bad query is Prometheus' answer, not the API server's: it reads as it would without the proxy."""
    _, client = api
    prometheus = PrometheusClient.through(ServiceProxy(client, PROMETHEUS, VIA))
    with pytest.raises(PrometheusError, match=r"refused the query \(400\): parse error at char 1$"):
        prometheus.query("bad")


def test_forbidden_names_the_verb_the_resource_and_the_identity(api, tmp_path: Path) -> None:
    """A 403 must tell the user which grant is missing for whom, and how to bypass the proxy."""
    _, client = api
    elsewhere = ServiceRef("monitoring", "grafana", 80)
    with pytest.raises(PrometheusError) as raised:
        PrometheusClient.through(ServiceProxy(client, elsewhere, VIA)).query("up")
    message = str(raised.value)
    assert "403 forbidden" in message
    assert "may not `get` the resource `services/proxy` named 'grafana:80' in namespace 'monitoring'" in message
    assert f"kubeconfig {tmp_path / 'kubeconfig'} context ci" in message
    assert f'User "{USER}"' in message  # the API server's own words name the user it saw
    assert "set PROMETHEUS_URL (or --prometheus-url)" in message


def test_no_endpoints_says_the_service_has_no_ready_pods(api) -> None:
    _, client = api
    via = Via("MLflow", "MLFLOW_TRACKING_URI")
    with pytest.raises(PrometheusError) as raised:
        PrometheusClient.through(ServiceProxy(client, MLFLOW, via)).query("up")
    message = str(raised.value)
    assert "service mlflow/mlflow port 5000" in message
    assert "503, the service has no ready pods (no endpoints); is MLflow running?" in message
    assert "kubectl -n mlflow get pods,endpoints mlflow" in message


def test_an_unreachable_api_server_is_named(tmp_path: Path) -> None:
    credentials = kube.Credentials(server="http://127.0.0.1:9", token="t", source="test")
    with pytest.raises(PrometheusError, match=r"cannot reach the Kubernetes API server http://127.0.0.1:9 \(test\)"):
        PrometheusClient.through(ServiceProxy(kube.KubeClient(credentials, timeout=2), PROMETHEUS, VIA)).query("up")


def test_the_forwarder_serves_the_service_on_loopback_and_keeps_the_refusal(api) -> None:
    """MLflow's client gets a base URL on 127.0.0.1; a refusal reaches it as a status no client retries,
    and the forwarder keeps the explained refusal for the message."""
    _, client = api
    with LoopbackForwarder(ServiceProxy(client, PROMETHEUS, VIA)) as forwarder:
        assert forwarder.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{forwarder.url}/api/v1/query?query=up", timeout=5) as answer:
            assert json.load(answer)["data"]["result"] == [0, "42"]
        assert forwarder.last_error is None
    with LoopbackForwarder(ServiceProxy(client, MLFLOW, Via("MLflow", "MLFLOW_TRACKING_URI"))) as forwarder:
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(f"{forwarder.url}/api/2.0/mlflow/registered-models/get?name=m", timeout=5)
        assert raised.value.code == FAILED_DEPENDENCY
        assert "has no ready pods" in str(forwarder.last_error)
