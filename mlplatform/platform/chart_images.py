"""Each pinned chart's image values, and what they become under `mlplatform:imageRegistry`.

A chart names its images in its own values, each its own way: a `registry` beside
a `repository`, one `name` holding both, or one default registry for every image
of the chart. `CHART_IMAGES` lists, per chart, every value that says where an
image comes from and the upstream value it has at the pinned version, including
images of parts the platform turns off today (a part turned on later must not
start pulling from a public registry). With a mirror each is prefixed the way
`mlplatform.images.mirrored` prefixes ours: `<mirror>/<upstream value>`.

The keys are checked against each chart's own values.yaml at the pinned version
(tests/platform/test_image_mirror_charts.py templates every chart with a mirror
and asserts that every image it renders starts with it).
"""

from __future__ import annotations

from typing import Any

# chart -> ((values key path, its upstream value), ...)
CHART_IMAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "kube-prometheus-stack": (
        ("prometheusOperator.image.registry", "quay.io"),
        ("prometheusOperator.prometheusConfigReloader.image.registry", "quay.io"),
        ("prometheusOperator.thanosImage.registry", "quay.io"),
        ("prometheusOperator.admissionWebhooks.deployment.image.registry", "quay.io"),
        ("prometheusOperator.admissionWebhooks.patch.image.registry", "ghcr.io"),
        ("prometheus.prometheusSpec.image.registry", "quay.io"),
        ("alertmanager.alertmanagerSpec.image.registry", "quay.io"),
        ("thanosRuler.thanosRulerSpec.image.registry", "quay.io"),
        ("crds.upgradeJob.image.busybox.registry", "docker.io"),
        ("crds.upgradeJob.image.kubectl.registry", "registry.k8s.io"),
        # The subcharts' own values, under their aliases.
        ("grafana.image.registry", "docker.io"),
        ("grafana.sidecar.image.registry", "quay.io"),
        ("grafana.initChownData.image.registry", "docker.io"),
        ("grafana.downloadDashboardsImage.registry", "docker.io"),
        ("grafana.imageRenderer.image.registry", "docker.io"),
        ("grafana.testFramework.image.registry", "docker.io"),
        ("kube-state-metrics.image.registry", "registry.k8s.io"),
        ("kube-state-metrics.kubeRBACProxy.image.registry", "quay.io"),
        ("prometheus-node-exporter.image.registry", "quay.io"),
        ("prometheus-node-exporter.kubeRBACProxy.image.registry", "quay.io"),
        ("prometheus-node-exporter.permissionInitContainer.image.registry", "quay.io"),
        ("prometheus-windows-exporter.image.registry", "ghcr.io"),
    ),
    "linkerd-control-plane": (
        # The proxy and proxy-init images are what the injector adds to every meshed pod.
        ("proxy.image.name", "cr.l5d.io/linkerd/proxy"),
        ("proxyInit.image.name", "cr.l5d.io/linkerd/proxy-init"),
        ("controllerImage", "cr.l5d.io/linkerd/controller"),
        ("debugContainer.image.name", "cr.l5d.io/linkerd/debug"),
    ),
    "linkerd-viz": (
        # Every viz image whose own `registry` is empty uses this one.
        ("defaultRegistry", "cr.l5d.io/linkerd"),
        ("prometheus.image.registry", "docker.io/prom"),
    ),
    "linkerd-smi": (
        ("adaptor.image.registry", "cr.l5d.io/linkerd"),
        ("namespaceMetadata.image.registry", "cr.l5d.io/linkerd"),
    ),
    "linkerd-crds": (),
    "nvidia-device-plugin": (("image.repository", "nvcr.io/nvidia/k8s-device-plugin"),),
    "cluster-autoscaler": (("image.repository", "registry.k8s.io/autoscaling/cluster-autoscaler"),),
    "metrics-server": (
        ("image.repository", "registry.k8s.io/metrics-server/metrics-server"),
        ("addonResizer.image.repository", "registry.k8s.io/autoscaling/addon-resizer"),
    ),
}


def mirrored_image_values(chart: str, registry: str | None) -> dict[str, Any]:
    """The values that send every image of `chart` through `registry`; empty without one."""
    if registry is None:
        return {}
    values: dict[str, Any] = {}
    for path, upstream in CHART_IMAGES[chart]:
        *parents, leaf = path.split(".")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = f"{registry}/{upstream}"
    return values


def merged(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overlay` merged in, key by key; `overlay` wins at the leaves."""
    result = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result
