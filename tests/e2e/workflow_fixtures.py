"""The fixtures of the workflow scenarios (tests/e2e/test_workflow_loop.py, tests/e2e/workflow_loop/):
act, the repository under test, and its services; tests/e2e/conftest.py registers them.

- `act`: the harness (tests/workflows/act.py), its environment the e2e engine's (backend,
  passphrase, plugins on PATH) with the runner's stand-ins first on PATH (`aws`, `gh`), the
  Pulumi release served on 127.0.0.1, and the policy pack runnable by the tier's language
  host (tests/e2e/policy_pack.py says why a wrapper);
- `repository`: a bare `origin` and a clone of this repository (tests/workflows/git_repo.py);
- `workflow_venv`: the `./venv` the workflows' `make setup` would build;
- `tracking_uri`: a real MLflow server on 127.0.0.1 (the deploy's alias step).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.control_plane import ControlPlane
from tests.e2e.engine import POLICY_PACKAGES, _pins
from tests.e2e.policy_pack import python_with_policy_pack
from tests.e2e.pulumi_cli import PulumiCli
from tests.e2e.tools import provide_tools, terminal_progress
from tests.e2e.workflow_loop.loop import VARIABLES
from tests.support.helpers import ROOT
from tests.support.servers import free_port, wait_until_ready
from tests.workflows.act import BIN_STAND_INS, Act, base_env
from tests.workflows.git_repo import Repository, make_repository
from tests.workflows.pulumi_release import release_server

# An MLflow server takes over a minute to answer on a loaded 2-core machine.
MLFLOW_READY_TIMEOUT = 240.0


@pytest.fixture(scope="session")
def act_binary(request: pytest.FixtureRequest) -> str:
    return provide_tools(tools=("act",), progress=terminal_progress(request.config))["act"]


@pytest.fixture(scope="session")
def cli_release(e2e_tools: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with release_server(e2e_tools, tmp_path_factory.mktemp("pulumi-release")) as url:
        yield url


def _pin(requirements: str, name: str) -> str:
    (pin,) = [line.strip() for line in (ROOT / requirements).read_text().splitlines()
              if line.lower().startswith(f"{name.lower()}==")]  # fmt: skip
    return pin


@pytest.fixture(scope="session")
def workflow_venv(e2e_tools: dict[str, str]) -> Path:
    """The `./venv` the workflows' `make setup` builds: requirements.txt's pins (the providers' packages
    included: `mlplatform diff` renders the platform offline with them), the policy pack's, and mlflow (the
    registry client of the alias step); kept in the tools' cache, keyed by the pins. The engine runs the
    programs and the pack with the e2e tier's interpreter instead (`act` below), which holds no provider
    package whose plugin the tier does not build."""
    runtime = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line]
    pins = [
        *runtime,
        *_pins(POLICY_PACKAGES, ROOT / "policy" / "requirements.txt"),
        _pin("requirements-dev.txt", "mlflow"),
    ]
    venv = Path(e2e_tools["CACHE"]) / f"workflow-python-{hashlib.sha256(' '.join(pins).encode()).hexdigest()[:12]}"
    if not (venv / ".pins").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *pins], check=True, timeout=1800
        )
        (venv / ".pins").write_text("\n".join(pins) + "\n")
    return venv


@pytest.fixture
def act(
    act_binary: str,
    pulumi: PulumiCli,
    workflow_venv: Path,
    cli_release: str,
    control_plane: ControlPlane,
    tmp_path: Path,
) -> Act:
    env = base_env(Path(sys.executable).parent, workflow_venv)
    # The engine's environment as the e2e tier sets it (backend, passphrase, plugins on PATH), but the
    # program is the workspace's: the setup-python stand-in points PYTHONPATH there.
    env.update({k: v for k, v in pulumi.env().items() if k.startswith("PULUMI_") or k == "PATH"})
    # Programs and the policy pack run with the tier's program interpreter (the programs' and the pack's
    # packages); the wrapper bridges the tier's language host to the CLI's way of starting a pack
    # (policy_pack.py), reading the pack from the job's checkout ($GITHUB_WORKSPACE/policy).
    env["PULUMI_PYTHON_CMD"] = str(python_with_policy_pack(pulumi.python, tmp_path))
    # As on a runner, no KUBECONFIG: the `aws eks update-kubeconfig` stand-in writes the simulated
    # cluster's to ~/.kube/config, where the rollout tool finds it.
    env["PATH"] = f"{BIN_STAND_INS}{os.pathsep}{env['PATH']}"
    env["MLPLATFORM_ACT_KUBECONFIG"] = str(control_plane.admin_kubeconfig)
    return Act(binary=act_binary, env=env, variables={**VARIABLES, "PULUMI_DOWNLOAD_URL": cli_release},
               workdir=tmp_path / "act")  # fmt: skip


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    return make_repository(tmp_path / "github")


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow server on 127.0.0.1 holding fraud_detector versions 1-6, v6 as `challenger`."""
    import mlflow

    workdir = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    executable = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    with (workdir / "mlflow.log").open("w") as log:
        process = subprocess.Popen(
            [executable, "server", "--backend-store-uri", f"sqlite:///{workdir}/mlflow.db",
             "--default-artifact-root", str(workdir / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_until_ready(process, f"{uri}/health", name="mlflow server", log_path=workdir / "mlflow.log",
                         timeout=MLFLOW_READY_TIMEOUT, interval=0.3)  # fmt: skip
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = client.create_experiment("workflow-loop")
        client.create_registered_model("fraud_detector")
        for _ in range(6):
            run = client.create_run(experiment)
            client.create_model_version(
                "fraud_detector", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
            )
        client.set_registered_model_alias("fraud_detector", "champion", "5")
        client.set_registered_model_alias("fraud_detector", "challenger", "6")
        yield uri
    finally:
        try:
            os.killpg(process.pid, 15)
            process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, 9)
            process.wait(timeout=5)
