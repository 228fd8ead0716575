"""The real platform stack in the e2e tier: the root project, up on the simulated cluster.

`provision` copies the root project (Pulumi.yaml, __main__.py) and the stack
file kept with the tests (platform/Pulumi.sim.yaml) into a temp project, sets
what exists only at run time (the cluster's kubeconfig, the chart mirror's URL)
and the values the sim-only settings supply, and runs `pulumi up`.

SIM_ONLY_SETTINGS names every setting the stack file makes because this is a
simulated cluster on a machine without some plugins, with the reason; a test
keeps it in step with the file. Nothing else differs from a real cluster in
mode existing: the program has no test-only branch.
"""

from __future__ import annotations

import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.e2e.control_plane import ControlPlane
from tests.e2e.pulumi_cli import PulumiCli
from tests.support.helpers import ROOT
from tests.support.linkerd_pki import make_pki

STACK = "sim"
STACK_FILE = Path(__file__).parent / "platform" / f"Pulumi.{STACK}.yaml"
STACK_REFERENCE = f"organization/mlplatform/{STACK}"

# key path under `mlplatform:` -> why the simulated cluster's stack sets it.
SIM_ONLY_SETTINGS = {
    "mesh.identity": (
        "Linkerd's trust anchor and issuer are supplied, not generated: the pulumi-tls provider plugin "
        "cannot be built here (the Go module proxy does not serve github.com/pulumi/pulumi-tls/provider)"
    ),
    "mlflow.databasePassword": (
        "the in-cluster Postgres password is supplied, not generated: the pulumi-random provider plugin "
        "cannot be built here (the Go module proxy does not serve github.com/pulumi/pulumi-random/provider)"
    ),
    "monitoring.grafana": "off: Grafana's admin password comes from pulumi-random, which cannot be built here",
}
# Admission webhooks the platform's charts install, and the failure policy each keeps
# (the charts' defaults). No container runs on kwok's nodes and their Endpoints stay
# empty (loopback pod IPs), so a call to any of them fails with "no endpoints
# available"; with Ignore, the API server admits the request unchecked, as a real
# cluster does while these pods are down.
WEBHOOKS = {
    ("mutating", "linkerd-proxy-injector-webhook-config"): "Ignore",
    ("validating", "linkerd-sp-validator-webhook-config"): "Ignore",
    ("validating", "linkerd-policy-validator-webhook-config"): "Ignore",
    ("mutating", "linkerd-tap-injector-webhook-config"): "Ignore",
    ("mutating", "kube-prometheus-stack-admission"): "Ignore",
    ("validating", "kube-prometheus-stack-admission"): "Ignore",
}


def stack_settings() -> dict:
    return yaml.safe_load(STACK_FILE.read_text())["config"]


# Cluster-scoped kinds a platform may leave behind, by list path.
CLUSTER_SCOPED = {
    "Namespace": "/api/v1/namespaces",
    "PersistentVolume": "/api/v1/persistentvolumes",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "MutatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    "ValidatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    "APIService": "/apis/apiregistration.k8s.io/v1/apiservices",
    "PriorityClass": "/apis/scheduling.k8s.io/v1/priorityclasses",
    "StorageClass": "/apis/storage.k8s.io/v1/storageclasses",
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
}


def cluster_snapshot(api: ControlPlane) -> set[tuple[str, str]]:
    """Every object of CLUSTER_SCOPED's kinds, but the API server's local APIServices: it keeps one
    per served group by itself (a CRD's group among them), so they come and go with the CRDs."""
    return {
        (kind, item["metadata"]["name"])
        for kind, path in CLUSTER_SCOPED.items()
        for item in api.items(path)
        if not (kind == "APIService" and not item["spec"].get("service"))
    }


@dataclass
class PlatformStack:
    project: Path
    reference: str
    chart_mirror: str | None
    up_seconds: float
    before: set[tuple[str, str]]
    """The cluster-scoped objects the cluster had before the platform."""


def assert_nothing_left(api: ControlPlane, stack: PlatformStack) -> list[str]:
    """After the platform's destroy: only CRDs (retained by design) may remain of what it added.

    Namespaced objects went with their namespaces, which must all be gone.
    Returns the retained CRDs' names."""
    added = cluster_snapshot(api) - stack.before
    leftovers = sorted(f"{kind}/{name}" for kind, name in added if kind != "CustomResourceDefinition")
    assert leftovers == [], f"the platform's destroy left these behind: {leftovers}"
    return sorted(name for kind, name in added if kind == "CustomResourceDefinition")


def provision(pulumi: PulumiCli, api: ControlPlane, workdir: Path, *, chart_mirror: str | None) -> PlatformStack:
    """`chart_mirror` None: each release from the repository the platform pins."""
    before = cluster_snapshot(api)
    kubeconfig = api.kubeconfig()
    project = workdir / "platform"
    project.mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, project / name)
    shutil.copy(STACK_FILE, project / STACK_FILE.name)
    pulumi.stack_init(project, STACK)
    identity = make_pki()
    for path, value, secret in (
        ("cluster.kubeconfig", kubeconfig, True),
        ("mesh.identity.trustAnchorPem", identity.trust_anchor_pem, False),
        ("mesh.identity.issuerCertPem", identity.issuer_cert_pem, False),
        ("mesh.identity.issuerKeyPem", identity.issuer_key_pem, True),
        ("mlflow.databasePassword", secrets.token_urlsafe(24), True),
    ):
        pulumi.config_set(project, STACK, f"mlplatform:{path}", value, secret=secret, path=True)
    if chart_mirror:
        pulumi.config_set(project, STACK, "mlplatform:chartMirror", chart_mirror)
    started = time.monotonic()
    pulumi.up(project, STACK)
    return PlatformStack(
        project=project,
        reference=STACK_REFERENCE,
        chart_mirror=chart_mirror,
        up_seconds=time.monotonic() - started,
        before=before,
    )
