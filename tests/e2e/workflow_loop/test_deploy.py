"""deploy.yml, run with act: what a merge applies is what the PR's preview reviewed.

Issue 21 (c): the PR's preview saved the plan of a weight step; after the merge, deploy.yml finds
that PR's artifact, `plan_gate decide` sees the same inputs and the job runs `pulumi up --plan` with
the reviewed plan: the split ends at the reviewed weights. The end of issue 18's scenario 2: a push
to main that no PR reviewed (a rollback commit recording the abort) has no plan, so the job previews
again with the policy pack, says so in the job summary, and applies that plan: the split is 100/0
and the registry's `challenger` alias goes.
"""

from __future__ import annotations

import pytest

from tests.e2e.control_plane import ControlPlane
from tests.e2e.pulumi_cli import PulumiCli
from tests.e2e.workflow_loop.loop import (
    MODEL_PROJECT,
    STACK,
    VARIABLES,
    merge,
    model_stack_up,
    push_event,
    remove_model_stack,
    set_weight,
    split,
)
from tests.e2e.workflow_loop.test_preview import PREVIEW_JOBS, preview_pr
from tests.workflows.act import Act, ActRun
from tests.workflows.git_repo import Repository, git

pytestmark = pytest.mark.e2e

# up-platform is skipped by its `if:` (no platform stack changed): act reports no result for it.
DEPLOY_JOBS = {"deploy/changed": "success", f"deploy/up {STACK}": "success"}


def _aliases(uri: str) -> dict[str, str]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    return {alias: str(version) for alias, version in client.get_registered_model("fraud_detector").aliases.items()}


def deploy(act: Act, repository: Repository, before: str, tracking_uri: str) -> ActRun:
    act.variables["MLFLOW_TRACKING_URI"] = tracking_uri
    run = act.run("push", "deploy.yml", push_event(repository, before), repository.clone)
    print(f"act deploy.yml: {run.seconds:.1f}s")
    return run


def applied_plan(run: ActRun) -> str:
    """The `--plan` file of the run's one `pulumi up`."""
    (argv,) = run.pulumi_argv("up")
    assert "--policy-pack" in argv, argv
    return argv[argv.index("--plan") + 1]


def test_a_merged_weight_step_applies_the_reviewed_plan(
    act: Act,
    repository: Repository,
    pulumi: PulumiCli,
    platform_stack: str,
    control_plane: ControlPlane,
    tracking_uri: str,
) -> None:
    """Issue 21 (c): preview.yml on the PR saves the plan of 10 -> 25; after the merge, deploy.yml downloads
    that artifact from the preview's run, applies it with `up --plan` (no new preview), and the split is the
    reviewed 75/25."""
    stack_file = model_stack_up(repository, pulumi, platform_stack)
    try:
        repository.branch("step-25")
        set_weight(stack_file, "10", "25")
        repository.commit(f"{STACK}: 10% -> 25%")
        preview = preview_pr(act, repository, "step-25", number=3)
        assert preview.jobs == PREVIEW_JOBS, preview.describe()
        before, head = merge(act, repository, "step-25", 3)

        run = deploy(act, repository, before, tracking_uri)
        assert run.jobs == DEPLOY_JOBS, run.describe()
        assert run.pulumi_calls() == [("up", MODEL_PROJECT, STACK)], run.describe()  # no second preview
        (download,) = [r for r in run.records if r["action"] == "download-artifact"]
        assert download["names"] == [f"preview-{head}-{STACK}"] and download["run"] == str(act.runs - 1), download
        assert applied_plan(run).endswith(f"/reviewed/mlmodel--{STACK}.plan.json"), run.describe()
        assert "inputs unchanged since the preview" in run.text, run.describe()
        (aws,) = [r for r in run.records if r["action"] == "configure-aws-credentials"]
        assert aws["role"] == VARIABLES["AWS_DEPLOY_MODELS_ROLE_ARN"]
        assert split(control_plane) == {"fraud-detector-v5": 75, "fraud-detector-v6": 25}
    finally:
        remove_model_stack(repository, pulumi)


def test_deploy_of_an_aborted_canary_leaves_the_split_at_100_0(
    act: Act,
    repository: Repository,
    pulumi: PulumiCli,
    platform_stack: str,
    control_plane: ControlPlane,
    tracking_uri: str,
) -> None:
    """Scenario 2, its end: main records the abort (weight 0, the reason in the comment) in a direct push, which
    no PR previewed: deploy.yml previews again with the policy pack, says why in the job summary, applies that
    plan with the deploy-models role; the split is 100/0 and `challenger` is gone."""
    stack_file = model_stack_up(repository, pulumi, platform_stack)
    try:
        assert split(control_plane) == {"fraud-detector-v5": 90, "fraud-detector-v6": 10}
        before = repository.sha()
        set_weight(stack_file, "10", "0  # aborted: gate failed")
        repository.commit(f"{STACK}: abort the canary")
        repository.push("main")
        run = deploy(act, repository, before, tracking_uri)
        assert run.jobs == DEPLOY_JOBS, run.describe()
        assert run.pulumi_calls() == [("preview", MODEL_PROJECT, STACK), ("up", MODEL_PROJECT, STACK)], run.describe()
        assert "no reviewed plan" in run.text and "no saved plan from the PR's preview" in run.text, run.describe()
        assert applied_plan(run).endswith(f"/repreview/mlmodel--{STACK}.plan.json"), run.describe()
        assert [r for r in run.records if r["action"] == "download-artifact"] == []
        assert split(control_plane) == {"fraud-detector-v5": 100, "fraud-detector-v6": 0}
        assert _aliases(tracking_uri) == {"champion": "5"}
    finally:
        remove_model_stack(repository, pulumi)


def test_a_merge_whose_inputs_moved_since_the_preview_previews_again(
    act: Act,
    repository: Repository,
    pulumi: PulumiCli,
    platform_stack: str,
    control_plane: ControlPlane,
    tracking_uri: str,
) -> None:
    """plan_gate's stale case: after the PR's preview, another change to a module the model program imports
    lands on main; the merge commit's inputs differ from the previewed ones, so deploy.yml does not apply the
    reviewed plan: it previews again with the pack, names both fingerprints in the job summary, and applies
    the new plan."""
    stack_file = model_stack_up(repository, pulumi, platform_stack)
    try:
        repository.branch("step-25")
        set_weight(stack_file, "10", "25")
        repository.commit(f"{STACK}: 10% -> 25%")
        preview = preview_pr(act, repository, "step-25", number=5)
        assert preview.jobs == PREVIEW_JOBS, preview.describe()
        # Meanwhile on main: another PR touched the model program's config module.
        git(repository.clone, "checkout", "--quiet", "main")
        module = repository.clone / "mlplatform" / "model" / "config.py"
        module.write_text(module.read_text() + "\n# A change the step's preview never saw.\n")
        repository.commit("model: a comment in the config module")
        repository.push("main")
        before, _head = merge(act, repository, "step-25", 5)

        run = deploy(act, repository, before, tracking_uri)
        assert run.jobs == DEPLOY_JOBS, run.describe()
        assert run.pulumi_calls() == [("preview", MODEL_PROJECT, STACK), ("up", MODEL_PROJECT, STACK)], run.describe()
        assert "the merge commit's inputs differ from the previewed ones" in run.text, run.describe()
        assert applied_plan(run).endswith(f"/repreview/mlmodel--{STACK}.plan.json"), run.describe()
        assert split(control_plane) == {"fraud-detector-v5": 75, "fraud-detector-v6": 25}
    finally:
        remove_model_stack(repository, pulumi)
