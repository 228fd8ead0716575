"""The workflows preview and deploy exactly the stacks a change can affect."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlplatform.tools.ci.changed_stacks import Stack, changed_stacks, main, project_files
from tests.support.helpers import ROOT

DEV, PROD = Stack(".", "dev"), Stack(".", "prod")
M_DEV, M_PROD = Stack("stacks/model", "fraud-detector-dev"), Stack("stacks/model", "fraud-detector-prod")
EVERY = [DEV, PROD, M_DEV, M_PROD]

# A miniature of the repository: two entry points and the ways a module gets imported.
FILES = {
    "__main__.py": "from mlplatform.platform.program import build_platform\n",
    "mlplatform/__init__.py": "",
    "mlplatform/labels.py": "",
    "mlplatform/security.py": "",
    "mlplatform/platform/__init__.py": "",
    "mlplatform/platform/program.py": "from mlplatform import labels\nfrom . import mesh\n",
    "mlplatform/platform/mesh.py": "import mlplatform.security\n",
    "mlplatform/model/__init__.py": "",
    "mlplatform/model/program.py": (
        "from ..labels import *\n"
        "def build():\n"
        "    # imported only when called: still part of the program\n"
        "    from mlplatform.model import serving\n"
    ),
    "mlplatform/model/serving.py": "from mlplatform.security import restricted\n",
    "mlplatform/tools/rollout/__init__.py": "",
    "mlplatform/tools/rollout/cli.py": "import mlplatform.model.program\n",
    "mlplatform/templates/values.yaml": "",
    "stacks/model/__main__.py": "import pulumi\nfrom mlplatform.model.program import build\n",
    "stacks/model/Pulumi.yaml": "",
    "stacks/model/Pulumi.fraud-detector-dev.yaml": "",
    "stacks/model/Pulumi.fraud-detector-prod.yaml": "",
    "Pulumi.yaml": "",
    "Pulumi.dev.yaml": "",
    "Pulumi.prod.yaml": "",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
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
        (["mlplatform/labels.py"], EVERY),
        (["mlplatform/security.py"], EVERY),
        (["requirements.txt"], EVERY),
        (["policy/guardrails/traffic.py"], EVERY),
        (["mlplatform/tools/rollout/cli.py"], []),
        (["mlplatform/tools/new_helper.py"], []),
        (["mlplatform/templates/values.yaml"], EVERY),
        (["mlplatform/model/removed.py"], EVERY),
        (["README.md", "tests/model/test_serving.py", ".github/workflows/x.yml", "docs/x.md", "mkdocs.yml"], []),
        (["stacks/model/Pulumi.gone.yaml"], []),
        (["./Pulumi.dev.yaml", "stacks/model/Pulumi.fraud-detector-dev.yaml"], [DEV, M_DEV]),
    ],
    ids=[
        "model-stack-file",
        "platform-stack-file",
        "import-inside-a-function",
        "model-entry",
        "model-project",
        "relative-import",
        "platform-entry",
        "platform-project",
        "shared-module",
        "shared-through-submodules",
        "dependencies",
        "policy-pack",
        "tools-wing-previews-nothing",
        "new-tools-module-previews-nothing",
        "package-data-fails-safe",
        "deleted-module-fails-safe",
        "no-program-reads-it",
        "deleted-stack",
        "two-files",
    ],
)
def test_paths_map_to_stacks(repo: Path, paths: list[str], expected: list[Stack]) -> None:
    """Each kind of change previews the stacks that run it; package files no program reaches preview all."""
    assert changed_stacks(paths, repo) == expected


def test_the_repository_graph_reaches_the_shared_modules() -> None:
    """The real entry points import security.py (serving, training, the registry) and the config models."""
    graph = project_files(ROOT)
    assert "mlplatform/security.py" in graph["."] and "mlplatform/security.py" in graph["stacks/model"]
    assert "mlplatform/platform/registry/server.py" in graph["."]
    assert {"mlplatform/model/traffic.py", "stacks/model/__main__.py"} <= graph["stacks/model"]
    # A model stack reaches into the platform package only for the IRSA trust builder it shares.
    assert {p for p in graph["stacks/model"] if p.startswith("mlplatform/platform/")} == {
        "mlplatform/platform/__init__.py",
        "mlplatform/platform/iam.py",
    }


def test_every_program_module_maps_to_a_stack() -> None:
    """No file of the program wing can change without a preview: each one maps to at least one stack."""
    modules = sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "mlplatform").rglob("*.py")
        if not path.relative_to(ROOT).as_posix().startswith("mlplatform/tools/")
    )
    assert len(modules) > 20
    graph = project_files(ROOT)
    unmapped = [module for module in modules if not changed_stacks([module], ROOT, graph)]
    assert unmapped == []


def test_cli_prints_a_github_matrix(repo: Path, capsys, monkeypatch) -> None:
    """The workflow feeds `git diff --name-only` on stdin and reads a matrix back."""
    monkeypatch.setattr("sys.stdin", io.StringIO("stacks/model/Pulumi.fraud-detector-prod.yaml\n"))
    assert main(["--root", str(repo)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "include": [{"project": "stacks/model", "stack": "fraud-detector-prod"}]
    }


def test_runs_as_a_script_without_the_project_installed(repo: Path, tmp_path: Path) -> None:
    """The workflows call `python mlplatform/tools/ci/changed_stacks.py` before `make setup`:
    it must run from a bare interpreter with only the standard library (-I: no site-packages)."""
    script = ROOT / "mlplatform" / "tools" / "ci" / "changed_stacks.py"
    done = subprocess.run(
        [sys.executable, "-I", str(script), "--root", str(repo)],
        input="mlplatform/security.py\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["include"]) == 4
