"""Update plans with the real engine: what a weight step's preview saves is what `up --plan` applies.

One model stack (its own model name, so it never meets the rollout test's objects) is up
at 10%, then:
1. the CI policy config is built from the stack's state (`pulumi stack export`), the
   step 10 -> 25 is previewed with the policy pack and `--save-plan`: no violation, and
   the plan updates exactly the TrafficSplit and the InferenceService record. The
   preview's JSON feeds the PR comment builder (and, with MLPLATFORM_E2E_RECORD_DIR set,
   is written out: tests/fixtures/ci/ holds one such recording);
2. a jump 10 -> 60 is refused by `canary-weight-step`, reading the old weight from state;
3. the same plan, with another resource edited after the preview (the HPA's max), makes
   `up --plan` fail before anything changes: the cluster and the state are as before;
4. the reviewed edit alone applies under the plan.

CLI v3.259: `preview --save-plan` needs no flag; `up --plan` works but is hidden unless
PULUMI_EXPERIMENTAL is set. Neither needs PULUMI_EXPERIMENTAL to take effect.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlplatform.tools.ci import policy_config
from mlplatform.tools.ci.pr_comment import StackReport, read_preview, render
from tests.e2e.control_plane import ControlPlane
from tests.e2e.policy_pack import preview_with_pack, record_events, record_text
from tests.e2e.pulumi_cli import COMMAND_TIMEOUT, PulumiCli
from tests.support.model_stack import model_stack_config

pytestmark = pytest.mark.e2e

STACK = "churn-plan"
MODEL = "churn"
SERVING = "ml-serving"


def _split(api: ControlPlane) -> dict[str, int]:
    split = api.get(f"/apis/split.smi-spec.io/v1alpha2/namespaces/{SERVING}/trafficsplits/{MODEL}")
    assert split, "the TrafficSplit exists"
    return {b["service"]: b["weight"] for b in split["spec"]["backends"]}


def _hpa_max(api: ControlPlane) -> int:
    hpa = api.get(f"/apis/autoscaling/v2/namespaces/{SERVING}/horizontalpodautoscalers/{MODEL}-v1")
    assert hpa, "the stable version's HPA exists"
    return hpa["spec"]["maxReplicas"]


def _state(pulumi: PulumiCli, project: Path) -> dict[str, Any]:
    return json.loads(pulumi.run("stack", "export", "--stack", STACK, cwd=project).stdout)


def _inputs_by_urn(state: dict[str, Any]) -> dict[str, Any]:
    return {r["urn"]: r.get("inputs") for r in state["deployment"]["resources"]}


def _edit(stack_file: Path, old: str, new: str) -> None:
    text = stack_file.read_text()
    assert text.count(old) == 1, old
    stack_file.write_text(text.replace(old, new))


def _up_with_plan(pulumi: PulumiCli, project: Path, plan: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 - the caller asserts on the exit code
        [pulumi.binary, "--non-interactive", "up", "--stack", STACK, "--yes", "--plan", str(plan)],
        cwd=project, env=pulumi.env(), capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip


def test_a_weight_steps_plan_holds_the_step_and_refuses_anything_else(
    pulumi: PulumiCli, control_plane: ControlPlane, platform_stack: str, tmp_path: Path
) -> None:
    project = tmp_path / "model"
    config = model_stack_config(platform_stack, model=MODEL, registered_model=MODEL, stable=1, canary=2, max_replicas=2)
    stack_file = pulumi.model_stack(project, STACK, config)
    pulumi.up(project, STACK)
    try:
        _steps(pulumi, control_plane, project, stack_file, tmp_path)
    finally:
        pulumi.destroy(project, STACK)


def _steps(pulumi: PulumiCli, api: ControlPlane, project: Path, stack_file: Path, tmp_path: Path) -> None:
    assert _split(api) == {f"{MODEL}-v1": 90, f"{MODEL}-v2": 10}
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(_state(pulumi, project)))
    config = tmp_path / "policy.json"
    assert policy_config.main(["--state", str(state_file), "--out", str(config)]) == 0
    splits = json.loads(config.read_text())["canary-weight-step"]["splits"]
    assert list(splits.values()) == [{"weights": {f"{MODEL}-v1": 90, f"{MODEL}-v2": 10}, "stable": f"{MODEL}-v1"}]

    # 1. The step 10 -> 25: the pack passes it, the plan holds exactly the split and the record.
    _edit(stack_file, "    weight: 10\n", "    weight: 25\n")
    plan = tmp_path / "plan.json"
    step = preview_with_pack(pulumi, project, STACK, config_file=config, extra=("--save-plan", str(plan)))
    assert step.errors == [] and step.violations == [] and step.returncode == 0, step.stderr
    record_events("mlmodel--churn-plan.preview.json", step.events)
    planned = {
        urn: entry["steps"]
        for urn, entry in json.loads(plan.read_text())["resourcePlans"].items()
        if entry.get("steps") not in (None, [], ["same"])
    }
    assert {urn.rsplit("::", 1)[-1]: steps for urn, steps in planned.items()} == {
        f"{MODEL}-split": ["update"],
        f"{MODEL}-inference-service": ["update"],
    }
    comment = render(
        [StackReport(f"mlmodel/{STACK}", read_preview("".join(json.dumps(e) + "\n" for e in step.events)))],
        "https://ci.example/job/1",
    )
    assert "2 to update" in comment and "**Policy**: no violations." in comment

    # 2. A jump 10 -> 60: refused, the old weight read from state.
    _edit(stack_file, "    weight: 25\n", "    weight: 60\n")
    jump = preview_with_pack(pulumi, project, STACK, config_file=config)
    record_events("mlmodel--churn-plan-jump.preview.json", jump.events)
    assert jump.rules == {"canary-weight-step"} and jump.returncode != 0, jump.violations
    assert "from 10 to 60" in jump.violations[0].message

    # 3. The reviewed step plus an edit made after the preview: `up --plan` refuses, nothing moves.
    _edit(stack_file, "    weight: 60\n", "    weight: 25\n")
    _edit(stack_file, "      max: 2\n", "      max: 3\n")
    before = _inputs_by_urn(_state(pulumi, project))
    refused = _up_with_plan(pulumi, project, plan)
    record_text("up-plan-refused.txt", refused.stdout + refused.stderr)
    assert refused.returncode != 0, refused.stdout
    assert "plan" in (refused.stdout + refused.stderr).lower()
    assert _split(api) == {f"{MODEL}-v1": 90, f"{MODEL}-v2": 10}
    assert _hpa_max(api) == 2
    assert _inputs_by_urn(_state(pulumi, project)) == before

    # 4. The reviewed edit alone applies under its plan.
    _edit(stack_file, "      max: 3\n", "      max: 2\n")
    applied = _up_with_plan(pulumi, project, plan)
    record_text("up-plan-applied.txt", f"exit {applied.returncode}\n" + applied.stdout + applied.stderr)
    assert applied.returncode == 0, f"{applied.returncode}\n{applied.stdout}\n{applied.stderr}"
    assert _split(api) == {f"{MODEL}-v1": 75, f"{MODEL}-v2": 25}
