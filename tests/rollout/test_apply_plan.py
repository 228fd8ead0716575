"""A step forward under `--apply` is applied under a checked update plan; a rollback stays one `up`.

`plan_check` reads the engine's plan JSON (`resourcePlans`: URN -> planned steps). The CLI
path runs a fake `pulumi` first on PATH: its `preview --save-plan PATH` writes the plan the
test gives it, its `up --plan PATH` records that it ran. The real engine runs the same path
in tests/e2e/test_step_apply.py.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import stat
from pathlib import Path

import pytest

from mlplatform.tools.rollout import apply, cli, context, plan_check
from tests.rollout.conftest import STACK
from tests.rollout.test_apply import _git, _head
from tests.rollout.test_concurrency import _healthy
from tests.support import types

PREFIX = f"urn:pulumi:{STACK}::mlmodel::"
RECORD_TYPE = "kubernetes:" + "ml.example.com/v1:InferenceService"  # the platform's CRD group: configurable
SPLIT = f"{PREFIX}mlplatform:model:ModelServing${types.K8S_TRAFFIC_SPLIT}::fraud-detector-split"
RECORD = f"{PREFIX}mlplatform:model:ModelRecords${RECORD_TYPE}::fraud-detector-is"
HPA = f"{PREFIX}mlplatform:model:ModelServing${types.K8S_HORIZONTAL_POD_AUTOSCALER}::fraud-detector-v5"
LIVE_RECORD = f"{PREFIX}mlplatform:model:LiveRecord${RECORD_TYPE}::live"
STACK_OUTPUT = f"{PREFIX}pulumi:pulumi:Stack::mlmodel-{STACK}"


def _plan(**steps: list[str]) -> dict:
    urns = {"split": SPLIT, "record": RECORD, "hpa": HPA, "live": LIVE_RECORD, "stack": STACK_OUTPUT}
    return {"resourcePlans": {urns[name]: {"steps": ops, "goal": {}} for name, ops in steps.items()}}


WEIGHT_STEP = _plan(split=["update"], record=["update"], live=["read"], stack=["same"], hpa=["same"])


def test_a_weight_steps_plan_is_the_split_and_the_record():
    changes = plan_check.changes(WEIGHT_STEP)
    assert [(c.type, c.name, c.operations) for c in changes] == [
        (RECORD_TYPE, "fraud-detector-is", ("update",)),
        (types.K8S_TRAFFIC_SPLIT, "fraud-detector-split", ("update",)),
    ]
    assert plan_check.unexpected(changes) == []


def test_an_httproute_carries_the_weights_where_the_mesh_is_gateway_api():
    route = SPLIT.replace(types.K8S_TRAFFIC_SPLIT, types.K8S_HTTP_ROUTE)
    plan = {"resourcePlans": {route: {"steps": ["update"]}, RECORD: {"steps": ["update"]}}}
    assert plan_check.unexpected(plan_check.changes(plan)) == []


@pytest.mark.parametrize(
    ("plan", "refused"),
    [
        (_plan(split=["update"], record=["update"], hpa=["update"]), "update kubernetes:autoscaling/v2"),
        (_plan(split=["replace"], record=["update"]), "replace kubernetes:split.smi-spec.io"),
        (_plan(split=["delete"], record=["update"]), "delete kubernetes:split.smi-spec.io"),
        (_plan(split=["update"], record=["create-replacement", "replace", "delete-replaced"]), "create-replacement+"),
        (_plan(split=["update"], hpa=["create"]), "create kubernetes:autoscaling/v2:HorizontalPodAutoscaler"),
        (_plan(split=["update"], stack=["update"]), "update pulumi:pulumi:Stack"),
    ],
)
def test_any_other_change_is_unexpected_and_named(plan: dict, refused: str):
    surprises = plan_check.unexpected(plan_check.changes(plan))
    assert len(surprises) == 1
    assert str(surprises[0]).startswith(refused)


def test_a_plan_without_resource_plans_is_unreadable(tmp_path: Path):
    with pytest.raises(plan_check.PlanUnreadable, match="resourcePlans"):
        plan_check.changes({"manifest": {}})
    with pytest.raises(plan_check.PlanUnreadable, match="wrote no plan"):
        plan_check.read_plan(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(plan_check.PlanUnreadable, match="not a readable plan"):
        plan_check.read_plan(tmp_path / "bad.json")


# -- the CLI path, with a fake `pulumi` ---------------------------------------------------------

FAKE_PULUMI = """#!/bin/sh
# A stand-in for `pulumi`: appends each call; `preview --save-plan P` copies $FAKE_PLAN to P.
printf '%s\\n' "$*" >> "$FAKE_PULUMI_LOG"
if [ "$1" = preview ]; then
  grep -q "weight: 25" "Pulumi.{stack}.yaml" || {{ echo "the preview did not see the step" >&2; exit 7; }}
  cp "$FAKE_PLAN" "$3"
fi
exit 0
"""


@pytest.fixture
def fake_pulumi(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A `pulumi` first on PATH; returns (its call log, the plan file its preview saves)."""
    bin_dir = tmp_path_factory.mktemp("fake-bin")
    executable = bin_dir / "pulumi"
    executable.write_text(FAKE_PULUMI.format(stack=STACK))
    executable.chmod(executable.stat().st_mode | stat.S_IXUSR)
    log, plan = bin_dir / "calls.log", bin_dir / "plan.json"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    monkeypatch.setenv("FAKE_PLAN", str(plan))
    monkeypatch.setattr(context.Context, "gate", lambda self, config, **window: _healthy(config))
    return log, plan


def _next_apply(project: Path) -> tuple[int, list[dict]]:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    argv = ["rollout", "next", STACK, "--project-dir", str(project), "--json", "--apply", "--skip-dwell", "test"]
    stream = io.StringIO()
    code = cli.run(parser.parse_args(argv), stream=stream)
    return code, [json.loads(line) for line in stream.getvalue().splitlines()]


def _calls(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def test_next_apply_previews_with_a_plan_checks_it_then_applies_that_plan(
    project: Path, stack_file: Path, repo: Path, fake_pulumi: tuple[Path, Path]
):
    log, plan = fake_pulumi
    plan.write_text(json.dumps(WEIGHT_STEP))
    head = _head(project)
    code, events = _next_apply(project)
    assert code == 0, events
    preview, up = _calls(log)
    assert preview[:2] == ["preview", "--save-plan"]
    saved = preview[2]
    assert up[:5] == ["up", "--yes", "--skip-preview", "--plan", saved], "up applies the very plan the preview saved"
    assert preview[-2:] == up[-2:] == ["--stack", STACK]
    assert not Path(saved).exists(), "the plan is scratch, removed after the step"
    assert "weight: 25" in stack_file.read_text()
    assert _git(project, "rev-parse", "HEAD~1").strip() == head
    applying = next(e for e in events if e["event"] == "applying")
    assert applying["plan"] is True


def test_an_unexpected_change_in_the_plan_refuses_with_nothing_applied(
    project: Path, stack_file: Path, repo: Path, fake_pulumi: tuple[Path, Path]
):
    log, plan = fake_pulumi
    plan.write_text(json.dumps(_plan(split=["update"], record=["update"], hpa=["update"])))
    before, head = stack_file.read_bytes(), _head(project)
    code, events = _next_apply(project)
    assert code == 1, events
    assert [call[0] for call in _calls(log)] == ["preview"], "no `up` after a refused plan"
    refusal = events[-1]
    assert refusal["event"] == "refused"
    assert "HorizontalPodAutoscaler fraud-detector-v5" in refusal["reason"]
    assert "Nothing was applied" in refusal["reason"]
    assert stack_file.read_bytes() == before
    assert _head(project) == head


def test_abort_apply_is_still_one_up_without_a_plan(
    project: Path, stack_file: Path, repo: Path, fake_pulumi: tuple[Path, Path]
):
    log, _ = fake_pulumi
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    argv = ["rollout", "abort", STACK, "--project-dir", str(project), "--json", "--apply", "--reason", "test"]
    assert cli.run(parser.parse_args(argv), stream=io.StringIO()) == 0
    ((verb, *flags),) = _calls(log)
    assert verb == "up" and "--plan" not in flags


def test_dry_run_and_apply_exclude_each_other(project: Path, stack_file: Path, repo: Path):
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    argv = ["rollout", "next", STACK, "--project-dir", str(project), "--json", "--apply", "--dry-run"]
    stream = io.StringIO()
    assert cli.run(parser.parse_args(argv), stream=stream) == 2
    assert "--dry-run writes nothing and --apply applies" in stream.getvalue()


def test_the_default_step_forward_of_apply_is_the_planned_cli_up():
    assert context.Context.planned_up is apply.cli_planned_up
