"""The canary analysis gate: Linkerd proxy metrics in Prometheus against the stack's thresholds.

The platform's PodMonitor relabels the proxies' series with `namespace` and
`deployment`, so the canary is selected by its Deployment (`<model>-<version>`)
and only inbound traffic (what its callers saw) counts. The gate is read-only:
it never edits anything, and an unreachable Prometheus raises PrometheusError
instead of producing a verdict, so no step is ever taken on missing data.

A window with too few requests is unhealthy: a canary nobody called has proved
nothing, and Prometheus's empty answer would otherwise look like "no errors".
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from mlplatform.model.config import AnalysisConfig


class PrometheusError(Exception):
    """Prometheus could not be queried. No verdict, so no change."""


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _selector(namespace: str, deployment: str, *extra: str) -> str:
    labels = [f'namespace="{_label_value(namespace)}"', f'deployment="{_label_value(deployment)}"', *extra]
    return "{" + ", ".join(labels) + "}"


@dataclass(frozen=True)
class Queries:
    """The PromQL the gate runs for one Deployment over one window."""

    requests: str
    success_rate: str
    p99_latency_ms: str
    accuracy: str

    @classmethod
    def for_deployment(cls, namespace: str, deployment: str, interval: str) -> Queries:
        inbound = _selector(namespace, deployment, 'direction="inbound"')
        succeeded = _selector(namespace, deployment, 'direction="inbound"', 'classification!="failure"')
        return cls(
            requests=f"sum(increase(response_total{inbound}[{interval}]))",
            success_rate=(
                f"sum(rate(response_total{succeeded}[{interval}])) / sum(rate(response_total{inbound}[{interval}]))"
            ),
            p99_latency_ms=(
                f"histogram_quantile(0.99, sum by (le) (rate(response_latency_ms_bucket{inbound}[{interval}])))"
            ),
            accuracy=f"avg(ml_model_accuracy{_selector(namespace, deployment)})",
        )


class PrometheusClient:
    """Instant queries against Prometheus' HTTP API, with nothing beyond the standard library."""

    def __init__(self, url: str, timeout: float = 10.0, hint: str = ""):
        """`hint` ends the "cannot reach" message: how to reach this Prometheus from here."""
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.hint = hint

    def query(self, promql: str) -> float | None:
        """The single value of `promql`; None when the result is empty or not a number (0/0)."""
        endpoint = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            with urllib.request.urlopen(endpoint, timeout=self.timeout) as response:  # any scheme: the URL is the user's
                body = json.load(response)
        except urllib.error.HTTPError as err:
            detail = _error_detail(err)
            raise PrometheusError(f"Prometheus at {self.url} refused the query ({err.code}): {detail}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            reason = getattr(err, "reason", err)
            hint = f"; {self.hint}" if self.hint else ""
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {reason}{hint}") from None
        except json.JSONDecodeError:
            raise PrometheusError(f"{self.url} did not answer with Prometheus JSON; is it Prometheus?") from None
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus query failed: {body.get('error', body)}")
        data = body["data"]
        if data["resultType"] == "scalar":
            raw = data["result"][1]
        elif data["resultType"] == "vector":
            if not data["result"]:
                return None
            if len(data["result"]) > 1:
                raise PrometheusError(f"expected one series, got {len(data['result'])}: {promql}")
            raw = data["result"][0]["value"][1]
        else:
            raise PrometheusError(f"unexpected result type {data['resultType']!r} for {promql}")
        value = float(raw)
        return None if math.isnan(value) else value


def _error_detail(err: urllib.error.HTTPError) -> str:
    try:
        return json.load(err).get("error", err.reason)
    except (json.JSONDecodeError, AttributeError, OSError):
        return str(err.reason)


@dataclass(frozen=True)
class Thresholds:
    min_requests: int
    min_success_rate: float
    max_p99_latency_ms: float
    min_accuracy: float | None
    compare_with_stable: bool

    @classmethod
    def from_analysis(cls, analysis: AnalysisConfig) -> Thresholds:
        return cls(
            min_requests=analysis.min_requests,
            min_success_rate=analysis.min_success_rate,
            max_p99_latency_ms=analysis.max_p99_latency_ms,
            min_accuracy=analysis.min_accuracy,
            compare_with_stable=analysis.compare_with_stable,
        )


@dataclass(frozen=True)
class GateVerdict:
    """One check of the canary: the numbers, the thresholds, and why it failed if it did."""

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

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One line with the numbers, for terminals and commit messages."""
        parts = [f"requests={self.requests:.0f}"]
        parts.append(f"success={_pct(self.success_rate)}")
        parts.append(f"p99={_ms(self.p99_latency_ms)}")
        if self.accuracy is not None or self.thresholds.min_accuracy is not None:
            parts.append(f"accuracy={'n/a' if self.accuracy is None else f'{self.accuracy:.3f}'}")
        if self.thresholds.compare_with_stable:
            parts.append(f"stable_success={_pct(self.stable_success_rate)}")
        return f"{'healthy' if self.healthy else 'UNHEALTHY'} over {self.interval}: " + " ".join(parts)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}ms"


def evaluate(
    client: PrometheusClient,
    analysis: AnalysisConfig,
    *,
    namespace: str,
    deployment: str,
    stable_deployment: str | None = None,
) -> GateVerdict:
    """Query the canary's golden metrics and judge them. Raises PrometheusError, never guesses."""
    thresholds = Thresholds.from_analysis(analysis)
    interval = analysis.interval
    queries = Queries.for_deployment(namespace, deployment, interval)
    requests = client.query(queries.requests) or 0.0
    success_rate = client.query(queries.success_rate)
    p99 = client.query(queries.p99_latency_ms)
    accuracy = client.query(queries.accuracy) if thresholds.min_accuracy is not None else None
    stable_success = None
    if thresholds.compare_with_stable and stable_deployment:
        stable_success = client.query(Queries.for_deployment(namespace, stable_deployment, interval).success_rate)

    reasons: list[str] = []
    notes: list[str] = []
    if requests < thresholds.min_requests:
        reasons.append(
            f"not enough traffic: {requests:.0f} requests in the last {interval}, need at least "
            f"{thresholds.min_requests}"
        )
    if success_rate is None:
        reasons.append(f"no success-rate data for {namespace}/{deployment} in the last {interval}")
    elif success_rate < thresholds.min_success_rate:
        reasons.append(f"success rate {_pct(success_rate)} is below {_pct(thresholds.min_success_rate)}")
    if p99 is None:
        reasons.append(f"no latency data for {namespace}/{deployment} in the last {interval}")
    elif p99 > thresholds.max_p99_latency_ms:
        reasons.append(f"p99 latency {_ms(p99)} is above {_ms(thresholds.max_p99_latency_ms)}")
    if thresholds.min_accuracy is not None:
        if accuracy is None:
            reasons.append(f"no ml_model_accuracy gauge for {namespace}/{deployment}")
        elif accuracy < thresholds.min_accuracy:
            reasons.append(f"accuracy {accuracy:.3f} is below {thresholds.min_accuracy:.3f}")
    if thresholds.compare_with_stable:
        if stable_success is None:
            # At 100% the stable pods get no traffic; there is nothing to compare with.
            notes.append("stable has no traffic in the window; comparison skipped")
        elif success_rate is not None and success_rate < stable_success:
            reasons.append(
                f"canary success rate {_pct(success_rate)} is worse than stable's {_pct(stable_success)}"
            )
    return GateVerdict(
        healthy=not reasons,
        namespace=namespace,
        deployment=deployment,
        interval=interval,
        requests=requests,
        success_rate=success_rate,
        p99_latency_ms=p99,
        accuracy=accuracy,
        stable_success_rate=stable_success,
        thresholds=thresholds,
        reasons=reasons,
        notes=notes,
        checked_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
