"""The projects `bench.engine` times: model stacks (one per knob variant), the two floors, and the
rollback's Git checkout. Built once, before any round; nothing here is timed."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlplatform.tools.stackfile import editor as stackfile
from tests.e2e.control_plane import ControlPlane
from tests.e2e.platform_stack import STACK_REFERENCE
from tests.e2e.pulumi_cli import PulumiCli
from tests.e2e.test_model_stack_rollout import SERVING, STACK_CONFIG, WINDOW
from tests.support.helpers import ROOT

# The knob "provider first" switched off, for its paired variant only.
PROVIDER_FIRST_OFF = (
    "import mlplatform.model.program as _program\n\n"
    "_program.send_registrations = lambda: None  # bench.engine: the knob off\n\n"
)
# The knob "ASCII image tag" switched off: ImageRef's pattern as it was (Unicode `\w` under `{0,127}`).
IMAGE_TAG_NEW = r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
IMAGE_TAG_OLD = r"(:[\w][\w.-]{0,127})?"

FLOOR_CONFIGMAP = '''"""One provider and one ConfigMap: the engine's floor for a program that changes one object."""

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

config = pulumi.Config()
provider = k8s.Provider("kubernetes", kubeconfig=Path(config.require("kubeconfigPath")).read_text())
k8s.core.v1.ConfigMap(
    "floor",
    metadata={"name": "bench-floor", "namespace": "default"},
    data={"value": config.require("value")},
    opts=pulumi.ResourceOptions(provider=provider),
)
'''


@dataclass
class Stack:
    """One stack the rounds act on, with the CLI (and so the interpreter and PYTHONPATH) it runs under."""

    label: str
    pulumi: PulumiCli
    project: Path
    name: str

    @property
    def file(self) -> Path:
        return self.project / f"Pulumi.{self.name}.yaml"

    def run(self, *args: str) -> None:
        self.pulumi.run(*args, "--stack", self.name, cwd=self.project)


def model_stack(label: str, pulumi: PulumiCli, workdir: Path, name: str, *, main_prefix: str = "") -> Stack:
    """A model stack with a canary at 10 %, no training run, up."""
    project = workdir / name
    project.mkdir(parents=True)
    shutil.copy(ROOT / "stacks" / "model" / "Pulumi.yaml", project / "Pulumi.yaml")
    (project / "__main__.py").write_text(main_prefix + (ROOT / "stacks" / "model" / "__main__.py").read_text())
    config = STACK_CONFIG.format(platform=STACK_REFERENCE, window=WINDOW)
    config = config.replace("fraud-detector", name).replace("fraud_detector", name.replace("-", "_"))
    config = config[: config.index("  mlmodel:training:")]
    pulumi.stack_init(project, name)
    stack = Stack(label, pulumi, project, name)
    stack.file.write_text(stack.file.read_text() + "config:\n" + config)
    pulumi.up(project, name)
    return stack


def step(stack: Stack) -> None:
    """The edit `rollout next` makes, 10 -> 25, or back: always a change from what the file says."""
    current = re.search(r"^    weight: (\d+)", stack.file.read_text(), re.MULTILINE)
    assert current is not None, f"{stack.file}: no canary weight"
    stackfile.apply_edit(stack.file, stackfile.set_weight(10 if current.group(1) == "25" else 25))


def old_image_tag_tree(workdir: Path) -> Path:
    """A copy of the `mlplatform` package with ImageRef's old tag pattern: the imports knob off."""
    tree = workdir / "old-image-tag"
    shutil.copytree(ROOT / "mlplatform", tree / "mlplatform", ignore=shutil.ignore_patterns("__pycache__", "tools"))
    config_types = tree / "mlplatform" / "config_types.py"
    text = config_types.read_text()
    if IMAGE_TAG_NEW not in text:
        raise SystemExit(f"bench.engine: {config_types.name} no longer holds {IMAGE_TAG_NEW}; update the knob")
    config_types.write_text(text.replace(IMAGE_TAG_NEW, IMAGE_TAG_OLD))
    return tree


def without_shim(pulumi: PulumiCli) -> PulumiCli:
    """The same CLI with the virtualenv's own python: the language host runs `pip list` every time."""
    return dataclasses.replace(pulumi, python=pulumi.python.parent / "python")


def with_repo(pulumi: PulumiCli, tree: Path) -> PulumiCli:
    return dataclasses.replace(pulumi, repo_root=tree)


@dataclass
class Floor:
    """A floor program; `configmap` edits its one value each round so every `up` updates one object."""

    stack: Stack
    config_head: str = ""

    def set_value(self, value: str) -> None:
        if self.config_head:
            self.stack.file.write_text(self.config_head + f'  floor-configmap:value: "{value}"\n')


def floor(kind: str, pulumi: PulumiCli, workdir: Path, api: ControlPlane) -> Floor:
    name = f"floor-{kind}"
    project = workdir / name
    project.mkdir(parents=True)
    (project / "Pulumi.yaml").write_text(f"name: {name}\nruntime: python\n")
    (project / "__main__.py").write_text(FLOOR_CONFIGMAP if kind == "configmap" else "")
    pulumi.stack_init(project, name)
    result = Floor(Stack(f"{kind} program", pulumi, project, name))
    if kind == "configmap":
        result.config_head = (
            result.stack.file.read_text() + f"config:\n  floor-configmap:kubeconfigPath: {api.admin_kubeconfig}\n"
        )
        result.set_value("start")
    pulumi.up(project, name)
    return result


def split_copy(api: ControlPlane, model: str) -> str:
    """A copy of the model's TrafficSplit, unmanaged: patching the managed one would make the next
    preview fail on a field conflict. Returns its path."""
    base = f"/apis/split.smi-spec.io/v1alpha2/namespaces/{SERVING}/trafficsplits"
    split = api.get(f"{base}/{model}")
    assert split is not None, f"no TrafficSplit {model}"
    copy = {
        "apiVersion": split["apiVersion"],
        "kind": split["kind"],
        "metadata": {"name": f"{model}-bench-copy", "namespace": SERVING},
        "spec": split["spec"],
    }
    api.request("POST", base, copy)
    return f"{base}/{model}-bench-copy"


def git_checkout(stack: Stack) -> bytes:
    """The rollback stack's project as a Git checkout with its file committed; returns the file's bytes."""

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=bench", "-c", "user.email=bench@local", *args],
            cwd=stack.project,
            check=True,
            capture_output=True,
        )

    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-q", "-m", "rollback bench at 10%")
    return stack.file.read_bytes()


def reset_rollback(stack: Stack, committed: bytes, before_up: Callable[[], None]) -> None:
    """Back to the canary at 10 %, committed and applied: the next round's abort starts where this one did.
    `before_up` runs once the file gives 10 % again (the abort on the record is cleared there)."""
    stack.file.write_bytes(committed)
    before_up()
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@local", "commit", "-q", "-am", "back to 10%"],
        cwd=stack.project,
        check=True,
        capture_output=True,
    )
    stack.pulumi.up(stack.project, stack.name)
