"""The GitHub workflows' structure: what must hold for PR-to-cluster to be safe.

Parsed as YAML and checked as data: deploy order (platform before models), OIDC
(`id-token: write` only where a role is assumed, never an AWS key), no secret in
any `env` but the Pulumi token, one concurrency group per stack, environments,
and the test workflow's `.ci/run` and registry gate. The hardening rules are in
tests/test_workflow_hardening.py; tests/e2e/workflow_loop/ runs the files
with act (harness: tests/workflows/).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from ruamel.yaml import YAML

from mlplatform.tools.ci.deploy_matrix import split
from tests.support.helpers import ROOT, must_search

WORKFLOWS = ROOT / ".github" / "workflows"
CONFIGURE_AWS = "aws-actions/configure-aws-credentials@"
RUNNER = "${{ vars.MLPLATFORM_RUNNER_LABEL || 'ubuntu-latest' }}"


def _load(name: str) -> dict[str, Any]:
    return YAML(typ="safe").load((WORKFLOWS / name).read_text())


def _uses(job: dict, prefix: str) -> list[dict]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(prefix)]


def _pulumi(job: dict, command: str) -> list[dict]:
    """The job's `pulumi COMMAND` steps: the guarded local action (policy pack and plan, always)."""
    return [s for s in _uses(job, "./.github/actions/pulumi-guarded") if s["with"]["command"] == command]


def _all_jobs() -> list[tuple[str, str, dict]]:
    jobs = [
        (path.name, name, job)
        for path in sorted(WORKFLOWS.glob("*.yml"))
        for name, job in _load(path.name)["jobs"].items()
    ]
    assert len(jobs) >= 7, jobs
    return jobs


@pytest.fixture(scope="module")
def deploy() -> dict:
    return _load("deploy.yml")["jobs"]


def test_the_three_workflows_exist():
    assert sorted(p.name for p in WORKFLOWS.glob("*.yml")) == ["deploy.yml", "preview.yml", "rollout.yml", "test.yml"]


def test_platform_stacks_are_applied_before_model_stacks(deploy):
    """A model stack reads the platform's outputs: it runs after the platform job, and not after a failed one."""
    assert deploy["up-platform"]["needs"] == "changed"
    assert set(deploy["up-models"]["needs"]) == {"changed", "up-platform"}
    condition = " ".join(deploy["up-models"]["if"].split())
    assert "needs.up-platform.result == 'success' || needs.up-platform.result == 'skipped'" in condition
    assert "always()" in condition  # so a skipped platform job does not skip the models
    assert deploy["up-platform"]["strategy"]["matrix"] == "${{ fromJSON(needs.changed.outputs.platform) }}"
    assert deploy["up-models"]["strategy"]["matrix"] == "${{ fromJSON(needs.changed.outputs.models) }}"


def test_each_role_is_assumed_through_oidc_in_its_own_job(deploy):
    """Every AWS-touching job assumes a role from a repository variable, with `id-token: write` at job level."""
    expected = {
        ("preview.yml", "preview"): "AWS_PREVIEW_ROLE_ARN",
        ("deploy.yml", "up-platform"): "AWS_DEPLOY_ROLE_ARN",
        ("deploy.yml", "up-models"): "AWS_DEPLOY_MODELS_ROLE_ARN",
        ("rollout.yml", "watch"): "AWS_DEPLOY_MODELS_ROLE_ARN",
    }
    # Only the rollback job writes to the repository: it pushes its commit and opens the PR.
    contents = {("rollout.yml", "watch"): "write"}
    found = {}
    for workflow, name, job in _all_jobs():
        steps = _uses(job, CONFIGURE_AWS)
        if not steps:
            assert "id-token" not in job.get("permissions", {}), (workflow, name)
            continue
        (step,) = steps
        assert re.fullmatch(CONFIGURE_AWS + r"[0-9a-f]{40}", step["uses"]), step["uses"]
        # role-duration-seconds is optional: the deploy jobs ask for longer sessions (test below).
        assert set(step["with"]) - {"role-duration-seconds"} == {"role-to-assume", "role-session-name", "aws-region"}, (
            workflow,
            name,
        )
        variable = must_search(r"\A\$\{\{ vars\.(\w+) \}\}\Z", step["with"]["role-to-assume"]).group(1)
        found[(workflow, name)] = variable
        assert job["permissions"]["id-token"] == "write", (workflow, name)
        assert job["permissions"]["contents"] == contents.get((workflow, name), "read"), (workflow, name)
        # A private endpoint is reachable only from the self-hosted runners named in config.
        assert job["runs-on"] == RUNNER, (workflow, name)
        # The role's ARN is checked first, so a missing variable is a named error, not a cryptic one.
        check = job["steps"][0]
        assert check["env"]["ROLE_ARN"] == f"${{{{ vars.{variable} }}}}" and "exit 1" in check["run"]
    assert found == expected
    for path in WORKFLOWS.glob("*.yml"):
        assert "id-token" not in _load(path.name).get("permissions", {}), path.name


def _envs(node: Any, where: str = "") -> list[tuple[str, str, str]]:
    """Every (where, name, value) of every `env:` mapping, at any level."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, dict):
                found += [(where, k, str(v)) for k, v in value.items()]
            else:
                found += _envs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found += _envs(item, f"{where}[{i}]")
    return found


def test_no_aws_key_and_no_secret_in_env_but_the_pulumi_token():
    """AWS credentials come from OIDC only; the one secret a step's environment holds is the Pulumi token."""
    secrets_in_env = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        text = path.read_text()
        assert "AWS_ACCESS_KEY_ID" not in text and "AWS_SECRET_ACCESS_KEY" not in text, path.name
        assert "aws-access-key-id" not in text and "aws-secret-access-key" not in text, path.name
        envs = _envs(_load(path.name))
        assert envs, path.name
        secrets_in_env += [(path.name, w, k, v) for w, k, v in envs if "secrets." in v]
    assert secrets_in_env, "the Pulumi token is expected in the pulumi steps' env"
    for workflow, where, key, value in secrets_in_env:
        assert (key, value) == ("PULUMI_ACCESS_TOKEN", "${{ secrets.PULUMI_ACCESS_TOKEN }}"), (workflow, where, key)


def test_one_concurrency_group_per_stack_never_cancelled(deploy):
    """No two `up`s of one stack at once, and a running `up` is never cancelled half-way."""
    up_jobs = [(name, job) for _, name, job in _all_jobs() if _pulumi(job, "up")]
    assert sorted(name for name, _ in up_jobs) == ["up-models", "up-platform"]
    for name, job in up_jobs:
        assert job["concurrency"] == {
            "group": "pulumi-${{ matrix.project }}-${{ matrix.stack }}",
            "cancel-in-progress": False,
        }, name


def test_a_watch_and_a_deploy_share_the_stacks_concurrency_group(deploy):
    """rollout.yml's `watch --apply` runs `up` itself (one `pulumi up` CLI run): it must queue with deploy.yml's
    `up` of the same stack, in the same group, never cancelled; in the `rollout` environment, whose
    branch rule admits main only and which has no reviewers, so a scheduled rollback never waits on
    prod's required reviewers."""
    workflow = _load("rollout.yml")
    assert "schedule" in workflow["on"]
    watch = workflow["jobs"]["watch"]
    assert watch["concurrency"] == deploy["up-models"]["concurrency"]
    assert watch["concurrency"]["cancel-in-progress"] is False
    assert watch["environment"] == "rollout"
    assert watch["strategy"]["matrix"] == "${{ fromJSON(needs.canaries.outputs.models) }}"
    lists = [s["run"] for s in workflow["jobs"]["canaries"]["steps"] if "active_canaries" in str(s.get("run", ""))]
    assert lists == ['python -m mlplatform.tools.ci.active_canaries --root . | tee -a "$GITHUB_OUTPUT"']
    (run,) = [s["run"] for s in watch["steps"] if "rollout watch" in str(s.get("run", ""))]
    assert "--apply" in run and "--max-checks" in run
    # The rollback lands on the branch that deploys; no PR unless the push is refused.
    assert "--git-push main " in run and "--git-pr" not in run
    # AWS credentials and the kubeconfig (the rollout state is the record's status) come before `up`.
    steps = watch["steps"]
    aws = steps.index(_uses(watch, CONFIGURE_AWS)[0])
    kube = next(i for i, s in enumerate(steps) if "aws eks update-kubeconfig" in str(s.get("run", "")))
    watching = next(i for i, s in enumerate(steps) if "rollout watch" in str(s.get("run", "")))
    assert aws < kube < watching and steps[watching]["id"] == "watch"
    assert watch["permissions"]["contents"] == "write"


def test_a_refused_push_gets_a_pr_with_checks():
    """Where the push to main is refused, watch outputs `pr_branch`: the PR is opened with the App's token when
    one is configured, else test.yml is dispatched on the branch, so the PR is never without checks."""
    workflow = _load("rollout.yml")
    steps = workflow["jobs"]["watch"]["steps"]
    (app,) = [s for s in steps if str(s.get("uses", "")).startswith("actions/create-github-app-token@")]
    assert app["if"] == "vars.ROLLOUT_APP_CLIENT_ID != ''" and app["with"]["permission-pull-requests"] == "write"
    (watching,) = [s for s in steps if s.get("id") == "watch"]
    assert watching["env"]["GH_TOKEN"] == "${{ steps.app.outputs.token || github.token }}"
    (dispatch,) = [s for s in steps if "gh workflow run test.yml" in str(s.get("run", ""))]
    assert "steps.watch.outputs.pr_branch != ''" in dispatch["if"] and "!cancelled()" in dispatch["if"]
    assert "steps.app.outputs.token == ''" in dispatch["if"]
    assert workflow["jobs"]["watch"]["permissions"]["actions"] == "write"
    assert "workflow_dispatch" in _load("test.yml")["on"]


def test_the_watch_scales_through_inputs_and_variables():
    """Interval and checks per run: today's defaults (60 s, 8), overridable by dispatch inputs or variables."""
    workflow = _load("rollout.yml")
    (watching,) = [s for s in workflow["jobs"]["watch"]["steps"] if s.get("id") == "watch"]
    assert watching["env"]["INTERVAL"] == "${{ inputs.interval || vars.ROLLOUT_WATCH_INTERVAL || '60' }}"
    assert watching["env"]["MAX_CHECKS"] == "${{ inputs.max-checks || vars.ROLLOUT_WATCH_MAX_CHECKS || '8' }}"
    assert '--interval "$INTERVAL" --max-checks "$MAX_CHECKS"' in watching["run"]


def test_the_guard_runs_before_every_model_up(deploy):
    """No deploy brings back a canary the cluster aborted: `rollout guard` runs after the kube credentials and
    before `up`, and its exit 1 fails the job (strict bash)."""
    steps = deploy["up-models"]["steps"]
    kube = next(i for i, s in enumerate(steps) if "aws eks update-kubeconfig" in str(s.get("run", "")))
    guard = next(i for i, s in enumerate(steps) if 'rollout guard "$STACK"' in str(s.get("run", "")))
    first_pulumi = next(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("./.github/actions/r"))
    assert kube < guard < first_pulumi
    assert steps[guard]["run"] == (
        'venv/bin/python -m mlplatform.tools.cli rollout guard "$STACK" --project-dir "$PROJECT"'
    )
    assert "continue-on-error" not in steps[guard]


def test_active_canaries_lists_stacks_with_traffic_on_a_canary(tmp_path):
    from mlplatform.tools.ci.active_canaries import active

    model = tmp_path / "stacks" / "model"
    model.mkdir(parents=True)
    (model / "Pulumi.yaml").write_text("name: model\n")
    canary = "config:\n  mlmodel:environment: {env}\n  mlmodel:canary:\n    version: v6\n    weight: {weight}\n"
    (model / "Pulumi.a-prod.yaml").write_text(canary.format(env="prod", weight=25))
    (model / "Pulumi.b-dev.yaml").write_text(canary.format(env="dev", weight="0  # aborted: x"))
    (model / "Pulumi.c-dev.yaml").write_text("config:\n  mlmodel:environment: dev\n")
    assert active(tmp_path) == [{"project": "stacks/model", "stack": "a-prod", "environment": "prod"}]


def test_deploy_jobs_run_in_their_stacks_environment(deploy):
    """The roles trust GitHub environments; prod's required reviewers gate every prod `up`."""
    for name in ("up-platform", "up-models"):
        assert deploy[name]["environment"] == "${{ matrix.environment }}"
    groups = split(
        {
            "include": [
                {"project": ".", "stack": "prod"},
                {"project": ".", "stack": "dev"},
                {"project": "stacks/model", "stack": "fraud-detector-prod"},
            ]
        },
        ROOT,
    )
    assert [(e["stack"], e["environment"]) for e in groups["platform"]] == [("prod", "prod"), ("dev", "dev")]
    assert [(e["stack"], e["environment"]) for e in groups["models"]] == [("fraud-detector-prod", "prod")]


def test_aliases_move_after_a_successful_up_in_deploy(deploy):
    """`champion`/`challenger` move in the deploy job, after `pulumi up`, for the applied stack file."""
    steps = deploy["up-models"]["steps"]
    up = steps.index(_pulumi(deploy["up-models"], "up")[0])
    moves = [i for i, s in enumerate(steps) if "mlplatform.tools.ci.move_aliases" in str(s.get("run", ""))]
    assert moves and all(i > up for i in moves)
    assert all("if" not in steps[i] for i in moves)  # so it runs only when every earlier step succeeded
    for path in WORKFLOWS.glob("*.yml"):
        if path.name != "deploy.yml":
            assert "move_aliases" not in path.read_text(), path.name


def test_pr_ci_runs_the_suite_and_the_registry_gate():
    """test.yml runs `.ci/run` on PRs and pushes, and checks every new modelUri of a PR against thresholds."""
    workflow = _load("test.yml")
    # workflow_dispatch: rollout.yml's checks for a rollback PR opened with the job's own token.
    assert set(workflow["on"]) == {"pull_request", "push", "workflow_dispatch"}
    jobs = workflow["jobs"]
    assert any(s.get("run") == ".ci/run" for s in jobs["suite"]["steps"])
    registry = jobs["registry"]
    assert registry["if"] == "github.event_name == 'pull_request'"
    runs = [s["run"] for s in registry["steps"] if "check_registry" in str(s.get("run", ""))]
    assert runs == ['venv/bin/python -m mlplatform.tools.ci.check_registry --base "origin/$BASE_REF"']


def test_preview_runs_the_pack_saves_the_plan_and_posts_one_comment():
    """The preview job previews (never applies) through the guarded action, uploads `preview-<head>-<stack>`
    even after a failed preview; the comment job alone writes to the PR, after every preview, with
    nothing but `pull-requests: write`, and edits the comment it finds rather than adding one."""
    jobs = _load("preview.yml")["jobs"]
    assert _pulumi(jobs["preview"], "preview") and not _pulumi(jobs["preview"], "up")
    assert "pull-requests" not in jobs["preview"]["permissions"]
    (upload,) = _uses(jobs["preview"], "actions/upload-artifact@")
    assert upload["with"]["name"] == "preview-${{ github.event.pull_request.head.sha }}-${{ matrix.stack }}"
    assert "!cancelled()" in upload["if"] and upload["with"]["if-no-files-found"] == "error"
    comment = jobs["comment"]
    assert comment["permissions"] == {"pull-requests": "write"}
    assert set(comment["needs"]) == {"changed", "preview"} and "!cancelled()" in comment["if"]
    assert "secrets." not in str(comment) and not _uses(comment, CONFIGURE_AWS)
    (download,) = _uses(comment, "actions/download-artifact@")
    assert download["with"]["pattern"] == "preview-${{ github.event.pull_request.head.sha }}-*"
    (post,) = [s["run"] for s in comment["steps"] if "pr_comment build" in str(s.get("run", ""))]
    assert "pr_comment existing-comment" in post and "--method PATCH" in post


def test_the_guarded_action_always_runs_the_pack_and_a_plan():
    """Every pulumi call a workflow makes has the policy pack with the stack's config (old weights from its
    state), and a plan: saved by preview, required by up; a failed preview fails after naming each rule."""
    action = (ROOT / ".github" / "actions" / "pulumi-guarded" / "action.yml").read_text()
    assert action.count("\n            pulumi preview ") == 1 and action.count("\n            pulumi up ") == 1
    assert '--policy-pack "$GITHUB_WORKSPACE/policy" --policy-pack-config "$OUT/$name.policy.json"' in action
    assert "policy_config --state" in action and "pulumi stack export" in action
    assert '--save-plan "$OUT/$name.plan.json"' in action and '--plan "$PLAN"' in action
    assert "plan_gate fingerprint" in action and "pr_comment annotate" in action


def test_deploy_applies_the_reviewed_plan_or_previews_again(deploy):
    """Each up job: the reviewed-plan action (the merging PR's preview artifact, `plan_gate decide`), a new
    preview only for mode=preview, then `up --plan` with what decide chose; after the guard in the model job."""
    action = _load_action("reviewed-plan")
    steps_of_action = action["runs"]["steps"]
    (download,) = [s for s in steps_of_action if str(s.get("uses", "")).startswith("actions/download-artifact@")]
    assert download["if"] == "steps.find.outputs.run-id != ''"
    assert download["with"]["run-id"] == "${{ steps.find.outputs.run-id }}"
    assert [s.get("id") for s in steps_of_action] == ["find", None, "decide"]
    assert "plan_gate decide" in steps_of_action[2]["run"]
    for name in ("up-platform", "up-models"):
        job = deploy[name]
        steps = job["steps"]
        (decide,) = _uses(job, "./.github/actions/reviewed-plan")
        assert decide["id"] == "decide" and decide["with"]["token"] == "${{ github.token }}"
        (again,) = _pulumi(job, "preview")
        (up,) = _pulumi(job, "up")
        assert again["if"] == "steps.decide.outputs.mode == 'preview'"
        assert again["with"]["out-dir"] == decide["with"]["repreview-dir"]
        assert steps.index(decide) < steps.index(again) < steps.index(up)
        assert up["with"]["plan"] == "${{ steps.decide.outputs.plan }}" and "if" not in up
        assert job["permissions"] == {
            "id-token": "write", "contents": "read", "pull-requests": "read", "actions": "read"
        }  # fmt: skip


def _load_action(name: str) -> dict[str, Any]:
    return YAML(typ="safe").load((ROOT / ".github" / "actions" / name / "action.yml").read_text())


def test_deploy_credentials_last_the_longest_update() -> None:
    """A first platform `up` outlives GitHub's default one-hour role session. Each deploy job asks for a
    session no longer than the roles allow (`ci.deploySessionSeconds`'s default) and longer than one hour."""
    from mlplatform.platform.ci_identity_config import DEPLOY_SESSION_SECONDS

    deploy = _load("deploy.yml")
    asked = {
        name: int(step["with"]["role-duration-seconds"])
        for name, job in deploy["jobs"].items()
        for step in _uses(job, "aws-actions/configure-aws-credentials")
        if "role-duration-seconds" in step["with"]
    }
    assert set(asked) == {
        name for name, job in deploy["jobs"].items() if _uses(job, "aws-actions/configure-aws-credentials")
    }
    assert all(3600 < seconds <= DEPLOY_SESSION_SECONDS for seconds in asked.values()), asked
