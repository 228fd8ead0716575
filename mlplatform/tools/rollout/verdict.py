"""The gate's verdict: its outcome, the thresholds it applied, and the record that replays it.

Separate from the judging (`gate`) so that what a verdict says, and how it is written
to the status, a commit message and `explain`, is read in one place.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from mlplatform.model.config import AnalysisConfig

PASS, FAIL, NOT_YET = "pass", "fail", "not-yet"


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
    evidence_in: dict | None = None
    """The sequential tests' state carried in from the canary's earlier steps (None: they began at `since`)."""
    evidence_out: dict | None = None
    """Their state at `window_end`: what the status carries into the next step (`judgeEvidence`)."""

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
                "p99LatencyMs": finite(self.p99_latency_ms),
                "accuracy": self.accuracy,
                "stableSuccessRate": self.stable_success_rate,
            },
            "thresholds": asdict(self.thresholds),
            "comparisons": self.comparisons,
            "queries": self.queries,
            # Replaying this verdict needs the window above and where the tests stood when it began.
            "evidenceIn": self.evidence_in,
            "reasons": self.reasons,
            "notes": self.notes,
        }
        return record

    def summary(self) -> str:
        """One line with the numbers, for terminals and commit messages."""
        parts = [f"requests={self.requests:.0f}"]
        parts.append(f"success={pct(self.success_rate)}")
        parts.append(f"p99={ms(self.p99_latency_ms)}")
        if self.accuracy is not None or self.thresholds.min_accuracy is not None:
            parts.append(f"accuracy={'n/a' if self.accuracy is None else f'{self.accuracy:.3f}'}")
        if self.thresholds.compare_with_stable:
            parts.append(f"stable_success={pct(self.stable_success_rate)}")
        for name, comparison in self.comparisons.items():
            if "eValue" in comparison:
                parts.append(f"{name}_e={_num(comparison['eValue'])}/{comparison['threshold']:g}")
        label = {PASS: "healthy", FAIL: "UNHEALTHY", NOT_YET: "NOT YET"}[self.outcome]
        return f"{label} over {self.interval}: " + " ".join(parts)


def finite(value: float | None) -> float | str | None:
    return value if value is None or math.isfinite(value) else "inf"


def _num(value) -> str:
    return value if isinstance(value, str) else f"{value:.3g}"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}ms"
