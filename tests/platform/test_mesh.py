"""ServiceMesh: Linkerd's certificates, releases and their ordering, under mocks."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from mlplatform.platform.charts_config import ChartsConfig
from mlplatform.platform.config import MeshConfig
from mlplatform.platform.mesh import ServiceMesh, ServiceMeshArgs
from mlplatform.platform.sizing import platform_sizes
from mlplatform.tools.offline.engine import Recording, run_program
from mlplatform.tools.offline.secrets import contains_secret
from tests.support.helpers import build
from tests.support.types import (
    HELM_RELEASE,
    K8S_NAMESPACE,
    K8S_PROVIDER,
    PLATFORM_SERVICE_MESH,
    TLS_CERT_REQUEST,
    TLS_LOCALLY_SIGNED_CERT,
    TLS_PRIVATE_KEY,
    TLS_SELF_SIGNED_CERT,
)

PROMETHEUS_URL = "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090"
RELEASE = HELM_RELEASE
PRIVATE_KEY = TLS_PRIVATE_KEY
SELF_SIGNED = TLS_SELF_SIGNED_CERT
CERT_REQUEST = TLS_CERT_REQUEST
LOCALLY_SIGNED = TLS_LOCALLY_SIGNED_CERT


def _run(**mesh: Any) -> tuple[Recording, ServiceMesh]:
    charts = ChartsConfig()
    built: dict[str, ServiceMesh] = {}

    def program() -> None:
        provider = k8s.Provider("cluster")
        built["mesh"] = ServiceMesh(
            "mesh",
            ServiceMeshArgs(
                config=MeshConfig(**mesh),
                crds_chart=charts.linkerd_crds,
                control_plane_chart=charts.linkerd_control_plane,
                viz_chart=charts.linkerd_viz,
                smi_chart=charts.linkerd_smi,
                prometheus_url=PROMETHEUS_URL,
                sizes=platform_sizes("dev"),
            ),
            opts=pulumi.ResourceOptions(providers=[provider]),
        )

    recording = run_program(program, project="mlplatform", stack="dev")
    return recording, built["mesh"]


@pytest.fixture(scope="module")
def default() -> tuple[Recording, ServiceMesh]:
    return _run()


@pytest.fixture(scope="module")
def ha_without_smi() -> tuple[Recording, ServiceMesh]:
    return _run(ha=True, smi=False)


def _values(recording: Recording, name: str) -> dict[str, Any]:
    return recording.one(RELEASE, name).inputs["values"]


def test_identity_keys_are_ecdsa_p256(default):
    """Linkerd proxies reject identity certificates that are not ECDSA P-256."""
    recording, _ = default
    keys = recording.of_type(PRIVATE_KEY)
    assert {k.name for k in keys} == {"mesh-trust-anchor-key", "mesh-issuer-key"}
    for key in keys:
        assert (key.inputs["algorithm"], key.inputs["ecdsaCurve"]) == ("ECDSA", "P256"), key


def test_trust_anchor_is_a_long_lived_root_ca(default):
    """The anchor must be a CA that can sign the issuer, valid for as long as configured."""
    recording, _ = default
    anchor = recording.one(SELF_SIGNED, "mesh-trust-anchor").inputs
    assert anchor["isCaCertificate"] is True
    assert anchor["validityPeriodHours"] == build(MeshConfig).trust_anchor_validity_hours
    assert anchor["subject"]["commonName"] == "root.linkerd.cluster.local"
    assert {"cert_signing", "crl_signing"} <= set(anchor["allowedUses"])


def test_issuer_is_signed_by_the_trust_anchor(default):
    """Workload certificates only verify if the issuer chains to the anchor the proxies trust."""
    recording, _ = default
    anchor_key = recording.one(PRIVATE_KEY, "mesh-trust-anchor-key")
    anchor = recording.one(SELF_SIGNED, "mesh-trust-anchor")
    csr = recording.one(CERT_REQUEST, "mesh-issuer-csr")
    issuer = recording.one(LOCALLY_SIGNED, "mesh-issuer").inputs
    assert issuer["caCertPem"] == anchor.outputs["certPem"]
    assert issuer["caPrivateKeyPem"] == anchor_key.outputs["privateKeyPem"]
    assert issuer["certRequestPem"] == csr.outputs["certRequestPem"]
    assert csr.inputs["subject"]["commonName"] == "identity.linkerd.cluster.local"
    assert issuer["isCaCertificate"] is True
    assert issuer["validityPeriodHours"] == build(MeshConfig).issuer_validity_hours
    assert 0 < issuer["earlyRenewalHours"] < issuer["validityPeriodHours"]


def test_private_keys_flow_only_as_secrets(default):
    """Keys must stay encrypted in state wherever they are passed on."""
    recording, _ = default
    assert recording.one(SELF_SIGNED, "mesh-trust-anchor").input_is_secret("privateKeyPem")
    assert recording.one(CERT_REQUEST, "mesh-issuer-csr").input_is_secret("privateKeyPem")
    assert recording.one(LOCALLY_SIGNED, "mesh-issuer").input_is_secret("caPrivateKeyPem")


def test_control_plane_gets_the_pulumi_managed_pems(default):
    """The control plane must run with exactly the anchor and issuer Pulumi created."""
    recording, _ = default
    values = _values(recording, "mesh-control-plane")
    assert values["identityTrustAnchorsPEM"] == recording.one(SELF_SIGNED, "mesh-trust-anchor").outputs["certPem"]
    issuer_tls = values["identity"]["issuer"]["tls"]
    assert issuer_tls["crtPEM"] == recording.one(LOCALLY_SIGNED, "mesh-issuer").outputs["certPem"]
    assert issuer_tls["keyPEM"] == recording.one(PRIVATE_KEY, "mesh-issuer-key").outputs["privateKeyPem"]


def test_issuer_key_is_secret_in_the_release(default):
    """The issuer key must not appear in plaintext in the release's state."""
    recording, _ = default
    raw = recording.one(RELEASE, "mesh-control-plane").raw_inputs["values"]
    assert contains_secret(raw)
    assert not contains_secret(raw.get("identityTrustAnchorsPEM")), "the anchor certificate is public"


def test_control_plane_waits_for_its_crds(default):
    """Installing the control plane before its CRDs fails on the first `pulumi up`."""
    recording, _ = default
    control_plane = recording.one(RELEASE, "mesh-control-plane")
    assert recording.depends_on(control_plane, recording.one(RELEASE, "mesh-crds"))
    assert control_plane.inputs["namespace"] == "linkerd"


def test_crds_install_gateway_api(default):
    """Current Linkerd and HTTPRoute traffic splitting need the Gateway API CRDs."""
    recording, mesh = default
    crds = recording.one(RELEASE, "mesh-crds").inputs
    assert crds["values"]["installGatewayAPI"] is True
    assert (crds["name"], crds["namespace"]) == ("linkerd-crds", "linkerd")
    assert "createNamespace" not in crds, "the namespace is declared, so destroy removes it"
    assert mesh.gateway_api_available is True


def test_releases_use_the_pinned_charts(default):
    """Chart upgrades must be reviewed edits of the pinned versions, never a floating tag."""
    recording, _ = default
    charts = ChartsConfig()
    expected = {
        "mesh-crds": ("linkerd-crds", charts.linkerd_crds),
        "mesh-control-plane": ("linkerd-control-plane", charts.linkerd_control_plane),
        "mesh-viz": ("linkerd-viz", charts.linkerd_viz),
        "mesh-smi": ("linkerd-smi", charts.linkerd_smi),
    }
    for name, (chart, pinned) in expected.items():
        release = recording.one(RELEASE, name).inputs
        assert release["chart"] == chart
        assert release["version"] == pinned.version
        assert release["repositoryOpts"]["repo"] == pinned.repo


def test_ha_follows_upstream_values_ha(ha_without_smi):
    """Production needs the control plane to survive a node loss and fail closed."""
    recording, _ = ha_without_smi
    values = _values(recording, "mesh-control-plane")
    assert values["controllerReplicas"] == 3
    assert values["enablePodAntiAffinity"] is True
    assert values["enablePodDisruptionBudget"] is True
    assert values["webhookFailurePolicy"] == "Fail"


def test_every_control_plane_container_is_sized(default):
    """Resources come from `sizing` (by environment, not by HA): the proxy, proxy-init and each controller."""
    recording, _ = default
    values = _values(recording, "mesh-control-plane")
    dev = platform_sizes("dev")
    assert values["proxy"]["resources"] == dev.linkerd_proxy.linkerd()
    for key in (
        "destinationResources",
        "identityResources",
        "heartbeatResources",
        "proxyInjectorResources",
        "spValidatorResources",
    ):
        assert values[key] == dev.linkerd_controller.linkerd(), key
    assert values["policyController"]["resources"] == dev.linkerd_controller.linkerd()


def test_no_ha_keeps_chart_defaults(default):
    """Dev clusters with few nodes cannot schedule three anti-affine replicas."""
    recording, _ = default
    values = _values(recording, "mesh-control-plane")
    for key in ("controllerReplicas", "enablePodAntiAffinity", "enablePodDisruptionBudget", "webhookFailurePolicy"):
        assert key not in values


def test_viz_uses_the_platform_prometheus(default):
    """Viz must read the proxies' metrics from the platform Prometheus, not run a second one."""
    recording, _ = default
    viz = recording.one(RELEASE, "mesh-viz")
    assert viz.inputs["values"]["prometheus"] == {"enabled": False}
    assert viz.inputs["values"]["prometheusUrl"] == PROMETHEUS_URL
    assert viz.inputs["namespace"] == "linkerd-viz"
    assert recording.depends_on(viz, recording.one(RELEASE, "mesh-control-plane"))


def test_smi_installed_when_enabled(default):
    """TrafficSplit only works with the linkerd-smi extension since Linkerd 2.12."""
    recording, mesh = default
    smi = recording.one(RELEASE, "mesh-smi")
    assert smi.inputs["namespace"] == "linkerd-smi"
    assert recording.depends_on(smi, recording.one(RELEASE, "mesh-control-plane"))
    assert mesh.smi_release is not None
    assert mesh.traffic_split_apis == ["smi", "gateway"]


def test_smi_absent_when_disabled(ha_without_smi):
    """Model stacks read traffic_split_apis to choose HTTPRoute when SMI is not installed."""
    recording, mesh = ha_without_smi
    assert [r.name for r in recording.of_type(RELEASE) if r.name == "mesh-smi"] == []
    assert mesh.smi_release is None
    assert mesh.traffic_split_apis == ["gateway"]


def test_releases_inherit_the_components_kubernetes_provider(default):
    """Releases installed through the default provider would land in whatever cluster kubeconfig points at."""
    recording, _ = default
    component = recording.one(PLATFORM_SERVICE_MESH, "mesh")
    provider = recording.one(K8S_PROVIDER, "cluster")
    releases = recording.of_type(RELEASE)
    assert releases
    for release in releases:
        assert release.parent == component.urn, release
        assert release.provider.startswith(provider.urn + "::"), release


def test_chart_namespaces_are_declared_as_linkerd_install_labels_them(default):
    """Declared (Helm never deletes a namespace it created), with `linkerd install`'s labels."""
    recording, _mesh = default
    namespaces = {r.metadata["name"]: r.metadata for r in recording.of_type(K8S_NAMESPACE)}
    assert set(namespaces) == {"linkerd", "linkerd-viz", "linkerd-smi"}
    control_plane = namespaces["linkerd"]
    assert control_plane["labels"]["config.linkerd.io/admission-webhooks"] == "disabled"
    assert control_plane["labels"]["linkerd.io/is-control-plane"] == "true"
    assert control_plane["annotations"] == {"linkerd.io/inject": "disabled"}
    assert namespaces["linkerd-viz"]["labels"]["linkerd.io/extension"] == "viz"
    assert namespaces["linkerd-smi"]["labels"]["linkerd.io/extension"] == "smi"
    for release in recording.of_type(RELEASE):
        assert "createNamespace" not in release.inputs, release.name
