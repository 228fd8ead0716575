"""Shared fixtures: the platform stacks exactly as their stack files declare them, and a
real Prometheus scraping Linkerd-shaped series (the rollout gate's and the e2e tier's)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlplatform.tools.offline.engine import Recording, run_entry_point
from tests.support.helpers import ROOT
from tests.support.linkerd_exporter import LinkerdExporter
from tests.support.servers import running_prometheus


@pytest.fixture(scope="session")
def dev_platform() -> Recording:
    """The `dev` stack exactly as `Pulumi.dev.yaml` declares it (one run, shared)."""
    return run_entry_point(ROOT, stack="dev")


@pytest.fixture(scope="session")
def prod_platform() -> Recording:
    """The `prod` stack exactly as `Pulumi.prod.yaml` declares it (one run, shared)."""
    return run_entry_point(ROOT, stack="prod")


@pytest.fixture(scope="session")
def exporter() -> Iterator[LinkerdExporter]:
    """Serves Linkerd proxy metrics for whatever traffic a test sets on it."""
    server = LinkerdExporter().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prometheus(exporter: LinkerdExporter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping `exporter` every second; its base URL."""
    with running_prometheus(f"127.0.0.1:{exporter.port}", tmp_path_factory.mktemp("prometheus")) as url:
        yield url
