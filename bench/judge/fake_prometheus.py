"""A Prometheus that answers the gate's PromQL from per-interval counts held in memory.

Everything but the HTTP call is the gate's own code: `gate.evaluate` builds the
same queries it sends to a real Prometheus, and this class answers the shapes it
sends (range queries of `increase` over one interval, `sum by (le)` bucket
vectors over a span, the accuracy gauge) from exact counts. Unknown queries fail
loudly instead of answering something plausible.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from mlplatform.tools.metrics_catalog import LINKERD_LATENCY_BUCKETS_MS
from mlplatform.tools.rollout.prometheus import PrometheusClient

LE_LABELS = (*(str(b) for b in LINKERD_LATENCY_BUCKETS_MS), "+Inf")

_DEPLOYMENT = re.compile(r'deployment="([^"]+)"')
_RANGE = re.compile(r"\[(\d+)(s|m|h)\]")
_LE = re.compile(r'le="([^"]+)"')
_UNITS = {"s": 1, "m": 60, "h": 3600}


@dataclass
class Version:
    """One Deployment's counts, one row per interval: requests, errors, and latency per bucket
    (not cumulative; the last column is the +Inf bucket). Running totals make a window's sum two lookups."""

    requests: list[int] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    buckets: list[np.ndarray] = field(default_factory=list)
    _sums: list[np.ndarray] = field(default_factory=list)  # row k: totals of intervals < k (requests, errors, buckets)

    def add(self, requests: int, errors: int, buckets: np.ndarray) -> None:
        self.requests.append(int(requests))
        self.errors.append(int(errors))
        self.buckets.append(buckets)
        if not self._sums:
            self._sums.append(np.zeros(2 + len(buckets), dtype=np.int64))
        self._sums.append(self._sums[-1] + np.concatenate(([requests, errors], buckets)))

    def total(self, first: int, last: int) -> np.ndarray:
        """(requests, errors, *buckets) summed over intervals first..last (clipped to what exists)."""
        first, last = max(first, 0), min(last, len(self.requests) - 1)
        if last < first:
            return np.zeros(2 + len(LE_LABELS), dtype=np.int64)
        return self._sums[last + 1] - self._sums[first]


class FakePrometheus(PrometheusClient):
    """Interval k covers (t0 + k·I, t0 + (k+1)·I]; a query at `at` over range R sums the
    intervals that end inside (at - R, at].

    A `PrometheusClient` whose three query methods answer from memory, so the gate takes it
    where it takes the real one; nothing of the HTTP client is used."""

    url = "fake://prometheus"
    hint = ""

    # No super().__init__(): there is no server to configure.
    def __init__(self, t0: datetime, interval_seconds: float, accuracy: float | None = None):
        self.t0 = t0.timestamp()
        self.interval = interval_seconds
        self.accuracy = accuracy
        self.versions: dict[str, Version] = {}
        self.calls = 0

    def version(self, deployment: str) -> Version:
        return self.versions.setdefault(deployment, Version())

    # -- the client's interface ---------------------------------------------------------
    def query(self, promql: str, at: datetime | None = None) -> float | None:
        self.calls += 1
        if promql.startswith("avg(ml_model_accuracy"):
            return self.accuracy
        if promql.startswith("sum(increase(response_total"):
            assert at is not None, "the gate always asks at a time"
            value = self._window(promql, at.timestamp())
            return value or None
        raise AssertionError(f"the fake Prometheus does not know this query: {promql}")

    def query_by(self, promql: str, label: str, at: datetime | None = None) -> dict[str, float]:
        self.calls += 1
        if label != "le" or not promql.startswith("sum by (le) (increase(response_latency_ms_bucket"):
            raise AssertionError(f"the fake Prometheus does not know this query: {promql}")
        assert at is not None, "the gate always asks at a time"
        rows = self._rows(promql, at.timestamp(), _range(promql))
        if not rows:
            return {}
        counts = np.cumsum(np.sum(rows, axis=0))
        return dict(zip(LE_LABELS, (float(c) for c in counts), strict=True))

    def query_range(self, promql: str, start: datetime, end: datetime, step_seconds: float) -> dict[float, float]:
        self.calls += 1
        points: dict[float, float] = {}
        t = start.timestamp()
        while t <= end.timestamp() + 1e-6:
            value = self._window(promql, t)
            if value is not None:
                points[t] = value
            t += step_seconds
        return points

    # -- answers ------------------------------------------------------------------------
    def _indices(self, at: float, span: float) -> tuple[int, int]:
        last = math.floor((at - self.t0) / self.interval + 1e-9) - 1
        first = math.floor((at - span - self.t0) / self.interval + 1e-9)
        return first, last

    def _totals(self, promql: str, at: float, span: float) -> np.ndarray | None:
        match = _DEPLOYMENT.search(promql)
        assert match is not None, f"no deployment in {promql}"
        version = self.versions.get(match.group(1))
        return None if version is None else version.total(*self._indices(at, span))

    def _rows(self, promql: str, at: float, span: float) -> list[np.ndarray]:
        totals = self._totals(promql, at, span)
        return [] if totals is None or not totals[0] else [totals[2:]]

    def _window(self, promql: str, at: float) -> float | None:
        """sum(increase(...[R])) of requests, errors, or the slow-requests difference; None: no series."""
        totals = self._totals(promql, at, _range(promql))
        if totals is None:
            return None
        if 'le="+Inf"' in promql:
            column = LE_LABELS.index(_LE.findall(promql)[-1])
            return float(totals[2 + column + 1 :].sum())
        if 'classification="failure"' in promql:
            return float(totals[1])
        if "classification" not in promql:
            return float(totals[0])
        raise AssertionError(f"the fake Prometheus does not know this query: {promql}")


def _range(promql: str) -> float:
    match = _RANGE.search(promql)
    assert match is not None, f"no range in {promql}"
    number, unit = match.groups()
    return int(number) * _UNITS[unit]
