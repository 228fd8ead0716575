"""A rollback lands on the branch that deploys: `--apply --git-push main` with real Git.

A bare repository is `origin`. A concurrent commit on main makes the first push non-fast-forward:
the tool fetches, rebases its one commit and pushes again. A pre-receive hook that refuses pushes to
main stands in for branch protection: the commit goes to a `rollout/` branch and the PR is asked for.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.rollout.conftest import STACK
from tests.rollout.test_apply import FakeUp, _git, _run


def _clone_and_commit(origin: Path, tmp_path: Path, name: str) -> str:
    """Someone else's commit on origin's main (a file beside the stack file)."""
    other = tmp_path / "other"
    _git(tmp_path, "clone", "-q", str(origin), str(other))
    (other / name).write_text("another change\n")
    _git(other, "add", name)
    _git(other, "commit", "-q", "-m", f"someone else: {name}")
    _git(other, "push", "-q", "origin", "HEAD:main")
    return _git(other, "rev-parse", "HEAD").strip()


def test_abort_pushes_to_main_after_catching_up_with_a_concurrent_commit(project: Path, repo: Path, tmp_path_factory):
    """Main moved while the rollback ran: fetch, rebase, push again; main holds both commits."""
    _git(project, "push", "-q", "origin", "HEAD:main")
    theirs = _clone_and_commit(repo, tmp_path_factory.mktemp("elsewhere"), "README.other")
    code, events = _run(project, FakeUp(), "abort", "--git-push", "main")
    assert code == 0, events
    published = next(e for e in events if e["event"] == "published")
    assert published["git"] == "pushed to origin main"
    log = _git(repo, "log", "--format=%s", "main").splitlines()
    assert log[0] == f"rollout({STACK}): abort canary v6 (10% -> 0%)" and log[1] == "someone else: README.other"
    assert _git(repo, "rev-parse", "main~1").strip() == theirs
    assert "weight: 0  # aborted: p99 too high" in _git(repo, "show", f"main:Pulumi.{STACK}.yaml")


def test_a_refused_push_to_main_opens_a_pr_from_a_rollout_branch(
    project: Path, repo: Path, tmp_path_factory, monkeypatch, status_file: Path
):
    """Branch protection (a pre-receive hook here) refuses main: the rollback goes to `rollout/<stack>-<time>`,
    the PR is asked for, and the workflow learns the branch from $GITHUB_OUTPUT."""
    _git(project, "push", "-q", "origin", "HEAD:main")
    hook = repo / "hooks" / "pre-receive"
    hook.write_text(
        '#!/bin/sh\nwhile read old new ref; do\n  [ "$ref" = refs/heads/main ] && '
        '{ echo "protected branch: main needs a PR" >&2; exit 1; }\ndone\nexit 0\n'
    )
    hook.chmod(0o755)
    output = tmp_path_factory.mktemp("runner") / "github-output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no `gh`: the tool prints the PR's URL instead
    main_before = _git(repo, "rev-parse", "main").strip()
    code, events = _run(project, FakeUp(), "abort", "--git-push", "main")
    assert code == 0, events
    published = next(e for e in events if e["event"] == "published")["git"]
    assert "refused the push to main" in published and "protected branch" in published, published
    assert _git(repo, "rev-parse", "main").strip() == main_before
    (line,) = output.read_text().splitlines()
    branch = line.removeprefix("pr_branch=")
    assert branch.startswith(f"rollout/{STACK}-") and branch in published
    assert "weight: 0" in _git(repo, "show", f"{branch}:Pulumi.{STACK}.yaml")
    # The cluster's record names the PR, so a deploy of the old main is refused naming it (`rollout guard`).
    assert json.loads(status_file.read_text())["abort"]["pr"] == branch


def test_a_conflicting_edit_of_the_weight_line_fails_named(project: Path, repo: Path, tmp_path_factory):
    """Someone else moved the weight on main meanwhile: the rebase cannot be clean; nothing is forced."""
    _git(project, "push", "-q", "origin", "HEAD:main")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    other = elsewhere / "other"
    _git(elsewhere, "clone", "-q", str(repo), str(other))
    stack = other / f"Pulumi.{STACK}.yaml"
    stack.write_text(stack.read_text().replace("weight: 10", "weight: 25"))
    _git(other, "commit", "-q", "-am", "someone stepped")
    _git(other, "push", "-q", "origin", "HEAD:main")
    code, events = _run(project, FakeUp(), "abort", "--git-push", "main")
    assert code == 4, events
    assert "does not rebase onto it" in events[-1]["error"]
    assert "weight: 25" in _git(repo, "show", f"main:Pulumi.{STACK}.yaml")
    assert _git(project, "status", "--porcelain") == "", "the rebase is undone"
