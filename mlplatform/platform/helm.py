"""Helm releases of the platform's pinned charts."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.platform.chart_images import merged, mirrored_image_values
from mlplatform.platform.charts_config import ChartConfig


def release_namespace(
    resource_name: str,
    name: str,
    *,
    component: str,
    opts: pulumi.ResourceOptions,
    extra_labels: dict[str, str] | None = None,
    annotations: pulumi.Input[dict[str, pulumi.Input[str]]] | None = None,
) -> k8s.core.v1.Namespace:
    """The namespace a chart installs into, declared here rather than by Helm's `create_namespace`.

    Helm creates such a namespace but never deletes it, so `pulumi destroy` would
    leave it (and anything a controller put in it) behind. Declared, it is
    destroyed with the platform, after the releases in it, which depend on it
    through its name.
    """
    return k8s.core.v1.Namespace(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=name,
            labels={**labels.k8s_labels(component), **(extra_labels or {})},
            annotations=annotations,
        ),
        opts=opts,
    )


def pinned_release(
    resource_name: str,
    *,
    chart: str,
    pin: ChartConfig,
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    values: dict[str, Any] | None = None,
    image_registry: str | None = None,
) -> k8s.helm.v3.Release:
    """A release of `chart`, named after it, at the version and from the repository `pin` fixes.

    Every chart comes from its repository at `pulumi up` time; the pin in
    `mlplatform:charts` is the only place its version is chosen. `pin.repo` is
    the effective repository: the entry point has already replaced it with the
    chart mirror when one is set (mlplatform/platform/chart_mirror.py), so the
    chart name stays the upstream one. `image_registry` (`mlplatform:imageRegistry`)
    sends every image the chart runs through the mirror (mlplatform/platform/chart_images.py).
    """
    if image_registry is not None:
        values = merged(values or {}, mirrored_image_values(chart, image_registry))
    return k8s.helm.v3.Release(
        resource_name,
        name=chart,
        chart=chart,
        version=pin.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=pin.repo),
        namespace=namespace,
        values=values,
        opts=opts,
    )
