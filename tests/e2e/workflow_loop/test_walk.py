"""Scenario 1 of issue 18, run with act: a healthy canary advances across scheduled runs shorter than its
dwell, to 100%; promotion then goes through a PR (`rollout promote`), its preview and its merge, and
deploy.yml applies the reviewed plan: v6 is the stable version and takes all traffic.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.control_plane import ControlPlane
from tests.e2e.pulumi_cli import PulumiCli
from tests.e2e.test_model_stack_rollout import wait_for_requests
from tests.e2e.workflow_loop.loop import (
    MODEL_PROJECT,
    SERVING,
    STACK,
    merge,
    model_stack_up,
    only_this_canary,
    record_status,
    remove_model_stack,
    rollout_cli,
    split,
    start_step_now,
    watch_events,
)
from tests.e2e.workflow_loop.test_deploy import DEPLOY_JOBS, applied_plan, deploy
from tests.e2e.workflow_loop.test_preview import PREVIEW_JOBS, preview_pr
from tests.support.linkerd_exporter import HEALTHY, LinkerdExporter, Traffic
from tests.workflows.act import Act
from tests.workflows.git_repo import Repository, git

pytestmark = pytest.mark.e2e

# Three steps, each dwelling 15 s; a run watches 3 checks 2 s apart, so no step completes within one run.
WALK = """\
  mlmodel:steps: [10, 50, 100]
  mlmodel:analysis:
    interval: 5s
    minRequests: 20
    dwellMinutes: [15s, 15s, 15s]
"""
WALK_VARIABLES = {"ROLLOUT_WATCH_INTERVAL": "2", "ROLLOUT_WATCH_MAX_CHECKS": "3"}
MAX_RUNS = 12


def _weight_on_main(repository: Repository, stack_file: Path) -> int:
    text = git(repository.origin, "show", f"main:{MODEL_PROJECT}/{stack_file.name}")
    (weight,) = re.findall(r"\n  mlmodel:canary:\n(?:    .*\n)*?    weight: (\d+)", text)
    return int(weight)


def _walk_to_100(act: Act, repository: Repository, stack_file: Path) -> list[int]:
    """Scheduled rollout.yml runs, each from main as origin has it (as a runner's checkout), until main
    says 100%. The weights main held after each run."""
    weights = [_weight_on_main(repository, stack_file)]
    runs = 0
    while weights[-1] < 100:
        assert runs < MAX_RUNS, f"still at {weights[-1]}% after {runs} runs: {weights}"
        git(repository.clone, "fetch", "--quiet", "origin")
        git(repository.clone, "reset", "--quiet", "--hard", "origin/main")
        run = act.run("schedule", "rollout.yml", {"schedule": "*/10 * * * *"}, repository.clone)
        runs += 1
        print(f"act rollout.yml run {runs}: {run.seconds:.1f}s, events {watch_events(run)}")
        assert run.jobs == {"rollout/canaries": "success", f"rollout/watch {STACK}": "success"}, run.describe()
        assert "aborted" not in watch_events(run), run.describe()
        weights.append(_weight_on_main(repository, stack_file))
    return weights


def test_a_healthy_canary_advances_across_scheduled_runs_then_is_promoted_through_a_pr(
    act: Act,
    repository: Repository,
    pulumi: PulumiCli,
    platform_stack: str,
    control_plane: ControlPlane,
    exporter: LinkerdExporter,
    prometheus: str,
    tracking_uri: str,
) -> None:
    """Scenario 1: the step's start and its checks carry over in the record's status, so a 15 s dwell completes
    across runs of ~6 s of checks; the canary reaches 100% on main and on the cluster in at least 3 runs, each
    advance a commit pushed to main. Then `rollout promote --commit` on a branch is the PR: preview.yml
    previews it with the pack, and after the merge deploy.yml applies its reviewed plan."""
    only_this_canary(repository)
    for deployment in ("fraud-detector-v5", "fraud-detector-v6"):
        exporter.set_traffic(SERVING, deployment, HEALTHY)
    stack_file = model_stack_up(repository, pulumi, platform_stack, extra=WALK)
    try:
        start_step_now(control_plane, "v6", 10)
        wait_for_requests(prometheus, "fraud-detector-v6", HEALTHY.rps * 2, window="5s")
        act.variables.update(WALK_VARIABLES, PROMETHEUS_URL=prometheus)
        weights = _walk_to_100(act, repository, stack_file)
        # Every step of the walk, in order, and at least one run that only dwelled (the dwell outlived it).
        assert sorted(set(weights)) == [10, 50, 100], weights
        assert len(weights) - 1 >= 3 and len(weights) > len(set(weights)), weights
        assert split(control_plane) == {"fraud-detector-v5": 0, "fraud-detector-v6": 100}
        assert record_status(control_plane)["weight"] == 100

        # Promotion is a PR: the branch from main as origin has it, the edit committed by the rollout CLI.
        git(repository.clone, "fetch", "--quiet", "origin")
        git(repository.clone, "reset", "--quiet", "--hard", "origin/main")
        repository.branch("promote")
        rollout_cli(stack_file.parent, control_plane, pulumi, platform_stack, "promote", "--commit",
                    "--prometheus-url", prometheus)  # fmt: skip
        assert "mlmodel:canary:" not in stack_file.read_text() and "version: v6" in stack_file.read_text()
        preview = preview_pr(act, repository, "promote", number=4)
        assert preview.jobs == PREVIEW_JOBS, preview.describe()
        before, _head = merge(act, repository, "promote", 4)
        run = deploy(act, repository, before, tracking_uri)
        assert run.jobs == DEPLOY_JOBS, run.describe()
        assert run.pulumi_calls() == [("up", MODEL_PROJECT, STACK)], run.describe()
        assert applied_plan(run).endswith(f"/reviewed/mlmodel--{STACK}.plan.json"), run.describe()
        assert split(control_plane) == {"fraud-detector-v6": 100}
        assert record_status(control_plane)["phase"] == "Promoted", record_status(control_plane)
    finally:
        for deployment in ("fraud-detector-v5", "fraud-detector-v6"):
            exporter.set_traffic(SERVING, deployment, Traffic(rps=0))
        remove_model_stack(repository, pulumi)
