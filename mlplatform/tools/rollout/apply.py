"""`--apply`: a rollout edit applied by the tool itself, then recorded in Git.

Without `--apply` the tool writes the stack file and `pulumi up` (by hand or
the deploy workflow) applies it. A rollback cannot wait for a review and a
merge, so `watch --apply` and `abort --apply` run `up` on that one stack
(one `pulumi up` process, `cli_up`), then commit the edit and push it (or open a
PR), so Git says what the cluster runs.

Order, all under the stack file's rollout lock:
1. refuse if the working tree has other edits to the stack file (they would be
   applied unreviewed, and swept into the rollback's commit);
2. the verb's own checks (the gate queries Prometheus: unreachable refuses);
3. write the edit; apply it to this stack only. A rollback (weight 0) is one
   `pulumi up` (`cli_up`). A step forward (`watch`'s advance, `next --apply`) is
   `preview --save-plan`, the plan checked to hold only the split's and the
   record's updates (`plan_check`), then `up --plan` (`cli_planned_up`); any
   other planned change refuses (exit 1) before anything is applied;
4. `up` failed: put the file back byte for byte and exit 6 (a locked Pulumi
   state, another update's lock, is exit 5: the engine changed nothing; a
   refused plan is exit 1, the file back as well);
5. `up` succeeded: commit; push to `--git-push BRANCH` (CI: main, the branch
   that deploys, so a following deploy applies what the cluster runs). A
   non-fast-forward push fetches, rebases the one commit and retries, up to
   PUSH_ATTEMPTS times. Where the server refuses the push to `--git-base`
   (branch protection), the commit goes to a `rollout/<stack>-<time>` branch
   and a PR is opened (`gh`, else the compare URL is printed); the branch is
   also written as `pr_branch=` to $GITHUB_OUTPUT, so a workflow can open the
   PR with its own token. With `--git-pr` and another branch: push there and
   open a PR, as before.

Trade-off: a failed `up` may have applied part of the edit (one resource of
two); the file goes back anyway, because Git must never claim a state the
engine did not reach, and the message says to look at `pulumi stack`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from mlplatform.tools import pulumi_cli
from mlplatform.tools.rollout import plan_check
from mlplatform.tools.stackfile.atomic import write_atomically
from mlplatform.tools.stackfile.reader import stack_name

PUSH_ATTEMPTS = 5
UpFunction = Callable[[Path, str, Callable[[str], None]], None]
"""`up(project_dir, stack, on_output)`: applies the stack; raises `UpFailed` or `StateLocked`."""


class ApplyRefused(Exception):
    """`--apply` cannot start: nothing was written, nothing was applied."""


class StateLocked(Exception):
    """Another update holds the stack's Pulumi state."""


class UpFailed(Exception):
    """`pulumi up` failed; the caller puts the stack file back."""


class PlanRefused(ApplyRefused):
    """A weight step's plan holds operations the step never makes; nothing was applied."""

    def __init__(self, stack: str, surprises: list[plan_check.PlannedStep]):
        self.surprises = surprises
        listed = "; ".join(str(step) for step in surprises)
        super().__init__(
            f"the plan of stack {stack} holds changes a weight step never makes: {listed}. A weight step "
            "updates only the TrafficSplit (or HTTPRoute) and the InferenceService record; the rest differs "
            "between the program, the stack file and the stack's state (a merged edit not yet deployed, a "
            f"shared module or a platform output that moved, drift). Nothing was applied and the stack file "
            f"is back as it was: see `pulumi preview --diff --stack {stack}`, and deploy that change through "
            "review first"
        )


# The CLI's words for a stack another update holds, on stderr: the DIY backends' lock file and the
# Pulumi Cloud's 409. The same texts the Automation API classifies as ConcurrentUpdateError.
LOCKED_TEXTS = ("the stack is currently locked by", "[409] Conflict: Another update is currently in progress.")
TAIL_LINES = 40


def cli_up(project_dir: Path, stack: str, on_output: Callable[[str], None]) -> None:
    """`pulumi up` on one stack: one CLI process, run in the stack's project directory with this
    process's environment (backend login, PULUMI_CONFIG_PASSPHRASE, PULUMI_ACCESS_TOKEN). A rollback's `up`.

    Why not the Automation API: around the update it runs five more CLI processes (`version` and
    `stack select` before it; two `stack output` reads and `stack history` after it), about a second
    added to every rollback. What it gave is kept here: the output streamed line by line (stdout and
    stderr both), a lock held by another update told apart (`StateLocked`) from any other failure
    (`UpFailed`)."""
    _run_pulumi(project_dir, ["up", "--yes", "--skip-preview"], stack, on_output)


def cli_planned_up(project_dir: Path, stack: str, on_output: Callable[[str], None]) -> None:
    """A weight step's `up`, bound to its reviewed shape: `pulumi preview --save-plan`, then the plan
    checked (`plan_check`: the split and the record updated, nothing else changed), then
    `pulumi up --plan`, which refuses any operation the preview did not plan. An unexpected operation
    raises `PlanRefused` before anything is applied.

    Two engine runs instead of one: a step is not urgent, and it must not carry changes nobody
    reviewed. A rollback stays one `up` (`cli_up`): it must not wait, and what it restores is the
    stable version the stack already ran."""
    with tempfile.TemporaryDirectory(prefix="mlplatform-plan-") as scratch:
        plan_file = Path(scratch) / "plan.json"
        _run_pulumi(project_dir, ["preview", "--save-plan", str(plan_file)], stack, on_output)
        try:
            changes = plan_check.changes(plan_check.read_plan(plan_file))
        except plan_check.PlanUnreadable as err:
            raise UpFailed(f"the weight step's plan cannot be checked: {err}") from None
        surprises = plan_check.unexpected(changes)
        if surprises:
            raise PlanRefused(stack, surprises)
        summary = "; ".join(str(step) for step in changes) or "no change (the cluster already runs this weight)"
        on_output(f"plan check: {summary}\n")
        # Any non-zero exit of `up --plan` is a failure, 255 included (pulumi/pulumi#16670).
        up_plan = ["up", "--yes", "--skip-preview", "--plan", str(plan_file)]
        _run_pulumi(project_dir, up_plan, stack, on_output)


def _run_pulumi(project_dir: Path, command: list[str], stack: str, on_output: Callable[[str], None]) -> None:
    """One `pulumi` process on `stack` in `project_dir`, its output streamed; raises `StateLocked` or `UpFailed`."""
    pulumi = pulumi_cli.find()
    if pulumi is None:
        raise UpFailed("the `pulumi` CLI is not on PATH: install it (https://www.pulumi.com/docs/install/)")
    argv = [pulumi, *command, "--non-interactive", "--color", "never", "--stack", stack]
    try:
        process = subprocess.Popen(
            argv,
            cwd=project_dir,
            env=pulumi_cli.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
    except OSError as err:
        raise UpFailed(f"cannot run {pulumi}: {err.strerror or err}") from None
    assert process.stdout is not None and process.stderr is not None
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    stderr_lines: list[str] = []
    # stderr on its own thread, so neither pipe fills while the other is read.
    reader = threading.Thread(target=_pump, args=(process.stderr, on_output, tail, stderr_lines), daemon=True)
    reader.start()
    _pump(process.stdout, on_output, tail, None)
    reader.join()
    code = process.wait()
    if code == 0:
        return
    stderr = "".join(stderr_lines)
    detail = f"`pulumi {command[0]}` exit code {code}: {_last_lines(''.join(tail))}"
    if any(text in stderr for text in LOCKED_TEXTS):
        raise StateLocked(detail)
    raise UpFailed(detail)


def _pump(stream: IO[str], on_output: Callable[[str], None], tail: deque[str], keep: list[str] | None) -> None:
    for line in stream:
        on_output(line)
        tail.append(line)
        if keep is not None:
            keep.append(line)


def _last_lines(text: str, count: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:])


def _git(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, check=False)
    except OSError as err:
        raise ApplyRefused(f"cannot run git: {err.strerror or err}") from None


def require_clean(path: Path) -> None:
    """Refuse when the stack file is not tracked by Git or has edits of its own."""
    directory = path.parent.resolve()
    inside = _git(directory, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise ApplyRefused(f"{path} is not in a Git checkout: --apply records the edit in Git")
    status = _git(directory, "status", "--porcelain", "--", path.name)
    if status.returncode != 0:
        raise ApplyRefused(f"`git status` failed for {path}: {status.stderr.strip()}")
    if status.stdout.strip():
        raise ApplyRefused(
            f"{path} has edits that are not committed ({status.stdout.strip()}): --apply would apply and commit "
            "them with the rollout step. Commit or discard them (`git diff -- {path.name}`), then run again. "
            "Nothing was written or applied."
        )


@dataclass
class Publish:
    """Where the commit goes after a successful `up`."""

    push_branch: str | None
    open_pr: bool
    remote: str = "origin"
    base: str = "main"
    attempts: int = PUSH_ATTEMPTS
    pr_branch: str | None = None  # set when the push was refused and a PR branch took the commit


# git's words for a push that a newer remote head refused, and for one that the server's rules refused.
_BEHIND = ("non-fast-forward", "fetch first", "failed to update ref", "cannot lock ref")
_REFUSED = ("remote rejected", "pre-receive hook declined", "protected branch", "GH006", "declined")


def _push(directory: Path, publish_to: Publish, branch: str) -> subprocess.CompletedProcess[str]:
    return _git(directory, "push", "-q", "--porcelain", publish_to.remote, f"HEAD:refs/heads/{branch}")


def _catch_up(directory: Path, publish_to: Publish, branch: str) -> None:
    """Fetch `branch` and replay our commit on it. The weight line is ours alone, so it merges cleanly
    unless someone else edited that very line: then the rebase is undone and the push fails, named."""
    fetched = _git(directory, "fetch", "-q", publish_to.remote, f"refs/heads/{branch}")
    if fetched.returncode != 0:
        raise PublishFailed(f"`git fetch {publish_to.remote} {branch}` failed: {_last_lines(fetched.stderr)}")
    rebased = _git(directory, "rebase", "-q", "FETCH_HEAD")
    if rebased.returncode != 0:
        _git(directory, "rebase", "--abort")
        raise PublishFailed(
            f"{publish_to.remote}/{branch} moved and our commit does not rebase onto it: "
            f"{_last_lines(rebased.stdout + rebased.stderr)}; the commit stays local"
        )


def publish(path: Path, publish_to: Publish, title: str, stack: str = "") -> str:
    """Push the commit just made to `push_branch` (catching up with the remote, a bounded number of
    times); where the server refuses the push (branch protection), push a `rollout/` branch and open
    a PR instead. Returns what happened, for the output; writes `pr_branch=` to $GITHUB_OUTPUT then."""
    if publish_to.push_branch is None:
        return "committed locally"
    directory = path.parent.resolve()
    branch = publish_to.push_branch
    for attempt in range(1, publish_to.attempts + 1):
        pushed = _push(directory, publish_to, branch)
        if pushed.returncode == 0:
            break
        detail = pushed.stdout + pushed.stderr
        if any(word in detail for word in _REFUSED) and branch == publish_to.base:
            return _fallback_pr(directory, publish_to, title, stack, _last_lines(detail))
        if not any(word in detail for word in _BEHIND) or attempt == publish_to.attempts:
            raise PublishFailed(
                f"`git push {publish_to.remote} HEAD:{branch}` failed (attempt {attempt}): {_last_lines(detail)}"
            )
        _catch_up(directory, publish_to, branch)
    if not publish_to.open_pr or branch == publish_to.base:
        return f"pushed to {publish_to.remote} {branch}"
    return _open_pr(directory, publish_to, branch, title)


def _fallback_pr(directory: Path, publish_to: Publish, title: str, stack: str, refusal: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    branch = f"rollout/{stack or 'stack'}-{stamp}"
    pushed = _push(directory, publish_to, branch)
    if pushed.returncode != 0:
        raise PublishFailed(
            f"{publish_to.remote} refused the push to {publish_to.base} ({refusal}), and the push to {branch} "
            f"failed too: {_last_lines(pushed.stderr)}"
        )
    publish_to.pr_branch = branch
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as handle:
            handle.write(f"pr_branch={branch}\n")
    where = _open_pr(directory, publish_to, branch, title)
    return f"{publish_to.remote} refused the push to {publish_to.base} ({refusal}); {where}"


def _open_pr(directory: Path, publish_to: Publish, branch: str, title: str) -> str:
    if shutil.which("gh"):
        created = subprocess.run(
            [
                "gh",
                "pr",
                "create",
                "--head",
                branch,
                "--base",
                publish_to.base,
                "--title",
                title,
                "--body",
                "Applied by `mlplatform rollout --apply`: the cluster already runs this edit.",
            ],
            cwd=directory,
            capture_output=True,
            text=True,
            check=False,
        )
        if created.returncode != 0:
            raise PublishFailed(f"pushed to {branch}, but `gh pr create` failed: {_last_lines(created.stderr)}")
        return f"pushed to {publish_to.remote} {branch}; PR {created.stdout.strip()}"
    url = _git(directory, "remote", "get-url", publish_to.remote).stdout.strip()
    compare = _compare_url(url, publish_to.base, branch)
    return f"pushed to {publish_to.remote} {branch}; `gh` is not installed, open the PR: {compare}"


class PublishFailed(Exception):
    """`up` and the commit succeeded; the push or the PR did not."""


def _compare_url(remote_url: str, base: str, branch: str) -> str:
    url = remote_url.removesuffix(".git")
    if url.startswith("git@github.com:"):
        url = "https://github.com/" + url[len("git@github.com:") :]
    if url.startswith("https://github.com/"):
        return f"{url}/compare/{base}...{branch}?expand=1"
    return f"{url} (branch {branch}, base {base})"


def apply_written(path: Path, previous_text: bytes | str, up: UpFunction, on_output: Callable[[str], None]) -> None:
    """`up` the stack whose file was just written; on any failure put the file back as it was."""
    try:
        up(path.parent, stack_name(path), on_output)
    except BaseException:
        write_atomically(path, previous_text)
        raise
