"""A model stack whose `mlmodel:platformStack` names no stack: the engine's error names the key.

Offline (render, diff, the rollout tools) the key is named by our own code; under the real
engine the StackReference read fails inside the engine ("unknown stack"), before the program
can say anything. The reference is therefore named after the key, so the engine's diagnostic
reads `pulumi:pulumi:StackReference (mlmodel:platformStack): ... unknown stack "<value>"`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.pulumi_cli import PulumiCli, PulumiError
from tests.support.model_stack import model_stack_config

pytestmark = pytest.mark.e2e

STACK = "fraud-missing-platform"
MISSING = "organization/mlplatform/missing"


def test_an_unknown_platform_stack_is_named_by_its_key(pulumi: PulumiCli, tmp_path: Path) -> None:
    project = tmp_path / "model"
    pulumi.model_stack(project, STACK, model_stack_config(MISSING))

    with pytest.raises(PulumiError) as refused:
        pulumi.run("up", "--stack", STACK, "--yes", "--skip-preview", cwd=project)

    output = str(refused.value)
    assert "pulumi:pulumi:StackReference (mlmodel:platformStack):" in output, output
    assert f'unknown stack "{MISSING}"' in output, output
    state = json.loads(pulumi.run("stack", "export", "--stack", STACK, cwd=project).stdout)
    types = [r["type"] for r in state["deployment"].get("resources") or []]
    assert not [t for t in types if t.startswith("kubernetes:")], f"no Kubernetes object was declared: {types}"
