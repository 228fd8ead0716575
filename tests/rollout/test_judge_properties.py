"""Properties of the judge, with Hypothesis: the sequential test's false alarms stay under their bound,
and `not yet` never promotes. No timing here: the replay benchmark measures the rates per class."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlplatform.tools.rollout import gate, judge
from tests.rollout.test_gate import HEALTHY, STABLE_TRAFFIC, _fake, _verdict

PROPERTY = settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _false_alarms(
    rng: np.random.Generator,
    *,
    runs: int,
    intervals: int,
    stable_rate: float,
    share: float,
    requests: int,
    tolerance: float,
    confidence: float,
) -> float:
    """Share of runs in which the test ever rejects, the canary exactly at the null's edge (ρ = 1 + tolerance):
    the hardest case the bound must hold for."""
    canary_rate = stable_rate * (1.0 + tolerance)
    rejected = 0
    for _ in range(runs):
        canary_n = rng.binomial(requests, share, size=intervals)
        stable_n = requests - canary_n
        canary = [judge.IntervalCounts(n, rng.poisson(n * canary_rate)) for n in canary_n]
        stable = [judge.IntervalCounts(n, rng.poisson(n * stable_rate)) for n in stable_n]
        rejected += judge.sequential_test(canary, stable, tolerance=tolerance, confidence=confidence).rejected
    return rejected / runs


@pytest.mark.parametrize(
    ("stable_rate", "share", "requests", "tolerance"),
    [(0.01, 0.1, 500, 0.0), (0.05, 0.5, 200, 0.1), (0.002, 0.25, 5000, 0.2)],
    ids=["1pct-at-10pct", "5pct-at-half", "0.2pct-at-quarter"],
)
def test_false_alarm_rate_stays_under_its_bound(stable_rate, share, requests, tolerance) -> None:
    """Checked after every one of 30 intervals, the test rejects a canary at the null's edge in at most
    1 - confidence of the runs (Ville's inequality), on a fixed seed."""
    rate = _false_alarms(
        np.random.default_rng(20),
        runs=600,
        intervals=30,
        stable_rate=stable_rate,
        share=share,
        requests=requests,
        tolerance=tolerance,
        confidence=0.9,
    )
    assert rate <= 0.10, rate


def test_the_test_has_power() -> None:
    """The bound is not met by never rejecting: a canary 3 times as error-prone is rejected nearly always."""
    rng = np.random.default_rng(21)
    canary = [judge.IntervalCounts(500, rng.poisson(500 * 0.03)) for _ in range(10)]
    stable = [judge.IntervalCounts(4500, rng.poisson(4500 * 0.01)) for _ in range(10)]
    assert judge.sequential_test(canary, stable, tolerance=0.1, confidence=0.99).rejected


@st.composite
def verdicts(draw) -> gate.GateVerdict:
    """A verdict on random evidence where the canary got fewer requests than minRequests."""
    requests = draw(st.integers(0, 49))
    errors = draw(st.integers(0, requests))
    le = draw(st.sampled_from(["5", "50", "200", "1000"]))
    stable = draw(st.sampled_from([STABLE_TRAFFIC, (0, 0, "50"), (30, 1, "50")]))
    return _verdict(
        _fake(canary=(requests // 5, errors // 5, le), stable=stable, intervals=5),
        weight=draw(st.sampled_from([10, 25, 50, 75, 100])),
    )


@PROPERTY
@given(verdict=verdicts(), failures=st.integers(0, 2), dwelled=st.booleans())
def test_not_yet_never_promotes(verdict, failures, dwelled) -> None:
    """With fewer than minRequests canary requests the verdict is never a pass, and `watch` never advances
    on it, whatever the dwell and the failures so far."""
    assert verdict.outcome != gate.PASS and not verdict.healthy
    action, _ = gate.act(verdict, failures, 3, dwelled)
    assert action != gate.ADVANCE
    if verdict.outcome == gate.NOT_YET:
        assert gate.act(verdict, failures, 3, dwelled) == (gate.WAIT, failures)


@PROPERTY
@given(
    outcomes=st.lists(st.sampled_from([gate.NOT_YET, gate.PASS]), min_size=1, max_size=30), maximum=st.integers(1, 12)
)
def test_inconclusive_rolls_back_only_after_the_bound(outcomes, maximum) -> None:
    """Starved of traffic, a step is `not yet` until maxInconclusiveSteps intervals, then a named failure."""
    intervals = len(outcomes)
    fake = _fake(canary=(0, 0, "50"), intervals=intervals)
    verdict = _verdict(fake, intervals=intervals, max_inconclusive_steps=maximum)
    if intervals < maximum:
        assert verdict.outcome == gate.NOT_YET
    else:
        assert verdict.outcome == gate.FAIL and verdict.decisive
        assert f"maxInconclusiveSteps {maximum}" in verdict.reasons[0]


def test_a_healthy_step_passes() -> None:
    """The fixtures the properties build on pass when there is traffic (so the properties are not vacuous)."""
    assert _verdict(_fake(canary=HEALTHY)).outcome == gate.PASS
