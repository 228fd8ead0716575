"""The workflows' hardening rules, checked on the files as written.

- every shell step runs under bash with `-euo pipefail` (a failed `git diff` in a
  pipe once went green with an empty matrix);
- every third-party action is pinned to a full commit SHA, with its version in a
  comment, and one action is pinned to one commit everywhere;
- the Pulumi CLI comes from the checksum-verifying local action, never from
  `curl | sh`, and every job that runs pulumi installs it before its first pulumi step;
- the Pulumi token never reaches a job that a fork's pull request runs;
- test.yml runs on a stock hosted runner: Go at the Makefile's GO_MIN, the Debian
  packages from `make deps`, the charts from upstream;
- `.ci/run` lints the workflows (actionlint, zizmor) before the suite.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.support.helpers import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
LOCAL_ACTIONS = ROOT / ".github" / "actions"
STRICT_BASH = "bash --noprofile --norc -euo pipefail {0}"
PINNED = re.compile(
    r"^\s*(?:- )?uses: (?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40}) # (?P<version>v\d+\.\d+\.\d+)\b"
)
PULUMI_CLI = "./.github/actions/pulumi-cli"
GUARDED = "./.github/actions/pulumi-guarded"


def _load(path: Path) -> dict[str, Any]:
    return YAML(typ="safe").load(path.read_text())


def _workflow_files() -> list[Path]:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert len(files) == 4, files
    return files


def _action_files() -> list[Path]:
    files = sorted(LOCAL_ACTIONS.glob("*/action.yml"))
    assert files, "the local actions (.github/actions/*/action.yml) are expected"
    return files


def _steps(path: Path) -> list[tuple[str, dict[str, Any]]]:
    document = _load(path)
    if "jobs" in document:
        return [
            (f"{path.name}:{name}", step) for name, job in document["jobs"].items() for step in job.get("steps", [])
        ]
    return [(f"{path.name}", step) for step in document["runs"].get("steps", [])]


def test_every_workflow_run_step_is_strict_bash():
    """`defaults.run.shell` is strict bash in each workflow, and no step chooses another shell."""
    for path in _workflow_files():
        assert _load(path).get("defaults", {}).get("run", {}).get("shell") == STRICT_BASH, path.name
        for where, step in _steps(path):
            if "run" in step:
                assert step.get("shell", STRICT_BASH) == STRICT_BASH, (where, step.get("name"))


def test_every_composite_run_step_is_strict_bash():
    """A composite action has no defaults: each of its run steps names the shell."""
    for path in _action_files():
        runs = [(where, step) for where, step in _steps(path) if "run" in step]
        assert runs, path
        for where, step in runs:
            assert step.get("shell") == STRICT_BASH, (where, step.get("id"))


def test_every_third_party_action_is_pinned_to_a_commit_with_its_version():
    """`owner/repo@<40 hex> # vX.Y.Z`, on the `uses:` line itself; local actions (`./`) are the repository's own."""
    pins: dict[str, set[tuple[str, str]]] = {}
    for path in [*_workflow_files(), *_action_files()]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not re.match(r"^\s*(- )?uses:", line):
                continue
            if re.match(r"^\s*(- )?uses: \./", line):
                continue
            match = PINNED.match(line)
            assert match, f"{path.name}:{number}: not pinned to a commit SHA with a version comment: {line.strip()}"
            pins.setdefault(match["action"], set()).add((match["sha"], match["version"]))
    assert {"actions/checkout", "actions/setup-python", "actions/upload-artifact"} <= set(pins), sorted(pins)
    for action, versions in pins.items():
        assert len(versions) == 1, f"{action} is pinned to more than one commit: {sorted(versions)}"


def test_the_pin_check_refuses_a_tag_and_a_bare_sha():
    for line in (
        "      - uses: actions/checkout@v4",
        "      - uses: actions/checkout@" + "a" * 40,
        "      - uses: actions/checkout@" + "a" * 39 + " # v4.1.1",
    ):
        assert not PINNED.match(line), line
    assert PINNED.match("      - uses: actions/checkout@" + "a" * 40 + " # v4.1.1")


def test_the_pulumi_cli_is_installed_checksum_verified_before_any_pulumi_step():
    """No `curl | sh`, and no pulumi/actions (which would download a CLI it does not check): every job that runs
    pulumi (the guarded local action, or `rollout watch`'s Automation API) installs the pinned CLI first."""
    action = (LOCAL_ACTIONS / "pulumi-cli" / "action.yml").read_text()
    assert "sha256sum --check --strict" in action
    jobs_with_pulumi = 0
    for path in _workflow_files():
        assert not re.search(r"curl[^\n]*\|\s*(ba)?sh", path.read_text()), path.name
        assert "pulumi/actions@" not in path.read_text(), path.name
        for name, job in _load(path)["jobs"].items():
            steps = job.get("steps", [])
            uses = [str(step.get("uses", "")).split("@")[0] for step in steps]
            runs_pulumi = [
                i for i, s in enumerate(steps) if uses[i] == GUARDED or "rollout watch" in str(s.get("run", ""))
            ]
            if not runs_pulumi:
                assert PULUMI_CLI not in uses, (path.name, name)
                continue
            jobs_with_pulumi += 1
            assert uses.index(PULUMI_CLI) < runs_pulumi[0], (path.name, name)
    assert jobs_with_pulumi == 4  # preview, up-platform, up-models, watch


def _jobs_with_the_pulumi_token(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, job) for name, job in document["jobs"].items() if "secrets.PULUMI_ACCESS_TOKEN" in str(job)]


def test_the_pulumi_token_reaches_no_fork_pull_request():
    """In a workflow a pull request triggers, a job holding the token runs only for a branch of this repository."""
    same_repo = "github.event.pull_request.head.repo.full_name == github.repository"
    checked = 0
    for path in _workflow_files():
        document = _load(path)
        if "pull_request" not in document["on"] and "pull_request_target" not in document["on"]:
            continue
        assert "pull_request_target" not in document["on"], path.name
        for name, job in _jobs_with_the_pulumi_token(document):
            condition = " ".join(str(job.get("if", "")).split())
            assert same_repo in condition, (path.name, name, condition)
            checked += 1
    assert checked == 1  # preview.yml's preview job


def _make_variable(name: str) -> str:
    match = re.search(rf"^{name} := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, name
    return match.group(1).strip()


def test_the_suite_runs_on_a_stock_hosted_runner():
    suite = _load(WORKFLOWS / "test.yml")["jobs"]["suite"]
    assert suite["runs-on"] == "ubuntu-latest" and "container" not in suite
    (setup_go,) = [s for s in suite["steps"] if str(s.get("uses", "")).startswith("actions/setup-go@")]
    assert setup_go["with"]["go-version"] == _make_variable("GO_MIN")
    runs = [s["run"] for s in suite["steps"] if "run" in s]
    assert 'sudo env "PATH=$PATH" make deps' in runs
    (ci_run,) = [s for s in suite["steps"] if s.get("run") == ".ci/run"]
    assert ci_run["env"]["MLPLATFORM_TEST_CHARTS"] == "upstream"
    # ... and the Debian package list holds shellcheck, which actionlint runs.
    assert "shellcheck:shellcheck" in _make_variable("DEB_TOOLS").split()


def test_ci_lints_the_workflows_before_the_suite():
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert "make lint-workflows" in ci_run
    assert ci_run.index("\nmake lint-workflows") < ci_run.index("\nmake test")
    recipe = re.search(r"^lint-workflows:.*?(?=^\S|\Z)", (ROOT / "Makefile").read_text(), re.M | re.S)
    assert recipe and "actionlint" in recipe.group(0) and "zizmor --offline" in recipe.group(0)


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml", "rollout.yml"])
def test_no_job_keeps_a_token_it_does_not_push_with(name: str):
    """Checkouts drop the job's token (`persist-credentials: false`), except the one job that pushes."""
    for workflow_job, step in _steps(WORKFLOWS / name):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            persisted = step.get("with", {}).get("persist-credentials", True)
            assert persisted is False or workflow_job == "rollout.yml:watch", workflow_job
