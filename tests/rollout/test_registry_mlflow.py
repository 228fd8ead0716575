"""`--from-registry` against a real MLflow tracking server with a temporary SQLite store.

Versions are registered with `create_model_version` pointing at a run (no model
artifact is logged): the registry only needs the version and its run's metrics,
and skipping a model flavour keeps the fixture fast.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlplatform.tools.rollout import cli, context
from mlplatform.tools.rollout.gate import GateVerdict, Thresholds
from mlplatform.tools.rollout.registry import BelowThreshold, Registry
from mlplatform.tools.stackfile import editor as stackfile
from tests.rollout.conftest import STACK, canary_in, with_weight, without_canary
from tests.support.servers import free_port, wait_until_ready

pytestmark = pytest.mark.integration
# requirements-dev.txt pins it and `make setup` installs it: a missing mlflow fails
# collection with the ImportError, never skips these tests.
import mlflow  # noqa: E402

MODEL = "fraud_detector"
READY_TIMEOUT = 60.0
# version -> (accuracy, f1), registered in this order (versions 1..4).
VERSIONS = {"1": (0.95, 0.90), "2": (0.87, 0.82), "3": (0.80, 0.70), "4": (0.93, 0.88)}


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    executable = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    log = (workdir / "mlflow.log").open("w")
    process = subprocess.Popen(
        [
            executable,
            "server",
            "--backend-store-uri",
            f"sqlite:///{workdir}/mlflow.db",
            "--default-artifact-root",
            str(workdir / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until_ready(
            process,
            f"{uri}/health",
            name="mlflow server",
            log_path=workdir / "mlflow.log",
            timeout=READY_TIMEOUT,
            interval=0.3,
        )
        _register_versions(uri)
        yield uri
    finally:
        # The server forks workers; end its whole process group, which it leads.
        try:
            os.killpg(process.pid, 15)
            process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, 9)
            process.wait(timeout=5)
        log.close()


def _register_versions(uri: str) -> None:
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("fraud-detector-tests")
    client.create_registered_model(MODEL)
    for accuracy, f1 in VERSIONS.values():
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "accuracy", accuracy)
        client.log_metric(run.info.run_id, "f1", f1)
        client.set_terminated(run.info.run_id)
        client.create_model_version(MODEL, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)


def _run(project: Path, *args: str) -> tuple[int, list[dict]]:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    command, *rest = args
    parsed = parser.parse_args(["rollout", command, STACK, "--project-dir", str(project), "--json", *rest])
    stream = io.StringIO()
    code = cli.run(parsed, stream=stream)
    return code, [json.loads(line) for line in stream.getvalue().splitlines()]


def _stack(tmp_path: Path, text: str) -> Path:
    (tmp_path / f"Pulumi.{STACK}.yaml").write_text(text)
    return tmp_path


def _aliases(uri: str) -> dict[str, str]:
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    return {alias: str(v) for alias, v in client.get_registered_model(MODEL).aliases.items()}


def test_staging_thresholds_pass_and_the_aliases_stay(tracking_uri, tmp_path) -> None:
    """A dev stack takes a version meeting the staging bar; the canary points at it. The alias
    `challenger` does not move: the deploy workflow moves it after `up` (move_aliases)."""
    project = _stack(tmp_path, without_canary())
    aliases = _aliases(tracking_uri)
    code, events = _run(project, "start", "--version", "v2", "--from-registry", "--tracking-uri", tracking_uri)
    assert code == 0, events
    canary = canary_in(project / f"Pulumi.{STACK}.yaml")
    assert (canary.model_uri, canary.weight) == (f"models:/{MODEL}/2", 10)
    assert _aliases(tracking_uri) == aliases


def test_production_thresholds_refuse_with_each_metric(tracking_uri, tmp_path) -> None:
    """A prod stack refuses a version below the production bar and lists value and threshold per metric."""
    project = _stack(tmp_path, without_canary().replace("environment: dev", "environment: prod"))
    before = (project / f"Pulumi.{STACK}.yaml").read_bytes()
    code, events = _run(project, "start", "--version", "v2", "--from-registry", "--tracking-uri", tracking_uri)
    assert code == 1
    assert events[-1]["checks"] == [
        {"metric": "accuracy", "actual": 0.87, "threshold": 0.90},
        {"metric": "f1", "actual": 0.82, "threshold": 0.85},
    ]
    assert "accuracy: 0.8700 (threshold >= 0.90) FAIL" in events[-1]["reason"]
    assert (project / f"Pulumi.{STACK}.yaml").read_bytes() == before


def test_below_staging_is_refused(tracking_uri) -> None:
    """Even dev refuses a version below the staging bar."""
    with pytest.raises(BelowThreshold, match=r"f1: 0.7000 \(threshold >= 0.80\) FAIL"):
        Registry(tracking_uri).check(MODEL, "3", "dev")


def test_unknown_version_is_a_clear_error(tracking_uri, tmp_path) -> None:
    """A version missing from the registry is an error naming it, and nothing is written."""
    project = _stack(tmp_path, without_canary())
    code, events = _run(project, "start", "--version", "v9", "--from-registry", "--tracking-uri", tracking_uri)
    assert code == 2 and "fraud_detector version 9" in events[-1]["error"]
    assert (project / f"Pulumi.{STACK}.yaml").read_text() == without_canary()


def test_promote_checks_the_registry_and_leaves_the_aliases(tracking_uri, tmp_path, monkeypatch) -> None:
    """`promote --from-registry` checks the canary's version against the thresholds; `champion`
    moves after `up`, in the deploy workflow, so here the aliases stay."""
    registry = Registry(tracking_uri)
    registry.set_alias(MODEL, "challenger", "4")
    registry.set_alias(MODEL, "champion", "1")
    # The gate's Prometheus side is covered by test_gate_prometheus; here it is healthy.
    monkeypatch.setattr(context.Context, "gate", lambda self, config, **window: _healthy_verdict())
    project = _stack(tmp_path, with_weight(100).replace("models:/fraud_detector/6", "models:/fraud_detector/4"))
    code, events = _run(project, "promote", "--from-registry", "--tracking-uri", tracking_uri)
    assert code == 0, events
    assert stackfile.load(project / f"Pulumi.{STACK}.yaml").config.stable.model_uri == f"models:/{MODEL}/4"
    assert _aliases(tracking_uri) == {"challenger": "4", "champion": "1"}
    assert next(e for e in events if e["event"] == "registry")["version"] == "4"


def test_promote_from_registry_refuses_a_version_below_the_thresholds(tracking_uri, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(context.Context, "gate", lambda self, config, **window: _healthy_verdict())
    text = with_weight(100).replace("models:/fraud_detector/6", "models:/fraud_detector/3")
    project = _stack(tmp_path, text)
    code, events = _run(project, "promote", "--from-registry", "--tracking-uri", tracking_uri)
    assert code == 1, events
    assert (project / f"Pulumi.{STACK}.yaml").read_text() == text


def _healthy_verdict() -> GateVerdict:
    return GateVerdict(
        healthy=True,
        namespace="mlserve-test",
        deployment="fraud-detector-v6",
        interval="20s",
        requests=500,
        success_rate=1.0,
        p99_latency_ms=40,
        accuracy=None,
        stable_success_rate=None,
        thresholds=Thresholds(20, 0.99, 500, None, False),
    )
