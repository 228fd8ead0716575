"""What the wiring check may take as existing without finding it in the render.

Charts are not templated offline, and EKS creates some objects itself. A reference
that resolves to neither the render nor these tables is a wiring failure, so the
tables stay short: an entry is added only when one of our objects refers to it,
and each says why it exists. An entry for a chart applies only to a check whose
render installs that chart (a `kubernetes:helm.sh/v3:Release` of it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ANY_NAMESPACE = "*"
DEFAULT_STORAGE_CLASS = "(default)"
"""The name a PVC without `storageClassName` refers to: whichever class is marked default."""


@dataclass(frozen=True)
class Provided:
    """One object the cluster has although the render does not declare it."""

    kind: str
    namespace: str | None
    """None for cluster-scoped kinds; ANY_NAMESPACE for one in every namespace."""
    name: str
    reason: str
    labels: dict[str, str] = field(default_factory=dict)
    """For a Pod: the labels our selectors may match (a chart's pods, e.g. an exporter's)."""
    port_names: tuple[str, ...] = ()
    """For a Pod: the container port names our monitors and Services may use."""


@dataclass(frozen=True)
class Injection:
    """What an admission webhook a chart installs adds to the pods it mutates."""

    opt_in_annotation: str
    """Pod or namespace annotation; "enabled" opts in, "disabled" on the pod opts out."""
    container: str
    port_names: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    workload_label_prefix: str = ""
    """Label `<prefix><kind>: <owner name>` the webhook records on each pod."""
    reason: str = ""


# -- EKS and Kubernetes itself ----------------------------------------------------------
# Not listed on purpose: EKS's `gp2` StorageClass. Nothing names it, and since
# Kubernetes 1.30 EKS creates it without the is-default-class annotation, so it does
# not answer a PVC that relies on the default class either.
EKS_PROVIDED: tuple[Provided, ...] = (
    Provided(
        "ServiceAccount",
        ANY_NAMESPACE,
        "default",
        "kube-controller-manager's serviceaccount controller creates `default` in every "
        "namespace; a pod without serviceAccountName runs as it.",
    ),
)

# -- what each pinned Helm release creates, keyed by chart ----------------------------------
CHART_PROVIDED: dict[str, tuple[Provided, ...]] = {
    "kube-prometheus-stack": (
        Provided(
            "ServiceAccount",
            "monitoring",
            "kube-prometheus-stack-prometheus",
            "Prometheus runs as `<fullnameOverride>-prometheus`; policies admitting its scrapes name it.",
        ),
    ),
}

CHART_INJECTIONS: dict[str, Injection] = {
    # linkerd-control-plane's proxy injector: the PodMonitor `linkerd-proxies` selects
    # meshed pods by the control-plane label and scrapes the proxy's admin port.
    "linkerd-control-plane": Injection(
        opt_in_annotation="linkerd.io/inject",
        container="linkerd-proxy",
        port_names=("linkerd-proxy", "linkerd-admin"),
        labels={"linkerd.io/control-plane-ns": "{release_namespace}"},
        workload_label_prefix="linkerd.io/proxy-",
        reason="The injector adds the proxy container (ports linkerd-proxy, linkerd-admin) and the "
        "linkerd.io/control-plane-ns and linkerd.io/proxy-<kind> labels to every meshed pod.",
    ),
}
