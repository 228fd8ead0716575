"""The judge's tests run for the canary's whole rollout: the evidence of one step carries into the next,
through the rollout status, and a carried test is the same test as one run over all the intervals."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.judge.fake_prometheus import FakePrometheus
from mlplatform.model.config import AnalysisConfig
from mlplatform.tools.rollout import context, judge, watch
from mlplatform.tools.rollout.evidence import EVIDENCE_VERSION, CarriedEvidence
from mlplatform.tools.rollout.gate import GateVerdict, evaluate
from tests.rollout.conftest import canary_in
from tests.rollout.test_dwell import DWELLS, T0, _ctx
from tests.rollout.test_gate import DEP, HISTORY, NS, STABLE, _buckets
from tests.rollout.test_gate import T0 as GATE_T0

COUNTS = st.lists(
    st.tuples(st.integers(0, 2000), st.integers(0, 40), st.integers(0, 9000), st.integers(0, 60)),
    min_size=0,
    max_size=12,
)


def _split(rows):
    canary = [judge.IntervalCounts(n, min(b, n)) for n, b, _, _ in rows]
    stable = [judge.IntervalCounts(n, min(b, n)) for _, _, n, b in rows]
    return canary, stable


@settings(max_examples=200, deadline=None, derandomize=True)
@given(first=COUNTS, second=COUNTS, tolerance=st.sampled_from([0.0, 0.1, 0.5]))
def test_a_carried_test_is_the_same_test_run_over_both_steps(first, second, tolerance) -> None:
    """Continuing from the first step's state gives exactly the e-values, running maximum and counts of one
    test over the intervals of both steps: carrying loses nothing and adds nothing (so Ville's bound holds
    for the whole rollout, once)."""
    (c1, s1), (c2, s2) = _split(first), _split(second)
    whole = judge.sequential_test(c1 + c2, s1 + s2, tolerance=tolerance, confidence=0.99)
    one = judge.sequential_test(c1, s1, tolerance=tolerance, confidence=0.99)
    # Through the status: JSON in between, as a scheduled run reads it back.
    carried = judge.Carried.from_record(json.loads(json.dumps(one.carried_out.to_record())))
    two = judge.sequential_test(c2, s2, tolerance=tolerance, confidence=0.99, carried=carried)
    assert one.e_values + two.e_values == pytest.approx(whole.e_values)
    assert two.e_value == pytest.approx(whole.e_value) and two.rejected == whole.rejected
    assert two.carried_out.log_lrs == pytest.approx(whole.carried_out.log_lrs or (0.0,) * len(judge.ALTERNATIVES))
    assert (two.canary_bad, two.stable_requests, two.carried_out.intervals) == (
        whole.canary_bad,
        whole.stable_requests,
        len(first) + len(second),
    )
    floor_whole = judge.floor_test(c1 + c2, max_rate=0.01, confidence=0.99)
    floor_one = judge.floor_test(c1, max_rate=0.01, confidence=0.99)
    floor_two = judge.floor_test(c2, max_rate=0.01, confidence=0.99, carried=floor_one.carried_out)
    assert floor_two.e_value == pytest.approx(floor_whole.e_value)


def _rollout_rejects(rng, *, ratio: float, carry: bool, stable_rate: float = 0.01, confidence: float = 0.9) -> bool:
    """One canary through steps 10/25/50/75% (5/10/15/10 one-minute intervals, 2000 requests a minute):
    does the error-rate test (tolerance 10%) ever reject? Carried, or restarted at each step."""
    carried, rejected = None, False
    for share, intervals in ((0.10, 5), (0.25, 10), (0.50, 15), (0.75, 10)):
        canary_n = rng.binomial(2000, share, size=intervals)
        canary = [judge.IntervalCounts(n, rng.poisson(n * stable_rate * ratio)) for n in canary_n]
        stable = [judge.IntervalCounts(2000 - n, rng.poisson((2000 - n) * stable_rate)) for n in canary_n]
        result = judge.sequential_test(canary, stable, tolerance=0.1, confidence=confidence, carried=carried)
        rejected = rejected or result.rejected
        carried = result.carried_out if carry else None
    return rejected


def test_carried_over_a_rollout_the_false_alarm_rate_stays_under_its_bound() -> None:
    """A canary exactly at the null's edge (1.1x stable), checked every interval of four steps whose traffic
    split changes: the carried test rejects in at most 1 - confidence of the rollouts, once for the whole
    rollout (a test restarted at every step may spend its 10% at each of the four)."""
    rng = np.random.default_rng(30)
    rate = sum(_rollout_rejects(rng, ratio=1.1, carry=True) for _ in range(400)) / 400
    assert rate <= 0.10, rate


def test_carrying_finds_what_restarting_misses() -> None:
    """A 2x canary at 0.2% errors whose evidence few single steps hold enough of, at the default 99%
    confidence: carried, the rollout is rejected far more often than by a test that restarts at each
    step (the cause of the 7% false promotions at 5000 req/min before)."""
    kind = {"ratio": 2.0, "stable_rate": 0.002, "confidence": 0.99}
    carried = sum(_rollout_rejects(np.random.default_rng(s), carry=True, **kind) for s in range(150))
    restarted = sum(_rollout_rejects(np.random.default_rng(s), carry=False, **kind) for s in range(150))
    assert carried >= restarted + 30, (carried, restarted)


# -- the gate: judgeEvidence in, judgeEvidence out --------------------------------------------


def _two_steps(canary_errors: int = 0, stable_le: str = "50") -> FakePrometheus:
    """Stable alone for an hour, then 5 minutes at one split and 5 at another."""
    fake = FakePrometheus(GATE_T0, 60)
    for k in range(HISTORY + 10):
        canary = (0, 0) if k < HISTORY else (100, canary_errors) if k < HISTORY + 5 else (300, 3 * canary_errors)
        stable = (900, 2) if k < HISTORY + 5 else (700, 2)
        fake.version(DEP).add(canary[0], canary[1], _buckets(canary[0], "50"))
        le = "50" if k < HISTORY else stable_le
        fake.version(STABLE).add(stable[0], stable[1], _buckets(stable[0], le))
    return fake


def _step(fake, start: int, evidence=None, **analysis) -> GateVerdict:
    since = GATE_T0 + timedelta(minutes=HISTORY + start)
    return evaluate(
        fake,
        AnalysisConfig(**{"interval": "1m", **analysis}),
        namespace=NS,
        deployment=DEP,
        stable_deployment=STABLE,
        since=since,
        at=since + timedelta(minutes=5),
        canary_weight=25,
        evidence=evidence,
    )


def test_the_second_step_continues_the_first_steps_test() -> None:
    """Step 2 with step 1's judgeEvidence judges on 10 intervals, and its e-value is that of one test over
    both steps' counts; its record names what it carried in (so `explain` can replay it)."""
    fake = _two_steps(canary_errors=1)
    first = _step(fake, 0)
    assert first.evidence_out is not None and first.evidence_out["version"] == EVIDENCE_VERSION
    evidence = json.loads(json.dumps(first.evidence_out))
    second = _step(fake, 5, evidence=evidence)
    error_rate = second.comparisons["errorRate"]
    assert (error_rate["intervals"], error_rate["carriedIntervals"]) == (10, 5)
    canary = [judge.IntervalCounts(100, 1)] * 5 + [judge.IntervalCounts(300, 3)] * 5
    stable = [judge.IntervalCounts(900, 2)] * 5 + [judge.IntervalCounts(700, 2)] * 5
    whole = judge.sequential_test(canary, stable, tolerance=0.1, confidence=0.99)
    assert error_rate["eValue"] == pytest.approx(whole.e_value)
    assert second.to_record()["evidenceIn"] == evidence
    assert second.evidence_out is not None
    assert second.evidence_out["tests"]["errorRate"]["intervals"] == 10
    assert second.evidence_out["tests"]["successRateFloor"]["intervals"] == 10


def test_the_latency_boundary_stays_where_the_canary_started() -> None:
    """Stable's p99 bucket is fixed at the canary's first step: a later step uses the carried boundary
    and does not query it again, so the latency test's null does not move between steps."""
    fake = _two_steps(stable_le="200")
    first = _step(fake, 0)
    assert first.comparisons["latency"]["boundaryLe"] == "50"
    second = _step(fake, 5, evidence=first.evidence_out)
    assert second.comparisons["latency"]["boundaryLe"] == "50"
    assert second.comparisons["latency"]["carriedIntervals"] == 5
    assert "stable.boundary" not in second.queries


@pytest.mark.parametrize(
    ("change", "analysis", "why"),
    [
        ({"canary": "fraud-detector-v7"}, {}, "is about fraud-detector-v7"),
        ({"through": "2026-01-01T01:07:00+00:00"}, {}, "after this step's start"),
        ({"version": EVIDENCE_VERSION + 1}, {}, f"version {EVIDENCE_VERSION + 1}"),
        ({"alternatives": [2.0]}, {}, "mixes over [2.0]"),
        ({}, {"confidence": 0.95}, "the analysis now asks 0.95"),
        ({"tests": {"errorRate": {"parameter": 0.1, "logLikelihoodRatios": [1.0]}}}, {}, "malformed"),
    ],
    ids=["other-canary", "overlap", "format-version", "other-mixture", "other-confidence", "malformed"],
)
def test_evidence_that_does_not_fit_is_not_used_and_the_verdict_says_why(change, analysis, why) -> None:
    """A record about another canary, overlapping this step, in another format or under other settings
    would break the test's guarantee: the tests restart at this step (valid, only slower), with a note."""
    fake = _two_steps()
    first_out = _step(fake, 0).evidence_out
    assert first_out is not None
    evidence = {**first_out, **change}
    second = _step(fake, 5, evidence=evidence, **analysis)
    assert second.comparisons["errorRate"]["carriedIntervals"] == 0 and second.evidence_in is None
    (note,) = [n for n in second.notes if n.startswith("carried evidence not used")]
    assert why in note, note


def test_a_changed_tolerance_restarts_that_test_alone() -> None:
    """Another maxErrorRateIncrease is another null hypothesis: the error-rate test restarts, the others
    carry on."""
    fake = _two_steps()
    second = _step(fake, 5, evidence=_step(fake, 0).evidence_out, max_error_rate_increase=0.3)
    assert second.comparisons["errorRate"]["carriedIntervals"] == 0
    assert second.comparisons["latency"]["carriedIntervals"] == 5


def test_carried_evidence_round_trips_through_json() -> None:
    out = _step(_two_steps(canary_errors=1), 0).evidence_out
    again = CarriedEvidence.from_record(json.loads(json.dumps(out))).to_record()
    assert again == out


# -- watch: the status carries it between steps and scheduled runs ----------------------------


def test_watch_stores_the_evidence_at_a_step_and_the_next_run_resumes_it(
    project, stack_file, status_file, monkeypatch
) -> None:
    """The check that advances writes its verdict's judgeEvidence into the new step's status; a later
    scheduled run (a new process) hands exactly that to the gate, and only for the step it belongs to."""
    stack_file.write_text(DWELLS.replace("[15m, 10m", "[1m, 10m"))
    seen: list[dict | None] = []
    carried_out = {"version": EVIDENCE_VERSION, "marker": "from the 10% step"}

    def gate(self, config, since=None, at=None, evidence=None):
        from tests.rollout.test_concurrency import _healthy

        seen.append(evidence)
        return GateVerdict(**{**_healthy(config).__dict__, "evidence_out": carried_out})

    monkeypatch.setattr(context.Context, "gate", gate)
    now = [T0]
    ctx, _ = _ctx(project, now, "watch", "--interval", "60", "--max-checks", "2")
    assert watch.watch(ctx, sleep=lambda s: now.__setitem__(0, now[0] + s)) == 0
    assert canary_in(stack_file).weight == 25
    assert json.loads(status_file.read_text())["judgeEvidence"] == carried_out
    ctx, _ = _ctx(project, now, "watch", "--max-checks", "1")
    assert watch.watch(ctx) == 0
    assert seen[-1] == carried_out, seen
    # A weight moved by hand is another step: its evidence is not carried.
    stack_file.write_text(stack_file.read_text().replace("weight: 25", "weight: 50"))
    ctx, _ = _ctx(project, now, "watch", "--max-checks", "1")
    assert watch.watch(ctx) == 0
    assert seen[-1] is None
