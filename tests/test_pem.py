"""`mlplatform.pem`: what the identity checks see in PEM text, without a crypto library.

The keys and certificates are real ones made with `cryptography` (a test dependency),
so a check that matched on the wrong bytes would fail here."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mlplatform import pem
from tests.support.linkerd_pki import make_pki, private_key_pem

PKI = make_pki()


def test_issuer_key_and_certificate_pair_up():
    """The key's public point is found in its own certificate, not in another issuer's."""
    key = pem.p256_private_key(PKI.issuer_key_pem)
    (cert,) = pem.certificates(PKI.issuer_cert_pem, at_most_one=True)
    (other,) = pem.certificates(make_pki().issuer_cert_pem, at_most_one=True)
    assert pem.certifies(cert, key) is True
    assert pem.certifies(other, key) is False


def test_key_without_its_public_point_is_not_paired():
    """SEC1 makes the public key optional; without it the pair check says nothing rather than guess."""
    key = pem.p256_private_key(PKI.issuer_key_pem)
    stripped = pem.PemBlock(key.label, key.der.replace(pem.KEY_POINT_PREFIX, b"\x00" * len(pem.KEY_POINT_PREFIX)))
    (cert,) = pem.certificates(PKI.issuer_cert_pem, at_most_one=True)
    assert pem.certifies(cert, stripped) is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param(private_key_pem(ed25519.Ed25519PrivateKey.generate()), "is an Ed25519 key", id="ed25519"),
        pytest.param(
            ec.generate_private_key(ec.SECP256R1())
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"passphrase"),
            )
            .decode(),
            "holds PEM blocks 'ENCRYPTED PRIVATE KEY'",
            id="encrypted-pkcs8",
        ),
        pytest.param(
            PKI.issuer_key_pem + PKI.issuer_key_pem, "holds PEM blocks 'PRIVATE KEY', 'PRIVATE KEY'", id="two-keys"
        ),
        pytest.param("not a pem", "holds no PEM block", id="no-pem"),
        pytest.param(
            PKI.issuer_key_pem.replace("-----END PRIVATE KEY-----", "-----END EC PRIVATE KEY-----"),
            "begins as 'PRIVATE KEY' but ends as 'EC PRIVATE KEY'",
            id="mismatched-markers",
        ),
        pytest.param(
            "-----BEGIN PRIVATE KEY-----\nnot*base64\n-----END PRIVATE KEY-----\n", "not valid base64", id="bad-base64"
        ),
    ],
)
def test_issuer_key_mistakes(text, fragment):
    with pytest.raises(ValueError) as caught:
        pem.p256_private_key(text)
    assert fragment in str(caught.value)


def test_describe_names_blocks_never_content():
    described = pem.describe(PKI.trust_anchor_pem + PKI.issuer_key_pem)
    assert described == "PEM blocks 'CERTIFICATE', 'PRIVATE KEY'"
