"""The model stack refuses, by itself, to bring back a canary the cluster aborted.

A rollback is applied and recorded on the cluster before main has it: its push may be refused and
land as a PR. `rollout guard` checks this in deploy.yml before `up`, but a bare `pulumi up` from a
laptop runs no tool. So the program reads the truth of an abort where the rollout tools write it,
the status of the model's InferenceService record on the cluster, and asks the one rule
(`mlplatform.aborted_canary`) before it declares anything that routes traffic.

The read happens only when it can succeed and matter:
- the stack has been deployed before: its own previous outputs (a StackReference to itself) name the
  record. On a first deploy there is none, so there is no read and the program is unchanged;
- the stack file gives the canary traffic: with no canary, or weight 0, there is nothing to refuse.

The read is a `get` on the stack's own Kubernetes provider: the provider depends on the platform's
kubeconfig only, the read on the provider, and the guarded resources on the read, so no cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import aborted_canary
from mlplatform.model.engine_adapter import resolve_now

# The previous outputs that locate the record: program.py exports both.
NAMESPACE_OUTPUT = "namespace"
RECORD_OUTPUT = "inferenceService"


def self_reference_name() -> str:
    """This stack's own fully qualified name, as a StackReference to it gives it."""
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"


@dataclass(frozen=True)
class RecordLocation:
    namespace: str
    name: str


def previous_record(ref: pulumi.StackReference) -> RecordLocation | None:
    """Where the last `up` of this stack put its InferenceService record; None before the first one.

    Awaited here, as PlatformOutputs awaits the platform's: a StackReference's outputs are known in
    preview too, and whether to read decides which resources exist."""
    outputs: Mapping[str, Any] = resolve_now(ref.outputs) or {}
    namespace, name = outputs.get(NAMESPACE_OUTPUT), outputs.get(RECORD_OUTPUT)
    if isinstance(namespace, str) and isinstance(name, str) and namespace and name:
        return RecordLocation(namespace, name)
    return None


class AbortedCanaryError(pulumi.RunError):
    """The stack file would bring back an aborted canary. A RunError: Pulumi prints the message alone,
    without a traceback of the program."""


class LiveRecord(pulumi.CustomResource):
    """The InferenceService record as the API server holds it, read (never written) for its `status`.

    Not `CustomResource.get`: that one keeps only `spec` and `metadata` of what the provider reads,
    and `status` is the part the rollout tools write."""

    metadata: pulumi.Output[Any]
    status: pulumi.Output[Any]

    def __init__(self, name: str, api_version: str, record: RecordLocation, opts: pulumi.ResourceOptions):
        # Null values only: Pulumi exposes the outputs it was asked for, and the Kubernetes provider's
        # Read, given no apiVersion or kind, looks the object up by the URN's type and the id (given
        # them, it would take them for the live object and read nothing).
        props = {"metadata": None, "status": None}
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(id=f"{record.namespace}/{record.name}"))
        super().__init__(f"kubernetes:{api_version}:InferenceService", name, props, opts)


def check(stack: str, record: RecordLocation, status: Mapping[str, Any] | None, version: str, weight: int) -> None:
    """Raise `AbortedCanaryError` when `status` records an abort of canary `version` and the stack
    file still gives it `weight`% (> 0); the one rule decides."""
    refused = aborted_canary.refusal(
        aborted_canary.abort_in_status(status),
        version,
        weight,
        where=f"Pulumi.{stack}.yaml",
        recorded=f"on the cluster (status of InferenceService {record.namespace}/{record.name})",
        stack=stack,
    )
    if refused is not None:
        raise AbortedCanaryError(f"stack '{stack}': refusing to apply: {refused}")


def guard(
    name: str,
    *,
    record: RecordLocation | None,
    version: str | None,
    weight: int,
    api_version: str,
    provider: k8s.Provider,
) -> pulumi.Output[bool] | None:
    """An Output that resolves once the live record allows this apply, and fails when it refuses;
    None when there is nothing to read (first deploy) or nothing to refuse (no canary traffic)."""
    if record is None or version is None or weight == 0:
        return None
    live = LiveRecord(f"{name}-live-inference-service", api_version, record, pulumi.ResourceOptions(provider=provider))
    stack = pulumi.get_stack()

    async def allowed(_metadata: Any) -> bool:
        # A preview takes a null output for an unknown one, so a record without a status would make
        # everything downstream unknown. `metadata` is always there; the status is awaited as a
        # plain value (None when absent), and the check still waits for the read.
        status = await live.status.future()
        check(stack, record, status if isinstance(status, Mapping) else None, version, weight)
        return True

    return live.metadata.apply(allowed)


def guarded(value: pulumi.Input[str], allowed: pulumi.Output[bool] | None) -> pulumi.Input[str]:
    """`value`, once `allowed` resolves: whatever takes it waits for the check and is never registered
    when the check refuses. Unchanged without a check, so a first deploy declares exactly as before."""
    if allowed is None:
        return value
    return pulumi.Output.all(value, allowed).apply(lambda both: str(both[0]))
