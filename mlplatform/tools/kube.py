"""A small Kubernetes API client for the tools: the kubeconfig as kubectl reads it, and HTTPS requests.

Why not the `kubernetes` package: the tools need GET and merge-PATCH of a few
objects (the rollout status) and, later, the API server's service proxy. The
official client is a large generated dependency whose exec-plugin and
client-certificate handling is what we would need anyway; the standard library
does the rest.

Credentials, in kubectl's order: `KUBECONFIG` (the first file of the list, as
kubectl merges them only for contexts) or `~/.kube/config`; else the in-cluster
service account (`KUBERNETES_SERVICE_HOST`, the mounted token and CA). From the
current context's user: a client certificate (`client-certificate(-data)` and
key), a bearer `token`/`tokenFile`, or an `exec` credential plugin
(`aws eks get-token`), whose ExecCredential may carry a token or a certificate.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """The API server could not be reached, or the kubeconfig does not say how."""


class KubeApiError(KubeError):
    """The API server answered with an error status."""

    def __init__(self, method: str, path: str, status: int, body: str):
        self.status = status
        self.body = body
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            parsed = None
        # The API server's own refusals are `Status` objects; anything else came from behind it
        # (a service proxy passes the backend's answer through as it is).
        self.from_api_server = isinstance(parsed, dict) and parsed.get("kind") == "Status"
        self.detail = str(parsed.get("message", body)) if isinstance(parsed, dict) else body
        super().__init__(f"{method} {path}: {status} {self.detail}".strip())


@dataclass
class Credentials:
    """Where the API server is and how to prove who we are to it."""

    server: str
    ca_data: bytes | None = None
    insecure: bool = False
    token: str | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    source: str = ""
    impersonate_user: str | None = None
    """kubeconfig `as` / `as-groups`, as kubectl sends them: `Impersonate-User` / `Impersonate-Group`."""
    impersonate_groups: tuple[str, ...] = ()
    exec_config: dict[str, Any] | None = field(default=None, repr=False)


def _data_or_file(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        return (base / entry[key]).expanduser().read_bytes()
    return None


def _named(config: dict[str, Any], section: str, name: str, path: Path) -> dict[str, Any]:
    for item in config.get(section) or []:
        if item.get("name") == name:
            return item.get(section.rstrip("s")) or {}
    raise KubeError(f"{path}: no {section.rstrip('s')} named {name!r}")


def from_kubeconfig(path: Path, context: str | None = None) -> Credentials:
    """The credentials of `context` (default: current-context) in the kubeconfig at `path`."""
    try:
        config = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise KubeError(f"cannot read the kubeconfig {path}: {err.strerror or err}") from None
    name = context or config.get("current-context")
    if not name:
        raise KubeError(f"{path}: no current-context; pass a context")
    ctx = _named(config, "contexts", name, path)
    cluster = _named(config, "clusters", ctx.get("cluster", ""), path)
    user = _named(config, "users", ctx.get("user", ""), path) if ctx.get("user") else {}
    base = path.parent
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = (base / user["tokenFile"]).read_text().strip()
    return Credentials(
        server=cluster["server"].rstrip("/"),
        ca_data=_data_or_file(cluster, "certificate-authority", base),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        token=token,
        cert_data=_data_or_file(user, "client-certificate", base),
        key_data=_data_or_file(user, "client-key", base),
        source=f"kubeconfig {path} context {name}",
        impersonate_user=user.get("as"),
        impersonate_groups=tuple(user.get("as-groups") or ()),
        exec_config=user.get("exec"),
    )


def in_cluster() -> Credentials:
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    return Credentials(
        server=f"https://{host}:{port}",
        ca_data=(SERVICE_ACCOUNT / "ca.crt").read_bytes(),
        token=(SERVICE_ACCOUNT / "token").read_text().strip(),
        source="in-cluster service account",
    )


def discover(context: str | None = None) -> Credentials:
    """kubectl's order: $KUBECONFIG, ~/.kube/config, then the in-cluster service account."""
    listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return from_kubeconfig(Path(listed[0]), context)
    default = Path.home() / ".kube" / "config"
    if default.is_file():
        return from_kubeconfig(default, context)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and (SERVICE_ACCOUNT / "token").is_file():
        return in_cluster()
    raise KubeError(
        "no Kubernetes credentials: set KUBECONFIG (e.g. `aws eks update-kubeconfig`), or run in a pod "
        "with a service account"
    )


def run_exec_plugin(spec: dict[str, Any]) -> dict[str, Any]:
    """Run an exec credential plugin (client.authentication.k8s.io) and return its `status`."""
    env = {**os.environ, **{e["name"]: e["value"] for e in spec.get("env") or []}}
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": spec.get("apiVersion"), "kind": "ExecCredential", "spec": {"interactive": False}}
    )
    command = [spec["command"], *(spec.get("args") or [])]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise KubeError(f"credential plugin {spec['command']} failed to run: {err}") from None
    if done.returncode != 0:
        raise KubeError(f"credential plugin `{' '.join(command)}` exited {done.returncode}: {done.stderr.strip()}")
    try:
        return json.loads(done.stdout)["status"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise KubeError(f"credential plugin `{' '.join(command)}` did not print an ExecCredential") from None


class KubeClient:
    """HTTPS requests to one API server with one identity."""

    def __init__(self, credentials: Credentials, timeout: float = 10.0):
        self.credentials = credentials
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None
        self._exec_status: dict[str, Any] | None = None

    @classmethod
    def discover(cls, context: str | None = None, timeout: float = 10.0) -> KubeClient:
        return cls(discover(context), timeout)

    def _identity(self) -> tuple[str | None, bytes | None, bytes | None]:
        c = self.credentials
        if c.exec_config and self._exec_status is None:
            self._exec_status = run_exec_plugin(c.exec_config)
        status = self._exec_status or {}
        token = status.get("token") or c.token
        cert = status.get("clientCertificateData", "").encode() or c.cert_data
        key = status.get("clientKeyData", "").encode() or c.key_data
        return token, cert, key

    def _ssl(self, cert: bytes | None, key: bytes | None) -> ssl.SSLContext | None:
        if not self.credentials.server.startswith("https://"):
            return None
        if self._context is None:
            context = ssl.create_default_context()
            if self.credentials.insecure:
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            elif self.credentials.ca_data:
                context.load_verify_locations(cadata=self.credentials.ca_data.decode())
            if cert and key:
                # ssl loads a client certificate only from files: private, and gone once loaded.
                with tempfile.TemporaryDirectory() as directory:
                    cert_file, key_file = Path(directory, "tls.crt"), Path(directory, "tls.key")
                    for file, data in ((cert_file, cert), (key_file, key)):
                        file.touch(mode=0o600)
                        file.write_bytes(data)
                    context.load_cert_chain(cert_file, key_file)
            self._context = context
        return self._context

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
        accept: str = "application/json",
    ) -> tuple[int, bytes]:
        """One request to `path` (e.g. `/api/v1/namespaces`, or a service proxy path). Any 2xx is returned;
        an error status raises KubeApiError, an unreachable server KubeError. `body`: bytes as they are,
        anything else as JSON."""
        token, cert, key = self._identity()
        url = self.credentials.server + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = content_type
        if token:
            headers["Authorization"] = f"Bearer {token}"
        headers.update(_impersonation(self.credentials))
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl(cert, key)) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            raise KubeApiError(method, path, err.code, err.read().decode(errors="replace")) from None
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            reason = getattr(err, "reason", err)
            server, source = self.credentials.server, self.credentials.source
            raise KubeError(f"cannot reach the Kubernetes API server {server} ({source}): {reason}") from None

    def get(self, path: str) -> dict[str, Any]:
        return json.loads(self.request("GET", path)[1])

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386): keys given replace, `None` deletes, others stay."""
        return json.loads(self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)[1])


def _impersonation(credentials: Credentials) -> dict[str, str]:
    if not credentials.impersonate_user:
        return {}
    groups = credentials.impersonate_groups
    if len(groups) > 1:
        # urllib sends one line per header name, and the API server reads each Impersonate-Group
        # line as one group: a comma-joined value would be one group named "a,b".
        raise KubeError(f"{credentials.source}: `as-groups` lists {len(groups)} groups; this client sends at most one")
    return {"Impersonate-User": credentials.impersonate_user, **({"Impersonate-Group": groups[0]} if groups else {})}


def custom_object_path(group: str, version: str, namespace: str, plural: str, name: str, status: bool = False) -> str:
    quoted = [urllib.parse.quote(p, safe="") for p in (group, version, namespace, plural, name)]
    path = "/apis/{}/{}/namespaces/{}/{}/{}".format(*quoted)
    return path + "/status" if status else path
