"""The statistics of the canary judge: canary against stable, sequentially, from counters.

Method: the anytime-valid rate-ratio test of Lindon, Sanden and Shirikian,
"Rapid Regression Detection in Software Deployments through Sequential Testing"
(KDD 2022, arXiv:2205.14762), section 4: counts of bad events (errors; requests
slower than a latency boundary) are Poisson processes whose intensities are
proportional to each version's traffic. Conditional on the `e` bad events seen by
both versions in one interval, the canary's share is Binomial(e, θ) with

    θ(ρ) = ρ·n_canary / (ρ·n_canary + n_stable),   ρ = canary rate / stable rate.

The null hypothesis is "the canary is at most `1 + tolerance` times worse"
(ρ ≤ ρ0). Each interval contributes the likelihood ratio of θ(ρ) against θ(ρ0);
their product over the intervals since the step started is a test martingale for
ρ = ρ0 and a supermartingale for every ρ < ρ0 (the binomial family has a
monotone likelihood ratio), and so is a mixture of them over alternatives ρ > ρ0
(Robbins' method of mixtures; we mix over a fixed grid rather than the paper's
conjugate Beta prior because the traffic split, hence θ, changes between
intervals). Ville's inequality then bounds the chance that the running maximum
of the mixture ever reaches 1/α by α, however often it is looked at: the gate
can check every interval without its false-alarm rate growing with the looks.

The test runs for the whole canary, not one step. A step changes the traffic
split, which changes θ from one interval to the next but not ρ: the likelihood
ratio of each interval is conditional on the split the gate chose from what came
before, so the product over the intervals of every step of the same canary
version is still a test martingale for ρ = ρ0 (the paper's Theorem 1 needs only
that each factor's conditional expectation under the null is 1; the varying
exposure is the same case as its time-varying traffic). `Carried` is that
product's state where the last step left it: the log likelihood ratio of each
alternative, the running maximum, the counts. Starting again from 1 at every
step would also be valid, but it throws the evidence away: a 2x canary at 10%
of 5000 requests a minute seldom reaches 1/α within one 5-minute dwell, and
each restart is another chance for a false alarm (up to one α per step).

Latency uses the same test on the requests slower than stable's p99 bucket
boundary (the smallest `le` of `response_latency_ms_bucket` holding 99% of
stable's requests before the step started): a canary whose tail moved right
sends more requests past that boundary. Buckets are what both versions export;
no quantile is estimated, so the test stays exact at the buckets' resolution.

Everything here is pure: numbers in, numbers out. `gate` queries Prometheus.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

# The alternatives the mixture spreads its weight over, as multiples of ρ0: from a
# regression just past the tolerance to a version that is plainly broken. Equal
# weights; a finer or wider grid trades power at one size for power at another.
ALTERNATIVES = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0)


@dataclass(frozen=True)
class IntervalCounts:
    """One version's counts in one interval: requests, and the bad ones among them."""

    requests: float
    bad: float


@dataclass(frozen=True)
class Carried:
    """A sequential test's state after some intervals: where the next interval continues from.

    `log_lrs` holds each alternative's log likelihood ratio summed over those intervals
    (one per ALTERNATIVES), `max_e` the mixture's running maximum. The counts are what
    the intervals saw, for the record."""

    log_lrs: tuple[float, ...] = ()  # () before any interval: every alternative at 0
    max_e: float = 1.0
    intervals: int = 0
    canary_requests: float = 0.0
    canary_bad: float = 0.0
    stable_requests: float = 0.0
    stable_bad: float = 0.0

    def to_record(self) -> dict:
        return {
            "logLikelihoodRatios": list(self.log_lrs),
            "maxEValue": _finite(self.max_e),
            "intervals": self.intervals,
            "canary": {"requests": self.canary_requests, "bad": self.canary_bad},
            "stable": {"requests": self.stable_requests, "bad": self.stable_bad},
        }

    @classmethod
    def from_record(cls, record: dict) -> Carried:
        """The state `to_record` wrote; ValueError names what does not fit."""
        log_lrs = tuple(float(v) for v in record["logLikelihoodRatios"])
        if len(log_lrs) != len(ALTERNATIVES) or not all(math.isfinite(v) for v in log_lrs):
            raise ValueError(f"logLikelihoodRatios {list(log_lrs)}: need {len(ALTERNATIVES)} finite numbers")
        max_e = math.inf if record["maxEValue"] == "inf" else float(record["maxEValue"])
        if not max_e > 0.0:
            raise ValueError(f"maxEValue {record['maxEValue']!r}: an e-value is positive")
        return cls(
            log_lrs=log_lrs,
            max_e=max_e,
            intervals=int(record["intervals"]),
            canary_requests=float(record["canary"]["requests"]),
            canary_bad=float(record["canary"]["bad"]),
            stable_requests=float(record["stable"]["requests"]),
            stable_bad=float(record["stable"]["bad"]),
        )


@dataclass(frozen=True)
class SequentialResult:
    """The e-process of one comparison: carried in from earlier steps, then one value per interval of this one.
    Counts and `intervals` cover the whole test, carried intervals included."""

    tolerance: float
    confidence: float
    e_values: tuple[float, ...]
    canary_requests: float
    canary_bad: float
    stable_requests: float
    stable_bad: float
    carried_in: Carried = field(default_factory=Carried)
    carried_out: Carried = field(default_factory=Carried)

    @property
    def threshold(self) -> float:
        return 1.0 / (1.0 - self.confidence)

    @property
    def e_value(self) -> float:
        """The running maximum since the test began: once it crossed, the evidence stays (Ville's
        inequality covers the maximum)."""
        return _running_max(self.carried_in, self.e_values)

    @property
    def rejected(self) -> bool:
        return self.e_value >= self.threshold

    @property
    def ratio(self) -> float | None:
        """The canary's bad-event rate over stable's, pooled over the step (None when undefined)."""
        if self.canary_requests <= 0 or self.stable_requests <= 0 or self.stable_bad <= 0:
            return None
        return (self.canary_bad / self.canary_requests) / (self.stable_bad / self.stable_requests)

    def to_record(self) -> dict:
        return {
            "method": "mixture SPRT on the canary/stable rate ratio (Lindon et al., KDD 2022)",
            "nullRatio": 1.0 + self.tolerance,
            "eValue": _finite(self.e_value),
            "threshold": self.threshold,
            "intervals": self.carried_out.intervals,
            "carriedIntervals": self.carried_in.intervals,
            "carriedEValue": _finite(self.carried_in.max_e),
            "canary": {"requests": self.canary_requests, "bad": self.canary_bad},
            "stable": {"requests": self.stable_requests, "bad": self.stable_bad},
            "observedRatio": self.ratio,
        }


def _running_max(carried: Carried, e_values: Sequence[float]) -> float:
    """The largest e-value since the test began (1, its start, while it has seen no interval)."""
    return max((*e_values, carried.max_e) if carried.intervals else e_values, default=1.0)


def _finite(value: float) -> float | str:
    return value if math.isfinite(value) else "inf"


def _log_lr(rho: float, rho0: float, canary: IntervalCounts, stable: IntervalCounts) -> float:
    """log of θ(ρ)^x (1-θ(ρ))^(e-x) / θ(ρ0)^x (1-θ(ρ0))^(e-x) for one interval."""
    if canary.requests <= 0 or stable.requests <= 0 or canary.bad + stable.bad <= 0:
        return 0.0  # no traffic on one side, or no bad events: the interval says nothing about ρ
    share = canary.requests / stable.requests
    theta = rho * share / (rho * share + 1.0)
    theta0 = rho0 * share / (rho0 * share + 1.0)
    return canary.bad * math.log(theta / theta0) + stable.bad * math.log((1.0 - theta) / (1.0 - theta0))


def _mixture(log_lrs: Sequence[Sequence[float]], start: Sequence[float]) -> tuple[tuple[float, ...], list[float]]:
    """The equal-weight mixture of likelihood-ratio martingales after each interval, from each
    alternative's per-interval log likelihood ratios (one row per interval) continuing `start`;
    and each alternative's sum after the last row."""
    sums = list(start) or [0.0] * len(ALTERNATIVES)
    e_values = []
    for row in log_lrs:
        sums = [a + b for a, b in zip(sums, row, strict=True)]
        top = max(sums)
        # log-sum-exp keeps a decisive e-value from overflowing to inf.
        log_e = top + math.log(sum(math.exp(v - top) for v in sums) / len(sums))
        e_values.append(math.exp(min(log_e, 700.0)))
    return tuple(e_values), sums


def _result(
    rows: list[list[float]],
    canary: Sequence[IntervalCounts],
    stable: Sequence[IntervalCounts],
    carried: Carried,
    tolerance: float,
    confidence: float,
) -> SequentialResult:
    e_values, sums = _mixture(rows, carried.log_lrs)
    out = Carried(
        log_lrs=tuple(sums),
        max_e=_running_max(carried, e_values),
        intervals=carried.intervals + len(rows),
        canary_requests=carried.canary_requests + sum(c.requests for c in canary),
        canary_bad=carried.canary_bad + sum(c.bad for c in canary),
        stable_requests=carried.stable_requests + sum(s.requests for s in stable),
        stable_bad=carried.stable_bad + sum(s.bad for s in stable),
    )
    return SequentialResult(
        tolerance=tolerance,
        confidence=confidence,
        e_values=e_values,
        canary_requests=out.canary_requests,
        canary_bad=out.canary_bad,
        stable_requests=out.stable_requests,
        stable_bad=out.stable_bad,
        carried_in=carried,
        carried_out=out,
    )


def sequential_test(
    canary: Sequence[IntervalCounts],
    stable: Sequence[IntervalCounts],
    *,
    tolerance: float,
    confidence: float,
    carried: Carried | None = None,
) -> SequentialResult:
    """Canary against stable: the mixture e-value after each interval (one item per interval in each),
    continuing the same test from `carried` (earlier steps of the same canary) when given."""
    if len(canary) != len(stable):
        raise ValueError(f"canary has {len(canary)} intervals, stable {len(stable)}")
    rho0 = 1.0 + tolerance
    rows = [[_log_lr(rho0 * m, rho0, c, s) for m in ALTERNATIVES] for c, s in zip(canary, stable, strict=True)]
    return _result(rows, canary, stable, carried or Carried(), tolerance, confidence)


def floor_test(
    counts: Sequence[IntervalCounts], *, max_rate: float, confidence: float, carried: Carried | None = None
) -> SequentialResult:
    """One version against a fixed ceiling on its bad-event rate (a guard rail such as minSuccessRate):
    H0 "rate <= max_rate", the binomial mixture SPRT (Wald; Robbins' mixtures) over alternatives whose
    odds are ALTERNATIVES times the ceiling's, so a few unlucky requests at low traffic do not fail it.
    Continues from `carried` like `sequential_test`: the ceiling holds at every step alike."""
    odds0 = max_rate / (1.0 - max_rate)
    rows = []
    for c in counts:
        row = []
        for m in ALTERNATIVES:
            p = odds0 * m / (1.0 + odds0 * m)
            good = c.requests - c.bad
            row.append(c.bad * math.log(p / max_rate) + good * math.log((1.0 - p) / (1.0 - max_rate)))
        rows.append(row)
    return _result(rows, counts, [IntervalCounts(0.0, 0.0)] * len(counts), carried or Carried(), 0.0, confidence)


# -- histograms -----------------------------------------------------------------------

Buckets = dict[str, float]
"""Cumulative counts of `response_latency_ms_bucket` by their `le` label, as Prometheus returns them."""


def _ordered(buckets: Buckets) -> list[tuple[float, str, float]]:
    return sorted((float(le), le, count) for le, count in buckets.items())


def boundary_le(buckets: Buckets, quantile: float = 0.99) -> str | None:
    """The `le` of the smallest finite bucket holding `quantile` of the requests (None: no
    requests, or the quantile lies past the last finite bucket)."""
    ordered = _ordered(buckets)
    total = ordered[-1][2] if ordered and math.isinf(ordered[-1][0]) else None
    if not total:
        return None
    for bound, le, count in ordered:
        if math.isinf(bound):
            return None
        if count >= quantile * total:
            return le
    return None


def histogram_quantile(quantile: float, buckets: Buckets) -> float | None:
    """Prometheus' `histogram_quantile`: linear interpolation inside the bucket the rank falls in
    (the first bucket from 0); the highest finite bound when the rank is in the +Inf bucket."""
    ordered = _ordered(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]) or ordered[-1][2] <= 0:
        return None
    rank = quantile * ordered[-1][2]
    lower_bound, lower_count = 0.0, 0.0
    for bound, _, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return ordered[-2][0]
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return ordered[-2][0]
