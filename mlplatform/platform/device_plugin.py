"""The NVIDIA device plugin: advertises `nvidia.com/gpu` on the GPU nodes.

The EKS NVIDIA AMIs ship the driver and container toolkit but not the device
plugin; without it no pod can request a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from mlplatform import labels
from mlplatform.platform.charts_config import ChartConfig
from mlplatform.platform.helm import pinned_release, release_namespace
from mlplatform.platform.sizing import PodSize

NAMESPACE = "nvidia-device-plugin"
TIME_SLICING_CONFIG = "time-slicing"


@dataclass
class NvidiaDevicePluginArgs:
    chart: ChartConfig
    time_slicing_replicas: int
    """Pods sharing each GPU; 1 gives each pod a whole GPU."""
    size: PodSize
    """CPU and memory of the plugin container (the chart sizes only that one)."""
    image_registry: str | None = None
    """`mlplatform:imageRegistry`: every image the chart runs is pulled through it; None: upstream."""


def time_slicing_config(replicas: int) -> str:
    """The device plugin's config file (format `v1`) that shares each GPU `replicas` ways."""
    document = {
        "version": "v1",
        "sharing": {
            "timeSlicing": {
                # A request for 2 shared GPUs may land on one physical GPU, so it
                # would only look like more compute; failing it is clearer.
                "failRequestsGreaterThanOne": True,
                "resources": [{"name": labels.GPU_RESOURCE, "replicas": replicas}],
            }
        },
    }
    return yaml.safe_dump(document, sort_keys=False)


def _chart_values(time_slicing_replicas: int, size: PodSize) -> dict[str, Any]:
    values: dict[str, Any] = {
        "resources": size.k8s(),
        # The plugin keeps its host access (the kubelet's device-plugin socket directory,
        # see docs/platform.md's exceptions) but runs under the runtime's seccomp filter.
        "podSecurityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        # Replaces the chart's list, whose `nvidia.com/gpu Exists` would also put the
        # plugin on nodes tainted for some other GPU setup; ours tolerates exactly
        # the taint our GPU pool carries. The chart's affinity is kept: it matches
        # the `nvidia.com/gpu.present=true` label of our GPU nodes.
        "tolerations": [
            {"key": "CriticalAddonsOnly", "operator": "Exists"},
            labels.toleration_for(labels.GPU_TAINT),
        ],
    }
    if time_slicing_replicas > 1:
        values["config"] = {
            "map": {TIME_SLICING_CONFIG: time_slicing_config(time_slicing_replicas)},
            "default": TIME_SLICING_CONFIG,
        }
    return values


class NvidiaDevicePlugin(pulumi.ComponentResource):
    """The device plugin DaemonSet, with optional GPU time-slicing.

    Time-slicing lets several pods share a GPU with no memory or fault isolation
    between them: fine for notebooks and small inference, wrong for training.
    It applies to every GPU node, and each node then advertises
    `replicas x GPUs` of `nvidia.com/gpu`.
    """

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: NvidiaDevicePluginArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:platform:NvidiaDevicePlugin", name, None, opts)
        if args.time_slicing_replicas < 1:
            raise ValueError(f"time_slicing_replicas must be >= 1, got {args.time_slicing_replicas}")

        namespace = release_namespace(
            f"{name}-namespace", NAMESPACE, component="gpu", opts=pulumi.ResourceOptions(parent=self)
        )
        self.release = pinned_release(
            f"{name}-release",
            chart="nvidia-device-plugin",
            pin=args.chart,
            namespace=namespace.metadata.name,
            values=_chart_values(args.time_slicing_replicas, args.size),
            image_registry=args.image_registry,
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.register_outputs({})
