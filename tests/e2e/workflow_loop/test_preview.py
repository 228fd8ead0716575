"""preview.yml, run with act: each changed stack previewed with the policy pack and a saved plan,
one PR comment, and the failures a reviewer must see (a broken diff, a tampered CLI, a violation).

Scenario 4 of issue 18, and issue 21's preview: a PR that moves one weight previews exactly that
stack, the pack finds nothing, the plan is uploaded as `preview-<head sha>-<stack>`, and the one
comment holds the policy column and the judge's last verdict. A PR whose step is too large fails
the preview job, naming `canary-weight-step`, and the comment shows the violation.
"""

from __future__ import annotations

import json
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
    WEIGHT_STEP,
    artifact,
    artifact_preview,
    model_stack_up,
    remove_model_stack,
    rollout_cli,
    set_weight,
    split,
    start_step_now,
)
from tests.support.linkerd_exporter import HEALTHY, LinkerdExporter, Traffic
from tests.workflows.act import JOB_TOKEN, Act, ActRun
from tests.workflows.git_repo import Repository, pull_request_event
from tests.workflows.pulumi_release import pulumi_version, release_server

pytestmark = pytest.mark.e2e

# The gate's window, and a dwell no test waits out: `watch` records its verdict and holds.
ANALYSIS = """\
  mlmodel:analysis:
    interval: 5s
    minRequests: 20
"""
PREVIEW_JOBS = {"preview/changed": "success", f"preview/preview {STACK}": "success", "preview/comment": "success"}


def preview_pr(act: Act, repository: Repository, branch: str, number: int = 1) -> ActRun:
    event = pull_request_event(repository, base="main", head=branch, number=number)
    run = act.run("pull_request", "preview.yml", event, repository.clone)
    print(f"act preview.yml ({branch}): {run.seconds:.1f}s")
    return run


def _with_a_verdict(repository: Repository, pulumi: PulumiCli, platform_stack: str, api: ControlPlane,
                    exporter: LinkerdExporter, prometheus: str) -> Path:  # fmt: skip
    """The stack up at 10% with healthy traffic, and one `rollout watch` check recorded: the judge's verdict
    is in the record's status, as a scheduled run leaves it."""
    for deployment in ("fraud-detector-v5", "fraud-detector-v6"):
        exporter.set_traffic(SERVING, deployment, HEALTHY)
    stack_file = model_stack_up(repository, pulumi, platform_stack, extra=ANALYSIS)
    start_step_now(api, "v6", 10)
    wait_for_requests(prometheus, "fraud-detector-v6", HEALTHY.rps * 2, window="5s")
    rollout_cli(stack_file.parent, api, pulumi, platform_stack, "watch", "--max-checks", "1",
                "--prometheus-url", prometheus)  # fmt: skip
    return stack_file


def test_a_weight_step_is_previewed_with_the_pack_its_plan_saved_and_one_comment(
    act: Act,
    repository: Repository,
    pulumi: PulumiCli,
    platform_stack: str,
    control_plane: ControlPlane,
    exporter: LinkerdExporter,
    prometheus: str,
) -> None:
    """Scenario 4 and issue 21 (a): the PR moving one weight previews that stack alone with the policy pack
    (0 violations) and `--save-plan`; the artifact holds the plan, the preview's events, the pack's config
    (the old weights from state), the inputs' fingerprint and the judge's verdict; the one comment shows
    the policy column and the verdict, and a second run edits it rather than adding another."""
    stack_file = _with_a_verdict(repository, pulumi, platform_stack, control_plane, exporter, prometheus)
    try:
        repository.branch("step-25")
        set_weight(stack_file, "10", "25")
        head = repository.commit(f"{STACK}: 10% -> 25%")
        run = preview_pr(act, repository, "step-25")
        assert run.jobs == PREVIEW_JOBS, run.describe()
        assert run.pulumi_calls() == [("preview", MODEL_PROJECT, STACK)], run.describe()
        (argv,) = run.pulumi_argv("preview")
        assert "--policy-pack" in argv and "--policy-pack-config" in argv and "--save-plan" in argv, argv
        (aws,) = [r for r in run.records if r["action"] == "configure-aws-credentials"]
        assert aws["role"] == VARIABLES["AWS_PREVIEW_ROLE_ARN"]
        # The CLI the job installed from the (checksum-verified) release, at requirements.txt's pin.
        assert [r["status"] for r in run.records if r["action"] == "pulumi" and r["command"] == "version"] == [0]
        assert pulumi_version() in run.text

        files = artifact(act, f"preview-{head}-{STACK}")
        name = f"mlmodel--{STACK}"
        assert sorted(p.name for p in files.iterdir()) == sorted(
            f"{name}.{kind}"
            for kind in ("preview.json", "plan.json", "policy.json", "inputs", "diff.json", "verdict.json")
        )
        preview = artifact_preview(files)
        assert preview.steps == WEIGHT_STEP and preview.violations == [] and preview.result == "succeeded"
        plan = json.loads((files / f"{name}.plan.json").read_text())
        changed = sorted(
            u.rsplit("::", 1)[-1] for u, e in plan["resourcePlans"].items() if e.get("steps") == ["update"]
        )
        assert changed == ["fraud-detector-inference-service", "fraud-detector-split"], changed
        policy = json.loads((files / f"{name}.policy.json").read_text())["canary-weight-step"]["splits"]
        assert list(policy.values()) == [{"weights": {"fraud-detector-v5": 90, "fraud-detector-v6": 10},
                                          "stable": "fraud-detector-v5"}]  # fmt: skip
        verdict = json.loads((files / f"{name}.verdict.json").read_text())
        assert verdict["outcome"] in ("pass", "not-yet") and verdict["weight"] == 10, verdict

        (comment,) = act.github.comments(1)
        body = comment["body"]
        assert body.startswith("<!-- mlplatform:pr-preview -->"), body
        assert f"| `mlmodel/{STACK}` | ok | 0 | 2 | 0 | 0 | 0 mandatory, 0 advisory |" in body, body
        assert "**Policy**: no violations." in body and f"**Canary gate**: **{verdict['outcome']}**" in body, body
        assert "spec.canary.weight 10 -> 25" in body, body  # the blast radius, base -> PR
        assert [r["token"] for r in run.records if r["action"] == "gh"] == [JOB_TOKEN] * 2
        assert split(control_plane) == {"fraud-detector-v5": 90, "fraud-detector-v6": 10}  # a preview applies nothing

        # A new push to the PR: the same comment, edited in place.
        set_weight(stack_file, "25", "20")
        repository.commit(f"{STACK}: 10% -> 20%")
        again = preview_pr(act, repository, "step-25")
        assert again.jobs == PREVIEW_JOBS, again.describe()
        (comment,) = act.github.comments(1)
        assert comment["edits"] == 1 and "spec.canary.weight 10 -> 20" in comment["body"], comment
    finally:
        for deployment in ("fraud-detector-v5", "fraud-detector-v6"):
            exporter.set_traffic(SERVING, deployment, Traffic(rps=0))
        remove_model_stack(repository, pulumi)


def test_a_step_above_max_step_percent_fails_the_preview_naming_the_rule(
    act: Act, repository: Repository, pulumi: PulumiCli, platform_stack: str, control_plane: ControlPlane
) -> None:
    """Issue 21 (b): 10 -> 60 in one PR is +50 points, above maxStepPercent 25 (the old weight from the
    stack's state). The preview job fails with the rule named in an error annotation; the comment job
    still runs and shows the violation; nothing is applied."""
    stack_file = model_stack_up(repository, pulumi, platform_stack)
    try:
        repository.branch("jump")
        set_weight(stack_file, "10", "60")
        head = repository.commit(f"{STACK}: 10% -> 60%")
        run = preview_pr(act, repository, "jump", number=2)
        assert run.jobs == {**PREVIEW_JOBS, f"preview/preview {STACK}": "failure"}, run.describe()
        assert "::error title=policy canary-weight-step (mandatory)::" in run.text, run.describe()
        assert "from 10 to 60" in run.text, run.describe()
        preview = artifact_preview(artifact(act, f"preview-{head}-{STACK}"))
        assert [(v["policy"], v["level"]) for v in preview.violations] == [("canary-weight-step", "mandatory")]
        (comment,) = act.github.comments(2)
        assert f"| `mlmodel/{STACK}` | failed |" in comment["body"], comment["body"]
        assert "| mandatory | `canary-weight-step` |" in comment["body"], comment["body"]
        assert split(control_plane) == {"fraud-detector-v5": 90, "fraud-detector-v6": 10}
    finally:
        remove_model_stack(repository, pulumi)


def test_a_failing_git_diff_fails_the_preview(act: Act, repository: Repository) -> None:
    """Scenario 4: the diff cannot be computed (the base branch is not on origin): the job fails, naming
    git's error, and no preview runs. Before pipefail this went green with an empty matrix."""
    stack_file = repository.clone / MODEL_PROJECT / "Pulumi.fraud-detector-dev.yaml"
    repository.branch("step")
    stack_file.write_text(stack_file.read_text() + "\n")
    repository.commit("touch a stack file")
    run = act.run("pull_request", "preview.yml", pull_request_event(repository, base="release", head="step"),
                  repository.clone)  # fmt: skip
    print(f"act preview.yml (broken diff): {run.seconds:.1f}s")
    # The comment job's `if` is false once `changed` failed: act reports no result for it.
    assert run.jobs == {"preview/changed": "failure"}, run.describe()
    assert "origin/release...HEAD" in run.text, run.describe()
    assert run.pulumi_calls() == []
    assert run.returncode != 0


def test_a_tampered_pulumi_release_fails_the_install(
    act: Act, repository: Repository, e2e_tools: dict[str, str], tmp_path: Path
) -> None:
    """The CLI install checks the tarball against the release's checksums file before unpacking it: a tarball
    that does not match fails the job, and pulumi never runs."""
    stack_file = repository.clone / MODEL_PROJECT / "Pulumi.fraud-detector-dev.yaml"
    repository.branch("step")
    stack_file.write_text(stack_file.read_text() + "\n")
    repository.commit("touch a stack file")
    with release_server(e2e_tools, tmp_path / "tampered", tampered=True) as url:
        act.variables["PULUMI_DOWNLOAD_URL"] = url
        run = act.run("pull_request", "preview.yml", pull_request_event(repository, base="main", head="step"),
                      repository.clone)  # fmt: skip
    assert run.jobs["preview/preview fraud-detector-dev"] == "failure", run.describe()
    assert "pulumi-v" in run.text and ": FAILED" in run.text, run.describe()
    assert run.pulumi_calls() == []
