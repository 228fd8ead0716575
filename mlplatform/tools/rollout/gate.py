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
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from mlplatform.model.config import AnalysisConfig
from mlplatform.tools.rollout import judge
from mlplatform.tools.rollout.prometheus import (  # noqa: F401 - re-exported: callers import them from the gate
    PrometheusClient,
    PrometheusError,
    Queries,
    promql_range,
    seconds,
)

PASS, FAIL, NOT_YET = "pass", "fail", "not-yet"
# Stable's p99 boundary comes from its traffic in this look-back before the step: data the
# step's test does not use, so the boundary is fixed before the evidence it judges.
BOUNDARY_LOOKBACK = timedelta(hours=1)


@dataclass(frozen=True)
class Thresholds:
    min_requests: int
    min_success_rate: float
    max_p99_latency_ms: float
    min_accuracy: float | None
    compare_with_stable: bool
    max_error_rate_increase: float = 0.1
    max_slow_request_increase: float = 0.1
    confidence: float = 0.99
    max_inconclusive_steps: int = 10

    @classmethod
    def from_analysis(cls, analysis: AnalysisConfig) -> Thresholds:
        return cls(
            min_requests=analysis.min_requests,
            min_success_rate=analysis.min_success_rate,
            max_p99_latency_ms=analysis.max_p99_latency_ms,
            min_accuracy=analysis.min_accuracy,
            compare_with_stable=analysis.compare_with_stable,
            max_error_rate_increase=analysis.max_error_rate_increase,
            max_slow_request_increase=analysis.max_slow_request_increase,
            confidence=analysis.confidence,
            max_inconclusive_steps=analysis.max_inconclusive_steps,
        )


@dataclass(frozen=True)
class GateVerdict:
    """One check of the canary: the numbers, the statistics, the thresholds, the outcome and why."""

    healthy: bool
    namespace: str
    deployment: str
    interval: str
    requests: float
    success_rate: float | None
    p99_latency_ms: float | None
    accuracy: float | None
    stable_success_rate: float | None
    thresholds: Thresholds
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked_at: str = ""
    outcome: str = ""
    decisive: bool = False
    """A failure `watch` acts on at once: a sequential test rejected, or the step stayed inconclusive too long."""
    since: str = ""
    window_end: str = ""
    intervals: int = 0
    stable_deployment: str | None = None
    stable_requests: float | None = None
    comparisons: dict = field(default_factory=dict)
    queries: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.outcome:
            object.__setattr__(self, "outcome", PASS if self.healthy else FAIL)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_record(self) -> dict:
        """The verdict as plain JSON: what was asked, over which window, what was measured, against what."""
        record = {
            "outcome": self.outcome,
            "decisive": self.decisive,
            "target": f"{self.namespace}/{self.deployment}",
            "stable": self.stable_deployment,
            "window": {
                "since": self.since,
                "end": self.window_end,
                "checkedAt": self.checked_at,
                "interval": self.interval,
                "intervals": self.intervals,
            },
            "samples": {"canaryRequests": self.requests, "stableRequests": self.stable_requests},
            "measured": {
                "successRate": self.success_rate,
                "p99LatencyMs": _finite(self.p99_latency_ms),
                "accuracy": self.accuracy,
                "stableSuccessRate": self.stable_success_rate,
            },
            "thresholds": asdict(self.thresholds),
            "comparisons": self.comparisons,
            "queries": self.queries,
            "reasons": self.reasons,
            "notes": self.notes,
        }
        return record

    def summary(self) -> str:
        """One line with the numbers, for terminals and commit messages."""
        parts = [f"requests={self.requests:.0f}"]
        parts.append(f"success={_pct(self.success_rate)}")
        parts.append(f"p99={_ms(self.p99_latency_ms)}")
        if self.accuracy is not None or self.thresholds.min_accuracy is not None:
            parts.append(f"accuracy={'n/a' if self.accuracy is None else f'{self.accuracy:.3f}'}")
        if self.thresholds.compare_with_stable:
            parts.append(f"stable_success={_pct(self.stable_success_rate)}")
        for name, comparison in self.comparisons.items():
            if "eValue" in comparison:
                parts.append(f"{name}_e={_num(comparison['eValue'])}/{comparison['threshold']:g}")
        label = {PASS: "healthy", FAIL: "UNHEALTHY", NOT_YET: "NOT YET"}[self.outcome]
        return f"{label} over {self.interval}: " + " ".join(parts)


def _finite(value: float | None) -> float | str | None:
    return value if value is None or math.isfinite(value) else "inf"


def _num(value) -> str:
    return value if isinstance(value, str) else f"{value:.3g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}ms"


# -- gathering: every Prometheus query of one verdict -----------------------------------


@dataclass(frozen=True)
class Window:
    since: datetime
    at: datetime
    interval_seconds: float

    @cached_property
    def intervals(self) -> int:
        return max(0, int((self.at - self.since).total_seconds() // self.interval_seconds))

    @cached_property
    def points(self) -> list[float]:
        """The ends of the whole intervals since `since` (unix seconds): each point covers the interval before it."""
        first = self.since.timestamp() + self.interval_seconds
        return [first + k * self.interval_seconds for k in range(self.intervals)]

    @cached_property
    def span(self) -> str:
        return promql_range(self.intervals * self.interval_seconds)

    @cached_property
    def end(self) -> datetime:
        return self.since + timedelta(seconds=self.intervals * self.interval_seconds)


@dataclass
class Evidence:
    """What Prometheus said for one verdict, interval by interval, and the queries that said it."""

    requests: list[float]
    errors: list[float]
    slow: list[float] = field(default_factory=list)
    buckets: judge.Buckets = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.requests)


class _Reader:
    """Runs and records the queries of one verdict; one range query per counter series."""

    def __init__(self, client: PrometheusClient, window: Window, interval: str):
        self.client, self.window, self.interval = client, window, interval
        self.queries: dict[str, str] = {}

    def series(self, name: str, promql: str) -> list[float]:
        self.queries[name] = promql
        if not self.window.intervals:
            return []
        start = datetime.fromtimestamp(self.window.points[0], UTC)
        values = self.client.query_range(promql, start, self.window.end, self.window.interval_seconds)
        counts = [0.0] * self.window.intervals
        for t, value in values.items():
            # Prometheus answers at start + k·step, its timestamps rounded to the millisecond.
            k = round((t - start.timestamp()) / self.window.interval_seconds)
            if 0 <= k < len(counts):
                counts[k] = max(0.0, round(value))  # increase() extrapolates; requests are whole
        return counts

    def evidence(self, name: str, namespace: str, deployment: str, boundary: str | None) -> Evidence:
        queries = Queries.for_deployment(namespace, deployment, self.interval)
        found = Evidence(
            requests=self.series(f"{name}.requests", queries.requests),
            errors=self.series(f"{name}.errors", queries.errors),
        )
        if boundary is not None:
            found.slow = self.series(f"{name}.slow", queries.slower_than(boundary, self.interval))
        whole = Queries.for_deployment(namespace, deployment, self.window.span).buckets
        self.queries[f"{name}.buckets"] = whole
        found.buckets = self.client.query_by(whole, "le", at=self.window.end) if self.window.intervals else {}
        return found

    def boundary(self, namespace: str, stable: str) -> tuple[str | None, str]:
        """Stable's p99 bucket boundary from the hour before the step; failing that, from the step itself."""
        step_span = self.window.intervals * self.window.interval_seconds
        for label, at, span in (
            ("the hour before the step", self.window.since, BOUNDARY_LOOKBACK.total_seconds()),
            ("the step so far", self.window.end, step_span),
        ):
            if span <= 0:
                continue
            promql = Queries.for_deployment(namespace, stable, promql_range(span)).buckets
            self.queries["stable.boundary"] = promql
            le = judge.boundary_le(self.client.query_by(promql, "le", at=at))
            if le is not None:
                return le, label
        return None, ""


# -- judging ---------------------------------------------------------------------------------


@dataclass
class _Judgement:
    fails: list[str] = field(default_factory=list)
    waits: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    decisive: bool = False
    comparisons: dict = field(default_factory=dict)


def _guard_rails(t: Thresholds, canary: Evidence, accuracy: float | None, into: _Judgement) -> None:
    """The absolute thresholds, over the whole step (once there is enough traffic to read them)."""
    success = 1.0 - sum(canary.errors) / canary.total
    floor = judge.floor_test(
        [judge.IntervalCounts(n, e) for n, e in zip(canary.requests, canary.errors, strict=True)],
        max_rate=1.0 - t.min_success_rate,
        confidence=t.confidence,
    )
    into.comparisons["successRateFloor"] = {
        "what": f"success rate against the floor {_pct(t.min_success_rate)}",
        **floor.to_record(),
        "method": "mixture SPRT of the error rate against the floor's (Wald; Robbins)",
        "nullRatio": None,
        "observedRatio": None,
        "stable": None,
    }
    if floor.rejected:
        into.decisive = True
        into.fails.append(
            f"success rate {_pct(success)} is below {_pct(t.min_success_rate)} at {t.confidence:.0%} confidence: "
            f"e-value {floor.e_value:.3g} >= {floor.threshold:g}"
        )
    p99 = judge.histogram_quantile(0.99, canary.buckets)
    if p99 is None:
        into.waits.append("no latency data for the canary in the step")
    elif p99 > t.max_p99_latency_ms:
        into.fails.append(f"p99 latency {_ms(p99)} is above {_ms(t.max_p99_latency_ms)}")
    if t.min_accuracy is not None:
        if accuracy is None:
            into.fails.append("no ml_model_accuracy gauge for the canary")
        elif accuracy < t.min_accuracy:
            into.fails.append(f"accuracy {accuracy:.3f} is below {t.min_accuracy:.3f}")


def _compare(
    t: Thresholds, canary: Evidence, stable: Evidence, boundary: tuple[str | None, str], into: _Judgement
) -> None:
    """The sequential tests against stable: error rate, and requests slower than stable's p99 boundary."""
    tests = [("errorRate", "error rate", canary.errors, stable.errors, t.max_error_rate_increase)]
    le, source = boundary
    if le is None:
        into.notes.append("stable's latency has no finite p99 bucket: latency comparison skipped")
    else:
        tests.append(
            ("latency", f"share of requests slower than {le}ms", canary.slow, stable.slow, t.max_slow_request_increase)
        )
    for key, what, canary_bad, stable_bad, tolerance in tests:
        result = judge.sequential_test(
            [judge.IntervalCounts(n, b) for n, b in zip(canary.requests, canary_bad, strict=True)],
            [judge.IntervalCounts(n, b) for n, b in zip(stable.requests, stable_bad, strict=True)],
            tolerance=tolerance,
            confidence=t.confidence,
        )
        record = {"what": what, **result.to_record(), "eValues": [_finite(e) for e in result.e_values]}
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


def _judge(
    t: Thresholds,
    window: Window,
    canary: Evidence,
    stable: Evidence | None,
    boundary: tuple[str | None, str],
    accuracy: float | None,
    canary_weight: int | None,
) -> _Judgement:
    j = _Judgement()
    if canary.total < t.min_requests:
        j.waits.append(
            f"not enough traffic: {canary.total:.0f} canary requests in {window.intervals} intervals since the "
            f"step started, need at least {t.min_requests}"
        )
    else:
        _guard_rails(t, canary, accuracy, j)
    if stable is not None:
        if stable.total >= t.min_requests:
            _compare(t, canary, stable, boundary, j)
        elif canary_weight == 100:
            # At 100% the stable pods get no traffic by design; the guard rails decide alone.
            j.notes.append("the canary takes all traffic: no comparison with stable")
        else:
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
) -> GateVerdict:
    """Judge the canary on the whole intervals from `since` (default: one interval) to `at` (default: now).
    Raises PrometheusError, never guesses."""
    t = Thresholds.from_analysis(analysis)
    at = at or datetime.now(UTC)
    step = seconds(analysis.interval)
    window = Window(since=since or at - timedelta(seconds=step), at=at, interval_seconds=step)
    reader = _Reader(client, window, analysis.interval)
    compared = stable_deployment if t.compare_with_stable else None
    compare = compared is not None
    boundary = reader.boundary(namespace, compared) if compared is not None else (None, "")
    canary = reader.evidence("canary", namespace, deployment, boundary[0])
    stable = reader.evidence("stable", namespace, compared, boundary[0]) if compared is not None else None
    accuracy = None
    if t.min_accuracy is not None:
        reader.queries["canary.accuracy"] = Queries.for_deployment(namespace, deployment, "1m").accuracy
        accuracy = client.query(reader.queries["canary.accuracy"], at=window.end)
    j = _judge(t, window, canary, stable, boundary, accuracy, canary_weight)
    outcome = FAIL if j.fails else NOT_YET if j.waits else PASS
    return GateVerdict(
        healthy=outcome == PASS,
        outcome=outcome,
        decisive=j.decisive and outcome == FAIL,
        namespace=namespace,
        deployment=deployment,
        stable_deployment=stable_deployment if compare else None,
        interval=analysis.interval,
        since=window.since.isoformat(timespec="seconds"),
        intervals=window.intervals,
        requests=canary.total,
        success_rate=1.0 - sum(canary.errors) / canary.total if canary.total else None,
        p99_latency_ms=judge.histogram_quantile(0.99, canary.buckets),
        accuracy=accuracy,
        stable_requests=stable.total if stable else None,
        stable_success_rate=1.0 - sum(stable.errors) / stable.total if stable and stable.total else None,
        thresholds=t,
        reasons=j.fails + ([] if j.fails else j.waits),
        notes=j.notes,
        comparisons=j.comparisons,
        queries=reader.queries,
        window_end=window.end.isoformat(timespec="seconds"),
        checked_at=at.isoformat(timespec="seconds"),
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
