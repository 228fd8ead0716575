"""A stand-in for the Kubernetes API server's service proxy, on 127.0.0.1, for the fast and integration tiers.

It serves `/api/v1/namespaces/NS/services/SEGMENT/proxy/...` as the API server does: it checks the
bearer token, answers `Status` objects for what the API server itself refuses (403 for a segment
RBAC does not grant, 503 "no endpoints" for a service without ready pods), and forwards the rest to
the backend URL registered for that segment, passing the backend's answer through as it is. The real
API server's behaviour (RBAC and the proxy handler) is the e2e tier's: tests/e2e/test_service_proxy.py.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOKEN = "proxy-test-token"
USER = "system:serviceaccount:ci:deploy-models"


def status(code: int, reason: str, message: str) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@dataclass
class FakeApiServer:
    """`backends`: proxy segment path (`/api/v1/namespaces/NS/services/NAME:PORT/proxy`) -> backend base URL,
    or None for a service without endpoints. Any other services path is forbidden to the test's user."""

    backends: dict[str, str | None] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self, directory: Path) -> Path:
        path = directory / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "ci", "user": {"token": TOKEN}}],
                    "contexts": [{"name": "ci", "context": {"cluster": "fake", "user": "ci"}}],
                    "current-context": "ci",
                }
            )
        )
        return path

    def start(self) -> FakeApiServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def answer(self, method: str, target: str, headers, body: bytes | None) -> tuple[int, bytes]:
        self.requests.append(f"{method} {target}")
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, json.dumps(status(401, "Unauthorized", "Unauthorized")).encode()
        path, _, query = target.partition("?")
        for prefix, backend in self.backends.items():
            if path == prefix or path.startswith(prefix + "/"):
                if backend is None:
                    name = prefix.split("/services/")[1].split("/")[0].split(":")[0]
                    message = f'no endpoints available for service "{name}"'
                    return 503, json.dumps(status(503, "ServiceUnavailable", message)).encode()
                return _forward(method, backend + path[len(prefix) :] + (f"?{query}" if query else ""), body)
        namespace, _, rest = path.removeprefix("/api/v1/namespaces/").partition("/services/")
        message = (
            f'services "{rest.split("/")[0]}" is forbidden: User "{USER}" cannot get resource "services/proxy" '
            f'in API group "" in the namespace "{namespace}"'
        )
        return 403, json.dumps(status(403, "Forbidden", message)).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                code, data = server.answer(self.command, self.path, self.headers, self.rfile.read(length) or None)
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def _forward(method: str, url: str, body: bytes | None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if body else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
