"""Synthetic canaries with known ground truth, driven through a whole rollout as `watch` drives it.

Each canary is a class (what is true of it) and a seed. Traffic is generated one
interval at a time, because how much the canary gets depends on the weight the
gate has moved it to: Poisson total requests, a binomial split by weight, binomial
errors, multinomial latency buckets from a log-normal distribution. Stable has an
hour of history before the rollout (where the judge takes its p99 boundary).

Two gates run on the same kind of data: the judge (`gate.evaluate` + `gate.act`,
the code `watch` runs, with the fake Prometheus in place of HTTP) and the
threshold-only gate as it was before the judge (`legacy`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from bench.judge import legacy
from bench.judge.fake_prometheus import FakePrometheus
from mlplatform.model.config import AnalysisConfig
from mlplatform.tools.metrics_catalog import LINKERD_LATENCY_BUCKETS_MS
from mlplatform.tools.rollout import gate

NAMESPACE, CANARY, STABLE = "ml-serving", "fraud-detector-v6", "fraud-detector-v5"
INTERVAL_SECONDS = 60.0
HISTORY_INTERVALS = 60
MAX_INTERVALS = 150
T0 = datetime(2026, 1, 1, tzinfo=UTC)
# Stable's latency: log-normal, median 50 ms, p99 150 ms (inside Linkerd's (100, 200] bucket).
MEDIAN_MS, SIGMA = 50.0, math.log(3.0) / 2.326


@dataclass(frozen=True)
class Truth:
    """What is true of a class of canaries."""

    name: str
    requests_per_minute: float  # to the model, split between the versions by weight
    stable_error_rate: float = 0.002
    error_ratio: float = 1.0  # canary's error rate / stable's
    latency_scale: float = 1.0  # canary's latencies / stable's (so its p99 too)
    gap_probability: float = 0.0  # chance an interval has no traffic at all
    degrade_after: int | None = None  # intervals of equality, then `error_ratio`
    worse: bool = False  # ground truth: should it be rolled back?
    starved: bool = False  # too little traffic to judge: it must not be promoted

    @property
    def must_not_promote(self) -> bool:
        return self.worse or self.starved


CLASSES = (
    Truth("equal, 500 req/min", 500),
    Truth("equal, 5000 req/min", 5000),
    Truth("errors 2x, 500 req/min", 500, error_ratio=2.0, worse=True),
    Truth("errors 2x, 5000 req/min", 5000, error_ratio=2.0, worse=True),
    Truth("errors 2x, 50000 req/min", 50000, error_ratio=2.0, worse=True),
    Truth("errors 1.2x, 5000 req/min", 5000, error_ratio=1.2, worse=True),
    Truth("p99 +10%, 500 req/min", 500, latency_scale=1.1, worse=True),
    Truth("p99 +10%, 5000 req/min", 5000, latency_scale=1.1, worse=True),
    Truth("p99 +50%, 500 req/min", 500, latency_scale=1.5, worse=True),
    Truth("low traffic, 20 req/min", 20, starved=True),
    Truth("no traffic", 0, starved=True),
    Truth("traffic gaps (30% of minutes), 500 req/min", 500, gap_probability=0.3),
    Truth("degrades to 5x errors after 3 intervals, 500 req/min", 500, error_ratio=5.0, degrade_after=3, worse=True),
)


def _bucket_probabilities(scale: float) -> np.ndarray:
    """P(latency in each Linkerd bucket), the last one +Inf, for the log-normal scaled by `scale`."""

    def cdf(x: float) -> float:
        return 0.5 * (1.0 + math.erf(math.log(x / (MEDIAN_MS * scale)) / (SIGMA * math.sqrt(2.0))))

    edges = [cdf(b) for b in LINKERD_LATENCY_BUCKETS_MS] + [1.0]
    return np.diff([0.0, *edges])


@dataclass
class Outcome:
    result: str  # promoted | rolled back | undecided
    intervals: int  # when it ended
    reason: str = ""


class Rollout:
    """One canary's traffic, generated interval by interval into a fake Prometheus."""

    def __init__(self, truth: Truth, seed: int):
        self.truth = truth
        self.rng = np.random.default_rng(seed)
        self.prometheus = FakePrometheus(T0, INTERVAL_SECONDS)
        self.stable_p = _bucket_probabilities(1.0)
        self.canary_p = _bucket_probabilities(truth.latency_scale)
        self.k = 0  # intervals since the rollout started
        for _ in range(HISTORY_INTERVALS):
            self._emit(0)
        self.start = self.now

    @property
    def now(self) -> datetime:
        return T0 + timedelta(seconds=len(self.prometheus.version(STABLE).requests) * INTERVAL_SECONDS)

    def _emit(self, weight: int) -> None:
        t = self.truth
        rate = 0.0 if self.rng.random() < t.gap_probability else t.requests_per_minute
        total = self.rng.poisson(rate * INTERVAL_SECONDS / 60.0)
        canary_n = self.rng.binomial(total, weight / 100.0)
        degraded = t.degrade_after is None or self.k >= t.degrade_after
        ratio = t.error_ratio if degraded else 1.0
        for name, n, p, latency in (
            (CANARY, canary_n, t.stable_error_rate * ratio, self.canary_p),
            (STABLE, total - canary_n, t.stable_error_rate, self.stable_p),
        ):
            self.prometheus.version(name).add(n, self.rng.binomial(n, min(p, 1.0)), self.rng.multinomial(n, latency))

    def advance(self, weight: int) -> None:
        self._emit(weight)
        self.k += 1


def run_judge(
    truth: Truth, seed: int, analysis: AnalysisConfig, trace: list | None = None, carry: bool = True
) -> Outcome:
    """The rollout as `watch` runs it with the judge: a check at every interval's end, the sequential
    tests carried from one step to the next as the status carries them (`carry=False`: each step
    starts its tests afresh, the judge before evidence was carried)."""
    rollout = Rollout(truth, seed)
    steps, index, failures = [10, 25, 50, 75, 100], 0, 0
    step_start, evidence = rollout.now, None
    while rollout.k < MAX_INTERVALS:
        weight = steps[index]
        rollout.advance(weight)
        verdict = gate.evaluate(
            rollout.prometheus,
            analysis,
            namespace=NAMESPACE,
            deployment=CANARY,
            stable_deployment=STABLE,
            since=step_start,
            at=rollout.now,
            canary_weight=weight,
            evidence=evidence,
        )
        if trace is not None:
            trace.append((rollout.k, weight, verdict))
        dwelled = rollout.now - step_start >= timedelta(seconds=analysis.dwell_seconds(index))
        action, failures = gate.act(verdict, failures, analysis.failure_threshold, dwelled)
        if action == gate.ABORT:
            return Outcome("rolled back", rollout.k, "; ".join(verdict.reasons))
        if action == gate.ADVANCE:
            if index == len(steps) - 1:
                return Outcome("promoted", rollout.k)
            index, failures, step_start = index + 1, 0, rollout.now
            evidence = verdict.evidence_out if carry else None
    return Outcome("undecided", rollout.k)


def run_legacy(truth: Truth, seed: int, analysis: AnalysisConfig) -> Outcome:
    """The same rollout with the threshold-only gate of before (one window, fixed thresholds)."""
    rollout = Rollout(truth, seed)
    steps, index, failures, dwelled_for = [10, 25, 50, 75, 100], 0, 0, 0
    while rollout.k < MAX_INTERVALS:
        rollout.advance(steps[index])
        dwelled_for += 1
        healthy, reasons = legacy.check(rollout.prometheus.version(CANARY), analysis)
        failures = 0 if healthy else failures + 1
        if failures >= analysis.failure_threshold:
            return Outcome("rolled back", rollout.k, "; ".join(reasons))
        if healthy and dwelled_for * 60 >= analysis.dwell_seconds(index):  # one interval is a minute
            if index == len(steps) - 1:
                return Outcome("promoted", rollout.k)
            index, failures, dwelled_for = index + 1, 0, 0
    return Outcome("undecided", rollout.k)


def benchmark_analysis(**overrides) -> AnalysisConfig:
    """The defaults of a model stack, checked once a minute (the replay's interval)."""
    return replace_analysis(AnalysisConfig.model_validate({"interval": "1m"}), **overrides)


def replace_analysis(analysis: AnalysisConfig, **overrides) -> AnalysisConfig:
    return analysis.model_copy(update=overrides)


__all__ = ["CLASSES", "Outcome", "Truth", "benchmark_analysis", "replace", "run_judge", "run_legacy"]
