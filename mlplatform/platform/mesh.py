"""Linkerd: identity certificates, the control plane, viz and (optionally) SMI.

Linkerd's Helm charts take the mTLS trust anchor and the identity issuer as
input instead of generating them. Both are declared here with pulumi-tls, so
the keys live in the stack's encrypted state and never in a file on someone's
laptop. The trade-off: the trust anchor's private key is in Pulumi state too,
so whoever can read the state can mint mesh identities. A stricter setup keeps
the anchor offline (or in cert-manager with an external CA) and passes only
its certificate in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from mlplatform.platform.charts_config import ChartConfig
from mlplatform.platform.config import MeshConfig
from mlplatform.platform.helm import pinned_release
from mlplatform.platform.sizing import PlatformSizes

LINKERD_NAMESPACE = "linkerd"
VIZ_NAMESPACE = "linkerd-viz"
SMI_NAMESPACE = "linkerd-smi"

# Linkerd's proxies only accept ECDSA P-256 identity certificates.
KEY_ALGORITHM = "ECDSA"
KEY_CURVE = "P256"
TRUST_ANCHOR_CN = "root.linkerd.cluster.local"
ISSUER_CN = "identity.linkerd.cluster.local"
CA_USES = ["cert_signing", "crl_signing"]

# What upstream's values-ha.yaml sets (charts/linkerd-control-plane/values-ha.yaml),
# except resources: those come from `sizing`, whose prod sizes are upstream's HA ones.
HA_VALUES: dict[str, Any] = {
    "enablePodDisruptionBudget": True,
    "enablePodAntiAffinity": True,
    "deploymentStrategy": {"rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
    "controllerReplicas": 3,
    "webhookFailurePolicy": "Fail",
}


def control_plane_resources(sizes: PlatformSizes) -> dict[str, Any]:
    """Every container of the control plane. `proxy.resources` also sizes proxy-init and
    every proxy the injector adds to meshed pods, the model servers' included."""
    controller = sizes.linkerd_controller.linkerd()
    return {
        "proxy": {"resources": sizes.linkerd_proxy.linkerd()},
        "destinationResources": controller,
        "identityResources": controller,
        "heartbeatResources": controller,
        "proxyInjectorResources": controller,
        "spValidatorResources": controller,
        "policyController": {"resources": controller},
    }


def viz_resources(sizes: PlatformSizes) -> dict[str, Any]:
    component = {"resources": sizes.linkerd_viz.linkerd()}
    return {"metricsAPI": component, "tap": component, "tapInjector": component, "dashboard": component}


@dataclass
class ServiceMeshArgs:
    config: MeshConfig
    crds_chart: ChartConfig
    control_plane_chart: ChartConfig
    viz_chart: ChartConfig
    smi_chart: ChartConfig
    prometheus_url: pulumi.Input[str]
    """The platform's Prometheus; viz queries it instead of running its own."""
    sizes: PlatformSizes
    """CPU and memory of the control plane, the proxies and the extensions."""


class ServiceMesh(pulumi.ComponentResource):
    """Linkerd with certificates managed by Pulumi.

    Rotation: the issuer is re-issued by `pulumi up` once it is inside its early
    renewal window, and the control plane picks the new one up from its values.
    The trust anchor is not renewed automatically: replacing it breaks every
    mTLS connection until all proxies restart, so it is rotated by hand
    (bundle old and new anchors first).

    HA mode follows upstream's values-ha.yaml: three replicas with required
    pod anti-affinity, so the nodes the control plane runs on need at least
    three hosts, and the proxy injector fails closed.
    """

    trust_anchor_pem: pulumi.Output[str]
    traffic_split_apis: list[str]
    gateway_api_available: bool
    crds_release: k8s.helm.v3.Release
    control_plane_release: k8s.helm.v3.Release
    viz_release: k8s.helm.v3.Release
    smi_release: k8s.helm.v3.Release | None

    def __init__(self, name: str, args: ServiceMeshArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:platform:ServiceMesh", name, None, opts)
        config = args.config
        self.smi_release = None

        anchor_key = tls.PrivateKey(
            f"{name}-trust-anchor-key",
            algorithm=KEY_ALGORITHM,
            ecdsa_curve=KEY_CURVE,
            opts=pulumi.ResourceOptions(parent=self),
        )
        anchor_key_pem = pulumi.Output.secret(anchor_key.private_key_pem)
        anchor_cert = tls.SelfSignedCert(
            f"{name}-trust-anchor",
            private_key_pem=anchor_key_pem,
            is_ca_certificate=True,
            validity_period_hours=config.trust_anchor_validity_hours,
            allowed_uses=CA_USES,
            subject=tls.SelfSignedCertSubjectArgs(common_name=TRUST_ANCHOR_CN),
            set_subject_key_id=True,
            opts=pulumi.ResourceOptions(parent=self),
        )

        issuer_key = tls.PrivateKey(
            f"{name}-issuer-key",
            algorithm=KEY_ALGORITHM,
            ecdsa_curve=KEY_CURVE,
            opts=pulumi.ResourceOptions(parent=self),
        )
        issuer_key_pem = pulumi.Output.secret(issuer_key.private_key_pem)
        issuer_csr = tls.CertRequest(
            f"{name}-issuer-csr",
            private_key_pem=issuer_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=ISSUER_CN),
            opts=pulumi.ResourceOptions(parent=self),
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
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.trust_anchor_pem = anchor_cert.cert_pem

        # Current Linkerd no longer installs the Gateway API CRDs by default but
        # its policy controller still watches HTTPRoute/GRPCRoute; installing
        # them here also gives the model stacks HTTPRoute for traffic splitting.
        # This conflicts with Gateway API CRDs installed by something else.
        self.crds_release = pinned_release(
            f"{name}-crds",
            chart="linkerd-crds",
            pin=args.crds_chart,
            namespace=LINKERD_NAMESPACE,
            create_namespace=True,
            values={"installGatewayAPI": True},
            opts=pulumi.ResourceOptions(parent=self),
        )

        control_plane_values: dict[str, Any] = {
            **(HA_VALUES if config.ha else {}),
            **control_plane_resources(args.sizes),
            "identityTrustAnchorsPEM": anchor_cert.cert_pem,
            "identity": {"issuer": {"tls": {"crtPEM": issuer_cert.cert_pem, "keyPEM": issuer_key_pem}}},
        }
        self.control_plane_release = pinned_release(
            f"{name}-control-plane",
            chart="linkerd-control-plane",
            pin=args.control_plane_chart,
            namespace=LINKERD_NAMESPACE,
            values=control_plane_values,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.crds_release]),
        )

        # One Prometheus for the platform: viz reads the proxy metrics that the
        # Monitoring component's PodMonitor scrapes, rather than running a second,
        # short-retention Prometheus of its own.
        self.viz_release = pinned_release(
            f"{name}-viz",
            chart="linkerd-viz",
            pin=args.viz_chart,
            namespace=VIZ_NAMESPACE,
            create_namespace=True,
            values={
                "prometheus": {"enabled": False},
                "prometheusUrl": args.prometheus_url,
                **viz_resources(args.sizes),
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.control_plane_release]),
        )

        if config.smi:
            # Since Linkerd 2.12 the proxy no longer reads SMI TrafficSplit itself;
            # the linkerd-smi extension translates it. Upstream has archived that
            # extension (last chart 1.0.4), so it gets no fixes: new traffic
            # splitting should use Gateway API HTTPRoute backendRefs instead.
            self.smi_release = pinned_release(
                f"{name}-smi",
                chart="linkerd-smi",
                pin=args.smi_chart,
                namespace=SMI_NAMESPACE,
                create_namespace=True,
                values={"adaptor": {"resources": args.sizes.linkerd_smi.k8s()}},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.control_plane_release]),
            )

        self.gateway_api_available = True
        self.traffic_split_apis = ["smi", "gateway"] if config.smi else ["gateway"]

        self.register_outputs(
            {
                "trust_anchor_pem": self.trust_anchor_pem,
                "traffic_split_apis": self.traffic_split_apis,
                "gateway_api_available": self.gateway_api_available,
            }
        )
