"""What a model stack reads from the platform stack, and the one place that knows its output keys.

The platform's `build_platform` returns these keys; a renamed key there must be
renamed here, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime.sync_await import _sync_await

KUBECONFIG = "kubeconfig"
NAMESPACES = "namespaces"
GPU_NODE_SELECTOR = "gpuNodeSelector"
GPU_TAINT = "gpuTaint"
MLFLOW_TRACKING_URI = "mlflowTrackingUri"
PROMETHEUS_URL = "prometheusUrl"
TRAFFIC_SPLIT_APIS = "trafficSplitApis"
CRD_GROUP = "crdGroup"
# Keys inside the `namespaces` output.
SERVING = "serving"
TRAINING = "training"

CRD_VERSION = "v1"


@dataclass(frozen=True)
class PlatformOutputs:
    """The platform stack's outputs, typed.

    Two are read as plain values rather than Outputs, because the program must
    decide on them before it declares anything:
    - `crd_group`: a custom resource's type token (and so its URN) is built from
      its apiVersion when the resource is declared. pulumi-kubernetes made
      `apiVersion` a plain value in its schema for this reason; its Go SDK awaits
      the value the same way.
    - `traffic_split_apis`: a stack asking for an API the platform did not
      install must fail before any resource exists, not half-way through `up`.
    A StackReference's outputs are known in preview as well as in update, so
    waiting for them costs nothing and never sees an unknown.
    """

    kubeconfig: pulumi.Output[str | None]
    serving_namespace: pulumi.Output[str]
    training_namespace: pulumi.Output[str]
    gpu_node_selector: pulumi.Output[dict[str, str]]
    gpu_taint: pulumi.Output[dict[str, str]]
    mlflow_tracking_uri: pulumi.Output[str]
    prometheus_url: pulumi.Output[str]
    traffic_split_apis: tuple[str, ...]
    crd_group: str

    @property
    def crd_api_version(self) -> str:
        """apiVersion of the platform's ML custom resources, e.g. `ml.example.com/v1`."""
        return f"{self.crd_group}/{CRD_VERSION}"

    @classmethod
    def from_stack_reference(cls, ref: pulumi.StackReference) -> PlatformOutputs:
        namespaces = ref.require_output(NAMESPACES)
        group = _plain(ref, CRD_GROUP)
        if not isinstance(group, str) or not group:
            raise ValueError(f"platform stack output {CRD_GROUP!r} must be a non-empty string, got {group!r}")
        apis = _plain(ref, TRAFFIC_SPLIT_APIS)
        if not isinstance(apis, list):
            raise ValueError(f"platform stack output {TRAFFIC_SPLIT_APIS!r} must be a list, got {apis!r}")
        return cls(
            # None when the platform runs against an existing cluster with the
            # ambient kubeconfig; the provider then falls back to it as well.
            kubeconfig=pulumi.Output.secret(ref.get_output(KUBECONFIG)),
            serving_namespace=namespaces.apply(lambda ns: ns[SERVING]),
            training_namespace=namespaces.apply(lambda ns: ns[TRAINING]),
            gpu_node_selector=ref.require_output(GPU_NODE_SELECTOR),
            gpu_taint=ref.require_output(GPU_TAINT),
            mlflow_tracking_uri=ref.require_output(MLFLOW_TRACKING_URI),
            prometheus_url=ref.require_output(PROMETHEUS_URL),
            traffic_split_apis=tuple(apis),
            crd_group=group,
        )


def _plain(ref: pulumi.StackReference, key: str) -> Any:
    """The value of a platform output now, as the program runs (see `PlatformOutputs`)."""
    return _sync_await(ref.require_output(key).future())


class MissingPlatformOutput(Exception):
    """The platform stack's outputs lack a value a consumer needs."""


def plain_output(outputs: Mapping[str, Any], platform_stack: str, key: str, *path: str) -> Any:
    """One value from a plain dict of the platform's outputs (`pulumi stack output --json`,
    or an offline render), e.g. `plain_output(outputs, "dev", NAMESPACES, SERVING)`.

    A missing or empty value is MissingPlatformOutput naming the platform stack and
    the key path: a consumer never falls back to a default of its own."""
    value: Any = outputs
    walked: list[str] = []
    for part in (key, *path):
        walked.append(part)
        if not isinstance(value, Mapping) or value.get(part) in (None, ""):
            raise MissingPlatformOutput(
                f"platform stack '{platform_stack}' has no output `{'.'.join(walked)}`; "
                "is it up to date with the platform program?"
            )
        value = value[part]
    return value
