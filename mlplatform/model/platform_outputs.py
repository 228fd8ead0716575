"""What a model stack reads from the platform stack, as the contract types it.

The keys, their types and what may be missing are `mlplatform.platform_contract`'s,
which the platform's `build_platform` exports; this module turns the contract
into what the model program declares with: plain values for the facts it decides
on, Outputs of the StackReference for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from mlplatform.configuration import ConfigError
from mlplatform.model.engine_adapter import resolve_now
from mlplatform.platform_contract import (
    ContractError,
    IrsaIdentity,
    Namespaces,
    PlatformContract,
    Problem,
    StorageClasses,
    required_outputs,
)

CRD_VERSION = "v1"
PLATFORM_STACK_KEY = "mlmodel:platformStack"

# Every output a model stack depends on. `kubeconfig` is not among them: a
# platform on an existing cluster with the ambient kubeconfig exports none.
REQUIRED = required_outputs()


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
    irsa: IrsaIdentity | None
    mlflow_tracking_uri: pulumi.Output[str]
    prometheus_url: pulumi.Output[str]
    traffic_split_apis: tuple[str, ...]
    crd_group: str
    image_registry: str | None = None
    """The platform's `mlplatform:imageRegistry`: this stack's images are pulled through it too."""

    @property
    def crd_api_version(self) -> str:
        """apiVersion of the platform's ML CRDs, e.g. `ml.example.com/v1`."""
        return f"{self.crd_group}/{CRD_VERSION}"

    @classmethod
    def read(cls, platform_stack: str) -> PlatformOutputs:
        """The platform's outputs through a StackReference named by the key that chose the stack: when
        the engine cannot read it ("unknown stack"), its error then names `mlmodel:platformStack`."""
        return cls.from_stack_reference(pulumi.StackReference(PLATFORM_STACK_KEY, stack_name=platform_stack))

    @classmethod
    def from_stack_reference(cls, ref: pulumi.StackReference) -> PlatformOutputs:
        platform_stack = resolve_now(ref.name)
        assert platform_stack is not None  # a StackReference's name is its input, known in preview too
        outputs: dict[str, Any] = dict(resolve_now(ref.outputs) or {})
        try:
            contract = PlatformContract.parse(outputs)
        except ContractError as err:
            raise ConfigError(pulumi.get_stack(), [_worded(platform_stack, p) for p in err.problems]) from None
        identity = contract.workload_identity
        key = PlatformContract.key
        # The Outputs of the StackReference, not the parsed values: whatever uses
        # them then depends on the reference, as the engine records it.
        return cls(
            platform_stack=platform_stack,
            # None when the platform runs against an existing cluster with the
            # ambient kubeconfig; the provider then falls back to it as well.
            kubeconfig=pulumi.Output.secret(ref.get_output(key("kubeconfig"))),
            serving_namespace=ref.require_output(key("namespaces")).apply(lambda ns: ns[Namespaces.key("serving")]),
            team_namespaces=tuple(contract.namespaces.teams),
            gpu_node_selector=ref.require_output(key("gpu_node_selector")),
            gpu_taint=ref.require_output(key("gpu_taint")),
            gpu_pool_enabled=contract.gpu_pool_enabled,
            storage_classes=contract.storage_classes,
            irsa=identity if isinstance(identity, IrsaIdentity) else None,
            mlflow_tracking_uri=ref.require_output(key("mlflow_tracking_uri")),
            prometheus_url=ref.require_output(key("prometheus_url")),
            traffic_split_apis=tuple(contract.traffic_split_apis),
            crd_group=contract.crd_group,
            image_registry=contract.image_registry,
        )


def _worded(platform_stack: str, problem: Problem) -> str:
    """One problem as the model stack's user reads it: which stack, which output, what to do."""
    where = f"{PLATFORM_STACK_KEY} = '{platform_stack}'"
    if problem.expected is not None:
        return f"{where}: the platform stack's output '{problem.key}' must be {problem.expected}, got {problem.got!r}"
    if len(problem.path) == 1:
        return (
            f"{where}: the platform stack has no output '{problem.key}'; update the platform stack (`pulumi up` "
            "with this version of mlplatform) or point platformStack at the right stack"
        )
    parent, name = ".".join(problem.path[:-1]), problem.path[-1]
    return f"{where}: the platform stack's output '{parent}' has no '{name}'; update the platform stack"
