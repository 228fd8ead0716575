"""Prometheus for the gate: the PromQL it runs over Linkerd's proxy metrics, and a small HTTP client.

The platform's PodMonitor relabels the proxies' series with `namespace` and
`deployment`, so a version is selected by its Deployment (`<model>-<version>`)
and only inbound traffic (what its callers saw) counts. An unreachable
Prometheus raises PrometheusError instead of answering, so no step is ever
taken on missing data.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime

from mlplatform.tools.service_proxy import ServiceError, Transport


class PrometheusError(Exception):
    """Prometheus could not be queried. No verdict, so no change."""


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _selector(namespace: str, deployment: str, *extra: str) -> str:
    labels = [f'namespace="{_label_value(namespace)}"', f'deployment="{_label_value(deployment)}"', *extra]
    return "{" + ", ".join(labels) + "}"


@dataclass(frozen=True)
class Queries:
    """The PromQL the gate runs for one Deployment; `window` is a PromQL range (`1m`, `754s`)."""

    requests: str
    errors: str
    success_rate: str
    p99_latency_ms: str
    buckets: str
    accuracy: str
    inbound: str

    @classmethod
    def for_deployment(cls, namespace: str, deployment: str, window: str) -> Queries:
        inbound = _selector(namespace, deployment, 'direction="inbound"')
        succeeded = _selector(namespace, deployment, 'direction="inbound"', 'classification!="failure"')
        failed = _selector(namespace, deployment, 'direction="inbound"', 'classification="failure"')
        return cls(
            requests=f"sum(increase(response_total{inbound}[{window}]))",
            errors=f"sum(increase(response_total{failed}[{window}]))",
            success_rate=(
                f"sum(rate(response_total{succeeded}[{window}])) / sum(rate(response_total{inbound}[{window}]))"
            ),
            p99_latency_ms=(
                f"histogram_quantile(0.99, sum by (le) (rate(response_latency_ms_bucket{inbound}[{window}])))"
            ),
            buckets=f"sum by (le) (increase(response_latency_ms_bucket{inbound}[{window}]))",
            accuracy=f"avg(ml_model_accuracy{_selector(namespace, deployment)})",
            inbound=inbound,
        )

    def slower_than(self, le: str, window: str) -> str:
        """Requests above the bucket `le`: all of the histogram's requests minus those at or below it."""
        base = self.inbound[:-1]
        return (
            f'sum(increase(response_latency_ms_bucket{base}, le="+Inf"}}[{window}])) - '
            f'sum(increase(response_latency_ms_bucket{base}, le="{_label_value(le)}"}}[{window}]))'
        )


def seconds(duration: str) -> float:
    """A config Duration (`20s`, `1m`, `500ms`, `1h`) in seconds."""
    for unit, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if duration.endswith(unit) and duration[: -len(unit)].isdigit():
            return int(duration[: -len(unit)]) * factor
    raise ValueError(f"not a duration: {duration!r} (allowed: digits then ms, s, m or h)")


def promql_range(duration_seconds: float) -> str:
    """A PromQL range of whole seconds, at least one."""
    return f"{max(1, round(duration_seconds))}s"


class PrometheusClient:
    """Instant and range queries against Prometheus' HTTP API, with nothing beyond the standard library."""

    def __init__(self, url: str, timeout: float = 10.0, hint: str = "", transport: Transport | None = None):
        """`hint` ends the "cannot reach" message: how to reach this Prometheus from here. `transport`:
        how to send the GETs when not straight to `url` (the API server's service proxy)."""
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.hint = hint
        self.transport = transport

    @classmethod
    def through(cls, transport: Transport) -> PrometheusClient:
        """Queries sent through `transport`; its `where` names Prometheus in messages."""
        return cls(transport.where, transport=transport)

    def query(self, promql: str, at: datetime | None = None) -> float | None:
        """The single value of `promql`; None when the result is empty or not a number (0/0)."""
        data = self._get("query", promql, {} if at is None else {"time": f"{at.timestamp():.3f}"})
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

    def query_by(self, promql: str, label: str, at: datetime | None = None) -> dict[str, float]:
        """An instant vector as {value of `label`: number}, NaNs dropped."""
        data = self._get("query", promql, {} if at is None else {"time": f"{at.timestamp():.3f}"})
        if data["resultType"] != "vector":
            raise PrometheusError(f"expected a vector for {promql}, got {data['resultType']!r}")
        values = {s["metric"].get(label, ""): float(s["value"][1]) for s in data["result"]}
        return {k: v for k, v in values.items() if not math.isnan(v)}

    def query_range(self, promql: str, start: datetime, end: datetime, step_seconds: float) -> dict[float, float]:
        """The one series of `promql` at start, start+step, ... end, as {unix time: value}; missing points
        (no samples there) are absent, and so is everything when the series does not exist."""
        params = {"start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}", "step": f"{step_seconds:g}"}
        data = self._get("query_range", promql, params)
        if data["resultType"] != "matrix":
            raise PrometheusError(f"expected a matrix for {promql}, got {data['resultType']!r}")
        if len(data["result"]) > 1:
            raise PrometheusError(f"expected one series, got {len(data['result'])}: {promql}")
        points = data["result"][0]["values"] if data["result"] else []
        return {float(t): float(v) for t, v in points if not math.isnan(float(v))}

    def _get(self, api: str, promql: str, params: dict[str, str]) -> dict:
        if self.transport is not None:
            return self._through_transport(self.transport, api, {"query": promql, **params})
        endpoint = f"{self.url}/api/v1/{api}?{urllib.parse.urlencode({'query': promql, **params})}"
        try:
            with urllib.request.urlopen(endpoint, timeout=self.timeout) as response:
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
        return _data(body)

    def _through_transport(self, transport: Transport, api: str, query: dict[str, str]) -> dict:
        try:
            raw = transport.get(f"/api/v1/{api}", query)
        except ServiceError as err:
            if err.backend_status is None:
                raise PrometheusError(str(err)) from None
            try:
                detail = json.loads(err.backend_body or "").get("error", err.backend_body)
            except (json.JSONDecodeError, AttributeError):
                detail = err.backend_body
            raise PrometheusError(
                f"Prometheus at {self.url} refused the query ({err.backend_status}): {detail}"
            ) from None
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            raise PrometheusError(f"{self.url} did not answer with Prometheus JSON; is it Prometheus?") from None
        return _data(body)


def _data(body: dict) -> dict:
    if body.get("status") != "success":
        raise PrometheusError(f"Prometheus query failed: {body.get('error', body)}")
    return body["data"]


def _error_detail(err: urllib.error.HTTPError) -> str:
    try:
        return json.load(err).get("error", err.reason)
    except (json.JSONDecodeError, AttributeError, OSError):
        return str(err.reason)
