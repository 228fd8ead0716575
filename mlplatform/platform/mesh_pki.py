"""Linkerd's identity PKI: the one the stack brings, or one generated with pulumi-tls.

A stack that brings no `mesh.identity` gets a trust anchor and an issuer generated
here. pulumi_tls is imported inside `generated_identity` only: the Pulumi engine
wants the tls plugin for every program that loads pulumi_tls, and a user who
brings their own PKI (or runs with the Kubernetes plugin only) must not need it.

The keys live in the stack's encrypted state and never in a file on someone's
laptop. The trade-off: the trust anchor's private key is in Pulumi state too, so
whoever can read the state can mint mesh identities. A stricter setup keeps the
anchor offline and brings only its certificate and an issuer (`mesh.identity`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from mlplatform.platform.config import MeshConfig

# Linkerd's proxies only accept ECDSA P-256 identity certificates.
KEY_ALGORITHM = "ECDSA"
KEY_CURVE = "P256"
TRUST_ANCHOR_CN = "root.linkerd.cluster.local"
ISSUER_CN = "identity.linkerd.cluster.local"
CA_USES = ["cert_signing", "crl_signing"]


@dataclass
class LinkerdIdentity:
    """What the control plane's identity needs: the trust anchor (public), the issuer's
    certificate (public) and its private key (a secret Output)."""

    trust_anchor_pem: pulumi.Input[str]
    issuer_cert_pem: pulumi.Input[str]
    issuer_key_pem: pulumi.Output[str]


def identity_from_config(config: MeshConfig) -> LinkerdIdentity | None:
    """The PKI the stack brings (`mesh.identity`), or None when the platform generates one."""
    supplied = config.identity
    if supplied is None:
        return None
    anchor, cert, key = supplied.trust_anchor_pem, supplied.issuer_cert_pem, supplied.issuer_key_pem
    assert anchor is not None and cert is not None and key is not None  # MeshIdentityConfig: all or none
    return LinkerdIdentity(
        trust_anchor_pem=anchor,
        issuer_cert_pem=cert,
        # Configuration requires a Pulumi secret; keep it one in the release's inputs and state.
        issuer_key_pem=pulumi.Output.secret(key),
    )


def generated_identity(name: str, config: MeshConfig, *, parent: pulumi.Resource) -> LinkerdIdentity:
    """A self-signed trust anchor and an issuer it signs, children of `parent` (the mesh component).

    Rotation: the issuer is re-issued by `pulumi up` once it is inside its early
    renewal window, and the control plane picks the new one up from its values.
    The trust anchor is not renewed automatically: replacing it breaks every mTLS
    connection until all proxies restart, so it is rotated by hand (bundle old and
    new anchors first).
    """
    # Imported here: a brought PKI must not need the tls plugin (see the module docstring).
    import pulumi_tls as tls

    child = pulumi.ResourceOptions(parent=parent)
    anchor_key = tls.PrivateKey(f"{name}-trust-anchor-key", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=child)
    anchor_key_pem = pulumi.Output.secret(anchor_key.private_key_pem)
    anchor_cert = tls.SelfSignedCert(
        f"{name}-trust-anchor",
        private_key_pem=anchor_key_pem,
        is_ca_certificate=True,
        validity_period_hours=config.trust_anchor_validity_hours,
        allowed_uses=CA_USES,
        subject=tls.SelfSignedCertSubjectArgs(common_name=TRUST_ANCHOR_CN),
        set_subject_key_id=True,
        opts=child,
    )

    issuer_key = tls.PrivateKey(f"{name}-issuer-key", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=child)
    issuer_key_pem = pulumi.Output.secret(issuer_key.private_key_pem)
    issuer_csr = tls.CertRequest(
        f"{name}-issuer-csr",
        private_key_pem=issuer_key_pem,
        subject=tls.CertRequestSubjectArgs(common_name=ISSUER_CN),
        opts=child,
    )
    issuer_cert = tls.LocallySignedCert(
        f"{name}-issuer",
        cert_request_pem=issuer_csr.cert_request_pem,
        ca_cert_pem=anchor_cert.cert_pem,
        ca_private_key_pem=anchor_key_pem,
        is_ca_certificate=True,
        # The issuer signs only leaf (workload) certificates.
        max_path_length=0,
        validity_period_hours=config.issuer_validity_hours,
        # About a month for the default one-year issuer: enough slack that a
        # routine `pulumi up` rotates it well before proxies see it expire.
        early_renewal_hours=config.issuer_validity_hours // 12,
        allowed_uses=CA_USES,
        set_subject_key_id=True,
        opts=child,
    )
    return LinkerdIdentity(
        trust_anchor_pem=anchor_cert.cert_pem, issuer_cert_pem=issuer_cert.cert_pem, issuer_key_pem=issuer_key_pem
    )
