"""`metrics.k8s.io` on a cluster the platform did not create (mode existing): install it, or check it is served.

The model servers' HPAs scale on `metrics.k8s.io`; without it they never scale.
In mode aws the EKS `metrics-server` add-on serves it (cluster.py). In mode
existing the stack says which of two holds (`cluster.metricsApi`):

- `install` (the default): the upstream metrics-server chart, pinned in
  `mlplatform:charts.metricsServer` and fetched like every chart (the chart
  mirror applies), registers the APIService `v1beta1.metrics.k8s.io`.
- `served`: the cluster already serves it (k3s, GKE, AKS and most distributions
  ship metrics-server). The program then reads that APIService, so `pulumi
  preview` fails, naming it, on a cluster that does not serve it.

Why a flag plus a read, not a read alone that decides: a Pulumi program cannot
branch on what a read finds (a `get` of a missing object fails the program, and
resources created from a read's result would not show in preview), and
installing a second metrics-server where one runs would fail on the APIService
another release owns. The stack file states the fact; the read verifies it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mlplatform.platform.charts_config import ChartConfig
from mlplatform.platform.helm import pinned_release
from mlplatform.platform.sizing import PodSize

API_SERVICE = "v1beta1.metrics.k8s.io"
# The namespace upstream installs it in; the APIService points at its Service there.
NAMESPACE = "kube-system"


@dataclass
class MetricsServerArgs:
    chart: ChartConfig
    size: PodSize
    """CPU and memory of metrics-server."""
    image_registry: str | None = None
    """`mlplatform:imageRegistry`: its image is pulled through it; None: from registry.k8s.io."""


def chart_values(size: PodSize) -> dict:
    """The chart's defaults already run it non-root, read-only, with RuntimeDefault seccomp; sized here."""
    return {"resources": size.k8s()}


def metrics_server(name: str, args: MetricsServerArgs, opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
    """The upstream chart's release; it registers `v1beta1.metrics.k8s.io`."""
    return pinned_release(
        name,
        chart="metrics-server",
        pin=args.chart,
        namespace=NAMESPACE,
        values=chart_values(args.size),
        image_registry=args.image_registry,
        opts=opts,
    )


def served_metrics_api(name: str, opts: pulumi.ResourceOptions) -> k8s.apiregistration.v1.APIService:
    """A read of the APIService the cluster says it serves: preview fails, naming it, when it is absent."""
    return k8s.apiregistration.v1.APIService.get(name, API_SERVICE, opts=opts)
