"""What the gate judges: Prometheus' counts for one step, and the evidence earlier steps carried.

Two sources, one concern (reading, not deciding):
- `Reader` runs and records every query of one verdict: one range query per counter
  series, interval by interval since the step started, and the latency buckets;
- `CarriedEvidence` is the sequential tests' state where the canary's previous
  step left it (see `judge.Carried`), as the rollout status keeps it between
  scheduled runs (`judgeEvidence`, versioned). A record that does not fit the
  test being run (another canary, other settings, an overlapping window, another
  version of this format) is not used: the test starts afresh, which is valid,
  only slower.
`gate` decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from mlplatform.tools.rollout import judge
from mlplatform.tools.rollout.prometheus import PrometheusClient, Queries, promql_range

# Stable's p99 boundary comes from its traffic in this look-back before the step: data the
# step's test does not use, so the boundary is fixed before the evidence it judges.
BOUNDARY_LOOKBACK = timedelta(hours=1)
# The format of `judgeEvidence` in the rollout status. Bump it when a field changes meaning;
# a record of another version is ignored (the test restarts), never misread.
EVIDENCE_VERSION = 1


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

    def counts(self, bad: list[float]) -> list[judge.IntervalCounts]:
        return [judge.IntervalCounts(n, b) for n, b in zip(self.requests, bad, strict=True)]


class Reader:
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


@dataclass(frozen=True)
class CarriedEvidence:
    """The sequential tests' state at the end of a step (`through`), for the canary's next step.

    `tests` maps a comparison (errorRate, latency, successRateFloor) to the parameter of its
    null hypothesis (a tolerance, or the floor's error rate) and its state: a test continues
    only under the same null. `boundary` is the latency test's bucket, pinned for the
    canary's whole rollout with where it came from."""

    canary: str
    stable: str | None
    through: datetime
    confidence: float
    boundary: tuple[str | None, str] = (None, "")
    tests: dict[str, tuple[float, judge.Carried]] = field(default_factory=dict)

    def to_record(self) -> dict:
        return {
            "version": EVIDENCE_VERSION,
            "canary": self.canary,
            "stable": self.stable,
            "through": self.through.isoformat(timespec="seconds"),
            "confidence": self.confidence,
            "alternatives": list(judge.ALTERNATIVES),
            "boundaryLe": self.boundary[0],
            "boundaryFrom": self.boundary[1],
            "tests": {name: {"parameter": p, **state.to_record()} for name, (p, state) in self.tests.items()},
        }

    @classmethod
    def from_record(cls, record: dict) -> CarriedEvidence:
        """The evidence `to_record` wrote; ValueError says why a record cannot be used."""
        if not isinstance(record, dict) or record.get("version") != EVIDENCE_VERSION:
            version = record.get("version") if isinstance(record, dict) else None
            raise ValueError(f"judgeEvidence version {version!r}, this judge reads version {EVIDENCE_VERSION}")
        if [float(a) for a in record.get("alternatives", [])] != list(judge.ALTERNATIVES):
            raise ValueError(
                f"judgeEvidence mixes over {record.get('alternatives')}, this judge over {list(judge.ALTERNATIVES)}"
            )
        try:
            through = datetime.fromisoformat(str(record["through"]).replace("Z", "+00:00"))
            tests = {
                str(name): (float(t["parameter"]), judge.Carried.from_record(t))
                for name, t in dict(record.get("tests") or {}).items()
            }
            return cls(
                canary=str(record["canary"]),
                stable=record.get("stable"),
                through=through if through.tzinfo else through.replace(tzinfo=UTC),
                confidence=float(record["confidence"]),
                boundary=(record.get("boundaryLe"), str(record.get("boundaryFrom") or "")),
                tests=tests,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"judgeEvidence is malformed: {err!r}") from None

    def misfit(self, *, canary: str, stable: str | None, since: datetime, confidence: float) -> str | None:
        """Why this evidence cannot continue into a step of `canary` starting at `since` (None: it can)."""
        if (self.canary, self.stable) != (canary, stable):
            return f"it is about {self.canary} against {self.stable}, not {canary} against {stable}"
        if since < self.through:
            # Intervals counted twice would break the martingale; a gap only leaves data unused.
            return f"it runs through {self.through.isoformat()}, after this step's start {since.isoformat()}"
        if not math.isclose(self.confidence, confidence):
            return f"it was gathered at confidence {self.confidence}, the analysis now asks {confidence}"
        return None

    def state(self, name: str, parameter: float) -> judge.Carried | None:
        """The carried state of one comparison, if it tested the same null."""
        carried = self.tests.get(name)
        return carried[1] if carried is not None and math.isclose(carried[0], parameter) else None
