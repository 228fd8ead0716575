"""Issue 10: `mlplatform render` hands its output to GitOps, which needs byte-identical
files for identical input, and Secrets that `kubectl apply` accepts even when redacted."""

from __future__ import annotations

import base64
import contextlib
import io
from pathlib import Path

import pytest
import yaml

from mlplatform.tools.cli import main
from mlplatform.tools.render import apply_order, manifest_of, render_stack
from tests.support.helpers import ROOT

MODEL_DIR = ROOT / "stacks" / "model"
EXAMPLE_STACKS = [(ROOT, "dev"), (ROOT, "prod"), (MODEL_DIR, "fraud-detector-dev"), (MODEL_DIR, "fraud-detector-prod")]


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("project", "stack"), EXAMPLE_STACKS, ids=[s for _, s in EXAMPLE_STACKS])
def test_three_renders_are_byte_identical(tmp_path, project, stack):
    """Same names, same numbering, same bytes, and the same printed tree, three times over."""
    runs = []
    for attempt in range(3):
        out = tmp_path / str(attempt)
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            assert main(["render", str(project), stack, "--out", str(out)]) == 0
        runs.append((_files(out), stdout.getvalue().replace(str(out), "OUT")))
    assert len(runs[0][0]) > 3
    assert runs[1] == runs[0]
    assert runs[2] == runs[0]


def test_files_follow_apply_phase_then_kind_namespace_name():
    """The numbering is a function of the objects alone: CRDs, then namespaces, and within a
    phase by kind, namespace and name."""
    ordered = apply_order(render_stack(ROOT, "prod").resources)
    keys = [(r.kind, r.metadata.get("namespace") or "", r.metadata.get("name")) for r in ordered]
    crds = [k for k in keys if k[0] == "CustomResourceDefinition"]
    assert crds and keys[: len(crds)] == sorted(crds)
    namespaces = [k for k in keys if k[0] == "Namespace"]
    assert namespaces and keys[len(crds) : len(crds) + len(namespaces)] == sorted(namespaces)


def test_redacted_secret_keeps_its_keys_with_placeholder_values():
    """`stringData: '[secret]'` is rejected by kubectl; each key keeps its name instead."""
    recording = render_stack(ROOT, "prod")
    secrets = [r for r in recording.kubernetes_objects if r.kind == "Secret"]
    assert secrets
    for resource in secrets:
        manifest = manifest_of(resource)
        shown = manifest_of(resource, show_secrets=True)
        for field in ("stringData", "data"):
            if field not in shown:
                continue
            assert isinstance(manifest[field], dict), (resource, manifest[field])
            assert sorted(manifest[field]) == sorted(shown[field])
            for value in manifest[field].values():
                assert value in ("[secret]", base64.b64encode(b"[secret]").decode())
        assert yaml.safe_load(yaml.safe_dump(manifest))["kind"] == "Secret"
