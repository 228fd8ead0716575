"""The Kubernetes provider's registration leaves for the engine before the rest is declared.

A synchronous Pulumi program sends its RegisterResource calls only when it yields to
the SDK's event loop, so without `send_registrations` the engine would start and
configure the provider (its OpenAPI fetch included) only after Python has imported
and declared everything: one after the other instead of side by side.
"""

from __future__ import annotations

import threading

import pulumi
import pulumi_kubernetes as k8s
import pytest

from mlplatform.model.engine_adapter import send_registrations
from tests.support.types import K8S_PROVIDER, STACK_REFERENCE

SENT_WITHIN_SECONDS = 10.0
NOT_SENT_FOR_SECONDS = 0.5


class _Mocks(pulumi.runtime.Mocks):
    """Sets `provider_seen` when the monitor receives the provider's registration."""

    def __init__(self) -> None:
        self.provider_seen = threading.Event()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        if args.typ == K8S_PROVIDER:
            self.provider_seen.set()
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        return {}, None


@pytest.mark.parametrize("send", [True, False], ids=["sent", "not-sent"])
def test_the_provider_reaches_the_engine_while_the_program_still_runs(send: bool):
    mocks = _Mocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    seen_during_program: list[bool] = []

    @pulumi.runtime.test
    def program():
        k8s.Provider("kubernetes", kubeconfig="apiVersion: v1\nkind: Config\n")
        if send:
            send_registrations()
        # Still inside the program body: the SDK's loop only runs when the body yields.
        seen_during_program.append(mocks.provider_seen.wait(SENT_WITHIN_SECONDS if send else NOT_SENT_FOR_SECONDS))

    program()
    assert seen_during_program == [send]
    assert mocks.provider_seen.is_set(), "the registration is sent at the end either way"


def test_the_model_program_sends_the_provider_before_declaring_anything_else(monkeypatch: pytest.MonkeyPatch):
    """`build_model_stack` calls it right after the provider, before anything but the stack references exists."""
    from mlplatform.model import program as model_program
    from tests.model.helpers import run_model, with_canary

    declared_before: list[list[str]] = []
    real_register = pulumi.CustomResource.__init__

    def spy() -> None:
        declared_before.append(list(types))
        send_registrations()

    types: list[str] = []

    def record(self, t, *args, **kwargs):
        types.append(t)
        real_register(self, t, *args, **kwargs)

    monkeypatch.setattr(model_program, "send_registrations", spy)
    monkeypatch.setattr(pulumi.CustomResource, "__init__", record)
    run_model(with_canary(10))
    # The platform's StackReference and the stack's own (the aborted-canary check), then the provider.
    assert declared_before == [[STACK_REFERENCE, STACK_REFERENCE, K8S_PROVIDER]], declared_before
    assert len(types) > 2
