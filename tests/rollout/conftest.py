"""Fixtures shared by the rollout tests: a model stack file in a temp project dir."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlplatform.model.config import CanaryConfig
from mlplatform.tools.stackfile import editor as stackfile
from mlplatform.tools.stackfile import rules

# Written out here (not copied from stacks/model) so the tests do not move when
# the real stack files are edited; comments and key order are what is under test.
STACK_TEXT = """\
# fraud-detector in a test environment.
config:
  mlmodel:platformStack: organization/mlplatform/dev
  mlmodel:environment: dev
  mlmodel:model:
    name: fraud-detector
    registeredModel: fraud_detector
    namespace: mlserve-test
  # stable takes whatever the canary does not
  mlmodel:stable:
    version: v5
    image: ghcr.io/example/fraud-detector-serving:1.0.0
    modelUri: models:/fraud_detector/5
  mlmodel:canary:
    version: v6
    image: ghcr.io/example/fraud-detector-serving:1.0.0
    modelUri: models:/fraud_detector/6
    weight: 10  # the first step
  mlmodel:allowedClients:
    - serviceAccount: api-gateway
      namespace: api-gateway
  mlmodel:analysis:
    interval: 20s
    minRequests: 20
    failureThreshold: 2
"""
STACK = "fraud-detector-test"


def canary_in(path: Path) -> CanaryConfig:
    """The canary of the stack file at `path`, read as the rollout reads it; one must be there (at any weight)."""
    return rules.require_canary(stackfile.load(path).config)


def without_canary(text: str = STACK_TEXT) -> str:
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("  mlmodel:canary:"))
    return "".join(lines[:start] + lines[start + 5 :])


def with_weight(weight: int, text: str = STACK_TEXT) -> str:
    return text.replace("    weight: 10  # the first step", f"    weight: {weight}  # the first step")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project dir holding `Pulumi.fraud-detector-test.yaml` with a canary at 10%."""
    (tmp_path / f"Pulumi.{STACK}.yaml").write_text(STACK_TEXT)
    return tmp_path


@pytest.fixture
def stack_file(project: Path) -> Path:
    return project / f"Pulumi.{STACK}.yaml"


LONG_AGO = "2020-01-01T00:00:00Z"


def seed_status(path: Path, weight: int = 10, version: str = "v6", started: str = LONG_AGO, failed: int = 0) -> None:
    """A rollout status whose step started long ago: the dwell has passed."""
    import json

    path.write_text(
        json.dumps(
            {
                "phase": "Progressing",
                "canaryVersion": version,
                "weight": weight,
                "stepStartedAt": started,
                "failedChecks": failed,
            }
        )
    )


@pytest.fixture(autouse=True)
def status_file(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> Path:
    """The rollout state in a file (`ROLLOUT_STATUS_FILE`), seeded with the 10% step's dwell long passed:
    the verbs' tests are about their own rule, not the dwell's (tests/rollout/test_dwell.py is)."""
    path = tmp_path_factory.mktemp("state") / "rollout-status.json"  # outside the project's Git checkout
    seed_status(path)
    monkeypatch.setenv("ROLLOUT_STATUS_FILE", str(path))
    return path


def git(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def repo(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`project` as a Git checkout with the stack file committed, and a bare `origin`."""
    origin = tmp_path_factory.mktemp("origin")
    git(origin, "init", "-q", "--bare", "-b", "main")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "initial")
    git(project, "remote", "add", "origin", str(origin))
    git(project, "config", "user.name", "t")
    git(project, "config", "user.email", "t@t")
    return origin
