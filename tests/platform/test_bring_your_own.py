"""Mode existing with the Kubernetes plugin only: the stack brings its Linkerd identity PKI
(`mesh.identity`) and its MLflow database password (`mlflow.databasePassword`), and turns
Grafana off, so the program needs neither pulumi_aws, pulumi_tls nor pulumi_random.

The Pulumi engine wants a plugin for every provider package a program loads, and the
e2e tier's program environment (like an air-gapped user's) holds pulumi-kubernetes only.
The proof runs in a fresh interpreter whose import system refuses those three packages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mlplatform.configuration import ConfigError
from mlplatform.tools.offline.engine import Recording, recording_of
from tests.support.helpers import ROOT, deep_merge, platform_config, run_platform
from tests.support.linkerd_pki import Pki, make_pki, private_key_pem
from tests.support.types import (
    AWS_RDS_INSTANCE,
    HELM_RELEASE,
    K8S_SECRET,
    RANDOM_PASSWORD,
    TLS_CERT_REQUEST,
    TLS_LOCALLY_SIGNED_CERT,
    TLS_PRIVATE_KEY,
    TLS_SELF_SIGNED_CERT,
)

RELEASE = HELM_RELEASE
SECRET = K8S_SECRET
RDS = AWS_RDS_INSTANCE
TLS_TYPES = {
    TLS_PRIVATE_KEY,
    TLS_SELF_SIGNED_CERT,
    TLS_CERT_REQUEST,
    TLS_LOCALLY_SIGNED_CERT,
}
PROVIDER_PACKAGES = ("pulumi_aws", "pulumi_tls", "pulumi_random")
KEY_PATH = "mlplatform:mesh.identity.issuerKeyPem"
PASSWORD_PATH = "mlplatform:mlflow.databasePassword"
PASSWORD = "vault-Issued.password~0123456789"

PKI = make_pki()


def _existing(**overrides: Any) -> dict[str, Any]:
    """A valid mode-existing config (in-cluster database, a named bucket), deep-merged with overrides."""
    base = platform_config(
        cluster={"mode": "existing"}, mlflow={"backend": "in-cluster", "artifactBucket": "ml-artifacts"}
    )
    return deep_merge(base, overrides)


def _kubernetes_only(pki: Pki = PKI, **overrides: Any) -> dict[str, Any]:
    """Mode existing with every generated credential brought by the user and Grafana off."""
    base = _existing(
        mesh={"identity": pki.as_config()},
        mlflow={"databasePassword": PASSWORD},
        monitoring={"grafana": False},
    )
    return deep_merge(base, overrides)


# -- the proof: no provider package but Kubernetes is even imported -------------------------
BLOCKED_RUN = """
import importlib.abc, json, sys

BLOCKED = {blocked!r}

class Blocker(importlib.abc.MetaPathFinder):
    # What a virtualenv without these packages does: the import fails.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, Blocker())
from tests.support.helpers import run_platform
values, secret_keys = json.load(sys.stdin)
recording = run_platform(values, secret_keys=tuple(secret_keys))
print(json.dumps({{
    "types": sorted({{r.type for r in recording.resources}}),
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
}}))
"""


def _run_blocked(values: dict[str, Any], secret_keys: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN.format(blocked=PROVIDER_PACKAGES)],
        input=json.dumps([values, list(secret_keys)]),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
        timeout=300,
    )


def test_mode_existing_runs_without_the_aws_tls_and_random_packages():
    """With mesh.identity, mlflow.databasePassword and grafana off, the whole platform declares
    itself in an interpreter where pulumi_aws, pulumi_tls and pulumi_random cannot be imported,
    and registers no resource of those providers: `pulumi up` needs the Kubernetes plugin only."""
    result = _run_blocked(_kubernetes_only(), (KEY_PATH, PASSWORD_PATH))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []
    assert RELEASE in report["types"] and SECRET in report["types"], report["types"]
    foreign = [t for t in report["types"] if t.split(":")[0] in ("aws", "tls", "random")]
    assert foreign == []
    assert all(t.startswith(("kubernetes:", "pulumi:", "mlplatform:")) for t in report["types"]), report["types"]


@pytest.mark.parametrize(
    ("overrides", "needed"),
    [
        pytest.param({"mesh": {"identity": None}}, "pulumi_tls", id="generated-pki-needs-tls"),
        pytest.param({"monitoring": {"grafana": True}}, "pulumi_random", id="grafana-needs-random"),
    ],
)
def test_the_blocker_bites_when_a_generated_credential_is_left(overrides, needed):
    """The control for the proof above: drop one brought credential and the same blocked
    interpreter fails on exactly the package that credential would have spared."""
    values = _kubernetes_only(**overrides)
    result = _run_blocked(values, (KEY_PATH, PASSWORD_PATH))
    assert result.returncode != 0
    assert f"No module named '{needed}'" in result.stderr, result.stderr[-3000:]


# -- what the brought values become ------------------------------------------------------------
@pytest.fixture(scope="module")
def brought() -> Recording:
    return run_platform(_kubernetes_only(), secret_keys=(KEY_PATH, PASSWORD_PATH))


@pytest.fixture(scope="module")
def generated() -> Recording:
    return run_platform(_existing())


def test_brought_pki_reaches_the_control_plane_as_given(brought):
    """Exactly where the generated PEMs go: the chart's trust anchors and issuer TLS values."""
    release = brought.one(RELEASE, "mesh-control-plane")
    values = release.inputs["values"]
    assert values["identityTrustAnchorsPEM"] == PKI.trust_anchor_pem
    assert values["identity"]["issuer"]["tls"] == {"crtPEM": PKI.issuer_cert_pem, "keyPEM": PKI.issuer_key_pem}
    assert release.input_is_secret("values")
    assert [r for r in brought.resources if r.type in TLS_TYPES] == []


def test_brought_password_reaches_postgres_and_the_backend_uri_as_a_secret(brought):
    """The in-cluster Postgres is initialised with the user's password, and MLflow connects with it."""
    postgres = brought.one(SECRET, "mlflow-postgres")
    assert postgres.inputs["stringData"] == {"POSTGRES_PASSWORD": PASSWORD}
    assert postgres.input_is_secret("stringData")
    backend = brought.one(SECRET, "mlflow-backend")
    assert f"mlflow:{PASSWORD}@mlflow-postgres." in backend.inputs["stringData"]["MLFLOW_BACKEND_STORE_URI"]
    assert backend.input_is_secret("stringData")
    assert brought.of_type(RANDOM_PASSWORD) == []


def test_default_mode_existing_still_generates_the_pki_and_passwords(generated):
    """Nothing brought: the platform generates what it always did, with the same logical names."""
    assert sorted(r.name for r in generated.resources if r.type in TLS_TYPES) == [
        "mesh-issuer", "mesh-issuer-csr", "mesh-issuer-key", "mesh-trust-anchor", "mesh-trust-anchor-key",
    ]  # fmt: skip
    assert sorted(r.name for r in generated.of_type(RANDOM_PASSWORD)) == [
        "mlflow-db-password", "monitoring-grafana-admin-password",
    ]  # fmt: skip
    assert [r for r in generated.resources if r.type.startswith("aws:")] == []


def test_brought_password_is_rds_master_password_in_mode_aws():
    """RDS takes the brought password just as cleanly: it becomes the master password, a secret."""
    recording = run_platform(platform_config(mlflow={"databasePassword": PASSWORD}), secret_keys=(PASSWORD_PATH,))
    database = recording.one(RDS)
    assert database.inputs["password"] == PASSWORD
    assert database.input_is_secret("password")
    assert [r.name for r in recording.of_type(RANDOM_PASSWORD)] == ["monitoring-grafana-admin-password"]


def test_sec1_issuer_key_is_accepted():
    """`openssl ecparam -genkey` and `step` write SEC1 `EC PRIVATE KEY` blocks; Linkerd reads both."""
    pki = make_pki(pkcs8=False)
    assert "BEGIN EC PRIVATE KEY" in pki.issuer_key_pem
    recording = run_platform(_kubernetes_only(pki), secret_keys=(KEY_PATH, PASSWORD_PATH))
    keys = recording.one(RELEASE, "mesh-control-plane").inputs["values"]["identity"]["issuer"]["tls"]
    assert keys["keyPEM"] == pki.issuer_key_pem


def test_offline_placeholders_are_not_inspected():
    """`mlplatform render` cannot decrypt `secure:` values and sees `[secret:<key>]`; the PEM and
    password rules must let those through (pulumi up checks the real values)."""
    values = _kubernetes_only()
    values["mesh"]["identity"]["issuerKeyPem"] = f"[secret:{KEY_PATH}]"
    values["mlflow"]["databasePassword"] = f"[secret:{PASSWORD_PATH}]"
    assert run_platform(values, secret_keys=(KEY_PATH, PASSWORD_PATH)).resources


# -- mistakes stop before any resource, and never echo a secret --------------------------------
OTHER = make_pki()
RSA_KEY = private_key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
P384_KEY = private_key_pem(ec.generate_private_key(ec.SECP384R1()))


def _identity(**changes: str | None) -> dict[str, Any]:
    identity = {**PKI.as_config(), **changes}
    return {key: value for key, value in identity.items() if value is not None}


MISTAKES = [
    pytest.param(
        _existing(mesh={"identity": _identity(issuerKeyPem=RSA_KEY)}), (KEY_PATH,),
        (f"{KEY_PATH} = [secret]", "is an RSA key, not ECDSA P-256"), RSA_KEY, id="rsa-issuer-key",
    ),
    pytest.param(
        _existing(mesh={"identity": _identity(issuerKeyPem=P384_KEY)}), (KEY_PATH,),
        (f"{KEY_PATH} = [secret]", "is an ECDSA P-384 key", "allowed: an ECDSA P-256 key"), P384_KEY,
        id="p384-issuer-key",
    ),
    pytest.param(
        _existing(mesh={"identity": _identity(issuerKeyPem=PKI.issuer_cert_pem)}), (KEY_PATH,),
        (f"{KEY_PATH} = [secret]", "holds PEM blocks 'CERTIFICATE'", "allowed: one unencrypted 'EC PRIVATE KEY'"),
        None, id="certificate-as-issuer-key",
    ),
    pytest.param(
        _existing(mesh={"identity": _identity(trustAnchorPem=PKI.issuer_key_pem)}), (KEY_PATH,),
        ("mlplatform:mesh.identity.trustAnchorPem = <PEM blocks 'PRIVATE KEY'>",
         "allowed: one or more 'CERTIFICATE' blocks"),
        PKI.issuer_key_pem, id="private-key-as-trust-anchor",
    ),
    pytest.param(
        _existing(mesh={"identity": _identity(issuerCertPem=PKI.issuer_cert_pem + PKI.trust_anchor_pem)}),
        (KEY_PATH,), ("mlplatform:mesh.identity.issuerCertPem", "holds 2 'CERTIFICATE' blocks; allowed: exactly one"),
        None, id="issuer-chain",
    ),
    pytest.param(
        _existing(mesh={"identity": _identity(issuerKeyPem=None)}), (),
        ("mlplatform:mesh.identity.issuerKeyPem: mesh.identity needs all three", "missing issuerKeyPem",
         "given: trustAnchorPem, issuerCertPem"),
        None, id="missing-issuer-key",
    ),
    pytest.param(
        _existing(mesh={"identity": _identity(trustAnchorPem=None, issuerCertPem=None)}), (KEY_PATH,),
        ("mlplatform:mesh.identity.trustAnchorPem / mlplatform:mesh.identity.issuerCertPem",),
        None, id="missing-certificates",
    ),
    pytest.param(
        _existing(mesh={"identity": _identity(issuerCertPem=OTHER.issuer_cert_pem)}), (KEY_PATH,),
        ("mlplatform:mesh.identity.issuerCertPem / mlplatform:mesh.identity.issuerKeyPem",
         "is not the certificate of issuerKeyPem"),
        None, id="issuer-cert-of-another-key",
    ),
    pytest.param(
        _existing(mesh={"identity": _identity()}), (),
        (f"{KEY_PATH} must be a Pulumi secret", "pulumi config set --secret --path 'mesh.identity.issuerKeyPem'"),
        PKI.issuer_key_pem, id="plain-issuer-key",
    ),
    pytest.param(
        _existing(mlflow={"databasePassword": "short-0123456"}), (PASSWORD_PATH,),
        (f"{PASSWORD_PATH} = [secret]", "has 13 characters; allowed: 16 to 128"), "short-0123456",
        id="short-password",
    ),
    pytest.param(
        _existing(mlflow={"databasePassword": "p@ss:word/with%specials"}), (),
        (f"{PASSWORD_PATH} = [secret]", "allowed: letters, digits and -._~"), "p@ss:word/with%specials",
        id="password-with-uri-specials-given-plain",
    ),
    pytest.param(
        _existing(mlflow={"databasePassword": PASSWORD}), (),
        (f"{PASSWORD_PATH} must be a Pulumi secret",), PASSWORD, id="plain-password",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("values", "secret_keys", "fragments", "never_shown"), MISTAKES)
def test_mistake_stops_before_any_resource(values, secret_keys, fragments, never_shown):
    """Stack, key path, what the value is and what is allowed are named; a secret never appears."""
    with pytest.raises(ConfigError) as caught:
        run_platform(values, secret_keys=secret_keys)
    message = str(caught.value)
    assert "invalid configuration for stack 'dev'" in message
    for fragment in fragments:
        assert fragment in message, message
    if never_shown is not None:
        lines = never_shown.strip().splitlines()
        # A PEM's base64 body, or the whole value when it is one line.
        telling = "".join(lines[1:-1]) if len(lines) > 2 else never_shown
        assert telling[:40] not in message.replace("\n", ""), message
    assert recording_of(caught.value).resources == []
