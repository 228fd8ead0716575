"""`rollout next --apply` with the real engine: a step forward is applied under a checked update plan.

A model stack is up at 10% in a Git checkout, and its canary's Linkerd series are healthy
in a real Prometheus. Then:
1. `next --apply` previews with `--save-plan`, finds exactly the split's and the record's
   updates in the plan, applies it with `up --plan`, and commits and pushes the step:
   the API server's split reads 75/25, and the engine ran one update;
2. an HPA bound is merged into the stack file but never deployed; the next
   `next --apply` finds that update in its plan and refuses (exit 1) before anything is
   applied: the file is as committed, the split still 75/25, no update in the history.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.control_plane import ControlPlane
from tests.e2e.pulumi_cli import PulumiCli
from tests.e2e.test_model_stack_rollout import SERVING, wait_for_requests
from tests.e2e.test_rollback_apply import WINDOW, _git, _mlplatform, _model_stack_in_git, _split
from tests.support.linkerd_exporter import HEALTHY, LinkerdExporter, Traffic

pytestmark = pytest.mark.e2e

MODEL = "fraud-step"
STACK = "fraud-step-e2e"
BRANCH = "main"


def _next_apply(executable: str, project: Path, env: dict[str, str], prometheus: str, outputs: Path):
    argv = [
        executable, "rollout", "next", STACK, "--project-dir", str(project), "--json",
        "--platform-outputs", str(outputs), "--prometheus-url", prometheus,
        "--skip-dwell", "e2e: the plan, not the dwell, is under test", "--apply", "--git-push", BRANCH,
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    print(
        f"\n`next --apply` exited {done.returncode} after {time.monotonic() - started:.1f}s (gate, preview, plan, up)"
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done, events


def _history(pulumi: PulumiCli, project: Path) -> list[dict]:
    return json.loads(pulumi.run("stack", "history", "--json", "--stack", STACK, cwd=project).stdout)


def test_next_apply_steps_under_a_checked_plan_and_refuses_anything_else(
    pulumi: PulumiCli,
    control_plane: ControlPlane,
    platform_stack: str,
    prometheus: str,
    exporter: LinkerdExporter,
    tmp_path: Path,
) -> None:
    api = control_plane
    exporter.set_traffic(SERVING, f"{MODEL}-v5", HEALTHY)
    exporter.set_traffic(SERVING, f"{MODEL}-v6", HEALTHY)
    made = _model_stack_in_git(pulumi, api, platform_stack, tmp_path, MODEL, STACK)
    _git(made.directory, "push", "-q", "origin", "HEAD:refs/heads/main")
    outputs = tmp_path / "platform-outputs.json"
    outputs.write_text(pulumi.run("stack", "output", "--json", "--stack", platform_stack, cwd=made.project).stdout)
    env = pulumi.rollout_env(api.admin_kubeconfig)
    executable = _mlplatform(env)
    wait_for_requests(prometheus, f"{MODEL}-v6", HEALTHY.rps * 5, window=WINDOW)
    try:
        _steps(
            pulumi,
            api,
            made.project,
            made.directory,
            made.origin,
            made.stack_file,
            executable,
            env,
            prometheus,
            outputs,
        )
    finally:
        exporter.set_traffic(SERVING, f"{MODEL}-v5", Traffic(rps=0))
        exporter.set_traffic(SERVING, f"{MODEL}-v6", Traffic(rps=0))
    pulumi.destroy(made.project, STACK)


def _steps(
    pulumi: PulumiCli,
    api: ControlPlane,
    project: Path,
    checkout: Path,
    origin: Path,
    stack_file: Path,
    executable: str,
    env: dict[str, str],
    prometheus: str,
    outputs: Path,
) -> None:
    updates = len(_history(pulumi, project))

    # 1. The step 10 -> 25 under its plan: exactly two updates checked, then `up --plan`.
    done, events = _next_apply(executable, project, env, prometheus, outputs)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert _split(api, MODEL) == {f"{MODEL}-v5": 75, f"{MODEL}-v6": 25}
    (check,) = [line for line in done.stderr.splitlines() if line.startswith("plan check: ")]
    assert check == (
        f"plan check: update kubernetes:ml.example.com/v1:InferenceService {MODEL}-inference-service; "
        f"update kubernetes:split.smi-spec.io/v1alpha2:TrafficSplit {MODEL}-split"
    ), check
    assert [e["event"] for e in events][-3:] == ["applied", "published", "advanced"], events
    assert _git(checkout, "status", "--porcelain") == ""
    assert _git(origin, "show", f"main:model/{stack_file.name}") == stack_file.read_text()
    history = _history(pulumi, project)
    assert len(history) == updates + 1 and history[0]["kind"] == "update", history[0]
    assert history[0]["result"] == "succeeded"

    # 2. An HPA bound merged but never deployed: the step's plan holds its update, so it refuses.
    text = stack_file.read_text()
    assert text.count("      max: 3\n") == 1, text
    stack_file.write_text(text.replace("      max: 3\n", "      max: 4\n"))
    _git(checkout, "-c", "user.name=e2e", "-c", "user.email=e2e@local", "commit", "-q", "-am", "hpa max 4")
    committed, head = stack_file.read_bytes(), _git(checkout, "rev-parse", "HEAD").strip()
    refused, events = _next_apply(executable, project, env, prometheus, outputs)
    assert refused.returncode == 1, f"{refused.stdout}\n{refused.stderr}"
    reason = events[-1]["reason"]
    assert events[-1]["event"] == "refused", events[-1]
    assert f"kubernetes:autoscaling/v2:HorizontalPodAutoscaler {MODEL}-v5" in reason, reason
    assert "Nothing was applied" in reason
    assert stack_file.read_bytes() == committed
    assert _git(checkout, "rev-parse", "HEAD").strip() == head
    assert _split(api, MODEL) == {f"{MODEL}-v5": 75, f"{MODEL}-v6": 25}
    assert len(_history(pulumi, project)) == updates + 1, "the refused step ran no update"
