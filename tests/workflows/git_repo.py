"""A GitHub repository's stand-in for the workflow tests: a bare `origin` and a clone.

The clone starts as a copy of this repository's tracked files (as the working
tree has them), committed on `main` and pushed; act then runs the workflows in
that clone, whose `origin/main` is what GitHub's checkout with `fetch-depth: 0`
would give.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.helpers import ROOT

IDENTITY = ("-c", "user.name=workflow-test", "-c", "user.email=workflow-test@example.invalid")


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *IDENTITY, *args], cwd=repo, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} in {repo} exited {result.returncode}: {result.stderr}")
    return result.stdout.strip()


@dataclass
class Repository:
    origin: Path
    clone: Path

    def commit(self, message: str) -> str:
        git(self.clone, "add", "--all")
        git(self.clone, "commit", "--quiet", "--message", message)
        return git(self.clone, "rev-parse", "HEAD")

    def push(self, branch: str) -> None:
        git(self.clone, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
        git(self.clone, "fetch", "--quiet", "origin")

    def branch(self, name: str) -> None:
        git(self.clone, "checkout", "--quiet", "-B", name)

    def sha(self, ref: str = "HEAD") -> str:
        return git(self.clone, "rev-parse", ref)


def make_repository(workdir: Path) -> Repository:
    """`origin.git` (bare) and `clone/`, with this repository's tracked files as the first commit on main."""
    origin = workdir / "origin.git"
    clone = workdir / "clone"
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(origin)], check=True)
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(clone)], check=True)
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, tracked):
        source = ROOT / name
        if source.is_file():  # a file deleted in the working tree is not copied
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    git(clone, "remote", "add", "origin", str(origin))
    repository = Repository(origin=origin, clone=clone)
    repository.commit("the repository under test")
    repository.push("main")
    return repository


def pull_request_event(repository: Repository, *, base: str, head: str, number: int = 1) -> dict:
    """The `pull_request` payload GitHub sends for a PR from a branch of the same repository."""
    from tests.workflows.act import REPOSITORY

    repo = {"full_name": REPOSITORY, "name": REPOSITORY.split("/")[1], "owner": {"login": REPOSITORY.split("/")[0]}}
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"ref": head, "sha": repository.sha(), "repo": repo},
            "base": {"ref": base, "sha": repository.sha("origin/main"), "repo": repo},
        },
        "repository": repo,
    }
