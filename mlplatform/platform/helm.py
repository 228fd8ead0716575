"""Helm releases of the platform's pinned charts."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlplatform.platform.charts_config import ChartConfig


def pinned_release(
    resource_name: str,
    *,
    chart: str,
    pin: ChartConfig,
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    values: pulumi.Input[dict[str, Any]] | None = None,
    create_namespace: bool | None = None,
) -> k8s.helm.v3.Release:
    """A release of `chart`, named after it, at the version and from the repository `pin` fixes.

    Every chart comes from its repository at `pulumi up` time; the pin in
    `mlplatform:charts` is the only place its version is chosen. `pin.repo` is
    the effective repository: the entry point has already replaced it with the
    chart mirror when one is set (mlplatform/platform/chart_mirror.py), so the
    chart name stays the upstream one.
    """
    return k8s.helm.v3.Release(
        resource_name,
        name=chart,
        chart=chart,
        version=pin.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=pin.repo),
        namespace=namespace,
        create_namespace=create_namespace,
        values=values,
        opts=opts,
    )
