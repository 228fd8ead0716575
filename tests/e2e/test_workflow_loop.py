"""The CI loop never undoes a rollback: scenarios 2 and 3 of issue 18, run with act (tests/workflows/).

A failing canary is rolled back by a scheduled rollout.yml run. The rollback lands on main and the
next deploy.yml keeps it (2); where branch protection refuses the push, the rollback PR is opened with
checks and a deploy from the old main is refused by the guard (3). The other workflow scenarios
(preview.yml with the policy pack and the PR comment, deploy.yml's reviewed plans, the healthy walk
and its promotion) are in tests/e2e/workflow_loop/; the fixtures in tests/e2e/workflow_fixtures.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.control_plane import ControlPlane
from tests.e2e.pulumi_cli import PulumiCli
from tests.e2e.test_model_stack_rollout import wait_for_requests
from tests.e2e.workflow_loop.loop import (
    MODEL_PROJECT,
    SERVING,
    STACK,
    VARIABLES,
    model_stack_up,
    only_this_canary,
    push_event,
    record_status,
    remove_model_stack,
    split,
    watch_events,
)
from tests.e2e.workflow_loop.test_deploy import DEPLOY_JOBS
from tests.support.linkerd_exporter import FAILING, LinkerdExporter, Traffic
from tests.workflows.act import JOB_TOKEN, Act, ActRun
from tests.workflows.git_repo import Repository, git

pytestmark = pytest.mark.e2e

# The gate's window and the failed checks that abort; the watch's interval comes from the variables below.
ANALYSIS = """\
  mlmodel:analysis:
    interval: 5s
    minRequests: 20
    failureThreshold: 2
"""
# rollout.yml's watch, scaled to the test: a check a second, enough checks per run for the rollback.
WATCH_VARIABLES = {"ROLLOUT_WATCH_INTERVAL": "1", "ROLLOUT_WATCH_MAX_CHECKS": "20"}
ROLLED_BACK = {"fraud-detector-v5": 100, "fraud-detector-v6": 0}


def _failing_canary_up(
    repository: Repository, pulumi: PulumiCli, platform_stack: str, exporter: LinkerdExporter, prometheus: str, act: Act
) -> Path:
    """The stack up at 10% with the gate's analysis, its canary failing in Prometheus; act set to read it."""
    only_this_canary(repository)
    exporter.set_traffic(SERVING, "fraud-detector-v6", FAILING)
    stack_file = model_stack_up(repository, pulumi, platform_stack, extra=ANALYSIS)
    wait_for_requests(prometheus, "fraud-detector-v6", FAILING.rps * 2, window="5s")
    act.variables.update(WATCH_VARIABLES, PROMETHEUS_URL=prometheus)
    return stack_file


def _scheduled_watch(act: Act, repository: Repository) -> ActRun:
    run = act.run("schedule", "rollout.yml", {"schedule": "*/10 * * * *"}, repository.clone)
    print(f"act rollout.yml (schedule): {run.seconds:.1f}s")
    assert run.jobs == {"rollout/canaries": "success", f"rollout/watch {STACK}": "failure"}, run.describe()
    # The job failed because watch refused the canary (exit 1) and rolled it back, not for another reason.
    assert "aborted" in watch_events(run), run.describe()
    (kube,) = [r for r in run.records if r["action"] == "aws eks update-kubeconfig"]
    assert kube["cluster"] == VARIABLES["EKS_CLUSTER_NAME"]
    return run


def test_a_scheduled_rollback_lands_on_main_and_the_next_deploy_keeps_it(
    act: Act,
    repository: Repository,
    pulumi: PulumiCli,
    platform_stack: str,
    control_plane: ControlPlane,
    exporter: LinkerdExporter,
    prometheus: str,
    tracking_uri: str,
) -> None:
    """Scenario 2: a scheduled rollout.yml run rolls the failing canary back and pushes the commit to main on
    origin; deploy.yml's push run for that commit passes the guard and leaves the split at 100/0."""
    stack_file = _failing_canary_up(repository, pulumi, platform_stack, exporter, prometheus, act)
    try:
        before = repository.sha()
        run = _scheduled_watch(act, repository)
        # `watch --apply` applies the rollback with one `pulumi up` of the installed CLI, in the stack's project.
        assert [c[0] for c in run.pulumi_calls(automation=True)] == ["up"], run.records
        assert not [r for r in run.records if r["action"] == "gh"], "the push to main went through: no PR"
        assert split(control_plane) == ROLLED_BACK
        assert record_status(control_plane)["phase"] == "Aborted"
        # The rollback is the one new commit on origin's main, on top of what the run checked out.
        assert git(repository.origin, "rev-parse", "main~1") == before
        on_main = git(repository.origin, "show", f"main:{MODEL_PROJECT}/{stack_file.name}")
        # The judge aborts at once on a decisive statistic, and the weight line says why.
        assert "    weight: 0  # aborted: success rate" in on_main and "e-value" in on_main, on_main

        # The push of that commit to main runs deploy.yml, from main as origin has it: no PR reviewed it,
        # so the job previews again (with the pack) and applies that plan.
        git(repository.clone, "fetch", "--quiet", "origin")
        git(repository.clone, "reset", "--quiet", "--hard", "origin/main")
        act.variables["MLFLOW_TRACKING_URI"] = tracking_uri
        deploy = act.run("push", "deploy.yml", push_event(repository, before), repository.clone)
        print(f"act deploy.yml after the rollback: {deploy.seconds:.1f}s")
        assert deploy.jobs == DEPLOY_JOBS, deploy.describe()
        assert deploy.pulumi_calls() == [("preview", MODEL_PROJECT, STACK), ("up", MODEL_PROJECT, STACK)]
        assert split(control_plane) == ROLLED_BACK
    finally:
        exporter.set_traffic(SERVING, "fraud-detector-v6", Traffic(rps=0))
        remove_model_stack(repository, pulumi)


REFUSE_MAIN = """#!/bin/sh
# Branch protection: nothing but a PR merge updates main.
while read -r old new ref; do
  [ "$ref" = refs/heads/main ] && { echo "GH006: Protected branch update failed for refs/heads/main." >&2; exit 1; }
done
exit 0
"""


def test_a_refused_push_opens_the_rollback_pr_and_main_cannot_bring_the_canary_back(
    act: Act,
    repository: Repository,
    pulumi: PulumiCli,
    platform_stack: str,
    control_plane: ControlPlane,
    exporter: LinkerdExporter,
    prometheus: str,
) -> None:
    """Scenario 3: origin refuses pushes to main; the scheduled run rolls back, pushes a rollout/ branch and
    opens the PR (with the job's token, then test.yml dispatched on the branch for its checks); a deploy.yml
    run from the old main, which still gives the canary 10%, is refused by the guard, naming the abort."""
    stack_file = _failing_canary_up(repository, pulumi, platform_stack, exporter, prometheus, act)
    try:
        hook = repository.origin / "hooks" / "pre-receive"
        hook.write_text(REFUSE_MAIN)
        hook.chmod(0o755)
        old_main = repository.sha()
        run = _scheduled_watch(act, repository)
        assert split(control_plane) == ROLLED_BACK
        assert git(repository.origin, "rev-parse", "main") == old_main, "main moved despite the hook"
        status = record_status(control_plane)
        branch = status["abort"]["pr"]
        assert branch.startswith(f"rollout/{STACK}-"), status
        on_branch = git(repository.origin, "show", f"{branch}:{MODEL_PROJECT}/{stack_file.name}")
        assert "    weight: 0  # aborted:" in on_branch, on_branch
        # No App configured: the job's token opened the PR, and test.yml was dispatched on its branch.
        calls = [(r["args"][:2], r["token"]) for r in run.records if r["action"] == "gh"]
        assert calls == [(["pr", "create"], JOB_TOKEN), (["workflow", "run"], JOB_TOKEN)], run.records
        (dispatch,) = [r["args"] for r in run.records if r["action"] == "gh" and r["args"][:2] == ["workflow", "run"]]
        assert dispatch == ["workflow", "run", "test.yml", "--ref", branch]

        # Another merge re-runs deploy.yml from the old main, whose file still gives v6 10%: refused by name.
        before = git(repository.clone, "rev-parse", "HEAD~1")
        deploy = act.run("push", "deploy.yml", push_event(repository, before), repository.clone)
        print(f"act deploy.yml from the old main: {deploy.seconds:.1f}s")
        assert deploy.jobs == {"deploy/changed": "success", f"deploy/up {STACK}": "failure"}, deploy.describe()
        assert deploy.pulumi_calls() == [], "the guard stops the job before any preview or `up`"
        assert "refused: canary v6 was aborted on the cluster" in deploy.text, deploy.describe()
        assert branch in deploy.text, deploy.describe()
        assert split(control_plane) == ROLLED_BACK
    finally:
        exporter.set_traffic(SERVING, "fraud-detector-v6", Traffic(rps=0))
        remove_model_stack(repository, pulumi)
