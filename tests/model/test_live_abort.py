"""A bare `pulumi up` of a model stack refuses to bring back a canary the cluster aborted.

The program reads its InferenceService record's live status (located by the stack's own previous
outputs) and asks the aborted-canary rule before it declares anything in the serving namespace. Run
here with the real entry point under mocks: the self-reference answers the previous outputs, the read
answers the status the rollout tools wrote.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from mlplatform.model.live_abort import AbortedCanaryError
from mlplatform.tools.offline.engine import Recording, run_entry_point
from mlplatform.tools.offline.mocks import RecordingMocks
from tests.model.helpers import (
    DEPLOYMENT,
    INFERENCE_SERVICE,
    MODEL,
    MODEL_STACK_DIR,
    PLATFORM_OUTPUTS,
    PLATFORM_STACK,
    SERVING_NAMESPACE,
    TRAFFIC_SPLIT,
    model_config,
    with_canary,
)
from tests.support.helpers import qualify

STACK = "fraud-detector-dev"
SELF = f"organization/mlmodel/{STACK}"
PREVIOUS = {"namespace": SERVING_NAMESPACE, "inferenceService": MODEL}
PR = "rollout/fraud-detector-dev-20270115080000"
ABORTED: dict[str, Any] = {
    "phase": "Aborted",
    "canaryVersion": "v6",
    "weight": 0,
    "stepStartedAt": "2027-01-15T08:00:00Z",
    "failedChecks": 2,
    "abort": {"reason": "2 consecutive failed checks: success 50%", "at": "2027-01-15T08:00:00Z", "pr": PR},
}
RETRIED = {"phase": "Progressing", "canaryVersion": "v6", "weight": 10, "stepStartedAt": "2027-01-15T09:00:00Z"}


class _RefusalLeftovers(logging.Filter):
    """A refusal fails every Output that waits for the check. asyncio reports each of them as "never
    retrieved" when it is collected, often at exit, long after the test asserted the error itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], AbortedCanaryError))


logging.getLogger("asyncio").addFilter(_RefusalLeftovers())


class LiveRecordMocks(RecordingMocks):
    """The recording mocks, plus the API server's answer to a read of the InferenceService record."""

    def __init__(self, status: dict[str, Any] | None, previous: dict[str, Any] | None):
        references = {PLATFORM_STACK: PLATFORM_OUTPUTS}
        if previous is not None:
            references[SELF] = previous
        super().__init__(stack_references=references)
        self.status = status
        self.reads: list[str] = []

    def new_resource(self, args):  # pyright: ignore[reportIncompatibleMethodOverride]
        if args.resource_id and args.typ == INFERENCE_SERVICE:
            self.reads.append(args.resource_id)
            namespace, name = args.resource_id.split("/")
            record = {"apiVersion": "ml.example.com/v1", "kind": "InferenceService"}
            return args.resource_id, {
                **record,
                "metadata": {"name": name, "namespace": namespace},
                "status": self.status,
            }
        return super().new_resource(args)


def _up(values: dict[str, Any], status: dict[str, Any] | None, previous: dict[str, Any] | None = PREVIOUS):
    mocks = LiveRecordMocks(status, previous)
    run = lambda: run_entry_point(MODEL_STACK_DIR, stack=STACK, config=qualify("mlmodel", values), mocks=mocks)  # noqa: E731
    return mocks, run


def _refused(values: dict[str, Any], status: dict[str, Any]) -> tuple[str, Recording]:
    _, run = _up(values, status)
    with pytest.raises(AbortedCanaryError) as refused:
        run()
    return str(refused.value), refused.value.recording  # type: ignore[attr-defined]


def test_an_aborted_canary_at_10_percent_is_refused_naming_the_abort() -> None:
    """Main still gives v6 10% (the rollback PR is open); the cluster aborted it: `up` must say so and stop."""
    message, _ = _refused(with_canary(10), ABORTED)
    assert message.startswith(f"stack '{STACK}': refusing to apply: canary v6 was aborted on the cluster"), message
    assert f"InferenceService {SERVING_NAMESPACE}/{MODEL}" in message
    assert "at 2027-01-15T08:00:00Z (2 consecutive failed checks: success 50%)" in message
    assert f"but Pulumi.{STACK}.yaml still gives it 10%" in message
    assert f"PR branch {PR}: merge it" in message
    assert f"`mlplatform rollout guard {STACK} --retry REASON`, then apply again" in message


def test_a_refusal_registers_nothing_in_the_serving_namespace() -> None:
    """No TrafficSplit, no canary Deployment, no record: nothing that could route to the canary again."""
    _, recording = _refused(with_canary(10), ABORTED)
    served = [r.urn for r in recording.resources if r.metadata.get("namespace") == SERVING_NAMESPACE]
    assert recording.of_type(TRAFFIC_SPLIT) == []
    assert recording.of_type(DEPLOYMENT) == []
    assert recording.of_type(INFERENCE_SERVICE) == []
    assert served == []


@pytest.mark.parametrize(
    ("values", "status"),
    [
        (with_canary(0), ABORTED),  # main records the abort
        (model_config(), ABORTED),  # no canary
        (with_canary(10, canary={"version": "v7", "modelUri": "models:/fraud_detector/7"}), ABORTED),  # a new one
        (with_canary(10), RETRIED),  # `rollout guard --retry` cleared the abort
        (with_canary(10), None),  # a record no tool has written to
    ],
    ids=["weight-0", "no-canary", "other-version", "retried", "no-status"],
)
def test_what_may_be_applied(values: dict[str, Any], status: dict[str, Any] | None) -> None:
    _, run = _up(values, status)
    recording = run()
    assert len(recording.of_type(TRAFFIC_SPLIT)) == 1


def test_the_record_is_read_only_when_the_canary_takes_traffic() -> None:
    """Weight 0 or no canary: nothing to refuse, so no read (and no cost)."""
    for values, expected in ((with_canary(10), [f"{SERVING_NAMESPACE}/{MODEL}"]), (with_canary(0), [])):
        mocks, run = _up(values, RETRIED)
        run()
        assert mocks.reads == expected


def test_a_first_deploy_reads_nothing_and_declares_as_before() -> None:
    """No previous outputs (the stack was never up): no read, and the same resources as without the guard."""
    mocks, run = _up(with_canary(10), ABORTED, previous={})
    first = run()
    assert mocks.reads == []
    _, again = _up(with_canary(10), RETRIED)
    guarded = again()
    assert sorted(r.urn for r in first.resources) == sorted(r.urn for r in guarded.resources)
    assert [r.raw_inputs for r in sorted(first.resources, key=lambda r: r.urn)] == [
        r.raw_inputs for r in sorted(guarded.resources, key=lambda r: r.urn)
    ]
