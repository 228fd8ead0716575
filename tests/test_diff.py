"""`mlplatform diff`: the blast radius of a config edit, as a PR reviewer reads it without cloud credentials."""

from __future__ import annotations

import json

import pytest
import yaml

from mlplatform.configuration import ConfigError
from mlplatform.tools.cli import main
from mlplatform.tools.diff import DiffReport, Override, apply_overrides, diff_stack, format_report, parse_assignment
from tests.model.helpers import INFERENCE_SERVICE, TRAFFIC_SPLIT
from tests.support.helpers import ROOT

MODEL_DIR = ROOT / "stacks" / "model"
PROD = "fraud-detector-prod"


@pytest.fixture(scope="module")
def weight_step() -> DiffReport:
    """fraud-detector-prod moved from 10% to 25%, as the next rollout step's PR would."""
    return diff_stack(MODEL_DIR, PROD, overrides=[parse_assignment("canary.weight=25", stack=PROD)])


# -- rollout steps ----------------------------------------------------------------------
def test_weight_step_changes_only_the_split_and_its_record(weight_step):
    """A rollout step must move routing only: nothing added, removed or restarted."""
    assert sorted(c.type for c in weight_step.changed) == sorted([TRAFFIC_SPLIT, INFERENCE_SERVICE])
    assert weight_step.added == [] and weight_step.removed == []
    assert weight_step.pod_templates_changed == []


def test_weight_step_names_the_changed_weights(weight_step):
    """The reviewer sees the numbers that move, not just that the split changed."""
    (split,) = weight_step.changed_of_type(TRAFFIC_SPLIT)
    assert split.keys == ["spec"]
    assert [(p.path, p.before, p.after) for p in split.paths] == [
        ("spec.backends[0].weight", 90, 75),
        ("spec.backends[1].weight", 10, 25),
    ]


def test_text_report_lists_each_change_and_says_no_pod_restarts(weight_step):
    """The text output is what lands in a PR comment: resource, type, keys, values, verdict."""
    text = format_report(weight_step)
    assert text.splitlines()[0] == "mlmodel/fraud-detector-prod: --set canary.weight=25"
    assert f"~ fraud-detector-split ({TRAFFIC_SPLIT})  inputs: spec" in text
    assert "spec.backends[1].weight: 10 -> 25" in text
    assert text.splitlines()[-1] == "2 changed, 0 added, 0 removed; no pod template changed"


def test_against_another_config_file_with_json_output(tmp_path, capsys):
    """Two config files can be compared directly, and --json gives URNs for tooling."""
    document = yaml.safe_load((MODEL_DIR / f"Pulumi.{PROD}.yaml").read_text())
    document["config"]["mlmodel:canary"]["weight"] = 50
    edited = tmp_path / "Pulumi.edited.yaml"
    edited.write_text(yaml.safe_dump(document))

    assert main(["diff", str(MODEL_DIR), PROD, "--against", str(edited), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["edit"] == [f"--against {edited}"]
    assert sorted(c["type"] for c in report["changed"]) == sorted([TRAFFIC_SPLIT, INFERENCE_SERVICE])
    assert all(c["urn"].startswith(f"urn:pulumi:{PROD}::mlmodel::") for c in report["changed"])
    assert report["summary"] == {"changed": 2, "added": 0, "removed": 0, "podTemplatesChanged": 0}


def test_base_reads_a_prs_blast_radius_from_the_base_file_to_the_stack_file(tmp_path, capsys):
    """preview.yml's blast radius: `--base` is the base branch's stack file (before), the stack's own file is
    the PR's (after), so the comment reads base -> PR."""
    document = yaml.safe_load((MODEL_DIR / f"Pulumi.{PROD}.yaml").read_text())
    current = document["config"]["mlmodel:canary"]["weight"]
    document["config"]["mlmodel:canary"]["weight"] = 5
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(document))
    assert main(["diff", str(MODEL_DIR), PROD, "--base", str(base), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["edit"] == [f"--base {base}"]
    (split,) = [c for c in report["changed"] if c["type"] == TRAFFIC_SPLIT]
    assert [(p["path"], p["before"], p["after"]) for p in split["paths"]][1] == ("spec.backends[1].weight", 5, current)
    assert main(["diff", str(MODEL_DIR), PROD, "--base", str(base), "--set", "canary.weight=1"]) == 2
    assert "--base compares that file with the stack file" in capsys.readouterr().err


# -- errors -----------------------------------------------------------------------
def test_misspelt_set_key_is_a_config_error_with_exit_code_2(capsys):
    """A typo in --set must be named like a typo in the stack file, not crash with a traceback."""
    assert main(["diff", str(MODEL_DIR), PROD, "--set", "canary.wieght=25"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: invalid configuration for stack '{PROD}'")
    assert "mlmodel:canary.wieght is not a known key" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--set", "canary.weight"], "--set 'canary.weight': expected KEY=VALUE"),
        (["--set", "canary.weight.value=1"], "canary.weight is not an object"),
        ([], "nothing to compare"),
    ],
    ids=["no-value", "into-a-scalar", "no-edit"],
)
def test_malformed_edits_fail_before_anything_runs(capsys, argv, message):
    """Usage mistakes get exit code 2 and a message naming the edit."""
    assert main(["diff", str(MODEL_DIR), PROD, *argv]) == 2
    assert message in capsys.readouterr().err


# -- config overrides (no Pulumi runtime) --------------------------------------------
BASE = {
    "mlmodel:canary": {"version": "v6", "weight": 10},
    "mlmodel:allowedClients": [{"serviceAccount": "a", "namespace": "b"}],
    "aws:region": "us-west-2",
}


def _apply(*edits: Override) -> dict:
    return apply_overrides(BASE, edits, namespace="mlmodel", stack="s")


def test_keys_default_to_the_project_namespace_and_values_are_yaml():
    """`canary.weight=25` and `mlmodel:canary.weight=25` are the same edit; 25 is a number."""
    assert _apply(parse_assignment("canary.weight=25", stack="s"))["mlmodel:canary"]["weight"] == 25
    assert _apply(parse_assignment("mlmodel:canary.weight=25", stack="s"))["mlmodel:canary"]["weight"] == 25
    assert _apply(parse_assignment("aws:region=eu-west-1", stack="s"))["aws:region"] == "eu-west-1"
    assert BASE["mlmodel:canary"]["weight"] == 10, "the stack file's config must not be modified in place"


def test_list_items_and_new_objects_can_be_set():
    """Teams and clients are lists; a rollout may start from a stack without a canary block."""
    edited = _apply(
        parse_assignment("allowedClients[0].namespace=c", stack="s"),
        parse_assignment("training.dataSource.type=s3", stack="s"),
    )
    assert edited["mlmodel:allowedClients"][0] == {"serviceAccount": "a", "namespace": "c"}
    assert edited["mlmodel:training"] == {"dataSource": {"type": "s3"}}


def test_unset_removes_a_block():
    """Promotion deletes the canary block; `--unset canary` is that edit."""
    assert "mlmodel:canary" not in _apply(Override("canary", remove=True))
    assert _apply(Override("canary.weight", remove=True))["mlmodel:canary"] == {"version": "v6"}


def test_an_index_past_the_end_is_reported():
    """Silently appending would change a list the user did not mean to grow."""
    with pytest.raises(ConfigError, match=r"mlmodel:allowedClients has no item \[3\]"):
        _apply(parse_assignment("allowedClients[3].namespace=x", stack="s"))
