"""A local Kubernetes control plane for the end-to-end tier: etcd, kube-apiserver and
kube-controller-manager on 127.0.0.1.

There is no kubelet or scheduler: objects are stored, validated, defaulted and
served exactly as a cluster's API server does, but no pod ever runs. That is
what `pulumi up` talks to, so it is enough to show the engine's diffs,
replacements and deletes against a real API. The controller-manager runs only
three controllers: the two that finish deletes, the garbage collector (the
Kubernetes provider deletes with foreground propagation, which completes only
when the collector removes the object's `foregroundDeletion` finalizer) and PVC
protection (which removes `kubernetes.io/pvc-protection` from a claim no pod
uses); and the resource-quota controller, which fills in a quota's status, the
sign the provider waits for before it calls a team's GPU quota created.

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

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.servers import free_port, stop_process, wait_until, wait_until_ready

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
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
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

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = (self.workdir / f"{name}.log").open("w")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        self._processes.append((name, process, log))
        return process

    def _start_etcd(self) -> str:
        client, peer = free_port(), free_port()
        url = f"http://127.0.0.1:{client}"
        process = self._spawn(
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
            process, f"{url}/health", name="etcd", log_path=self.workdir / "etcd.log", timeout=READY_TIMEOUT,
            interval=0.2,
        )
        return url

    def _start_apiserver(self, etcd_url: str) -> None:
        cert, key = _serving_certificate(self.workdir)
        # Service account tokens are signed with their own key; nothing here
        # mints any, but the API server refuses to start without one.
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
        process = self._spawn(
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
                "--service-cluster-ip-range=10.96.0.0/16",
                # One API server and no aggregated APIs: priority-and-fairness
                # bookkeeping is all cost here.
                "--enable-priority-and-fairness=false",
            ],
        )
        wait_until_ready(
            process, f"{self.url}/readyz", name="kube-apiserver", log_path=self.workdir / "kube-apiserver.log",
            timeout=READY_TIMEOUT, interval=0.5, context=self.ssl_context(), headers=self._auth(),
        )

    def _start_controllers(self) -> None:
        kubeconfig = self.workdir / "admin.kubeconfig"
        kubeconfig.write_text(self.kubeconfig())
        kubeconfig.chmod(0o600)
        process = self._spawn(
            "kube-controller-manager",
            [
                self.kube_controller_manager,
                f"--kubeconfig={kubeconfig}",
                "--controllers=garbagecollector,pvc-protection,resourcequota",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--cert-dir={self.workdir / 'controller-manager-certs'}",
            ],
        )
        # No readiness endpoint without its own auth setup: wait until it logs
        # that it started its controllers, or fail with its log.
        log = self.workdir / "kube-controller-manager.log"
        wait_until(
            process, lambda: "Started controller" in log.read_text(errors="replace"),
            name="kube-controller-manager", log_path=log, timeout=READY_TIMEOUT, interval=0.3,
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

    def get(self, path: str) -> dict[str, Any] | None:
        return self.request("GET", path)

    def items(self, path: str) -> list[dict[str, Any]]:
        listing = self.get(path)
        return listing["items"] if listing else []


def start_control_plane(tools: dict[str, str], workdir: Path) -> ControlPlane:
    """Start the control plane from the binaries scripts/e2e-tools.sh reported."""
    try:
        return ControlPlane(
            etcd=tools["ETCD"],
            kube_apiserver=tools["kube-apiserver"],
            kube_controller_manager=tools["kube-controller-manager"],
            workdir=workdir,
        ).start()
    except OSError as error:
        pytest.fail(f"could not start the control plane: {error}")
