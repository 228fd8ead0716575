"""The threshold-only gate as it was before the judge (commit 4a94d11), for side-by-side numbers.

One window (the last interval), fixed thresholds: at least `minRequests` requests,
success rate at least `minSuccessRate`, histogram p99 at most `maxP99LatencyMs`
(and, off by default then, no comparison with stable). `watch` aborted after
`failureThreshold` unhealthy checks in a row; too little traffic was unhealthy.
"""

from __future__ import annotations

import numpy as np

from bench.judge.fake_prometheus import LE_LABELS, Version
from mlplatform.model.config import AnalysisConfig
from mlplatform.tools.rollout import judge


def check(canary: Version, analysis: AnalysisConfig) -> tuple[bool, list[str]]:
    """The old `evaluate` on the canary's last interval: (healthy, reasons)."""
    requests, errors = canary.requests[-1], canary.errors[-1]
    reasons = []
    if requests < analysis.min_requests:
        reasons.append(f"not enough traffic: {requests} requests")
    if requests == 0:
        reasons.append("no success-rate data")
    elif 1 - errors / requests < analysis.min_success_rate:
        reasons.append(f"success rate {1 - errors / requests:.4f} is below {analysis.min_success_rate}")
    p99 = judge.histogram_quantile(0.99, dict(zip(LE_LABELS, np.cumsum(canary.buckets[-1]).tolist(), strict=True)))
    if p99 is None:
        reasons.append("no latency data")
    elif p99 > analysis.max_p99_latency_ms:
        reasons.append(f"p99 latency {p99:.0f}ms is above {analysis.max_p99_latency_ms:.0f}ms")
    return not reasons, reasons
