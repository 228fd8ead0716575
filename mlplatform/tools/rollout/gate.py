"""The canary gate: Linkerd proxy metrics in Prometheus, judged against stable and the guard rails.

A verdict uses all the evidence since the step started (`since`), interval by
interval, and has three outcomes:
- `fail`: a sequential test found the canary worse than stable beyond its
  tolerance (see `judge`: valid however often it is checked, so `watch` aborts at
  once), a guard rail is crossed (minSuccessRate, maxP99LatencyMs, minAccuracy,
  over the whole step), or the step stayed `not yet` for maxInconclusiveSteps
  intervals;
- `not-yet`: too few canary requests, no data, or stable without traffic while
  the canary does not take it all. It never promotes, and is never a failure
  by itself: a canary nobody called has proved nothing either way;
- `pass`: enough traffic, no guard rail crossed, no regression detected.

The gate is read-only, and an unreachable Prometheus raises PrometheusError
instead of producing a verdict. Every verdict records its queries, window,
sample sizes, statistics, thresholds and outcome (`to_record`), so it can be
replayed: `rollout explain` runs the same code at an earlier time.

The sequential tests run for the canary's whole rollout: `evaluate` continues
them from the evidence the previous step carried (`evidence`, kept in the rollout
status between scheduled runs) and hands their state on (`evidence_out`). What a
verdict reads is `evidence`; what it says is `verdict`; here is the judging.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mlplatform.model.config import AnalysisConfig
from mlplatform.tools.rollout import judge
from mlplatform.tools.rollout.evidence import CarriedEvidence, Evidence, Reader, Window
from mlplatform.tools.rollout.prometheus import (  # noqa: F401 - re-exported: callers import them from the gate
    PrometheusClient,
    PrometheusError,
    Queries,
    promql_range,
    seconds,
)
from mlplatform.tools.rollout.verdict import (
    FAIL,
    NOT_YET,
    PASS,
    GateVerdict,
    Thresholds,
    finite,
    ms,
    pct,
)

# -- judging ---------------------------------------------------------------------------------


@dataclass
class _Judgement:
    fails: list[str] = field(default_factory=list)
    waits: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    decisive: bool = False
    comparisons: dict = field(default_factory=dict)
    carry: dict[str, tuple[float, judge.Carried]] = field(default_factory=dict)
    """Each sequential test's state after this step, whether or not it decided anything yet."""


def _guard_rails(
    t: Thresholds,
    canary: Evidence,
    accuracy: float | None,
    carried: CarriedEvidence | None,
    into: _Judgement,
    decide: bool,
) -> None:
    """The absolute thresholds; they decide once there is enough traffic in the step to read them.
    The success-rate floor is a sequential test carried across steps like the comparisons."""
    max_rate = 1.0 - t.min_success_rate
    floor = judge.floor_test(
        canary.counts(canary.errors),
        max_rate=max_rate,
        confidence=t.confidence,
        carried=carried.state("successRateFloor", max_rate) if carried else None,
    )
    into.carry["successRateFloor"] = (max_rate, floor.carried_out)
    if not decide:
        return
    success = 1.0 - sum(canary.errors) / canary.total
    into.comparisons["successRateFloor"] = {
        "what": f"success rate against the floor {pct(t.min_success_rate)}",
        **floor.to_record(),
        "method": "mixture SPRT of the error rate against the floor's (Wald; Robbins)",
        "nullRatio": None,
        "observedRatio": None,
        "stable": None,
    }
    if floor.rejected:
        into.decisive = True
        into.fails.append(
            f"success rate {pct(success)} is below {pct(t.min_success_rate)} at {t.confidence:.0%} confidence: "
            f"e-value {floor.e_value:.3g} >= {floor.threshold:g}"
        )
    p99 = judge.histogram_quantile(0.99, canary.buckets)
    if p99 is None:
        into.waits.append("no latency data for the canary in the step")
    elif p99 > t.max_p99_latency_ms:
        into.fails.append(f"p99 latency {ms(p99)} is above {ms(t.max_p99_latency_ms)}")
    if t.min_accuracy is not None:
        if accuracy is None:
            into.fails.append("no ml_model_accuracy gauge for the canary")
        elif accuracy < t.min_accuracy:
            into.fails.append(f"accuracy {accuracy:.3f} is below {t.min_accuracy:.3f}")


def _compare(
    t: Thresholds,
    canary: Evidence,
    stable: Evidence,
    boundary: tuple[str | None, str],
    carried: CarriedEvidence | None,
    into: _Judgement,
    decide: bool,
) -> None:
    """The sequential tests against stable: error rate, and requests slower than stable's p99 boundary.
    Each continues the canary's test from earlier steps (`carried`); it decides only when `decide`."""
    tests = [("errorRate", "error rate", canary.errors, stable.errors, t.max_error_rate_increase)]
    le, source = boundary
    if le is None and decide:
        into.notes.append("stable's latency has no finite p99 bucket: latency comparison skipped")
    elif le is not None:
        tests.append(
            ("latency", f"share of requests slower than {le}ms", canary.slow, stable.slow, t.max_slow_request_increase)
        )
    for key, what, canary_bad, stable_bad, tolerance in tests:
        result = judge.sequential_test(
            canary.counts(canary_bad),
            stable.counts(stable_bad),
            tolerance=tolerance,
            confidence=t.confidence,
            carried=carried.state(key, tolerance) if carried else None,
        )
        into.carry[key] = (tolerance, result.carried_out)
        if not decide:
            continue
        record = {"what": what, **result.to_record(), "eValues": [finite(e) for e in result.e_values]}
        if key == "latency":
            record["boundaryLe"], record["boundaryFrom"] = le, source
        into.comparisons[key] = record
        if result.rejected:
            into.decisive = True
            ratio = "" if result.ratio is None else f" ({result.ratio:.2f}x stable's)"
            into.fails.append(
                f"canary's {what} is worse than stable's by more than {tolerance:.0%}{ratio} at "
                f"{t.confidence:.0%} confidence: e-value {result.e_value:.3g} >= {result.threshold:g}"
            )


@dataclass(frozen=True)
class _Read:
    """Everything one verdict read: the window, both versions' counts, the boundary, the carried evidence."""

    window: Window
    canary: Evidence
    stable: Evidence | None
    boundary: tuple[str | None, str]
    accuracy: float | None
    carried: CarriedEvidence | None


def _judge(t: Thresholds, read: _Read, canary_weight: int | None) -> _Judgement:
    j = _Judgement()
    canary, stable, window = read.canary, read.stable, read.window
    enough = canary.total >= t.min_requests
    if not enough:
        j.waits.append(
            f"not enough traffic: {canary.total:.0f} canary requests in {window.intervals} intervals since the "
            f"step started, need at least {t.min_requests}"
        )
    _guard_rails(t, canary, read.accuracy, read.carried, j, decide=enough)
    if stable is not None:
        compared = stable.total >= t.min_requests
        _compare(t, canary, stable, read.boundary, read.carried, j, decide=compared)
        if not compared and canary_weight == 100:
            # At 100% the stable pods get no traffic by design; the guard rails decide alone.
            j.notes.append("the canary takes all traffic: no comparison with stable")
        elif not compared:
            j.waits.append(
                f"stable has {stable.total:.0f} requests since the step started, need {t.min_requests} to compare"
            )
    if not j.fails and j.waits and window.intervals >= t.max_inconclusive_steps:
        j.decisive = True
        j.fails.append(
            f"still inconclusive after {window.intervals} intervals (maxInconclusiveSteps "
            f"{t.max_inconclusive_steps}): " + "; ".join(j.waits)
        )
    return j


def _carried(
    record: dict | None, *, canary: str, stable: str | None, since: datetime, confidence: float, notes: list[str]
) -> CarriedEvidence | None:
    """The evidence earlier steps carried, if it can continue into this step; why not, in `notes`."""
    if not record:
        return None
    try:
        carried = CarriedEvidence.from_record(record)
    except ValueError as err:
        notes.append(f"carried evidence not used, the tests restart at this step: {err}")
        return None
    misfit = carried.misfit(canary=canary, stable=stable, since=since, confidence=confidence)
    if misfit:
        notes.append(f"carried evidence not used, the tests restart at this step: {misfit}")
        return None
    return carried


def _read(
    client: PrometheusClient,
    analysis: AnalysisConfig,
    window: Window,
    namespace: str,
    deployment: str,
    compared: str | None,
    carried: CarriedEvidence | None,
) -> tuple[_Read, dict[str, str]]:
    reader = Reader(client, window, analysis.interval)
    boundary: tuple[str | None, str] = (None, "")
    if carried is not None and carried.boundary[0] is not None:
        # One boundary for the canary's whole test: the null must not move between steps.
        boundary = carried.boundary
    elif compared is not None:
        boundary = reader.boundary(namespace, compared)
    canary = reader.evidence("canary", namespace, deployment, boundary[0])
    stable = reader.evidence("stable", namespace, compared, boundary[0]) if compared is not None else None
    accuracy = None
    if analysis.min_accuracy is not None:
        reader.queries["canary.accuracy"] = Queries.for_deployment(namespace, deployment, "1m").accuracy
        accuracy = client.query(reader.queries["canary.accuracy"], at=window.end)
    return _Read(window, canary, stable, boundary, accuracy, carried), reader.queries


def evaluate(
    client: PrometheusClient,
    analysis: AnalysisConfig,
    *,
    namespace: str,
    deployment: str,
    stable_deployment: str | None = None,
    since: datetime | None = None,
    at: datetime | None = None,
    canary_weight: int | None = None,
    evidence: dict | None = None,
) -> GateVerdict:
    """Judge the canary on the whole intervals from `since` (default: one interval) to `at` (default: now),
    continuing the sequential tests from `evidence` (the status' `judgeEvidence`: where the canary's
    previous step left them) when it fits. Raises PrometheusError, never guesses."""
    t = Thresholds.from_analysis(analysis)
    at = at or datetime.now(UTC)
    step = seconds(analysis.interval)
    window = Window(since=since or at - timedelta(seconds=step), at=at, interval_seconds=step)
    compared = stable_deployment if t.compare_with_stable else None
    notes: list[str] = []
    carried = _carried(
        evidence, canary=deployment, stable=compared, since=window.since, confidence=t.confidence, notes=notes
    )
    read, queries = _read(client, analysis, window, namespace, deployment, compared, carried)
    j = _judge(t, read, canary_weight)
    outcome = FAIL if j.fails else NOT_YET if j.waits else PASS
    canary, stable = read.canary, read.stable
    out = CarriedEvidence(deployment, compared, window.end, t.confidence, read.boundary, j.carry)
    return GateVerdict(
        healthy=outcome == PASS,
        outcome=outcome,
        decisive=j.decisive and outcome == FAIL,
        namespace=namespace,
        deployment=deployment,
        stable_deployment=compared,
        interval=analysis.interval,
        since=window.since.isoformat(timespec="seconds"),
        intervals=window.intervals,
        requests=canary.total,
        success_rate=1.0 - sum(canary.errors) / canary.total if canary.total else None,
        p99_latency_ms=judge.histogram_quantile(0.99, canary.buckets),
        accuracy=read.accuracy,
        stable_requests=stable.total if stable else None,
        stable_success_rate=1.0 - sum(stable.errors) / stable.total if stable and stable.total else None,
        thresholds=t,
        reasons=j.fails + ([] if j.fails else j.waits),
        notes=notes + j.notes,
        comparisons=j.comparisons,
        queries=queries,
        window_end=window.end.isoformat(timespec="seconds"),
        checked_at=at.isoformat(timespec="seconds"),
        evidence_in=carried.to_record() if carried else None,
        evidence_out=out.to_record(),
    )


ABORT, ADVANCE, WAIT = "abort", "advance", "wait"


def act(verdict: GateVerdict, failures: int, failure_threshold: int, dwelled: bool) -> tuple[str, int]:
    """What `watch` does with a verdict: (action, consecutive guard-rail failures so far).

    A decisive failure aborts at once (the sequential test is valid at every look, so
    waiting for it to repeat only delays the rollback); other failures abort after
    `failure_threshold` in a row. `not yet` neither counts as a failure nor resets the
    count, and never advances: only a pass after the dwell does.
    """
    failures = 0 if verdict.outcome == PASS else failures + (verdict.outcome == FAIL)
    if verdict.decisive or failures >= failure_threshold:
        return ABORT, failures
    if verdict.outcome == PASS and dwelled:
        return ADVANCE, failures
    return WAIT, failures
