"""The policy pack (policy/) through the real engine: `pulumi preview --policy-pack`.

- every seeded-bad fixture made only of Kubernetes objects (tests/policy/fixtures.py) is
  declared by a real program and previewed against the simulated cluster: exactly its
  rule fires, at its level. The AWS fixtures cannot be previewed offline; the fast tier
  runs them through the same rules (tests/policy/test_rules.py);
- the example stacks (the platform in mode existing, up on the simulated cluster, and
  the model stack files of stacks/model) preview with the pack: no violation at all.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from policy.guardrails.catalog import BY_NAME
from tests.e2e.platform_stack import STACK as PLATFORM_STACK
from tests.e2e.platform_stack import PlatformStack
from tests.e2e.policy_pack import preview_with_pack, record_events, write_pack_config
from tests.e2e.pulumi_cli import PulumiCli
from tests.policy.fixtures import FIXTURES, STACK
from tests.support.helpers import ROOT

pytestmark = pytest.mark.e2e

FIXTURE_PROGRAM = Path(__file__).parent / "policy_fixture"
ENGINE_FIXTURES = [f for f in FIXTURES if f.engine]


def _fixture_project(tmp_path: Path, objects: list[dict]) -> Path:
    project = tmp_path / "policy-fixture"
    shutil.copytree(FIXTURE_PROGRAM, project)
    (project / "objects.json").write_text(json.dumps(objects, indent=2))
    return project


@pytest.mark.parametrize("fixture", ENGINE_FIXTURES, ids=lambda f: f.name)
def test_a_seeded_bad_fixture_is_caught_by_exactly_its_rule(
    fixture, pulumi: PulumiCli, platform: PlatformStack, control_plane, tmp_path: Path
) -> None:
    # The platform is up: the fixtures' namespaces and CRDs exist for the provider's dry runs.
    project = _fixture_project(tmp_path, fixture.objects)
    stack = fixture.name
    pulumi.stack_init(project, stack)
    pulumi.config_set(project, stack, "kubeconfig", control_plane.kubeconfig(), secret=True)
    # Fixture configs name URNs of stack `fixture`; this stack is named after the fixture.
    overrides = json.loads(json.dumps(fixture.config).replace(f"urn:pulumi:{STACK}::", f"urn:pulumi:{stack}::"))
    config = write_pack_config(tmp_path / "policy-config.json", overrides)
    try:
        preview = preview_with_pack(pulumi, project, stack, config_file=config)
    finally:
        pulumi.run("stack", "rm", stack, "--yes", "--force", cwd=project)
    record_events(f"policy-fixture--{stack}.preview.json", preview.events)
    assert preview.errors == [], f"the preview failed for another reason:\n{preview.errors}\n{preview.stderr}"
    assert preview.rules == {fixture.rule}, f"{fixture.name} ({fixture.why}): {preview.violations}"
    levels = {v.level for v in preview.violations}
    if BY_NAME[fixture.rule].advisory:
        assert levels == {"advisory"} and preview.returncode == 0, preview.stderr
    else:
        assert levels == {"mandatory"} and preview.returncode != 0
        assert preview.summary["result"] == "failed"


def test_the_platform_stack_passes_the_pack(pulumi: PulumiCli, platform: PlatformStack) -> None:
    preview = preview_with_pack(pulumi, platform.project, PLATFORM_STACK)
    assert preview.errors == [], preview.stderr
    assert preview.violations == []
    assert preview.returncode == 0
    passed = {
        rule
        for e in preview.events
        if "policyAnalyzeStackSummaryEvent" in e
        for rule in e["policyAnalyzeStackSummaryEvent"]["passed"]
    }
    assert "gpu-namespace-quota" in passed, "the stack rules ran"


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "stacks" / "model").glob("Pulumi.*.yaml")))
def test_an_example_model_stack_passes_the_pack(
    example: str, pulumi: PulumiCli, platform_stack: str, tmp_path: Path
) -> None:
    """The stack file as committed, pointed at the simulated platform (its reference and environment)."""
    project = tmp_path / "model"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / "stacks" / "model" / name, project / name)
    stack = "example-" + example[len("Pulumi.") : -len(".yaml")]
    pulumi.stack_init(project, stack)
    lines = []
    for original in (ROOT / "stacks" / "model" / example).read_text().splitlines():
        line = original
        if original.startswith("  mlmodel:platformStack:"):
            line = f"  mlmodel:platformStack: {platform_stack}"
        elif original.startswith("  mlmodel:environment:"):
            line = "  mlmodel:environment: dev"
        lines.append(line)
    (project / f"Pulumi.{stack}.yaml").write_text("\n".join(lines) + "\n")
    try:
        preview = preview_with_pack(pulumi, project, stack)
    finally:
        pulumi.run("stack", "rm", stack, "--yes", "--force", cwd=project)
    assert preview.errors == [], preview.stderr
    assert preview.violations == []
    assert preview.returncode == 0
    assert preview.summary["resourceChanges"].get("create", 0) > 5
