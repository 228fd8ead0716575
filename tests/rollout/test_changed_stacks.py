"""The workflows preview and deploy exactly the stacks a change can affect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlplatform.rollout.changed_stacks import Stack, changed_stacks, main

DEV, PROD = Stack(".", "dev"), Stack(".", "prod")
M_DEV, M_PROD = Stack("stacks/model", "fraud-detector-dev"), Stack("stacks/model", "fraud-detector-prod")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml", "__main__.py"):
        (tmp_path / name).write_text("")
    model = tmp_path / "stacks" / "model"
    model.mkdir(parents=True)
    for name in ("Pulumi.yaml", "Pulumi.fraud-detector-dev.yaml", "Pulumi.fraud-detector-prod.yaml"):
        (model / name).write_text("")
    return tmp_path


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (["stacks/model/Pulumi.fraud-detector-prod.yaml"], [M_PROD]),
        (["Pulumi.prod.yaml"], [PROD]),
        (["mlplatform/model/serving.py"], [M_DEV, M_PROD]),
        (["stacks/model/__main__.py"], [M_DEV, M_PROD]),
        (["stacks/model/Pulumi.yaml"], [M_DEV, M_PROD]),
        (["mlplatform/platform/mesh.py"], [DEV, PROD]),
        (["__main__.py"], [DEV, PROD]),
        (["Pulumi.yaml"], [DEV, PROD]),
        (["mlplatform/labels.py"], [DEV, PROD, M_DEV, M_PROD]),
        (["requirements.txt"], [DEV, PROD, M_DEV, M_PROD]),
        (["README.md", "tests/model/test_serving.py", "mlplatform/rollout/cli.py", ".github/workflows/x.yml"], []),
        (["stacks/model/Pulumi.gone.yaml"], []),
        (["./Pulumi.dev.yaml", "stacks/model/Pulumi.fraud-detector-dev.yaml"], [DEV, M_DEV]),
    ],
    ids=["model-stack-file", "platform-stack-file", "model-code", "model-entry", "model-project",
         "platform-code", "platform-entry", "platform-project", "shared-module", "dependencies",
         "no-program-reads-it", "deleted-stack", "two-files"],
)
def test_paths_map_to_stacks(repo: Path, paths: list[str], expected: list[Stack]) -> None:
    """Each kind of change previews the stacks that run it, and only those."""
    assert changed_stacks(paths, repo) == expected


def test_cli_prints_a_github_matrix(repo: Path, capsys, monkeypatch) -> None:
    """The workflow feeds `git diff --name-only` on stdin and reads a matrix back."""
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("stacks/model/Pulumi.fraud-detector-prod.yaml\n"))
    assert main(["--root", str(repo)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "include": [{"project": "stacks/model", "stack": "fraud-detector-prod"}]
    }
