"""The gate's fake Prometheus (bench.judge.fake_prometheus) behind Prometheus' HTTP API, on loopback.

For tests of the real client and CLI: the same answers the replay benchmark uses,
as JSON over HTTP. `steady` builds a canary and a stable with constant traffic
around now, so a command that asks "since the step started" finds data.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from bench.judge.fake_prometheus import LE_LABELS, FakePrometheus


def steady(interval_seconds: float, versions: dict[str, tuple[int, int, str]], hours: float = 2.0) -> FakePrometheus:
    """`versions`: deployment -> (requests, errors, latency `le`) per interval, from `hours` ago to an hour ahead."""
    now = datetime.now(UTC)
    fake = FakePrometheus(now - timedelta(hours=hours), interval_seconds)
    for _ in range(int((hours + 1) * 3600 / interval_seconds)):
        for deployment, (requests, errors, le) in versions.items():
            buckets = np.zeros(len(LE_LABELS), dtype=int)
            buckets[LE_LABELS.index(le)] = requests
            fake.version(deployment).add(requests, errors, buckets)
    return fake


def _at(params: dict[str, list[str]], name: str) -> datetime:
    return datetime.fromtimestamp(float(params[name][0]), UTC)


class HttpPrometheus:
    """Serves `fake` on 127.0.0.1; `before_answer` runs first on every request (e.g. to hold it)."""

    def __init__(self, fake: FakePrometheus, before_answer: Callable[[], object] = lambda: None):
        owner = self
        self.fake = fake

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                before_answer()
                url = urlparse(self.path)
                body = json.dumps({"status": "success", "data": owner.answer(url.path, parse_qs(url.query))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # `format`: the base class's name
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, params: dict[str, list[str]]) -> dict:
        promql = params["query"][0]
        if path.endswith("/query_range"):
            points = self.fake.query_range(promql, _at(params, "start"), _at(params, "end"), float(params["step"][0]))
            values = [[t, repr(v)] for t, v in sorted(points.items())]
            return {"resultType": "matrix", "result": [{"metric": {}, "values": values}] if values else []}
        at = _at(params, "time") if "time" in params else datetime.now(UTC)
        if promql.startswith("sum by (le)"):
            buckets = self.fake.query_by(promql, "le", at=at)
            return {
                "resultType": "vector",
                "result": [{"metric": {"le": le}, "value": [at.timestamp(), repr(v)]} for le, v in buckets.items()],
            }
        value = self.fake.query(promql, at=at)
        result = [] if value is None else [{"metric": {}, "value": [at.timestamp(), repr(value)]}]
        return {"resultType": "vector", "result": result}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
