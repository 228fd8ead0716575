"""The platform's `mlplatform:mesh` config: Linkerd, and the identity PKI a stack may bring.

Kept apart from `config.py` (which embeds it in `PlatformConfig`). The PEM checks
need no crypto library (see `mlplatform.pem`): block types, the issuer key's curve
and that the issuer certificate is for that key. Whether the anchor signed the
issuer, and the certificates' validity, are the user's to get right: Linkerd's
identity controller refuses to start otherwise.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from mlplatform import pem
from mlplatform.configuration import SECRET, ConfigModel, CrossFieldError, is_secret_placeholder

IDENTITY_KEYS = ("trustAnchorPem", "issuerCertPem", "issuerKeyPem")


class MeshIdentityConfig(ConfigModel):
    trust_anchor_pem: str | None = Field(
        None,
        description="PEM of the trust anchor (root CA) certificate(s); several during an anchor rotation. Public.",
    )
    issuer_cert_pem: str | None = Field(
        None, description="PEM of the identity issuer's certificate, signed by the trust anchor. Public."
    )
    issuer_key_pem: str | None = Field(
        None,
        description="PEM of the issuer's unencrypted ECDSA P-256 private key (`EC PRIVATE KEY` or PKCS#8 "
        "`PRIVATE KEY`). Must be a Pulumi secret "
        "(`pulumi config set --secret --path mesh.identity.issuerKeyPem < issuer.key`).",
        json_schema_extra=SECRET,
    )

    @field_validator("trust_anchor_pem")
    @classmethod
    def _anchor_is_certificates(cls, value: str | None) -> str | None:
        if value is not None and not is_secret_placeholder(value):
            pem.certificates(value, at_most_one=False)
        return value

    @field_validator("issuer_cert_pem")
    @classmethod
    def _issuer_is_one_certificate(cls, value: str | None) -> str | None:
        if value is not None and not is_secret_placeholder(value):
            pem.certificates(value, at_most_one=True)
        return value

    @field_validator("issuer_key_pem")
    @classmethod
    def _issuer_key_is_p256(cls, value: str | None) -> str | None:
        if value is not None and not is_secret_placeholder(value):
            pem.p256_private_key(value)
        return value

    @model_validator(mode="after")
    def _all_or_none(self) -> MeshIdentityConfig:
        values = dict(
            zip(IDENTITY_KEYS, (self.trust_anchor_pem, self.issuer_cert_pem, self.issuer_key_pem), strict=True)
        )
        missing = [key for key, value in values.items() if value is None]
        if missing:
            # Reported even when all three are missing: an empty `identity: {}` is a half-done edit.
            given = [key for key in IDENTITY_KEYS if key not in missing]
            raise CrossFieldError(
                f"mesh.identity needs all three of {', '.join(IDENTITY_KEYS)}; missing {', '.join(missing)}"
                + (f" (given: {', '.join(given)})" if given else "")
                + "; or remove mesh.identity and the platform generates the PKI",
                *missing,
            )
        cert, key = self.issuer_cert_pem, self.issuer_key_pem
        assert cert is not None and key is not None  # checked above
        if is_secret_placeholder(cert) or is_secret_placeholder(key):
            return self  # an offline run's stand-in for a secret: there is no key to compare
        if pem.certifies(pem.certificates(cert, at_most_one=True)[0], pem.p256_private_key(key)) is False:
            raise CrossFieldError(
                "issuerCertPem is not the certificate of issuerKeyPem (its public key differs); "
                "give the issuer's certificate and its own key",
                "issuerCertPem",
                "issuerKeyPem",
            )
        return self


class MeshConfig(ConfigModel):
    ha: bool = Field(False, description="Linkerd control plane in HA mode (3 replicas, PDBs, anti-affinity).")
    trust_anchor_validity_hours: int = Field(
        87600,
        ge=8760,
        description="Trust anchor (root CA) lifetime; long-lived, rotated by hand. Not used with `identity`.",
    )
    issuer_validity_hours: int = Field(
        8760,
        ge=720,
        le=17520,
        description="Identity issuer (intermediate CA) lifetime, about a year. Not used with `identity`.",
    )
    smi: bool = Field(True, description="Install the linkerd-smi extension so TrafficSplit works.")
    identity: MeshIdentityConfig | None = Field(
        None,
        description="Bring your own Linkerd identity PKI (all three keys, or none): the platform then creates no "
        "certificates (and needs no tls plugin) and passes these PEMs to the control plane as they are. Their "
        "validity and rotation are yours; the two validity settings above do not apply. Unset: generated "
        "with pulumi-tls.",
    )

    @model_validator(mode="after")
    def _issuer_inside_anchor(self) -> MeshConfig:
        if self.issuer_validity_hours >= self.trust_anchor_validity_hours:
            raise CrossFieldError(
                "issuerValidityHours must be shorter than trustAnchorValidityHours",
                "issuerValidityHours",
                "trustAnchorValidityHours",
            )
        return self
