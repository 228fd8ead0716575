"""Fixtures for the end-to-end tier: the real pulumi engine against a local control plane.

- `e2e_tools`: the binaries from scripts/e2e-tools.sh (PATH, its cache, or a
  build from the Go module proxy: minutes the first time on a machine). A
  missing prerequisite (etcd, Go) fails the tier, naming it: never a skip;
- `program_python`: a virtualenv holding only what the platform (mode existing)
  and a model stack import, at requirements.txt's pins (engine.py says why);
- `control_plane`: the simulated cluster on 127.0.0.1 (simulated_cluster.py):
  etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and kwok with
  its fake system and GPU nodes. A loopback guard watches the whole tier's
  traffic and fails it if anything left 127.0.0.0/8;
- `pulumi`: the CLI, logged in to a local backend in a temp dir;
- `chart_repo`: the chart mirror (MLPLATFORM_TEST_CHARTS), on 127.0.0.1;
- `platform`: the real platform root project (mode existing), up on the
  simulated cluster from tests/e2e/platform/Pulumi.sim.yaml, destroyed at the
  end of the session; `platform_stack`: its name, as a model stack's
  StackReference gives it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.control_plane import ControlPlane
from tests.e2e.engine import E2E_TOOLS, program_virtualenv, pulumi_cli
from tests.e2e.loopback_guard import LoopbackGuard, dial_errors
from tests.e2e.platform_stack import STACK, PlatformStack, assert_nothing_left, provision
from tests.e2e.pulumi_cli import PulumiCli
from tests.e2e.simulated_cluster import start_simulated_cluster
from tests.e2e.tools import provide_tools, terminal_progress
from tests.e2e.workflow_fixtures import (  # noqa: F401 - registered here, for every workflow scenario
    act,
    act_binary,
    cli_release,
    repository,
    tracking_uri,
    workflow_venv,
)
from tests.support.chart_mirror import chart_mirror, uses_upstream


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The platform's tests first: they assert the platform as its `up` left it (its preview
    straight after `up` among them), before any model stack adds to the cluster."""
    here = Path(__file__).parent
    slots = [index for index, item in enumerate(items) if item.path.parent == here]
    ordered = sorted((items[index] for index in slots), key=lambda item: item.path.name != "test_platform.py")
    for index, item in zip(slots, ordered, strict=True):
        items[index] = item


@pytest.fixture(scope="session")
def e2e_tools(request: pytest.FixtureRequest) -> dict[str, str]:
    # Progress straight to the terminal: a first build takes many minutes.
    return provide_tools(tools=E2E_TOOLS, progress=terminal_progress(request.config))


@pytest.fixture(scope="session")
def program_python(e2e_tools: dict[str, str]) -> Path:
    return program_virtualenv(Path(e2e_tools["CACHE"]))


@pytest.fixture(scope="session")
def control_plane(e2e_tools: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    # Started before the cluster: everything the tier runs from here on is watched. With
    # MLPLATFORM_TEST_CHARTS=upstream (machines with internet) the provider's Helm fetches
    # charts over HTTPS from their repositories; that alone is expected.
    guard = LoopbackGuard(
        allowed=(lambda process, peer: process == "pulumi-resource" and peer.endswith(":443"))
        if uses_upstream()
        else (lambda process, peer: False)
    ).start()
    plane = start_simulated_cluster(e2e_tools, tmp_path_factory.mktemp("cluster"))
    try:
        yield plane
    finally:
        plane.stop()
        guard.stop()
    problems = guard.violations + dial_errors(plane.workdir / "kube-apiserver.log")
    assert guard.samples > 0, "the loopback guard never sampled the tier's connections"
    assert not problems, "the e2e tier sent traffic outside 127.0.0.0/8:\n" + "\n".join(problems)


@pytest.fixture(scope="session")
def pulumi(e2e_tools: dict[str, str], program_python: Path, tmp_path_factory: pytest.TempPathFactory) -> PulumiCli:
    return pulumi_cli(e2e_tools, program_python, tmp_path_factory.mktemp("pulumi"))


@pytest.fixture(scope="session")
def chart_repo() -> Iterator[str | None]:
    """The chart mirror (MLPLATFORM_TEST_CHARTS), served on 127.0.0.1: every release comes from it.

    None with MLPLATFORM_TEST_CHARTS=upstream: the platform's own chart repositories."""
    with chart_mirror() as url:
        yield url


@pytest.fixture(scope="session")
def platform(
    pulumi: PulumiCli, control_plane: ControlPlane, chart_repo: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlatformStack]:
    """The real platform root project, up on the simulated cluster; destroyed when the session ends.

    Its destroy is checked here, after every model stack is gone: nothing of the
    project may remain but the CRDs, which are retained by design.
    """
    stack = provision(pulumi, control_plane, tmp_path_factory.mktemp("platform-project"), chart_mirror=chart_repo)
    yield stack
    pulumi.destroy(stack.project, STACK)
    assert pulumi.resource_count(stack.project, STACK) == 0
    assert_nothing_left(control_plane, stack)


@pytest.fixture(scope="session")
def platform_stack(platform: PlatformStack) -> str:
    """The name a model stack's StackReference gives the platform stack."""
    return platform.reference
