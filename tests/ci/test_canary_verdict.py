"""The judge's verdict for the PR comment (mlplatform/tools/ci/canary_verdict.py), from the rollout state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mlplatform.tools.ci.canary_verdict import main
from mlplatform.tools.rollout.state import FileStatusStore, new_step
from tests.support.helpers import ROOT

STACK = "fraud-detector-prod"


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "model"
    project.mkdir()
    for name in ("Pulumi.yaml", f"Pulumi.{STACK}.yaml"):
        shutil.copy(ROOT / "stacks" / "model" / name, project / name)
    return project


def test_the_recorded_verdict_is_written_with_the_rollouts_phase(tmp_path: Path) -> None:
    project = _project(tmp_path)
    status = new_step("v6", 10, 1_800_000_000.0)
    status.last_verdict = {"outcome": "pass", "measured": {"successRate": 0.999}, "reasons": ["within bounds"]}
    FileStatusStore(tmp_path / "status.json").put(status)
    out = tmp_path / "verdict.json"
    argv = [
        "--project",
        str(project),
        "--stack",
        STACK,
        "--out",
        str(out),
        "--status-file",
        str(tmp_path / "status.json"),
    ]
    assert main(argv) == 0
    assert json.loads(out.read_text()) == {**status.last_verdict, "phase": status.phase, "weight": 10}


def test_no_verdict_yet_or_no_state_says_why(tmp_path: Path, capsys) -> None:
    project = _project(tmp_path)
    out = tmp_path / "verdict.json"
    base = ["--project", str(project), "--stack", STACK, "--out", str(out)]
    assert main([*base, "--status-file", str(tmp_path / "none.json")]) == 0
    assert json.loads(out.read_text()) == {
        "outcome": "unavailable",
        "reason": "no rollout state recorded on the cluster yet",
    }
    FileStatusStore(tmp_path / "status.json").put(new_step("v6", 10, 1_800_000_000.0))
    assert main([*base, "--status-file", str(tmp_path / "status.json")]) == 0
    assert "has not checked canary v6 at 10% yet" in json.loads(out.read_text())["reason"]
    assert "::warning title=canary verdict::" in capsys.readouterr().out


def test_a_stack_without_a_canary_writes_nothing_and_a_missing_stack_fails(tmp_path: Path) -> None:
    project = _project(tmp_path)
    stack_file = project / f"Pulumi.{STACK}.yaml"
    text = stack_file.read_text()
    start = text.index("  mlmodel:canary:\n")
    end = text.index("\n  mlmodel:", start + 1) + 1
    stack_file.write_text(text[:start] + text[end:])
    out = tmp_path / "verdict.json"
    assert main(["--project", str(project), "--stack", STACK, "--out", str(out)]) == 0
    assert not out.exists()
    assert main(["--project", str(project), "--stack", "nope", "--out", str(out)]) == 2
