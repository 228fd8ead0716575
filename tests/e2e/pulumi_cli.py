"""Driving the real pulumi CLI for the end-to-end tier.

Every run is hermetic: PULUMI_HOME and the state backend live in the test's
temp dir (`pulumi login file://...`, the local backend), plugins come from PATH
only (the tools scripts/e2e-tools.sh provides), automatic plugin acquisition and
update checks are off, and stacks are encrypted with a fixed test passphrase.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASSPHRASE = "mlplatform-e2e-only"
MODEL_PROJECT = Path(__file__).resolve().parents[2] / "stacks" / "model"
COMMAND_TIMEOUT = 600


@dataclass(frozen=True)
class Step:
    """One step of `pulumi preview --json`: what the engine will do to one resource."""

    op: str
    urn: str
    type: str
    diff_paths: tuple[str, ...]
    """The property paths that differ (`detailedDiff`), e.g. `spec.backends[0].weight`."""

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


class PulumiError(AssertionError):
    pass


@dataclass
class PulumiCli:
    binary: str
    tool_dirs: list[str]
    """Where the language host and the provider are, put first on PATH."""
    python: Path
    repo_root: Path
    home: Path

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            # Nothing from the developer's own Pulumi setup leaks in.
            if not key.startswith("PULUMI_") and key not in ("KUBECONFIG", "PYTHONPATH", "VIRTUAL_ENV")
        }
        env.update(
            PATH=os.pathsep.join([*self.tool_dirs, str(self.python.parent), env.get("PATH", "")]),
            PULUMI_HOME=str(self.home),
            PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
            PULUMI_SKIP_UPDATE_CHECK="true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
            PULUMI_SKIP_CONFIRMATIONS="true",
            # The Python language host runs programs with this interpreter: a
            # venv holding only what a model stack imports (see conftest.py).
            PULUMI_PYTHON_CMD=str(self.python),
            PYTHONPATH=str(self.repo_root),
            PYTHONUNBUFFERED="1",
            # No ambient cluster: every provider gets its kubeconfig explicitly.
            KUBECONFIG=os.devnull,
        )
        return env

    def rollout_env(self, kubeconfig: Path, author: str = "e2e") -> dict[str, str]:
        """`mlplatform rollout` as CI runs it: this hermetic env, the CLI first on PATH (where `--apply`
        finds it), the rollout state on the API server's record (no ROLLOUT_STATUS_FILE), and a Git
        identity for the commits `--apply` makes."""
        env = self.env()
        env["PATH"] = f"{Path(self.binary).parent}{os.pathsep}{env['PATH']}"
        env["KUBECONFIG"] = str(kubeconfig)
        env.pop("ROLLOUT_STATUS_FILE", None)
        env.update(GIT_AUTHOR_NAME=author, GIT_AUTHOR_EMAIL=f"{author}@local")
        env.update(GIT_COMMITTER_NAME=author, GIT_COMMITTER_EMAIL=f"{author}@local")
        return env

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, "--non-interactive", *args],
            cwd=cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,  # PulumiError below carries both streams
        )
        if result.returncode != 0:
            raise PulumiError(
                f"pulumi {' '.join(args)} exited {result.returncode}\n"
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            )
        return result

    def login(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.run("login", f"file://{state_dir}", cwd=state_dir)

    def stack_init(self, project: Path, stack: str) -> None:
        self.run("stack", "init", stack, "--secrets-provider", "passphrase", cwd=project)

    def model_stack(self, project: Path, stack: str, config: str) -> Path:
        """A copy of the model project's real entry point in `project` (created), the stack `stack` in
        it with `config` (the lines under `config:`); returns the stack file."""
        project.mkdir(parents=True)
        for name in ("Pulumi.yaml", "__main__.py"):
            shutil.copy(MODEL_PROJECT / name, project / name)
        self.stack_init(project, stack)
        stack_file = project / f"Pulumi.{stack}.yaml"
        stack_file.write_text(stack_file.read_text() + "config:\n" + config)
        return stack_file

    def config_set(
        self, project: Path, stack: str, key: str, value: str, *, secret: bool = False, path: bool = False
    ) -> None:
        flags = [*(["--secret"] if secret else []), *(["--path"] if path else [])]
        # After `--`, so a value that starts with a dash (a PEM) is not read as a flag.
        self.run("config", "set", "--stack", stack, *flags, "--", key, value, cwd=project)

    def refresh(self, project: Path, stack: str) -> subprocess.CompletedProcess[str]:
        return self.run("refresh", "--stack", stack, "--yes", "--skip-preview", cwd=project)

    def up(self, project: Path, stack: str) -> subprocess.CompletedProcess[str]:
        return self.run("up", "--stack", stack, "--yes", "--skip-preview", cwd=project)

    def preview(self, project: Path, stack: str) -> list[Step]:
        """The steps of `pulumi preview --diff --json`, same-steps included."""
        result = self.run("preview", "--stack", stack, "--diff", "--json", cwd=project)
        try:
            document = json.loads(result.stdout)
        except json.JSONDecodeError as error:
            raise PulumiError(f"pulumi preview --json printed no JSON: {result.stdout}\n{result.stderr}") from error
        return [_step(step) for step in document.get("steps", [])]

    def destroy(self, project: Path, stack: str) -> subprocess.CompletedProcess[str]:
        return self.run("destroy", "--stack", stack, "--yes", "--skip-preview", cwd=project)

    def stack_resources(self, project: Path, stack: str, resource_type: str) -> list[dict[str, Any]]:
        """The resources of one type in the stack's state, secrets decrypted."""
        result = self.run("stack", "export", "--stack", stack, "--show-secrets", cwd=project)
        resources = json.loads(result.stdout)["deployment"].get("resources") or []
        return [resource for resource in resources if resource["type"] == resource_type]

    def config(self, project: Path, stack: str) -> dict[str, Any]:
        """The stack's config, secrets decrypted, by full key (`mlplatform:mesh`)."""
        result = self.run("config", "--stack", stack, "--json", "--show-secrets", cwd=project)
        return {key: entry.get("objectValue", entry.get("value")) for key, entry in json.loads(result.stdout).items()}

    def resource_count(self, project: Path, stack: str, *, managed_only: bool = False) -> int:
        """The resources in the stack's state; `managed_only` leaves out reads (`external`: the engine
        reads them, never creates or deletes them, such as the model program's read of its live record)."""
        result = self.run("stack", "export", "--stack", stack, cwd=project)
        resources = json.loads(result.stdout)["deployment"].get("resources") or []
        return len([r for r in resources if not (managed_only and r.get("external"))])


def _step(step: dict[str, Any]) -> Step:
    new_state = step.get("newState") or step.get("oldState") or {}
    return Step(
        op=step["op"],
        urn=step["urn"],
        type=new_state.get("type") or step["urn"].split("::")[-2].split("$")[-1],
        diff_paths=tuple(sorted(step.get("detailedDiff") or ())),
    )
