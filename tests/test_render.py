"""`mlplatform render`: the project's offline main job, run through the CLI as a newcomer would."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.tools.cli import main
from tests.support.helpers import ROOT
from tests.support.manifest_validation import problems
from tests.support.types import AWS_EKS_CLUSTER, AWS_RDS_INSTANCE, AWS_S3_BUCKET, K8S_PROVIDER

MODEL_DIR = ROOT / "stacks" / "model"
MODEL_STACKS = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in MODEL_DIR.glob("Pulumi.*.yaml"))
STACKS = [(ROOT, "dev"), (ROOT, "prod"), *((MODEL_DIR, s) for s in MODEL_STACKS)]
STACK_IDS = [s for _, s in STACKS]


@dataclass
class Rendered:
    exit_code: int
    stdout: str
    out: Path

    @property
    def manifests(self) -> list[Path]:
        return sorted((self.out / "manifests").glob("*.yaml"))

    def documents(self) -> list[dict[str, Any]]:
        return [yaml.safe_load(p.read_text()) for p in self.manifests]

    @property
    def plan(self) -> dict[str, Any]:
        return yaml.safe_load((self.out / "plan.yaml").read_text())

    @property
    def outputs(self) -> dict[str, Any]:
        return yaml.safe_load((self.out / "outputs.yaml").read_text())


def _render(project: Path, stack: str, out: Path, *extra: str) -> Rendered:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["render", str(project), stack, "--out", str(out), *extra])
    return Rendered(code, stdout.getvalue(), out)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Rendered]:
    """Every stack of both projects rendered once, with secrets redacted."""
    base = tmp_path_factory.mktemp("rendered")
    return {stack: _render(project, stack, base / stack) for project, stack in STACKS}


@pytest.fixture(scope="module")
def dev_with_secrets(tmp_path_factory) -> Rendered:
    return _render(ROOT, "dev", tmp_path_factory.mktemp("shown"), "--show-secrets")


def test_model_stack_files_are_found():
    """The example stacks are what README tells newcomers to render."""
    assert {"fraud-detector-dev", "fraud-detector-prod"} <= set(MODEL_STACKS)


# -- manifests -----------------------------------------------------------------------
@pytest.mark.parametrize("stack", STACK_IDS)
def test_every_kubernetes_object_gets_its_own_file(rendered, stack):
    """GitOps tools want one object per file; the count must match what the program declares."""
    result = rendered[stack]
    assert result.exit_code == 0
    documents = result.documents()
    assert documents and all({"apiVersion", "kind", "metadata"} <= set(d) for d in documents)
    declared = sum(
        int(count)
        for count, type_token in re.findall(r"^\s+(\d+)\s+(kubernetes:\S+)$", result.stdout, re.M)
        if "helm.sh" not in type_token
    )
    assert len(documents) == declared
    assert f"wrote {declared} Kubernetes manifests" in result.stdout
    identities = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in documents}
    assert len(identities) == len(documents), "two files describe the same object"


@pytest.mark.parametrize("stack", STACK_IDS)
def test_files_are_numbered_in_apply_order(rendered, stack):
    """`kubectl apply -f manifests/` applies in name order: definitions and namespaces must come first."""
    result = rendered[stack]
    numbers = [int(p.name.split("-", 1)[0]) for p in result.manifests]
    assert numbers == list(range(1, len(numbers) + 1))
    kinds = [d["kind"] for d in result.documents()]
    rank = [0 if k == "CustomResourceDefinition" else 1 if k == "Namespace" else 2 for k in kinds]
    assert rank == sorted(rank), kinds


def test_platform_defines_crds_and_namespaces_before_the_rest(rendered):
    """The platform's ML CRDs and namespaces head the list, so the rest can be applied into them."""
    kinds = [d["kind"] for d in rendered["dev"].documents()]
    assert kinds[:4] == ["CustomResourceDefinition"] * 4
    assert kinds[4] == "Namespace"


@pytest.mark.parametrize("stack", ["dev", "fraud-detector-prod"])
def test_rendered_manifests_validate_strictly(dev_with_secrets, rendered, stack):
    """The files themselves, read back from YAML, are objects the API server accepts."""
    result = dev_with_secrets if stack == "dev" else rendered[stack]
    assert result.manifests
    assert [f"{p.name}: {e}" for p in result.manifests for e in problems(yaml.safe_load(p.read_text()))] == []


# -- plan ------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_plan_lists_helm_releases_with_pinned_charts(rendered, stack):
    """A reviewer must see which chart, from which repository, at which version, each release installs."""
    releases = rendered[stack].plan["helmReleases"]
    charts = {r["chart"] for r in releases}
    assert {"linkerd-crds", "linkerd-control-plane", "kube-prometheus-stack", "nvidia-device-plugin"} <= charts
    for release in releases:
        assert release["repo"].startswith("https://"), release
        assert re.fullmatch(r"\d+\.\d+\.\d+", release["version"]), release
        assert release["name"] and release["namespace"]


def test_plan_lists_the_cloud_resources(rendered):
    """Without an AWS account the plan is the only place to see what `pulumi up` would create."""
    resources = rendered["prod"].plan["resources"]
    types = {r["type"] for r in resources}
    assert {AWS_EKS_CLUSTER, AWS_RDS_INSTANCE, AWS_S3_BUCKET} <= types
    assert not any(t.startswith("kubernetes:") and "providers" not in t for t in types)
    eks = next(r for r in resources if r["type"] == AWS_EKS_CLUSTER)
    assert eks["name"] and eks["properties"]["version"] == "1.33"


def test_model_plan_has_no_cloud_resources(rendered):
    """A model stack only talks to the cluster: its plan holds the provider and no Helm release."""
    plan = rendered["fraud-detector-prod"].plan
    assert plan["helmReleases"] == []
    assert {r["type"] for r in plan["resources"]} == {K8S_PROVIDER}


# -- secrets ---------------------------------------------------------------------------
def _secret_strings(shown: Rendered) -> list[str]:
    backend = next(d for d in shown.documents() if d["kind"] == "Secret" and d["metadata"]["name"] == "mlflow-backend")
    return [*backend["stringData"].values(), shown.outputs["kubeconfig"]]


def test_secrets_are_redacted_by_default(rendered, dev_with_secrets):
    """Rendered files end up in repositories and CI logs: no secret value may appear in them."""
    redacted = rendered["dev"]
    backend = next(d for d in redacted.documents() if d["kind"] == "Secret")
    # Still a Secret kubectl accepts: every key is kept, with the placeholder as its value.
    assert backend["stringData"] and set(backend["stringData"].values()) == {"[secret]"}
    assert redacted.outputs["kubeconfig"] == "[secret]"
    assert "pass --show-secrets" in redacted.stdout
    everything = "\n".join(p.read_text() for p in redacted.out.rglob("*.yaml"))
    for value in _secret_strings(dev_with_secrets):
        assert value not in everything


def test_show_secrets_writes_the_offline_values(dev_with_secrets):
    """--show-secrets is for inspecting what would be stored, e.g. the MLflow backend URI."""
    uri, kubeconfig = _secret_strings(dev_with_secrets)
    assert uri.startswith("postgresql+psycopg2://mlflow:")
    assert '"kind": "Config"' in kubeconfig


# -- printout and errors -------------------------------------------------------------------
def test_tree_printout_shows_components_and_counts(rendered):
    """The printout is the quick answer to 'what does this stack contain?'."""
    lines = rendered["prod"].stdout.splitlines()
    assert lines[0] == "mlplatform-prod (pulumi:pulumi:Stack)"
    assert re.search(r"^├─ cluster \(mlplatform:platform:Cluster\) \[\d+ resources\]$", "\n".join(lines), re.M)
    assert re.search(r"^\d+ resources, \d+ components$", "\n".join(lines), re.M)
    assert re.search(r"^\s+4\s+kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition$", "\n".join(lines), re.M)


def test_unknown_stack_exits_2_with_one_line(tmp_path, capsys):
    """A typo in the stack name must say which stacks exist, not print a traceback."""
    assert main(["render", str(MODEL_DIR), "fraud-detector-staging", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: no stack 'fraud-detector-staging'")
    assert "fraud-detector-dev, fraud-detector-prod" in err


def test_invalid_config_exits_2_naming_the_key(tmp_path, capsys):
    """A bad stack file stops the render before anything is written, with the key and the rule."""
    project = tmp_path / "platform"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, project / name)
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    config["config"]["mlplatform:nodepools"] = {"gpu": {"enabled": False}}
    (project / "Pulumi.broken.yaml").write_text(yaml.safe_dump(config))

    out = tmp_path / "out"
    assert main(["render", str(project), "broken", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid configuration for stack 'broken' (1 problem):")
    assert "mlplatform:nodepools is not a known key" in err
    assert "Traceback" not in err
    assert not out.exists()
