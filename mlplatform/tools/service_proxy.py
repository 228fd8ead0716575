"""Reaching an in-cluster Service from outside the cluster through the API server's service proxy.

Prometheus and MLflow are ClusterIP Services, and the NetworkPolicies admit
them only from inside the cluster and from the API server. A runner or a
laptop reaches them at
`/api/v1/namespaces/NS/services/NAME:PORT/proxy/...` on the API server, with
the kube credentials the tools already use (`kube.KubeClient`): no public
endpoint, no port-forward, and the RBAC check is `get` on `services/proxy`
for that one Service (the platform grants it to the CI's deploy-models role).

Which Service: the platform's outputs name each as an in-cluster URL
(`http://NAME.NS.svc.cluster.local:PORT`), and `ServiceRef.parse` reads the
namespace, name and port from that URL. The tools keep no default of their
own, so a renamed Service or port reaches them through the outputs.

Two ways to use it:
- `ServiceProxy.get`: one GET, with errors that say what to fix (403: the
  missing verb, resource and the identity; 503: no ready pods). The gate's
  Prometheus client uses it.
- `LoopbackForwarder`: a `kubectl proxy` for one Service, on 127.0.0.1, in
  this process, for a client library that wants a base URL (MLflow). It
  forwards GETs and POSTs with the same credentials.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from mlplatform.tools import kube

FAILED_DEPENDENCY = 424
# `http(s)://<service>.<namespace>.svc[.<cluster domain>][:port][/path]`: an in-cluster URL.
IN_CLUSTER = re.compile(r"^(https?)://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.[a-z0-9.-]+)?(?::(\d+))?(/.*)?$")


class ServiceError(Exception):
    """The Service could not answer. `backend_status`/`backend_body`: the Service itself answered with an
    error (its body passed through as it is), as opposed to the API server or the network refusing."""

    def __init__(self, message: str, backend_status: int | None = None, backend_body: str | None = None):
        super().__init__(message)
        self.backend_status = backend_status
        self.backend_body = backend_body


@dataclass(frozen=True)
class ServiceRef:
    """One Service port, as the API server's proxy names it."""

    namespace: str
    name: str
    port: int
    scheme: str = "http"
    prefix: str = ""
    """A path the in-cluster URL carries (`http://svc.ns.svc:80/prometheus`): the service's base path."""

    @classmethod
    def parse(cls, url: str) -> ServiceRef | None:
        """The Service an in-cluster URL names; None for any other URL (an external one, a loopback one)."""
        match = IN_CLUSTER.match(url)
        if match is None:
            return None
        scheme, name, namespace, port, path = match.groups()
        default_port = 443 if scheme == "https" else 80
        return cls(namespace, name, int(port or default_port), scheme, (path or "").rstrip("/"))

    @property
    def segment(self) -> str:
        """The `services/<segment>/proxy` path segment: also the resource name RBAC authorizes."""
        return f"{self.name}:{self.port}" if self.scheme == "http" else f"https:{self.name}:{self.port}"

    def proxy_path(self, path: str = "") -> str:
        """The API server path of `path` on this Service (`path` starts with `/`, or is empty)."""
        # `:` stays as it is: the API server splits the segment on it (scheme:name:port).
        quoted = (urllib.parse.quote(p, safe=":") for p in (self.namespace, self.segment))
        return "/api/v1/namespaces/{}/services/{}/proxy".format(*quoted) + self.prefix + path

    def describe(self) -> str:
        return f"service {self.namespace}/{self.name} port {self.port}"


class Transport(Protocol):
    """A GET against one service: the body of a 2xx answer, else ServiceError."""

    @property
    def where(self) -> str: ...

    def get(self, path: str, query: dict[str, str]) -> bytes: ...


@dataclass(frozen=True)
class Via:
    """What a caller says about the service for the messages: `Prometheus`, and the override that bypasses
    the proxy (`PROMETHEUS_URL` / `--prometheus-url`)."""

    what: str
    override: str


class ServiceProxy:
    """GETs against one Service through the API server, with the client's credentials."""

    def __init__(self, client: kube.KubeClient, service: ServiceRef, via: Via):
        self.client = client
        self.service = service
        self.via = via

    @property
    def where(self) -> str:
        return f"{self.client.credentials.server}{self.service.proxy_path()}"

    def get(self, path: str, query: dict[str, str]) -> bytes:
        try:
            return self.client.request("GET", self.service.proxy_path(path), query=query, accept="*/*")[1]
        except kube.KubeApiError as err:
            raise self.explain(err) from None
        except kube.KubeError as err:
            raise ServiceError(f"{self.via.what} through the API server's service proxy: {err}") from None

    def explain(self, err: kube.KubeApiError) -> ServiceError:
        """The API server's refusal as what to do about it; the service's own errors pass through."""
        svc, via = self.service, self.via
        head = f"{via.what} at {svc.describe()} through the API server's service proxy"
        bypass = f"set {via.override} to a URL this machine can reach to bypass the proxy"
        if not err.from_api_server:
            return ServiceError(f"{head}: {err.status} {err.detail}", err.status, err.body)
        if err.status in (401, 403):
            return ServiceError(
                f"{head}: {err.status} forbidden. The identity of {self.client.credentials.source} may not "
                f"`get` the resource `services/proxy` named {svc.segment!r} in namespace {svc.namespace!r} "
                f"(the API server: {err.detail}). The platform grants it to the CI's deploy-models role; use "
                f"those credentials, or {bypass}."
            )
        if err.status == 503 and "no endpoints available" in err.detail:
            return ServiceError(
                f"{head}: 503, the service has no ready pods (no endpoints); is {via.what} running? "
                f"`kubectl -n {svc.namespace} get pods,endpoints {svc.name}` (the API server: {err.detail})"
            )
        if err.status == 503:
            return ServiceError(
                f"{head}: 503, the API server could not reach the service's pods ({err.detail}); check that they "
                f"are running and that a NetworkPolicy admits the API server on port {svc.port}"
            )
        if err.status == 404:
            return ServiceError(
                f"{head}: 404, no such service ({err.detail}); is the platform stack up to date with its outputs?"
            )
        return ServiceError(f"{head}: {err.status} {err.detail}")


class LoopbackForwarder:
    """A base URL on 127.0.0.1 that forwards to one Service through the API server, for client libraries
    that take a URL and nothing else (MLflow). Runs in a thread of this process while in its `with` block.

    An API server refusal is answered to the library as it came, and kept in `last_error` explained,
    so the caller can say why the library failed rather than what the library made of it."""

    def __init__(self, proxy: ServiceProxy):
        self.proxy = proxy
        self.last_error: ServiceError | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the forwarder is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> LoopbackForwarder:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="service-proxy", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _forward(self, method: str, target: str, body: bytes | None, content_type: str) -> tuple[int, bytes, str]:
        path, _, raw_query = target.partition("?")
        query = dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True))
        request_path = self.proxy.service.proxy_path(path)
        try:
            status, data = self.proxy.client.request(
                method, request_path, body=body, content_type=content_type, query=query or None, accept="*/*"
            )
            return status, data, "application/json"
        except kube.KubeApiError as err:
            if not err.from_api_server:
                return err.status, err.body.encode(), "application/json"  # the service's own answer
            self.last_error = self.proxy.explain(err)
        except kube.KubeError as err:
            self.last_error = ServiceError(f"{self.proxy.via.what} through the API server's service proxy: {err}")
        # The API server's refusal is final here, and MLflow's client would retry a 5xx for minutes:
        # answer it with a status no client retries, and let the caller read `last_error`.
        return FAILED_DEPENDENCY, str(self.last_error).encode(), "text/plain"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        forwarder = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                content_type = self.headers.get("Content-Type") or "application/json"
                status, data, answer_type = forwarder._forward(self.command, self.path, body, content_type)
                self.send_response(status)
                self.send_header("Content-Type", answer_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _relay

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tools' own output says what happened."""

        return Handler
