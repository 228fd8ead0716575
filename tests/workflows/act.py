"""Running the repository's workflow files with nektos/act, in host mode, offline.

What act is given, and why:
- `-P ubuntu-latest=-self-hosted`: every job runs on this machine, no container;
  a job whose `runs-on` has no mapping is skipped while act still exits 0, so a
  run is judged by the jobs it reports (`ActRun.jobs`), never by its exit code alone;
- `--action-offline-mode` and one `--local-repository` per pinned third-party
  action, mapped to the stand-ins in tests/workflows/actions/ (actions/checkout is
  not mapped: act copies the working tree in its place);
- `ACT_DISABLE_VERSION_CHECK=1` and `--cache-server-addr 127.0.0.1`: otherwise act
  looks its own version up online and binds its cache server to a non-loopback address;
- `--var`, `--env` and an event file: the repository variables, `GITHUB_REPOSITORY`
  and the webhook payload GitHub would give.

act ignores `concurrency:`, `environment:` and `permissions:` and has no OIDC
token; tests/test_workflows.py checks those as data instead. The GitHub API the
workflows call through `gh` (PRs, artifacts, comments) and the artifact actions are
answered from a directory per test (github_state.py); the Pulumi CLI the workflows
install records each call (pulumi_release.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.helpers import ROOT
from tests.workflows.github_state import GitHubState

STAND_INS = Path(__file__).parent / "actions"
# The stand-in for each third-party action the workflows pin; setup-go only runs in test.yml's suite,
# which these tests do not run (it is .ci/run itself).
STAND_IN_OF = {
    "actions/setup-python": "setup-python",
    "aws-actions/configure-aws-credentials": "configure-aws-credentials",
    "actions/create-github-app-token": "create-github-app-token",
    "actions/upload-artifact": "upload-artifact",
    "actions/download-artifact": "download-artifact",
}
PINNED_USE = re.compile(r"uses: (?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40}) #")
REPOSITORY = "example-org/mlplatform"
JOB_TOKEN = "job-token"
# Stand-ins for the runner's `aws` and `gh` CLIs, first on every job's PATH.
BIN_STAND_INS = Path(__file__).parent / "bin"
ACT_TIMEOUT = 30 * 60


def pinned_actions(github: Path = ROOT / ".github") -> dict[str, str]:
    """`owner/repo` -> the commit every workflow and local action pins it to (tests/test_workflow_hardening.py
    holds one per action)."""
    pins = {}
    for path in sorted([*github.glob("workflows/*.yml"), *github.glob("actions/*/action.yml")]):
        for match in PINNED_USE.finditer(path.read_text()):
            pins[match["action"]] = match["sha"]
    return pins


def local_repository_flags() -> list[str]:
    flags = []
    for action, sha in sorted(pinned_actions().items()):
        if action in {"actions/checkout", "actions/setup-go"}:
            continue
        stand_in = STAND_INS / STAND_IN_OF[action]
        assert (stand_in / "action.yml").is_file(), f"no stand-in for {action} in {STAND_INS}"
        flags += ["--local-repository", f"{action}@{sha}={stand_in}"]
    return flags


@dataclass
class ActRun:
    returncode: int
    seconds: float
    log: list[dict[str, Any]]
    records: list[dict[str, Any]]
    """What the stand-ins recorded, in order (tests/workflows/actions/*)."""
    text: str = field(repr=False, default="")

    @property
    def jobs(self) -> dict[str, str]:
        """Each job that ran, by its display name (`preview fraud-detector-act`), and its result."""
        # act pads the names of jobs that run side by side to one width.
        return {entry["job"].strip(): entry["jobResult"] for entry in self.log if "jobResult" in entry}

    def pulumi_calls(self, *, automation: bool = False) -> list[tuple[str, str, str]]:
        """(command, --cwd, --stack) of each `preview` and `up` the workflow's steps ran with the installed CLI
        (tests/workflows/pulumi_release.py records them); `automation`: also the Automation API's, which
        `rollout watch --apply` drives (it passes `--exec-kind`)."""
        return [
            (r["command"], r["cwd"], r["stack"])
            for r in self.records
            if r["action"] == "pulumi" and r["command"] in ("preview", "up") and (automation or not r["automation"])
        ]

    def pulumi_argv(self, command: str) -> list[list[str]]:
        """The whole command line of each workflow-step `pulumi COMMAND` call."""
        return [r["argv"] for r in self.records if r["action"] == "pulumi" and r["command"] == command]

    def describe(self) -> str:
        lines = [str(entry.get("msg", "")).rstrip() for entry in self.log if entry.get("msg")]
        failed = [str(e["msg"]).strip() for e in self.log if str(e.get("msg", "")).lstrip().startswith("::error")]
        return (
            f"act exited {self.returncode} after {self.seconds:.0f}s; jobs: {self.jobs}\nerrors: {failed[:20]}\n"
            + "\n".join(lines[-80:])
        )


@dataclass
class Act:
    binary: str
    env: dict[str, str]
    """The environment every job sees (act passes its own through, in host mode)."""
    variables: dict[str, str]
    workdir: Path
    runs: int = 0

    @property
    def github(self) -> GitHubState:
        """What the gh and artifact stand-ins read and write: PRs, artifacts, comments."""
        return GitHubState(self.workdir / "github")

    def run(self, event: str, workflow: str, payload: dict[str, Any], repo: Path) -> ActRun:
        """`act EVENT -W .github/workflows/WORKFLOW` in the clone `repo`, with `payload` as the event."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        event_file = self.workdir / f"event-{time.monotonic_ns()}.json"
        event_file.write_text(json.dumps(payload))
        records = self.workdir / f"records-{time.monotonic_ns()}.jsonl"
        records.touch()
        self.runs += 1
        self.github.root.mkdir(parents=True, exist_ok=True)
        argv = [
            self.binary, event, "-W", f".github/workflows/{workflow}", "-e", str(event_file),
            "-P", "ubuntu-latest=-self-hosted", "--action-offline-mode", "--cache-server-addr", "127.0.0.1",
            "--json", "--env", f"GITHUB_REPOSITORY={REPOSITORY}",
            # `github.token`: the job's token, recognisable in what the gh stand-in records.
            "--secret", f"GITHUB_TOKEN={JOB_TOKEN}",
            *local_repository_flags(),
            *[flag for name, value in sorted(self.variables.items()) for flag in ("--var", f"{name}={value}")],
        ]  # fmt: skip
        env = {
            **self.env,
            "ACT_DISABLE_VERSION_CHECK": "1",
            "MLPLATFORM_ACT_RECORD": str(records),
            # One id per act run: artifacts are kept per run, as GitHub keeps them (upload/download stand-ins).
            "MLPLATFORM_ACT_RUN": str(self.runs),
            "MLPLATFORM_ACT_ARTIFACTS": str(self.workdir / "artifacts"),
            "MLPLATFORM_ACT_GITHUB": str(self.github.root),
            # act keeps its action cache and host workspaces under XDG_CACHE_HOME: one per test.
            "XDG_CACHE_HOME": str(self.workdir / "cache"),
            "HOME": str(self.workdir / "home"),
        }
        started = time.monotonic()
        result = subprocess.run(
            argv, cwd=repo, env=env, capture_output=True, text=True, timeout=ACT_TIMEOUT, check=False
        )
        seconds = time.monotonic() - started
        log = []
        for line in result.stdout.splitlines() + result.stderr.splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry = {"msg": line}
            log.append(entry if isinstance(entry, dict) else {"msg": line})
        lines = records.read_text().splitlines()
        # The whole log, kept beside the records: `describe()` shows only its end.
        (self.workdir / f"act-{self.runs}-{workflow}.log").write_text(result.stdout + result.stderr)
        return ActRun(
            returncode=result.returncode, seconds=seconds, log=log,
            records=[json.loads(line) for line in lines if line.strip()],
            text=result.stdout + result.stderr,
        )  # fmt: skip


def base_env(python_bin: Path, program_venv: Path, extra_path: list[str] | None = None) -> dict[str, str]:
    """What the stand-ins need, over a clean copy of this process's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "GITHUB_", "ACT_", "RUNNER_"))}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join([*(extra_path or []), env.get("PATH", "")])
    env["MLPLATFORM_ACT_PYTHON_BIN"] = str(python_bin)
    env["MLPLATFORM_ACT_VENV"] = str(program_venv)
    return env
