"""The aborted-canary rule, on its own: what `rollout guard` (and any other apply path) asks before `up`."""

from __future__ import annotations

import pytest

from mlplatform.aborted_canary import Abort, refusal, retry_hint

ABORT = Abort("v6", "2 consecutive failed checks: success 50%", "2027-01-15T08:00:00Z", "rollout/fraud-prod-42")


def _refusal(version: str | None = "v6", weight: int = 10, abort: Abort | None = ABORT, retry: str | None = None):
    return refusal(
        abort,
        version,
        weight,
        where="Pulumi.fraud-prod.yaml",
        recorded="on the cluster",
        retry=retry,
        stack="fraud-prod",
    )


def test_bringing_back_the_aborted_canary_is_refused_with_its_reason_and_pr() -> None:
    message = _refusal()
    assert message is not None
    assert "canary v6 was aborted on the cluster at 2027-01-15T08:00:00Z (2 consecutive failed checks" in message
    assert "Pulumi.fraud-prod.yaml still gives it 10%" in message
    assert "PR branch rollout/fraud-prod-42: merge it" in message
    assert "`mlplatform rollout guard fraud-prod --retry REASON`, then apply again" in message


def test_without_a_pr_the_refusal_says_to_merge_the_rollback() -> None:
    message = _refusal(abort=Abort("v6", "r", "t"))
    assert message is not None
    assert message.endswith("bring the canary back; merge the rollback into main. " + retry_hint("fraud-prod"))


@pytest.mark.parametrize(
    "case",
    [
        {"weight": 0},  # main records the abort
        {"version": None, "weight": 0},  # no canary
        {"version": "v7"},  # a new rollout, not the aborted one
        {"abort": None},  # nothing was aborted
        {"retry": "fixed the model server, INC-7"},  # on purpose
    ],
    ids=["main-records-it", "no-canary", "other-version", "no-abort", "retry"],
)
def test_what_may_be_applied(case: dict) -> None:
    assert _refusal(**case) is None
