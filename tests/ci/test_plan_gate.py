"""plan_gate: the reviewed plan is applied only when the merge commit's inputs are the previewed ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlplatform.tools.ci.plan_gate import decide, fingerprint, main, stack_inputs
from tests.support.helpers import ROOT

PROJECT, STACK = "stacks/model", "fraud-detector-prod"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of what the fingerprint reads: the package, the projects, the pack, the dependency files."""
    for name in ("mlplatform", "stacks", "policy"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("__main__.py", "Pulumi.yaml", "Pulumi.dev.yaml", "requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_the_inputs_are_the_program_the_stack_file_the_dependencies_and_the_pack(repo: Path) -> None:
    inputs = stack_inputs(repo, PROJECT, STACK)
    assert {
        "stacks/model/__main__.py",
        "stacks/model/Pulumi.yaml",
        f"stacks/model/Pulumi.{STACK}.yaml",
        "mlplatform/model/traffic.py",
        "requirements.txt",
        "policy/policy-config.json",
    } <= set(inputs)
    assert not [p for p in inputs if p.startswith("mlplatform/tools/")]
    assert "mlplatform/platform/cluster.py" not in inputs, "a platform module the model never imports"
    assert "stacks/model/Pulumi.fraud-detector-dev.yaml" not in inputs


def test_unchanged_inputs_apply_the_plan(repo: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    assert decide(repo, PROJECT, STACK, fingerprint(repo, PROJECT, STACK), plan)[0] == "plan"


@pytest.mark.parametrize(
    "changed",
    ["mlplatform/model/traffic.py", f"stacks/model/Pulumi.{STACK}.yaml", "requirements.txt", "policy/__main__.py"],
)
def test_a_changed_input_previews_again(repo: Path, tmp_path: Path, changed: str) -> None:
    previewed = fingerprint(repo, PROJECT, STACK)
    (repo / changed).write_text((repo / changed).read_text() + "\n# landed after the preview\n")
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    mode, why = decide(repo, PROJECT, STACK, previewed, plan)
    assert mode == "preview" and "differ from the previewed ones" in why


def test_a_change_to_another_stack_or_the_tools_keeps_the_plan(repo: Path, tmp_path: Path) -> None:
    previewed = fingerprint(repo, PROJECT, STACK)
    for path in ("stacks/model/Pulumi.fraud-detector-dev.yaml", "mlplatform/tools/diff.py"):
        (repo / path).write_text((repo / path).read_text() + "\n# unrelated\n")
    assert fingerprint(repo, PROJECT, STACK) == previewed


def test_decide_writes_the_mode_and_the_summary(repo: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    args = [
        "decide",
        "--root",
        str(repo),
        "--project",
        PROJECT,
        "--stack",
        STACK,
        "--previewed",
        str(tmp_path / "none.inputs"),
        "--plan",
        str(tmp_path / "none.plan.json"),
    ]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == "mode=preview"
    assert "no saved plan" in summary.read_text()
    assert main(["fingerprint", "--root", str(repo), "--project", PROJECT, "--stack", "nope"]) == 2
