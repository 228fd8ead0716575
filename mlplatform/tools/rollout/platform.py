"""The platform facts a rollout needs, read from the platform stack's outputs.

A model stack names its platform in `mlmodel:platformStack`. The serving
namespace, the Prometheus URL and the MLflow tracking URI are the platform's
facts: the tool reads them from that stack's outputs and never keeps a default
of its own. The outputs come from, in order:

1. `--platform-outputs FILE`: the JSON of `pulumi stack output --json` (CI can
   save it once; secrets are not needed);
2. `pulumi stack output --json --stack <platformStack>`, when the `pulumi` CLI
   is on PATH and logged in;
3. an offline render of the platform stack from this repository, as
   `mlplatform render` and `diff` answer a StackReference. It shows the
   platform as the repository declares it, which GitOps deploys.

The outputs are fetched at most once per command, and only when a fact is
needed that the user did not give (`--namespace`, `--prometheus-url`, ...).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplatform.platform_contract import ContractError, PlatformContract, Problem
from mlplatform.tools import pulumi_cli
from mlplatform.tools.service_proxy import ServiceRef

PULUMI_TIMEOUT_SECONDS = 60.0


class PlatformOutputError(Exception):
    """The platform's outputs cannot be found, or lack a value the command needs."""


def platform_stack_name(reference: str) -> str:
    """`organization/mlplatform/prod` -> `prod`: the platform stack a StackReference names."""
    return reference.rsplit("/", 1)[-1]


def port_forward_hint(url: str, env_var: str, flag: str) -> str:
    """How to reach an in-cluster service URL from a laptop, derived from the URL itself."""
    service = ServiceRef.parse(url)
    if service is None:
        return f"pass {flag} or set {env_var} to a URL this machine can reach"
    return (
        f"{url} is in-cluster only; run `kubectl -n {service.namespace} port-forward svc/{service.name} "
        f"{service.port}` and pass {flag} http://127.0.0.1:{service.port} (or set {env_var})"
    )


def _from_file(path: Path) -> dict[str, Any]:
    try:
        outputs = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlatformOutputError(f"--platform-outputs {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PlatformOutputError(f"--platform-outputs {path}: cannot read it: {err}") from None
    except json.JSONDecodeError as err:
        raise PlatformOutputError(
            f"--platform-outputs {path}:{err.lineno}:{err.colno}: not JSON (`pulumi stack output --json`): {err.msg}"
        ) from None
    if not isinstance(outputs, dict):
        raise PlatformOutputError(f"--platform-outputs {path}: expected a JSON object of stack outputs")
    return outputs


def _from_pulumi(reference: str, cwd: Path) -> dict[str, Any] | None:
    """`pulumi stack output --json`, or None when the CLI is absent, not logged in, or fails."""
    pulumi = pulumi_cli.find()
    if pulumi is None:
        return None

    def run(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(
                [pulumi, *args, "--non-interactive"],
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=PULUMI_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None

    whoami = run("whoami")
    if whoami is None or whoami.returncode != 0:
        return None
    done = run("stack", "output", "--json", "--stack", reference)
    if done is None or done.returncode != 0:
        return None
    try:
        outputs = json.loads(done.stdout)
    except json.JSONDecodeError:
        return None
    return outputs if isinstance(outputs, dict) else None


def _from_render(reference: str, project_dir: Path, platform_dir: Path | None) -> dict[str, Any]:
    # Imported here: rendering loads the Pulumi SDK and the platform program, which
    # the commands that never need the platform should not pay for.
    from mlplatform.configuration import ConfigError
    from mlplatform.tools.offline.secrets import unwrap_secrets
    from mlplatform.tools.render import RenderError, find_platform_dir, render_stack

    directory = platform_dir or find_platform_dir(project_dir.resolve())
    if directory is None:
        raise PlatformOutputError(
            f"platform stack '{reference}': no platform project found above {project_dir}, and no "
            "logged-in `pulumi` CLI to ask; pass --platform-outputs FILE (`pulumi stack output --json`)"
        )
    try:
        return unwrap_secrets(render_stack(directory, platform_stack_name(reference)).stack_outputs)
    except (RenderError, ConfigError) as err:
        raise PlatformOutputError(f"platform stack '{reference}': cannot render it offline: {err}") from None


@dataclass
class Platform:
    """The platform stack a model stack references, read lazily, once."""

    reference: str
    project_dir: Path
    outputs_file: Path | None = None
    platform_dir: Path | None = None
    on_source: Callable[[str], None] | None = None
    _outputs: dict[str, Any] | None = field(default=None, init=False, repr=False)
    _contract: PlatformContract | None = field(default=None, init=False, repr=False)

    def outputs(self) -> dict[str, Any]:
        if self._outputs is None:
            if self.outputs_file is not None:
                self._outputs, source = _from_file(self.outputs_file), f"--platform-outputs {self.outputs_file}"
            else:
                self._outputs = _from_pulumi(self.reference, self.project_dir)
                source = f"`pulumi stack output --stack {self.reference}`"
                if self._outputs is None:
                    self._outputs = _from_render(self.reference, self.project_dir, self.platform_dir)
                    source = f"offline render of platform stack '{platform_stack_name(self.reference)}'"
            if self.on_source is not None:
                self.on_source(source)
        return self._outputs

    def contract(self) -> PlatformContract:
        """The outputs, validated against the contract the platform exports; every problem named at once."""
        if self._contract is None:
            try:
                self._contract = PlatformContract.parse(self.outputs())
            except ContractError as err:
                raise PlatformOutputError("; ".join(self._worded(p) for p in err.problems)) from None
        return self._contract

    def _worded(self, problem: Problem) -> str:
        if problem.expected is None:
            return (
                f"platform stack '{self.reference}' has no output `{problem.key}`; "
                "is it up to date with the platform program?"
            )
        return (
            f"platform stack '{self.reference}': output `{problem.key}` must be {problem.expected}, got {problem.got!r}"
        )

    def serving_namespace(self) -> str:
        return self.contract().namespaces.serving

    def prometheus_url(self) -> str:
        return self.contract().prometheus_url

    def mlflow_tracking_uri(self) -> str:
        return self.contract().mlflow_tracking_uri
