"""Checks on PEM text that need no crypto library: block types, base64, the ECDSA curve.

The platform's runtime dependencies are pulumi, its providers, pydantic and YAML;
`cryptography` is not one of them (the e2e program environment has only pulumi,
pulumi-kubernetes, pydantic and PyYAML). So what is checked is what the DER
bytes show without parsing ASN.1 in full: the block labels, that each body is
base64 of a DER SEQUENCE, the curve's object identifier in a key, and that a key's
public point appears in a certificate. Signatures and validity dates are not
checked: a mistake there shows up as Linkerd's identity controller refusing to
start, with its own message.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

CERTIFICATE = "CERTIFICATE"
SEC1_EC_KEY = "EC PRIVATE KEY"
PKCS8_KEY = "PRIVATE KEY"
PRIVATE_KEY_LABELS = (SEC1_EC_KEY, PKCS8_KEY)

# DER encodings (tag 06, length, value) of the object identifiers looked for.
ID_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")  # 1.2.840.10045.2.1
PRIME256V1 = bytes.fromhex("06082a8648ce3d030107")  # 1.2.840.10045.3.1.7, NIST P-256
# Other key algorithms, only to name what was given instead.
OTHER_KEY_KINDS = {
    bytes.fromhex("06092a864886f70d010101"): "an RSA key",  # 1.2.840.113549.1.1.1
    bytes.fromhex("06052b81040022"): "an ECDSA P-384 key",  # 1.3.132.0.34
    bytes.fromhex("06052b81040023"): "an ECDSA P-521 key",  # 1.3.132.0.35
    bytes.fromhex("06032b6570"): "an Ed25519 key",  # 1.3.101.112
}
# An uncompressed P-256 point (04 || X || Y) as a BIT STRING with no unused bits: in a
# certificate's SubjectPublicKeyInfo, and in an EC private key's optional [1] publicKey.
P256_POINT_PREFIX = bytes.fromhex("03420004")
P256_POINT_LENGTH = 64
# In a private key the point is the context-tagged [1] publicKey field: searching for the
# tag too keeps 32 random private-key bytes from ever being mistaken for it.
KEY_POINT_PREFIX = bytes.fromhex("a144") + P256_POINT_PREFIX

_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END ([A-Z0-9 ]+)-----", re.DOTALL)


@dataclass(frozen=True)
class PemBlock:
    label: str
    der: bytes


def blocks(text: str) -> list[PemBlock]:
    """The PEM blocks of `text`, in order; ValueError for a malformed one."""
    found = []
    for match in _BLOCK.finditer(text):
        begin, body, end = match.groups()
        if begin != end:
            raise ValueError(f"a PEM block begins as '{begin}' but ends as '{end}'")
        if ":" in body:
            # RFC 1421 headers ("Proc-Type: 4,ENCRYPTED") mark a legacy encrypted key.
            raise ValueError(f"the '{begin}' block has headers (an encrypted key?); it must be unencrypted")
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"the body of the '{begin}' block is not valid base64") from None
        if not der.startswith(b"\x30"):
            raise ValueError(f"the '{begin}' block does not hold a DER structure")
        found.append(PemBlock(begin, der))
    return found


def describe(text: str) -> str:
    """What a PEM value holds, for error messages: its block labels, never its content."""
    try:
        labels = [block.label for block in blocks(text)]
    except ValueError:
        labels = re.findall(r"-----BEGIN ([A-Z0-9 ]+)-----", text)
    if not labels:
        return "no PEM block"
    return "PEM blocks " + ", ".join(f"'{label}'" for label in labels)


def certificates(text: str, *, at_most_one: bool) -> list[PemBlock]:
    """The CERTIFICATE blocks of `text`, which must hold those only (one, with `at_most_one`)."""
    found = blocks(text)
    if not found or any(block.label != CERTIFICATE for block in found):
        wanted = "one 'CERTIFICATE' block" if at_most_one else "one or more 'CERTIFICATE' blocks"
        raise ValueError(f"holds {describe(text)}; allowed: {wanted}")
    if at_most_one and len(found) > 1:
        raise ValueError(f"holds {len(found)} 'CERTIFICATE' blocks; allowed: exactly one")
    return found


def p256_private_key(text: str) -> PemBlock:
    """The one unencrypted ECDSA P-256 private key in `text` (SEC1 or PKCS#8).

    Message texts name block labels only: the value is a secret."""
    found = blocks(text)
    if len(found) != 1 or found[0].label not in PRIVATE_KEY_LABELS:
        raise ValueError(
            f"holds {describe(text)}; allowed: one unencrypted '{SEC1_EC_KEY}' or '{PKCS8_KEY}' (PKCS#8) block"
        )
    key = found[0]
    is_ec = key.label == SEC1_EC_KEY or ID_EC_PUBLIC_KEY in key.der
    if not is_ec or PRIME256V1 not in key.der:
        kind = next((kind for oid, kind in OTHER_KEY_KINDS.items() if oid in key.der), "a key of another kind")
        raise ValueError(
            f"the '{key.label}' block is {kind}, not ECDSA P-256; allowed: an ECDSA P-256 key, the only kind "
            "Linkerd's identity issuer accepts"
        )
    return key


def public_point(key: PemBlock) -> bytes | None:
    """The public point an EC private key carries (optional in SEC1; OpenSSL always writes it)."""
    at = key.der.find(KEY_POINT_PREFIX)
    if at < 0 or len(key.der) < at + len(KEY_POINT_PREFIX) + P256_POINT_LENGTH:
        return None
    start = at + len(KEY_POINT_PREFIX)
    return key.der[start : start + P256_POINT_LENGTH]


def certifies(certificate: PemBlock, key: PemBlock) -> bool | None:
    """Whether `certificate` is for `key`'s public point; None when the key does not carry it."""
    point = public_point(key)
    if point is None:
        return None
    return P256_POINT_PREFIX + point in certificate.der
