"""The control plane of the end-to-end tier's simulated cluster: etcd, kube-apiserver and
kube-controller-manager (its default controllers) on 127.0.0.1.

The API server runs as a cluster's does, with two settings:
`--enable-aggregator-routing`, so admission webhooks and aggregated APIs are
called at their endpoints (pod IPs, which kwok hands out from 127.0.0.0/8; see
simulated_cluster.py), never at ClusterIPs from the service range. The API
server refuses loopback addresses in Endpoints, so those stay empty and no call
is made at all. And `--allow-privileged`, as real clusters have it (the
device plugin's MPS daemon is privileged). An audit log records every write, so
a benchmark can count the API writes a rollout step makes.

The controller manager runs its default controllers: deployments, replicasets,
statefulsets, daemonsets, jobs, endpoints and endpoint slices, namespaces,
service accounts and their tokens, resource quota, the garbage collector (the
Kubernetes provider deletes with foreground propagation, which completes only
when the collector removes the `foregroundDeletion` finalizer), PVC protection.

The serving certificate is self-signed for 127.0.0.1; the admin credential is
a static bearer token in group system:masters.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import secrets
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.servers import free_port, stop_process, wait_until, wait_until_ready

READY_TIMEOUT = 90.0


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _serving_certificate(workdir: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and `localhost`, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-e2e")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / "apiserver.crt", workdir / "apiserver.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return cert_path, key_path


@dataclass
class ControlPlane:
    """etcd and kube-apiserver, started by `start()` and stopped by `stop()`."""

    etcd: str
    kube_apiserver: str
    kube_controller_manager: str
    workdir: Path
    url: str = ""
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    _processes: list[tuple[str, subprocess.Popen, Any]] = field(default_factory=list)

    def start(self) -> ControlPlane:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            etcd_url = self._start_etcd()
            self._start_apiserver(etcd_url)
            self._start_controllers()
        except BaseException:
            self.stop()
            raise
        return self

    def spawn(self, name: str, argv: list[str], *, started_line: str | None = None) -> subprocess.Popen:
        """Start one of the cluster's processes, logging to `<name>.log` in the workdir; stopped by `stop()`.

        With `started_line`, wait until the log holds it (or fail with the log): for the
        processes that have no readiness endpoint without an auth setup of their own."""
        log_path = self.workdir / f"{name}.log"
        log = log_path.open("w")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        self._processes.append((name, process, log))
        if started_line is not None:
            wait_until(
                process,
                lambda: started_line in log_path.read_text(errors="replace"),
                name=name,
                log_path=log_path,
                timeout=READY_TIMEOUT,
                interval=0.3,
            )
        return process

    def _start_etcd(self) -> str:
        client, peer = free_port(), free_port()
        url = f"http://127.0.0.1:{client}"
        process = self.spawn(
            "etcd",
            [
                self.etcd,
                "--name=e2e",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=e2e=http://127.0.0.1:{peer}",
                "--log-level=warn",
            ],
        )
        wait_until_ready(
            process,
            f"{url}/health",
            name="etcd",
            log_path=self.workdir / "etcd.log",
            timeout=READY_TIMEOUT,
            interval=0.2,
        )
        return url

    def _start_apiserver(self, etcd_url: str) -> None:
        cert, key = _serving_certificate(self.workdir)
        # Service account tokens are signed with their own key, shared with the
        # controller manager's token controller.
        account_key, account_public_key = self.workdir / "service-account.key", self.workdir / "service-account.pub"
        signing_key = ec.generate_private_key(ec.SECP256R1())
        _write_key(account_key, signing_key)
        account_public_key.write_bytes(
            signing_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.token},e2e-admin,e2e-admin,"system:masters"\n')
        tokens.chmod(0o600)
        port = free_port()
        self.url = f"https://127.0.0.1:{port}"
        process = self.spawn(
            "kube-apiserver",
            [
                self.kube_apiserver,
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={cert}",
                f"--tls-private-key-file={key}",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={account_public_key}",
                f"--service-account-signing-key-file={account_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                # ClusterIPs are allocated from here, and never dialed: with aggregator
                # routing the API server calls webhooks and APIServices at their
                # endpoints (which stay empty), and no pod really runs to call a Service.
                "--service-cluster-ip-range=10.96.0.0/16",
                "--enable-aggregator-routing=true",
                "--allow-privileged=true",
                f"--audit-policy-file={self._audit_policy()}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                # One API server: priority-and-fairness bookkeeping is all cost here.
                "--enable-priority-and-fairness=false",
            ],
        )
        wait_until_ready(
            process,
            f"{self.url}/readyz",
            name="kube-apiserver",
            log_path=self.workdir / "kube-apiserver.log",
            timeout=READY_TIMEOUT,
            interval=0.5,
            context=self.ssl_context(),
            headers=self._auth(),
        )

    def _audit_policy(self) -> Path:
        """Writes only, at metadata level: what `api_writes` counts, and nothing it need not."""
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(
            json.dumps(
                {
                    "apiVersion": "audit.k8s.io/v1",
                    "kind": "Policy",
                    "omitStages": ["RequestReceived"],
                    "rules": [
                        {"level": "Metadata", "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
                        {"level": "None"},
                    ],
                }
            )
        )
        return policy

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def api_writes(self, since_line: int = 0, *, user: str | None = None) -> list[dict[str, Any]]:
        """The audit log's write events from line `since_line` on (`audit_lines()` marks a point)."""
        events = []
        with self.audit_log.open() as log:
            for number, line in enumerate(log):
                if number < since_line or not line.strip():
                    continue
                event = json.loads(line)
                if event.get("stage") == "ResponseComplete" and (user is None or event["user"]["username"] == user):
                    events.append(event)
        return events

    def audit_lines(self) -> int:
        with self.audit_log.open() as log:
            return sum(1 for _ in log)

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    def _start_controllers(self) -> None:
        kubeconfig = self.admin_kubeconfig
        kubeconfig.write_text(self.kubeconfig())
        kubeconfig.chmod(0o600)
        self.spawn(
            "kube-controller-manager",
            [
                self.kube_controller_manager,
                f"--kubeconfig={kubeconfig}",
                # The default controllers; the token controller signs with the
                # service-account key and publishes the API server's CA.
                f"--service-account-private-key-file={self.workdir / 'service-account.key'}",
                f"--root-ca-file={self.workdir / 'apiserver.crt'}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--cert-dir={self.workdir / 'controller-manager-certs'}",
            ],
            started_line="Started controller",
        )

    def stop(self) -> None:
        for _name, process, log in reversed(self._processes):
            stop_process(process)
            log.close()
        self._processes.clear()

    # -- clients ---------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.workdir / "apiserver.crt"))

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def kubeconfig(self) -> str:
        """An admin kubeconfig for this API server, as the platform stack exports one."""
        ca = (self.workdir / "apiserver.crt").read_bytes()
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "e2e",
                        "cluster": {
                            "server": self.url,
                            "certificate-authority-data": base64.b64encode(ca).decode(),
                        },
                    }
                ],
                "users": [{"name": "e2e-admin", "user": {"token": self.token}}],
                "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "e2e-admin"}}],
                "current-context": "e2e",
            }
        )

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """One API call; None for 404."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {**self._auth(), "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, context=self.ssl_context(), timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise AssertionError(f"{method} {path}: {error.code} {error.read().decode()}") from error

    def find(self, path: str) -> dict[str, Any] | None:
        """The object at `path`, or None when there is none (404)."""
        return self.request("GET", path)

    def get(self, path: str) -> dict[str, Any]:
        """The object at `path`, which must exist: a 404 fails naming the path."""
        found = self.find(path)
        if found is None:
            raise AssertionError(f"GET {path}: 404, expected the object to exist")
        return found

    def items(self, path: str) -> list[dict[str, Any]]:
        listing = self.find(path)
        return listing["items"] if listing else []
