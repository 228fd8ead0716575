"""Running the policy pack (policy/) through the real engine: `pulumi preview --policy-pack`.

The preview streams its engine events as JSON lines (PULUMI_ENABLE_STREAMING_JSON_PREVIEW):
the plain `--json` document of CLI v3.259 carries no policy results, the stream has one
`policyEvent` per violation with the rule's name and level.

The tier's Python language host is v3.79.0 (tests/e2e/go-modules/pulumi-language-python says
why), which predates the CLI's way of starting a policy pack: v3.259 names the pack's
directory in RunPluginRequest.info, v3.79 reads RunPluginRequest.program and so runs
`python "" <engine address>`. `python_with_policy_pack` bridges that one gap: an
interpreter wrapper that runs the pack directory when handed the empty program. A CLI and
language host of the same release (any install of pulumi) need no wrapper.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.pulumi_cli import COMMAND_TIMEOUT, PulumiCli
from tests.support.helpers import ROOT

PACK = ROOT / "policy"
PACK_CONFIG = PACK / "policy-config.json"


def python_with_policy_pack(python: Path, workdir: Path) -> Path:
    wrapper = workdir / "python-with-policy-pack"
    wrapper.write_text(
        "#!/usr/bin/env bash\n"
        "set -euo pipefail\n"
        '# The v3.79 language host starts a policy pack as `python "" <engine>` (policy_pack.py says why).\n'
        'if [[ $# -ge 1 && -z "$1" ]]; then\n'
        "  shift\n"
        # Under act the pack is the job's checkout's (tests/e2e/workflow_loop/).
        f'  exec {python} "${{MLPLATFORM_E2E_POLICY_PACK:-${{GITHUB_WORKSPACE:?the pack directory}}/policy}}" "$@"\n'
        "fi\n"
        f'exec {python} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


@dataclass(frozen=True)
class PolicyViolation:
    policy: str
    level: str
    urn: str
    message: str


@dataclass(frozen=True)
class PolicyPreview:
    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    @property
    def violations(self) -> list[PolicyViolation]:
        return [
            PolicyViolation(e["policyName"], e["enforcementLevel"], e.get("resourceUrn", ""), e["message"])
            for e in (event["policyEvent"] for event in self.events if "policyEvent" in event)
        ]

    @property
    def rules(self) -> set[str]:
        return {v.policy for v in self.violations}

    @property
    def errors(self) -> list[str]:
        """Error diagnostics other than the verdict itself ("preview failed")."""
        return [
            e["diagnosticEvent"]["message"]
            for e in self.events
            if e.get("diagnosticEvent", {}).get("severity") == "error"
            and e["diagnosticEvent"]["message"].strip() != "preview failed"
        ]

    @property
    def summary(self) -> dict[str, Any]:
        summaries = [e["summaryEvent"] for e in self.events if "summaryEvent" in e]
        assert summaries, f"the preview never finished:\n{self.stderr}"
        return summaries[-1]


def preview_with_pack(
    cli: PulumiCli, project: Path, stack: str, *, config_file: Path = PACK_CONFIG, extra: tuple[str, ...] = ()
) -> PolicyPreview:
    """`pulumi preview --policy-pack policy/` on a stack, its events parsed. Never raises on a
    failed preview: a mandatory violation fails it, and the caller asserts on the events."""
    wrapper = python_with_policy_pack(cli.python, cli.home.parent)
    env = {
        **cli.env(),
        "PULUMI_PYTHON_CMD": str(wrapper),
        "MLPLATFORM_E2E_POLICY_PACK": str(PACK),
        "PULUMI_ENABLE_STREAMING_JSON_PREVIEW": "1",
    }
    result = subprocess.run(  # noqa: PLW1510 - a violation's exit code is the result
        [cli.binary, "--non-interactive", "preview", "--stack", stack, "--json",
         "--policy-pack", str(PACK), "--policy-pack-config", str(config_file), *extra],
        cwd=project, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return PolicyPreview(result.returncode, events, result.stderr)


def write_pack_config(path: Path, overrides: dict[str, Any]) -> Path:
    """policy-config.json with `overrides` laid over it, rule by rule."""
    config = json.loads(PACK_CONFIG.read_text())
    for rule, entry in overrides.items():
        config[rule] = {**(config.get(rule) or {}), **entry} if isinstance(entry, dict) else entry
    path.write_text(json.dumps(config, indent=2))
    return path


def record_events(name: str, events: list[dict[str, Any]]) -> None:
    """With MLPLATFORM_E2E_RECORD_DIR set, write a preview's events there: how tests/ci/recorded/
    was made. Debug lines and the step events of unchanged resources are left out (they hold
    every resource's whole state, and the comment uses neither)."""
    directory = os.environ.get("MLPLATFORM_E2E_RECORD_DIR")
    if not directory:
        return

    def unchanged(event: dict[str, Any]) -> bool:
        step = event.get("resourcePreEvent") or event.get("resOutputsEvent")
        return bool(step) and step["metadata"]["op"] == "same"

    kept = [e for e in events if e.get("diagnosticEvent", {}).get("severity") != "debug" and not unchanged(e)]
    Path(directory, name).write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in kept))


def record_text(name: str, text: str) -> None:
    """With MLPLATFORM_E2E_RECORD_DIR set, keep a command's output as a user sees it (for the docs)."""
    directory = os.environ.get("MLPLATFORM_E2E_RECORD_DIR")
    if directory:
        Path(directory, name).write_text(text)
