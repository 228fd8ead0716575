"""Fixtures for the end-to-end tier: the real pulumi engine against a local control plane.

- `e2e_tools`: the binaries from scripts/e2e-tools.sh (PATH, its cache, or a
  build from the Go module proxy: minutes the first time on a machine). A
  missing prerequisite (etcd, Go) fails the tier, naming it: never a skip;
- `program_python`: a virtualenv holding only what a model stack imports, at
  requirements.txt's pins. Plugins are found from the Python packages installed
  there, so this keeps the AWS, TLS and random providers (which nothing here
  uses, and which are not built) out of the engine's required set;
- `control_plane`: the simulated cluster on 127.0.0.1 (simulated_cluster.py):
  etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and kwok with
  its fake system and GPU nodes. A loopback guard watches the whole tier's
  traffic and fails it if anything left 127.0.0.0/8;
- `pulumi`: the CLI, logged in to a local backend in a temp dir;
- `platform_stack`: the stand-in platform stack, up, as a model stack's
  StackReference names it.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.control_plane import ControlPlane
from tests.e2e.loopback_guard import LoopbackGuard, dial_errors
from tests.e2e.simulated_cluster import STORAGE_CLASS, start_simulated_cluster
from tests.e2e.pulumi_cli import PulumiCli
from tests.e2e.tools import provide_tools, terminal_progress
from tests.helpers import ROOT

PLATFORM_PROJECT = Path(__file__).parent / "platform_standin"
PLATFORM_STACK = "e2e"
PLATFORM_STACK_REFERENCE = f"organization/mlplatform/{PLATFORM_STACK}"

ENGINE_PLUGINS = ("pulumi-language-python", "pulumi-resource-kubernetes")
# What this tier runs; the script's other tools (helm, for the chart scan) are not built for it.
E2E_TOOLS = ("pulumi", *ENGINE_PLUGINS, "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# What a model stack's program imports, pinned as requirements.txt pins them.
PROGRAM_PACKAGES = ("pulumi", "pulumi-kubernetes", "pydantic", "PyYAML")


@pytest.fixture(scope="session")
def e2e_tools(request: pytest.FixtureRequest) -> dict[str, str]:
    # Progress straight to the terminal: a first build takes many minutes.
    return provide_tools(tools=E2E_TOOLS, progress=terminal_progress(request.config))


def _pins(names: tuple[str, ...]) -> list[str]:
    wanted = {name.lower() for name in names}
    pins = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==\S+", line.strip())
        if match and match.group(1).lower() in wanted:
            pins.append(match.group(0))
    if len(pins) != len(names):
        raise AssertionError(f"requirements.txt must pin each of {names}; found {pins}")
    return pins


@pytest.fixture(scope="session")
def program_python(e2e_tools: dict[str, str]) -> Path:
    """Kept in the tools' cache directory, keyed by the pins, so later runs reuse it."""
    pins = _pins(PROGRAM_PACKAGES)
    venv = Path(e2e_tools["CACHE"]) / f"python-{hashlib.sha256(' '.join(pins).encode()).hexdigest()[:12]}"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pins], check=True)
        (venv / ".installed").write_text("\n".join(pins) + "\n")
    return python


@pytest.fixture(scope="session")
def control_plane(e2e_tools: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    # Started before the cluster: everything the tier runs from here on is watched.
    guard = LoopbackGuard().start()
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
def pulumi(
    e2e_tools: dict[str, str], program_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> PulumiCli:
    workdir = tmp_path_factory.mktemp("pulumi")
    # The engine finds the language host and the provider on PATH.
    tool_dirs = [str(Path(e2e_tools[name]).parent) for name in ENGINE_PLUGINS]
    cli = PulumiCli(
        binary=e2e_tools["pulumi"],
        tool_dirs=list(dict.fromkeys(tool_dirs)),
        python=program_python,
        repo_root=ROOT,
        home=workdir / "home",
    )
    cli.login(workdir / "state")
    return cli


@pytest.fixture(scope="session")
def platform_stack(
    pulumi: PulumiCli, control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The stand-in platform stack, up; yields the name a model stack references it by."""
    project = tmp_path_factory.mktemp("platform")
    shutil.copytree(PLATFORM_PROJECT, project, dirs_exist_ok=True)
    pulumi.stack_init(project, PLATFORM_STACK)
    pulumi.config_set(project, PLATFORM_STACK, "e2e:kubeconfig", control_plane.kubeconfig(), secret=True)
    pulumi.config_set(project, PLATFORM_STACK, "e2e:storageClass", STORAGE_CLASS)
    pulumi.up(project, PLATFORM_STACK)
    yield PLATFORM_STACK_REFERENCE
