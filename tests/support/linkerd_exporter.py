"""A test exporter serving Linkerd-proxy-shaped series whose rates the test sets.

The series carry the labels the platform's PodMonitor gives the proxy metrics
(`namespace`, `deployment`), Linkerd's `direction` and `classification`, and the
proxy's millisecond latency buckets. A ticker thread turns the configured
requests per second into counter increments, so Prometheus sees real rates.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from mlplatform.tools.metrics_catalog import LINKERD_LATENCY_BUCKETS_MS

TICK_SECONDS = 0.1


@dataclass(frozen=True)
class Traffic:
    rps: float
    error_ratio: float = 0.0
    latency_ms: float = 50.0
    accuracy: float | None = None


# The e2e tier's two canaries: one the judge passes, one it fails at its first check.
HEALTHY = Traffic(rps=40, latency_ms=30)
FAILING = Traffic(rps=40, error_ratio=0.5, latency_ms=30)


class _QuietHandler(WSGIRequestHandler):
    # Scrapes every second would flood the test log. `format` is the base class's parameter name.
    def log_message(self, format: str, *args: Any) -> None:
        pass


class LinkerdExporter:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("namespace", "deployment", "direction", "classification")
        self.responses = Counter("response_total", "responses", labels, registry=self.registry)
        self.latency = Histogram(
            "response_latency_ms",
            "latency",
            ("namespace", "deployment", "direction"),
            buckets=LINKERD_LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self.accuracy = Gauge("ml_model_accuracy", "accuracy", ("namespace", "deployment"), registry=self.registry)
        self._traffic: dict[tuple[str, str], Traffic] = {}
        self._carry: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.server: WSGIServer = make_server("127.0.0.1", 0, make_wsgi_app(self.registry), handler_class=_QuietHandler)
        self.port = self.server.server_port
        self._threads = [
            threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True),
            threading.Thread(target=self._tick, daemon=True),
        ]

    def start(self) -> LinkerdExporter:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def set_traffic(self, namespace: str, deployment: str, traffic: Traffic) -> None:
        with self._lock:
            self._traffic[(namespace, deployment)] = traffic
            if traffic.accuracy is not None:
                self.accuracy.labels(namespace, deployment).set(traffic.accuracy)

    def _tick(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            with self._lock:
                for key, traffic in self._traffic.items():
                    # Whole requests only; the fraction carries to the next tick.
                    due = self._carry.get(key, 0.0) + traffic.rps * TICK_SECONDS
                    count = int(due)
                    self._carry[key] = due - count
                    failing = self._carry.get(("failures", *key), 0.0) + count * traffic.error_ratio
                    failures = int(failing)
                    self._carry[("failures", *key)] = failing - failures
                    namespace, deployment = key
                    if count - failures:
                        self.responses.labels(namespace, deployment, "inbound", "success").inc(count - failures)
                    if failures:
                        self.responses.labels(namespace, deployment, "inbound", "failure").inc(failures)
                    for _ in range(count):
                        self.latency.labels(namespace, deployment, "inbound").observe(traffic.latency_ms)
