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

from mlplatform.configuration import ConfigError

KUBECONFIG = "kubeconfig"
NAMESPACES = "namespaces"
GPU_NODE_SELECTOR = "gpuNodeSelector"
GPU_TAINT = "gpuTaint"
GPU_POOL_ENABLED = "gpuPoolEnabled"
STORAGE_CLASSES = "storageClasses"
WORKLOAD_IDENTITY = "workloadIdentity"
MLFLOW_TRACKING_URI = "mlflowTrackingUri"
PROMETHEUS_URL = "prometheusUrl"
TRAFFIC_SPLIT_APIS = "trafficSplitApis"
CRD_GROUP = "crdGroup"
# Keys inside the `namespaces` output.
SERVING = "serving"

CRD_VERSION = "v1"
PLATFORM_STACK_KEY = "mlmodel:platformStack"

# Every output a model stack depends on. `kubeconfig` is not among them: a
# platform on an existing cluster with the ambient kubeconfig exports none.
REQUIRED = (
    NAMESPACES,
    GPU_NODE_SELECTOR,
    GPU_TAINT,
    GPU_POOL_ENABLED,
    STORAGE_CLASSES,
    WORKLOAD_IDENTITY,
    MLFLOW_TRACKING_URI,
    PROMETHEUS_URL,
    TRAFFIC_SPLIT_APIS,
    CRD_GROUP,
)


@dataclass(frozen=True)
class StorageClasses:
    """The platform's StorageClass names; None where it offers none (for
    ReadWriteOnce on an existing cluster: its default class)."""

    read_write_once: str | None
    read_write_many: str | None


@dataclass(frozen=True)
class Irsa:
    """What a model stack needs to create an IAM role a ServiceAccount can assume."""

    oidc_provider_arn: str
    oidc_provider_url: str
    region: str

    @property
    def partition(self) -> str:
        """`aws`, `aws-us-gov`, ... from the provider's ARN (`arn:<partition>:iam::...`)."""
        return self.oidc_provider_arn.split(":")[1]


@dataclass(frozen=True)
class PlatformOutputs:
    """The platform stack's outputs, typed.

    Every key in `REQUIRED` must be present: a missing one (a platform stack
    older than this model stack's code, or a wrong `platformStack`) is a
    `ConfigError` naming the platform stack and the output, raised before any
    resource is declared. A model stack never falls back on a default of its own
    for a platform fact.

    Some are read as plain values rather than Outputs, because the program must
    decide on them before it declares anything:
    - `crd_group`: a custom resource's type token (and so its URN) is built from
      its apiVersion when the resource is declared. pulumi-kubernetes made
      `apiVersion` a plain value in its schema for this reason; its Go SDK awaits
      the value the same way.
    - `traffic_split_apis`, `team_namespaces`, `gpu_pool_enabled`,
      `storage_classes`: a stack asking for what the platform lacks must fail
      before any resource exists, not half-way through `up`.
    - `irsa`: whether the training run gets an IAM role decides which resources
      exist.
    A StackReference's outputs are known in preview as well as in update, so
    waiting for them costs nothing and never sees an unknown.
    """

    platform_stack: str
    kubeconfig: pulumi.Output[str | None]
    serving_namespace: pulumi.Output[str]
    team_namespaces: tuple[str, ...]
    gpu_node_selector: pulumi.Output[dict[str, str]]
    gpu_taint: pulumi.Output[dict[str, str]]
    gpu_pool_enabled: bool
    storage_classes: StorageClasses
    irsa: Irsa | None
    mlflow_tracking_uri: pulumi.Output[str]
    prometheus_url: pulumi.Output[str]
    traffic_split_apis: tuple[str, ...]
    crd_group: str

    @property
    def crd_api_version(self) -> str:
        """apiVersion of the platform's ML CRDs, e.g. `ml.example.com/v1`."""
        return f"{self.crd_group}/{CRD_VERSION}"

    @classmethod
    def from_stack_reference(cls, ref: pulumi.StackReference) -> PlatformOutputs:
        platform_stack = _sync_await(ref.name.future())
        assert platform_stack is not None  # a StackReference's name is its input, known in preview too
        outputs: dict[str, Any] = dict(_sync_await(ref.outputs.future()) or {})
        reader = _Reader(platform_stack, outputs)
        reader.require(*REQUIRED)
        namespaces = reader.mapping(NAMESPACES, "serving", "teams")
        group = reader.value(CRD_GROUP)
        if not isinstance(group, str) or not group:
            reader.bad(CRD_GROUP, "a non-empty string", group)
        apis = reader.value(TRAFFIC_SPLIT_APIS)
        if not isinstance(apis, list):
            reader.bad(TRAFFIC_SPLIT_APIS, "a list", apis)
        teams = namespaces.get("teams")
        if "teams" in namespaces and not isinstance(teams, list):
            reader.bad(f"{NAMESPACES}.teams", "a list of namespace names", teams)
        gpu_pool = reader.value(GPU_POOL_ENABLED)
        if not isinstance(gpu_pool, bool):
            reader.bad(GPU_POOL_ENABLED, "true or false", gpu_pool)
        # A class the platform lacks is null there, and a null inside an output object
        # may arrive as an absent key: both mean "none".
        storage = reader.mapping(STORAGE_CLASSES)
        identity = reader.mapping(WORKLOAD_IDENTITY, "kind")
        if identity.get("kind") == "irsa":
            reader.mapping(WORKLOAD_IDENTITY, "oidcProviderArn", "oidcProviderUrl", "region")
        elif "kind" in identity and identity["kind"] != "none":
            reader.bad(f"{WORKLOAD_IDENTITY}.kind", "'irsa' or 'none'", identity["kind"])
        reader.raise_problems()
        irsa = (
            Irsa(identity["oidcProviderArn"], identity["oidcProviderUrl"], identity["region"])
            if identity["kind"] == "irsa"
            else None
        )
        return cls(
            platform_stack=platform_stack,
            # None when the platform runs against an existing cluster with the
            # ambient kubeconfig; the provider then falls back to it as well.
            kubeconfig=pulumi.Output.secret(ref.get_output(KUBECONFIG)),
            serving_namespace=ref.require_output(NAMESPACES).apply(lambda ns: ns[SERVING]),
            team_namespaces=tuple(teams or ()),
            gpu_node_selector=ref.require_output(GPU_NODE_SELECTOR),
            gpu_taint=ref.require_output(GPU_TAINT),
            gpu_pool_enabled=gpu_pool,
            storage_classes=StorageClasses(storage.get("readWriteOnce"), storage.get("readWriteMany")),
            irsa=irsa,
            mlflow_tracking_uri=ref.require_output(MLFLOW_TRACKING_URI),
            prometheus_url=ref.require_output(PROMETHEUS_URL),
            traffic_split_apis=tuple(apis),
            crd_group=group,
        )


class _Reader:
    """Collects every problem with the platform's outputs, so one error lists them all."""

    def __init__(self, platform_stack: str, outputs: dict[str, Any]):
        self.platform_stack = platform_stack
        self.outputs = outputs
        self.problems: list[str] = []

    def require(self, *keys: str) -> None:
        missing = [key for key in keys if key not in self.outputs]
        for key in missing:
            self.problems.append(
                f"{PLATFORM_STACK_KEY} = '{self.platform_stack}': the platform stack has no output '{key}'; "
                "update the platform stack (`pulumi up` with this version of mlplatform) or point "
                "platformStack at the right stack"
            )

    def value(self, key: str) -> Any:
        return self.outputs.get(key)

    def mapping(self, key: str, *fields: str) -> dict[str, Any]:
        value = self.outputs.get(key)
        if key not in self.outputs:
            return {}
        if not isinstance(value, dict):
            self.bad(key, "an object", value)
            return {}
        for name in fields:
            if name not in value:
                self.problems.append(
                    f"{PLATFORM_STACK_KEY} = '{self.platform_stack}': the platform stack's output '{key}' "
                    f"has no '{name}'; update the platform stack"
                )
        return value

    def bad(self, key: str, expected: str, value: Any) -> None:
        if key.split(".")[0] in self.outputs:
            self.problems.append(
                f"{PLATFORM_STACK_KEY} = '{self.platform_stack}': the platform stack's output '{key}' "
                f"must be {expected}, got {value!r}"
            )

    def raise_problems(self) -> None:
        if self.problems:
            raise ConfigError(pulumi.get_stack(), self.problems)


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
