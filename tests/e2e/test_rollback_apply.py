"""`rollout watch --apply` with the real engine: a failing canary is rolled back without a merge.

A Prometheus serves the canary's failing Linkerd series; `watch --apply` runs
with a shortened interval. On the judge's decisive failing check (or after
`analysis.failureThreshold` guard-rail failures) it writes weight 0, runs `up`
on that one stack (one `pulumi up` of the CLI on PATH, the test's hermetic backend), commits and pushes to a
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
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.control_plane import ControlPlane
from tests.e2e.pulumi_cli import PulumiCli
from tests.e2e.test_model_stack_rollout import SERVING, STACK_CONFIG, wait_for_requests
from tests.support.helpers import ROOT
from tests.support.linkerd_exporter import FAILING, LinkerdExporter

pytestmark = pytest.mark.e2e

MODEL = "fraud-rollback"
STACK = "fraud-rollback-e2e"
WINDOW = "5s"
FAILURE_THRESHOLD = 2
CHECK_INTERVAL = 1.0
TIMEOUT = 240.0
BRANCH = "rollback/fraud-rollback-e2e"


def _git(directory: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, check=True).stdout


def _split(api: ControlPlane, model: str = MODEL) -> dict[str, int]:
    split = api.get(f"/apis/split.smi-spec.io/v1alpha2/namespaces/{SERVING}/trafficsplits/{model}")
    assert split is not None, "the TrafficSplit is missing"
    return {backend["service"]: backend["weight"] for backend in split["spec"]["backends"]}


def _stack_config(platform_stack: str) -> str:
    config = STACK_CONFIG.format(platform=platform_stack, window=WINDOW)
    config = config.replace("name: fraud-detector\n", f"name: {MODEL}\n")
    config = config.replace("runId: fraud-e2e-r1", "runId: fraud-rollback-r1")
    return config.replace("    minRequests: 20\n", f"    minRequests: 20\n    failureThreshold: {FAILURE_THRESHOLD}\n")


@dataclass(frozen=True)
class Checkout:
    """A model stack up at 10%, its project committed in a Git checkout whose `origin` is a bare repo."""

    directory: Path
    project: Path
    stack_file: Path
    origin: Path
    head: str


def _model_stack_in_git(
    pulumi: PulumiCli, api: ControlPlane, platform_stack: str, tmp_path: Path, model: str, stack: str
) -> Checkout:
    project = tmp_path / "repo" / "model"
    config = _stack_config(platform_stack).replace(f"name: {MODEL}\n", f"name: {model}\n")
    stack_file = pulumi.model_stack(project, stack, config)
    pulumi.up(project, stack)
    assert _split(api, model) == {f"{model}-v5": 90, f"{model}-v6": 10}
    origin = tmp_path / "origin.git"
    checkout = project.parent
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    _git(checkout, "init", "-q", "-b", "main")
    _git(checkout, "-c", "user.name=e2e", "-c", "user.email=e2e@local", "commit", "-q", "--allow-empty", "-m", "root")
    _git(checkout, "add", "model")
    _git(checkout, "-c", "user.name=e2e", "-c", "user.email=e2e@local", "commit", "-q", "-m", f"{model} at 10%")
    _git(checkout, "remote", "add", "origin", str(origin))
    return Checkout(checkout, project, stack_file, origin, _git(checkout, "rev-parse", "HEAD").strip())


def _mlplatform(env: dict[str, str]) -> str:
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
    return executable


def test_watch_apply_rolls_back_without_a_merge(  # noqa: PLR0915  one rollback told in order; its steps share one cluster
    pulumi: PulumiCli,
    control_plane: ControlPlane,
    platform_stack: str,
    prometheus: str,
    exporter: LinkerdExporter,
    tmp_path: Path,
) -> None:
    api = control_plane
    exporter.set_traffic(SERVING, f"{MODEL}-v6", FAILING)

    made = _model_stack_in_git(pulumi, api, platform_stack, tmp_path, MODEL, STACK)
    checkout, project, stack_file, origin, head = made.directory, made.project, made.stack_file, made.origin, made.head
    outputs = tmp_path / "platform-outputs.json"
    outputs.write_text(pulumi.run("stack", "output", "--json", "--stack", platform_stack, cwd=project).stdout)

    wait_for_requests(prometheus, f"{MODEL}-v6", FAILING.rps * 2, window=WINDOW)

    env = pulumi.rollout_env(api.admin_kubeconfig)
    executable = _mlplatform(env)
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
    # No merge, no second `up`: the engine's last update was the rollback's.
    history = json.loads(pulumi.run("stack", "history", "--json", "--stack", STACK, cwd=project).stdout)
    assert len(history) == 2 and history[0]["result"] == "succeeded", history

    pulumi.destroy(project, STACK)


APPLY_MODEL = "fraud-apply"
APPLY_STACK = "fraud-apply-e2e"
# Wraps the program's interpreter (PULUMI_PYTHON_CMD): the language host's `pip list` runs as it is;
# the program itself either waits for a file (an `up` that holds the stack's lock while it runs) or
# crashes (a failed `up`).
PROGRAM_WRAPPER = """#!/bin/sh
case "$*" in
  *pulumi-language-python-exec*)
    case "{mode}" in
      hold)
        touch "{started}"
        waited=0
        while [ ! -e "{release}" ] && [ "$waited" -lt 1200 ]; do sleep 0.1; waited=$((waited + 1)); done ;;
      crash)
        echo "the program crashed (injected by the e2e test)" >&2
        exit 3 ;;
    esac ;;
esac
exec "{python}" "$@"
"""


def _wrapped_python(pulumi: PulumiCli, directory: Path, mode: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    wrapper = directory / f"python-{mode}"
    wrapper.write_text(
        PROGRAM_WRAPPER.format(
            mode=mode, started=directory / "started", release=directory / "release", python=pulumi.python
        )
    )
    wrapper.chmod(0o755)
    return wrapper


def _abort_apply(executable: str, project: Path, env: dict[str, str], reason: str) -> subprocess.CompletedProcess[str]:
    argv = [executable, "rollout", "abort", APPLY_STACK, "--project-dir", str(project), "--json", "--apply"]
    return subprocess.run(
        [*argv, "--reason", reason], env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def _error(done: subprocess.CompletedProcess[str]) -> str:
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return events[-1].get("error", "") if events else done.stderr


def test_abort_apply_with_the_real_engine_lock_then_failure_then_success(
    pulumi: PulumiCli,
    control_plane: ControlPlane,
    platform_stack: str,
    tmp_path: Path,
) -> None:
    """`abort --apply`'s one `pulumi up`: a stack another `up` holds is exit 5, a failed `up` is exit 6,
    both with the file byte for byte as committed and the split untouched; then it rolls back and commits."""
    api = control_plane
    made = _model_stack_in_git(pulumi, api, platform_stack, tmp_path, APPLY_MODEL, APPLY_STACK)
    committed = made.stack_file.read_bytes()
    at_ten = {f"{APPLY_MODEL}-v5": 90, f"{APPLY_MODEL}-v6": 10}
    env = pulumi.rollout_env(api.admin_kubeconfig)
    executable = _mlplatform(env)

    # 1. A concurrent `up` of the same stack holds its lock while its program runs.
    held = tmp_path / "held"
    holder_env = pulumi.env()
    holder_env["PULUMI_PYTHON_CMD"] = str(_wrapped_python(pulumi, held, "hold"))
    holder = subprocess.Popen(
        [pulumi.binary, "--non-interactive", "up", "--yes", "--skip-preview", "--stack", APPLY_STACK],
        cwd=made.project,
        env=holder_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (held / "started").exists():
            assert holder.poll() is None, (
                f"the holding `up` ended early: {holder.stdout.read() if holder.stdout else ''}"
            )
            assert time.monotonic() < deadline, "the holding `up` never started its program"
            time.sleep(0.1)
        locked = _abort_apply(executable, made.project, env, "lock test")
    finally:
        (held / "release").touch()
        holder_output, _ = holder.communicate(timeout=TIMEOUT)
    assert locked.returncode == 5, f"{locked.stdout}\n{locked.stderr}"
    assert "locked by another update" in _error(locked)
    assert holder.returncode == 0, holder_output
    assert made.stack_file.read_bytes() == committed
    assert _git(made.directory, "rev-parse", "HEAD").strip() == made.head
    assert _split(api, APPLY_MODEL) == at_ten

    # 2. The program crashes: the `up` fails, the file goes back, nothing is committed.
    crash_env = dict(env, PULUMI_PYTHON_CMD=str(_wrapped_python(pulumi, tmp_path / "crash", "crash")))
    failed = _abort_apply(executable, made.project, crash_env, "failure test")
    assert failed.returncode == 6, f"{failed.stdout}\n{failed.stderr}"
    assert "back as it was" in _error(failed)
    assert "the program crashed" in failed.stderr, "the engine's output is streamed to stderr"
    assert made.stack_file.read_bytes() == committed
    assert _git(made.directory, "status", "--porcelain") == ""
    assert _git(made.directory, "rev-parse", "HEAD").strip() == made.head
    assert _split(api, APPLY_MODEL) == at_ten

    # 3. Nothing in the way: one `up`, the split at 100/0, the edit committed on top.
    done = _abort_apply(executable, made.project, env, "success test")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert _split(api, APPLY_MODEL) == {f"{APPLY_MODEL}-v5": 100, f"{APPLY_MODEL}-v6": 0}
    assert "    weight: 0  # aborted: success test" in made.stack_file.read_text()
    assert _git(made.directory, "rev-parse", "HEAD~1").strip() == made.head
    assert _git(made.directory, "status", "--porcelain") == ""
    history = json.loads(pulumi.run("stack", "history", "--json", "--stack", APPLY_STACK, cwd=made.project).stdout)
    # The setup's, the holder's, the crashed one's and the rollback's: a locked `up` never starts an update.
    assert [h["result"] for h in history] == ["succeeded", "failed", "succeeded", "succeeded"], history

    pulumi.destroy(made.project, APPLY_STACK)
