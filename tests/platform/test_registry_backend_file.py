"""MLflow reads its backend store URI (which holds the database password) from a mounted file.

The start wrapper of the recorded Deployment is run for real: with `/bin/sh` and a
stand-in `mlflow` for the fast checks, and with the real `mlflow server` on SQLite
for the integration one.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlplatform.tools.offline.engine import Recording
from tests.support.registry_program import env_of
from tests.support.servers import free_port, wait_until_ready
from tests.support.types import K8S_DEPLOYMENT

MOUNT = "/etc/mlflow/backend"
URI_FILE_ENV = "MLFLOW_BACKEND_STORE_URI_FILE"
# The first start runs every schema migration on the SQLite file; slow on a busy machine.
READY_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def deployment(aws_dev: Recording) -> dict[str, Any]:
    return aws_dev.one(K8S_DEPLOYMENT).inputs


def _server(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_backend_uri_is_a_mounted_file_not_an_env_var(deployment):
    """Neither the pod spec nor `kubectl describe pod` shows the URI or a reference to it as env."""
    container = _server(deployment)
    env = env_of(container)
    assert "MLFLOW_BACKEND_STORE_URI" not in env
    assert not [e for e in container["env"] if "valueFrom" in e], container["env"]
    assert "postgresql" not in json.dumps(deployment)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == MOUNT]
    assert mount["readOnly"] is True
    secret = volumes[mount["name"]]["secret"]
    assert secret["secretName"] == "mlflow-backend"
    assert secret["items"] == [{"key": "MLFLOW_BACKEND_STORE_URI", "path": "backend-store-uri"}]
    # Group-readable only; the group is the pod's fsGroup, the server's own uid's group.
    assert secret["defaultMode"] == 0o440
    assert env[URI_FILE_ENV] == f"{MOUNT}/backend-store-uri"
    assert deployment["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 1000


def _run_wrapper(deployment: dict[str, Any], tmp_path: Path, uri_file: Path) -> subprocess.CompletedProcess:
    """The container's command, with a stand-in `mlflow` that reports what it was given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mlflow"
    fake.write_text('#!/bin/sh\nprintf "uri=%s\\n" "$MLFLOW_BACKEND_STORE_URI"\nprintf "arg=%s\\n" "$@"\n')
    fake.chmod(0o755)
    command = _server(deployment)["command"]
    environment = {"PATH": f"{bin_dir}:/usr/bin:/bin", URI_FILE_ENV: str(uri_file)}
    return subprocess.run(
        [*command, "--host", "0.0.0.0", "--port", "5000"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_wrapper_exports_the_file_and_execs_mlflow_server(deployment, tmp_path):
    """The server gets the URI in its environment, and its arguments unchanged."""
    uri_file = tmp_path / "backend-store-uri"
    uri_file.write_text("postgresql+psycopg2://mlflow:s3cret-_x@db:5432/mlflow?sslmode=require")
    result = _run_wrapper(deployment, tmp_path, uri_file)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "uri=postgresql+psycopg2://mlflow:s3cret-_x@db:5432/mlflow?sslmode=require",
        "arg=server",
        "arg=--host",
        "arg=0.0.0.0",
        "arg=--port",
        "arg=5000",
    ]


def test_wrapper_refuses_to_start_without_the_file(deployment, tmp_path):
    """Without the file MLflow must not fall back to a local store that loses every run on restart."""
    result = _run_wrapper(deployment, tmp_path, tmp_path / "missing")
    assert result.returncode != 0
    assert "uri=" not in result.stdout


@pytest.mark.integration
def test_real_mlflow_server_uses_the_uri_from_the_file(deployment, tmp_path):
    """The real `mlflow server`, started by the wrapper, stores runs where the file says."""
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    if mlflow is None:
        pytest.fail(f"mlflow is not installed next to {sys.executable}: pip install -r requirements-dev.txt")
    database = tmp_path / "from-file.db"
    uri_file = tmp_path / "backend-store-uri"
    uri_file.write_text(f"sqlite:///{database}")
    port = free_port()
    log_path = tmp_path / "mlflow.log"
    command = _server(deployment)["command"]
    path = f"{Path(mlflow).parent}:{os.environ.get('PATH', '')}"
    environment = {**os.environ, "PATH": path, URI_FILE_ENV: str(uri_file)}
    environment.pop("MLFLOW_BACKEND_STORE_URI", None)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--default-artifact-root", str(tmp_path / "artifacts")],
            env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_until_ready(
                process,
                f"http://127.0.0.1:{port}/health",
                name="mlflow server",
                log_path=log_path,
                timeout=READY_TIMEOUT,
                interval=0.3,
            )
            import mlflow as mlflow_client

            client = mlflow_client.MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
            client.create_experiment("stored-where-the-file-says")
        finally:
            # The server forks workers; end its whole process group, which it leads.
            os.killpg(process.pid, 15)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(timeout=5)
    with sqlite3.connect(database) as connection:
        names = {row[0] for row in connection.execute("SELECT name FROM experiments")}
    assert "stored-where-the-file-says" in names
