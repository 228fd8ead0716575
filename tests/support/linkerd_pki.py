"""A real Linkerd identity PKI for tests: a P-256 trust anchor and an issuer it signs.

Made with `cryptography` (a test dependency, not a runtime one), as `step certificate
create` would for Linkerd's docs: the anchor a self-signed root CA, the issuer an
intermediate CA with path length 0.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pki:
    trust_anchor_pem: str
    issuer_cert_pem: str
    issuer_key_pem: str

    def as_config(self) -> dict[str, str]:
        """The `mlplatform:mesh.identity` object."""
        return {
            "trustAnchorPem": self.trust_anchor_pem,
            "issuerCertPem": self.issuer_cert_pem,
            "issuerKeyPem": self.issuer_key_pem,
        }


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca_cert(subject_key, subject: str, issuer_key, issuer: str, path_length: int | None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def private_key_pem(key, *, pkcs8: bool = True) -> str:
    fmt = serialization.PrivateFormat.PKCS8 if pkcs8 else serialization.PrivateFormat.TraditionalOpenSSL
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def make_pki(*, pkcs8: bool = True) -> Pki:
    anchor_key = ec.generate_private_key(ec.SECP256R1())
    anchor = _ca_cert(anchor_key, "root.linkerd.cluster.local", anchor_key, "root.linkerd.cluster.local", None)
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    issuer = _ca_cert(issuer_key, "identity.linkerd.cluster.local", anchor_key, "root.linkerd.cluster.local", 0)
    return Pki(cert_pem(anchor), cert_pem(issuer), private_key_pem(issuer_key, pkcs8=pkcs8))
