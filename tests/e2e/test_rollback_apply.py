"""`rollout watch --apply` with the real engine: a failing canary is rolled back without a merge.

A Prometheus serves the canary's failing Linkerd series; `watch --apply` runs
with a shortened interval. After `analysis.failureThreshold` failed checks it
writes weight 0, runs `up` on that one stack through the Automation API (the
`pulumi` CLI on PATH, the test's hermetic backend), commits and pushes to a
local bare `origin`. The assertions read the TrafficSplit back from the API
server and the stack file from Git. The time from the first failed check to the
API server's split at 100/0 is printed (docs/benchmarks.md).

Its own model name, so its objects never meet the walk's in test_model_stack_rollout.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.control_plane import ControlPlane
from tests.e2e.pulumi_cli import PulumiCli
from tests.e2e.test_model_stack_rollout import SERVING, STACK_CONFIG, wait_for_requests
from tests.support.helpers import ROOT
from tests.support.linkerd_exporter import LinkerdExporter, Traffic

pytestmark = pytest.mark.e2e

MODEL = "fraud-rollback"
STACK = "fraud-rollback-e2e"
WINDOW = "5s"
FAILURE_THRESHOLD = 2
CHECK_INTERVAL = 1.0
FAILING = Traffic(rps=40, error_ratio=0.5, latency_ms=30)
TIMEOUT = 240.0
BRANCH = "rollback/fraud-rollback-e2e"


def _git(directory: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, check=True).stdout


def _split(api: ControlPlane) -> dict[str, int]:
    split = api.get(f"/apis/split.smi-spec.io/v1alpha2/namespaces/{SERVING}/trafficsplits/{MODEL}")
    assert split is not None, "the TrafficSplit is missing"
    return {backend["service"]: backend["weight"] for backend in split["spec"]["backends"]}


def _stack_config(platform_stack: str) -> str:
    config = STACK_CONFIG.format(platform=platform_stack, window=WINDOW)
    config = config.replace("name: fraud-detector\n", f"name: {MODEL}\n")
    config = config.replace("runId: fraud-e2e-r1", "runId: fraud-rollback-r1")
    return config.replace("    minRequests: 20\n", f"    minRequests: 20\n    failureThreshold: {FAILURE_THRESHOLD}\n")


def test_watch_apply_rolls_back_without_a_merge(  # noqa: PLR0915  one rollback told in order; its steps share one cluster
    pulumi: PulumiCli,
    control_plane: ControlPlane,
    platform_stack: str,
    prometheus: str,
    exporter: LinkerdExporter,
    e2e_tools: dict[str, str],
    tmp_path: Path,
) -> None:
    api = control_plane
    exporter.set_traffic(SERVING, f"{MODEL}-v6", FAILING)

    # The model stack, up at 10%, its files committed in a checkout whose origin is a bare repo.
    project = tmp_path / "repo" / "model"
    project.mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / "stacks" / "model" / name, project / name)
    pulumi.stack_init(project, STACK)
    stack_file = project / f"Pulumi.{STACK}.yaml"
    stack_file.write_text(stack_file.read_text() + "config:\n" + _stack_config(platform_stack))
    pulumi.up(project, STACK)
    assert _split(api) == {f"{MODEL}-v5": 90, f"{MODEL}-v6": 10}
    outputs = tmp_path / "platform-outputs.json"
    outputs.write_text(pulumi.run("stack", "output", "--json", "--stack", platform_stack, cwd=project).stdout)

    origin = tmp_path / "origin.git"
    checkout = project.parent
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    _git(checkout, "init", "-q", "-b", "main")
    _git(checkout, "-c", "user.name=e2e", "-c", "user.email=e2e@local", "commit", "-q", "--allow-empty", "-m", "root")
    _git(checkout, "add", "model")
    _git(checkout, "-c", "user.name=e2e", "-c", "user.email=e2e@local", "commit", "-q", "-m", "fraud-rollback at 10%")
    _git(checkout, "remote", "add", "origin", str(origin))
    head = _git(checkout, "rev-parse", "HEAD").strip()

    wait_for_requests(prometheus, f"{MODEL}-v6", FAILING.rps * 2, window=WINDOW)

    # `mlplatform` as CI runs it: the hermetic pulumi env (the Automation API finds `pulumi` on PATH).
    env = pulumi.env()
    env["PATH"] = f"{Path(e2e_tools['pulumi']).parent}:{env['PATH']}"
    # The rollout state goes to the InferenceService record on the API server.
    env["KUBECONFIG"] = str(api.admin_kubeconfig)
    env.pop("ROLLOUT_STATUS_FILE", None)
    env.update(
        GIT_AUTHOR_NAME="e2e", GIT_AUTHOR_EMAIL="e2e@local", GIT_COMMITTER_NAME="e2e", GIT_COMMITTER_EMAIL="e2e@local"
    )
    probe = subprocess.run(
        [sys.executable, "-c", "import mlplatform; print(mlplatform.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.stdout.strip() == str(ROOT / "mlplatform" / "__init__.py"), probe
    executable = shutil.which("mlplatform", path=str(Path(sys.executable).parent))
    assert executable, "the mlplatform CLI is installed with the project (pip install -e .)"
    argv = [
        executable,
        "rollout",
        "watch",
        STACK,
        "--project-dir",
        str(project),
        "--json",
        "--platform-outputs",
        str(outputs),
        "--prometheus-url",
        prometheus,
        "--interval",
        str(CHECK_INTERVAL),
        "--dwell-seconds",
        "3600",
        "--max-checks",
        "20",
        "--apply",
        "--git-push",
        BRANCH,
    ]
    watch = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert watch.stdout is not None and watch.stderr is not None  # both are pipes
    stdout, stderr_pipe = watch.stdout, watch.stderr
    events: queue.Queue[tuple[float, dict]] = queue.Queue()

    def read() -> None:
        for line in stdout:
            if line.startswith("{"):
                events.put((time.monotonic(), json.loads(line)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    # Poll the API server while watch runs: when does the split read 100/0?
    first_failure: float | None = None
    rolled_back: float | None = None
    seen: list[dict] = []
    deadline = time.monotonic() + TIMEOUT
    while rolled_back is None:
        assert time.monotonic() < deadline, f"no rollback on the API server after {TIMEOUT}s: {seen}"
        while not events.empty():
            at, event = events.get()
            seen.append(event)
            if first_failure is None and event["event"] == "check" and event["failures"] == 1:
                first_failure = at
        if first_failure is not None and _split(api) == {f"{MODEL}-v5": 100, f"{MODEL}-v6": 0}:
            rolled_back = time.monotonic()
        elif watch.poll() is not None and events.empty() and not reader.is_alive():
            pytest.fail(f"watch exited {watch.returncode} before the rollback:\n{seen}\n{stderr_pipe.read()}")
        time.sleep(0.1)

    code = watch.wait(timeout=120)
    reader.join(timeout=10)
    while not events.empty():
        seen.append(events.get()[1])
    stderr = stderr_pipe.read()
    assert code == 1, f"watch aborts with 'refused' (1), got {code}:\n{seen}\n{stderr}"
    kinds = [e["event"] for e in seen]
    checks = [e for e in seen if e["event"] == "check"]
    # 50% errors against the 99% floor: the sequential test is decisive at the first check, so watch
    # rolls back without waiting for failureThreshold checks in a row.
    assert [(c["failures"], c["gate"]["decisive"]) for c in checks] == [(1, True)], checks
    assert kinds.index("applying") < kinds.index("applied") < kinds.index("published") < kinds.index("aborted"), kinds

    assert first_failure is not None  # the loop ends only once the split rolled back after a failed check
    latency = rolled_back - first_failure
    print(
        f"\nrollback latency: {latency:.1f}s from the first failed check to the API server's split at 100/0 "
        "(a decisive first check, incl. `pulumi up`)"
    )

    # The stack file holds the rollback, committed on top of the last commit and pushed; nothing else is dirty.
    text = stack_file.read_text()
    assert re.search(r"    weight: 0  # aborted: success rate \d+\.\d\d% is below 99\.00% at 99% confidence", text), (
        text
    )
    assert _git(checkout, "status", "--porcelain") == ""
    assert _git(checkout, "rev-parse", "HEAD~1").strip() == head
    assert _git(origin, "show", f"{BRANCH}:model/{stack_file.name}") == text
    # The cluster records the abort, with its reason, in the record's status.
    record = api.get(f"/apis/ml.example.com/v1/namespaces/{SERVING}/inferenceservices/{MODEL}")
    assert record["status"]["phase"] == "Aborted", record.get("status")
    assert "e-value" in record["status"]["abort"]["reason"], record["status"]  # the judge's decisive statistic
    # No merge, no CLI `up`: the engine's last update was the Automation API's.
    history = json.loads(pulumi.run("stack", "history", "--json", "--stack", STACK, cwd=project).stdout)
    assert len(history) == 2 and history[0]["result"] == "succeeded", history

    pulumi.destroy(project, STACK)
