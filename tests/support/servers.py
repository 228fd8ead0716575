"""Starting real servers (Prometheus, MLflow, etcd, kube-apiserver) on loopback for the integration tests."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.prerequisites import require_binary

PROMETHEUS_READY_TIMEOUT = 30.0


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    process: subprocess.Popen,
    ready: Callable[[], bool],
    *,
    name: str,
    log_path: Path,
    timeout: float,
    interval: float,
) -> None:
    """Poll `ready()` until it is true; fail with the server's log if it exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}: {log_path.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{name} not ready after {timeout}s: {log_path.read_text()}")
        time.sleep(interval)


def wait_until_ready(
    process: subprocess.Popen,
    ready_url: str,
    *,
    name: str,
    log_path: Path,
    timeout: float,
    interval: float,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Poll `ready_url` until it answers 200; fail with the server's log if it exits or the time runs out."""
    request = urllib.request.Request(ready_url, headers=headers or {})

    def answers() -> bool:
        try:
            with urllib.request.urlopen(request, timeout=1, context=context) as response:
                return response.status == 200
        except OSError:
            return False

    wait_until(process, answers, name=name, log_path=log_path, timeout=timeout, interval=interval)


def stop_process(process: subprocess.Popen, *, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited after `grace` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def running_prometheus(scrape_target: str, workdir: Path) -> Iterator[str]:
    """The Debian package's Prometheus scraping `scrape_target` every second; yields its URL.

    Fails, naming the package, when the binary is missing (`make deps` installs it).
    """
    binary = require_binary("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: linkerd-proxy\n"
        f"    static_configs:\n      - targets: ['{scrape_target}']\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_ready(
            process,
            f"{url}/-/ready",
            name="prometheus",
            log_path=workdir / "prometheus.log",
            timeout=PROMETHEUS_READY_TIMEOUT,
            interval=0.2,
        )
        yield url
    finally:
        stop_process(process)
        log.close()
