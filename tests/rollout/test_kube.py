"""The tools' Kubernetes client: kubeconfig, bearer token, exec plugin, GET and merge-PATCH of `/status`,
against an API server stand-in on 127.0.0.1 (the real API server: tests/e2e/test_rollout_status.py)."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlplatform.tools import kube
from mlplatform.tools.rollout import state

PATH = "/apis/ml.example.com/v1/namespaces/serve/inferenceservices/fd"


class FakeApiServer:
    """One InferenceService; `/status` PATCHes merge into `status` only, as the status subresource does."""

    def __init__(self) -> None:
        self.record = {"metadata": {"name": "fd"}, "spec": {"canary": {"weight": 10}}, "status": {"url": "http://x"}}
        self.requests: list[tuple[str, str, str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                owner.requests.append(("GET", self.path, self.headers.get("Authorization", ""), ""))
                if self.path != PATH:
                    return self._answer(404, {"kind": "Status", "message": "not found"})
                self._answer(200, owner.record)

            def do_PATCH(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                owner.requests.append(
                    ("PATCH", self.path, self.headers.get("Authorization", ""), self.headers["Content-Type"])
                )
                patch = json.loads(body)
                owner.record["status"] = _merge(owner.record["status"], patch["status"])
                self._answer(200, owner.record)

            def log_message(self, format: str, *args: Any) -> None:  # `format`: the base class's name
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _merge(target, patch):
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


@pytest.fixture
def api():
    server = FakeApiServer()
    yield server
    server.server.shutdown()
    server.server.server_close()


def _kubeconfig(tmp_path: Path, server: str, user: dict) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [{"name": "k", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def test_status_round_trip_with_a_bearer_token(api, tmp_path, monkeypatch):
    """The state goes to `/status` as a merge patch and comes back; the controller's `url` stays."""
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, api.url, {"token": "s3cret"})))
    store = state.KubeStatusStore(kube.KubeClient.discover(), group="ml.example.com", namespace="serve", name="fd")
    assert store.get() is None
    step = state.new_step("v6", 10, 1_800_000_000.0)
    step.failed_checks, step.last_verdict = 2, {"healthy": False, "measured": {"successRate": 0.5}}
    store.put(step)
    assert store.get() == step
    assert api.record["status"]["url"] == "http://x" and api.record["spec"] == {"canary": {"weight": 10}}
    patches = [r for r in api.requests if r[0] == "PATCH"]
    assert patches == [("PATCH", PATH + "/status", "Bearer s3cret", kube.MERGE_PATCH)]


def test_exec_credential_plugin_supplies_the_token(api, tmp_path, monkeypatch):
    """`aws eks get-token` is an exec plugin: its ExecCredential's token is sent, once per client."""
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import json, os\n"
        "assert json.loads(os.environ['KUBERNETES_EXEC_INFO'])['kind'] == 'ExecCredential'\n"
        "print(json.dumps({'kind': 'ExecCredential', 'status': {'token': 'from-' + os.environ['CLUSTER']}}))\n"
    )
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": [str(plugin)],
            "env": [{"name": "CLUSTER", "value": "prod"}],
        }
    }
    client = kube.KubeClient(kube.from_kubeconfig(_kubeconfig(tmp_path, api.url, user)))
    client.get(PATH)
    assert api.requests[-1][2] == "Bearer from-prod"


def test_a_missing_record_says_to_deploy_the_stack(api, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, api.url, {"token": "t"})))
    store = state.KubeStatusStore(kube.KubeClient.discover(), group="ml.example.com", namespace="serve", name="nope")
    with pytest.raises(kube.KubeError, match="does not exist: the model stack declares it"):
        store.get()


def test_an_unreachable_server_is_a_kube_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, "http://127.0.0.1:9", {"token": "t"})))
    with pytest.raises(kube.KubeError, match=r"cannot reach the Kubernetes API server http://127.0.0.1:9"):
        kube.KubeClient.discover(timeout=2).get(PATH)


def test_client_certificate_data_is_read_from_the_kubeconfig(tmp_path):
    import base64

    user = {
        "client-certificate-data": base64.b64encode(b"CERT").decode(),
        "client-key-data": base64.b64encode(b"KEY").decode(),
    }
    credentials = kube.from_kubeconfig(_kubeconfig(tmp_path, "https://127.0.0.1:6443", user))
    assert (credentials.cert_data, credentials.key_data, credentials.token) == (b"CERT", b"KEY", None)
