"""The platform's `mlplatform:charts` config and the rule for `mlplatform:chartMirror`.

Kept apart from `config.py` (which embeds the pins in `PlatformConfig` and checks
`chartMirror` with the rule here); `chart_mirror.py` applies the mirror.
"""

from __future__ import annotations

import re

from pydantic import Field

from mlplatform.config_types import ChartVersion
from mlplatform.configuration import ConfigModel

# A chart mirror (`chartMirror`, or MLPLATFORM_CHART_MIRROR: mlplatform/platform/chart_mirror.py).
# A Helm repository's index is fetched over HTTP(S); plain http is allowed for
# internal repositories that terminate TLS elsewhere or listen on loopback.
MIRROR_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
MIRROR_RULE = "must be an http:// or https:// URL of a Helm repository (no query or fragment)"


class ChartConfig(ConfigModel):
    repo: str = Field(pattern=r"^(https|oci)://", description="Chart repository URL.")
    version: ChartVersion = Field(description="Pinned chart version: one exact semantic version, never a range.")


def _chart(repo: str, version: str):
    return Field(
        default_factory=lambda: ChartConfig(repo=repo, version=version),
        description="Chart repository and pinned version.",
    )


class ChartsConfig(ConfigModel):
    """Pinned chart versions. Upgrading is a reviewed edit of these, never a floating tag."""

    linkerd_crds: ChartConfig = _chart("https://helm.linkerd.io/edge", "2025.8.5")
    linkerd_control_plane: ChartConfig = _chart("https://helm.linkerd.io/edge", "2025.8.5")
    linkerd_viz: ChartConfig = _chart("https://helm.linkerd.io/edge", "2025.8.5")
    linkerd_smi: ChartConfig = _chart("https://linkerd.github.io/linkerd-smi", "1.0.4")
    kube_prometheus_stack: ChartConfig = _chart("https://prometheus-community.github.io/helm-charts", "88.5.3")
    nvidia_device_plugin: ChartConfig = _chart("https://nvidia.github.io/k8s-device-plugin", "0.20.0")
    cluster_autoscaler: ChartConfig = _chart("https://kubernetes.github.io/autoscaler", "9.50.1")
    # Mode existing with cluster.metricsApi `install` only; mode aws uses the EKS add-on.
    metrics_server: ChartConfig = _chart("https://kubernetes-sigs.github.io/metrics-server", "3.13.1")
