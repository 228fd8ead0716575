"""The pulumi engine of the e2e tier, outside any fixture: the benchmark builds it the same way.

- `ENGINE_PLUGINS`, `E2E_TOOLS`: what scripts/e2e-tools.sh provides for the tier;
- `program_virtualenv`: a virtualenv holding only what the programs import
  (the platform in mode existing and a model stack), at requirements.txt's
  pins, and the policy pack's runtime (policy/requirements.txt): the CLI runs a
  Python policy pack with the program's interpreter (PULUMI_PYTHON_CMD). The
  engine wants a plugin for every Pulumi provider package installed where the
  program runs, so this keeps the AWS, TLS and random packages (whose
  plugins are not built here) out of it; the repository is on PYTHONPATH;
- `pulumi_cli`: the CLI, logged in to a local backend in `workdir`.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

from mlplatform.tools import plugin_shim
from tests.e2e.pulumi_cli import PulumiCli
from tests.support.helpers import ROOT

ENGINE_PLUGINS = ("pulumi-language-python", "pulumi-resource-kubernetes")
# What this tier runs; the script's other tools (helm, for the chart scan) are not built for it.
E2E_TOOLS = ("pulumi", *ENGINE_PLUGINS, "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# What the programs import, pinned as requirements.txt pins them.
PROGRAM_PACKAGES = ("pulumi", "pulumi-kubernetes", "pydantic", "PyYAML")
POLICY_PACKAGES = ("pulumi-policy",)


def _pins(names: tuple[str, ...], requirements: Path = ROOT / "requirements.txt") -> list[str]:
    wanted = {name.lower() for name in names}
    pins = []
    for line in requirements.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==\S+", line.strip())
        if match and match.group(1).lower() in wanted:
            pins.append(match.group(0))
    if len(pins) != len(names):
        raise AssertionError(f"{requirements.name} must pin each of {names}; found {pins}")
    return pins


def program_virtualenv(cache: Path) -> Path:
    """Its python, behind the plugin-discovery shim; kept in the tools' cache directory, keyed by
    the pins, so later runs reuse it.

    The first run installs the pins from the package index. The virtualenv is fixed once
    installed, so the tier opts in to `mlplatform.tools.plugin_shim`: the language host's
    `pip list` on every preview and `up` is answered from a cache that any change to the
    virtualenv's site-packages invalidates."""
    pins = _pins(PROGRAM_PACKAGES) + _pins(POLICY_PACKAGES, ROOT / "policy" / "requirements.txt")
    venv = cache / f"python-{hashlib.sha256(' '.join(pins).encode()).hexdigest()[:12]}"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pins], check=True)
        (venv / ".installed").write_text("\n".join(pins) + "\n")
    return plugin_shim.install(venv)


def pulumi_cli(tools: dict[str, str], python: Path, workdir: Path) -> PulumiCli:
    # The engine finds the language host and the provider on PATH.
    tool_dirs = [str(Path(tools[name]).parent) for name in ENGINE_PLUGINS]
    cli = PulumiCli(
        binary=tools["pulumi"],
        tool_dirs=list(dict.fromkeys(tool_dirs)),
        python=python,
        repo_root=ROOT,
        home=workdir / "home",
    )
    cli.login(workdir / "state")
    return cli
