"""`--apply`: the edit is applied by `up` and recorded in Git, or refused with nothing changed.

`up` is a fake injected through `cli.run(up=...)` here: the fault paths need an
`up` that fails on cue. The real engine runs `watch --apply` in the e2e tier
(tests/e2e/test_rollback_apply.py).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
from pathlib import Path

from mlplatform.tools.rollout import apply, cli
from tests.rollout.conftest import STACK, STACK_TEXT

CLOSED = "http://127.0.0.1:9"


def _git(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


class FakeUp:
    """Records each `up` and what the stack file held when it ran; raises `error` if given."""

    def __init__(self, error: Exception | None = None):
        self.calls: list[tuple[Path, str, str]] = []
        self.error = error

    def __call__(self, project_dir: Path, stack: str, on_output) -> None:
        self.calls.append((project_dir, stack, (project_dir / f"Pulumi.{stack}.yaml").read_text()))
        on_output("Updating (fake)\n")
        if self.error is not None:
            raise self.error


def _run(project: Path, up: FakeUp, verb: str, *extra: str) -> tuple[int, list[dict]]:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    argv = ["rollout", verb, STACK, "--project-dir", str(project), "--json", "--apply", *extra]
    if verb == "abort":
        argv += ["--reason", "p99 too high"]
    else:
        argv += ["--prometheus-url", CLOSED, "--prometheus-timeout", "1", "--max-checks", "1", "--interval", "1"]
    stream = io.StringIO()
    code = cli.run(parser.parse_args(argv), stream=stream, up=up)
    return code, [json.loads(line) for line in stream.getvalue().splitlines()]


def _head(project: Path) -> str:
    return _git(project, "rev-parse", "HEAD").strip()


def test_abort_apply_runs_up_on_the_edited_file_then_commits_and_pushes(project: Path, stack_file: Path, repo: Path):
    up = FakeUp()
    before = _head(project)
    code, events = _run(project, up, "abort", "--git-push", "rollback/fd")
    assert code == 0, events
    ((project_dir, stack, text_at_up),) = up.calls
    assert (project_dir.resolve(), stack) == (project.resolve(), STACK)
    assert "weight: 0" in text_at_up, "up must run on the edited file"
    # Committed, nothing left over in the working tree, and the branch on origin holds the edit.
    assert _head(project) != before
    assert _git(project, "status", "--porcelain") == ""
    assert "abort canary v6" in _git(project, "log", "-1", "--format=%B")
    assert _git(repo, "show", f"rollback/fd:{stack_file.name}") == stack_file.read_text()
    assert [e["event"] for e in events][-3:] == ["applied", "published", "aborted"]


def test_a_dirty_stack_file_is_refused_before_anything(project: Path, stack_file: Path, repo: Path):
    dirty = STACK_TEXT + "# a hand edit nobody reviewed\n"
    stack_file.write_text(dirty)
    up = FakeUp()
    for verb in ("abort", "watch"):
        code, events = _run(project, up, verb)
        assert code == 1, events
        assert "not committed" in events[-1]["reason"]
        assert stack_file.read_text() == dirty
    assert up.calls == []


def test_a_locked_pulumi_state_changes_nothing(project: Path, stack_file: Path, repo: Path):
    before, head = stack_file.read_bytes(), _head(project)
    up = FakeUp(apply.StateLocked("the stack is currently locked by 1 lock(s)"))
    code, events = _run(project, up, "abort")
    assert code == 5, events
    assert "locked by another update" in events[-1]["error"]
    assert len(up.calls) == 1
    assert stack_file.read_bytes() == before
    assert _head(project) == head


def test_a_failed_up_puts_the_file_back_byte_for_byte(project: Path, stack_file: Path, repo: Path):
    # CRLF line ends and no final newline: a re-serialised file would differ.
    raw = STACK_TEXT.replace("\n", "\r\n").rstrip("\r\n").encode()
    stack_file.write_bytes(raw)
    _git(project, "commit", "-q", "-am", "crlf")
    head = _head(project)
    up = FakeUp(apply.UpFailed("error: update failed"))
    code, events = _run(project, up, "abort")
    assert code == 6, events
    assert "back as it was" in events[-1]["error"]
    assert b"weight: 0" in up.calls[0][2].encode()
    assert stack_file.read_bytes() == raw
    assert _head(project) == head
    assert _git(project, "status", "--porcelain") == ""


def test_unreachable_prometheus_refuses_watch_apply_with_nothing_changed(project: Path, stack_file: Path, repo: Path):
    up = FakeUp()
    code, events = _run(project, up, "watch")
    assert code == 3, events
    assert stack_file.read_text() == STACK_TEXT
    assert up.calls == []


def test_outside_git_apply_is_refused(project: Path, stack_file: Path):
    up = FakeUp()
    code, events = _run(project, up, "abort")
    assert code == 1, events
    assert "not in a Git checkout" in events[-1]["reason"]
    assert up.calls == [] and stack_file.read_text() == STACK_TEXT


def test_git_flags_need_apply(project: Path):
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["rollout", "abort", STACK, "--project-dir", str(project), "--reason", "x", "--git-push", "b"]
    )
    assert cli.run(args, stream=io.StringIO()) == 2


def test_pr_without_gh_prints_the_compare_url(project: Path, stack_file: Path, repo: Path, monkeypatch):
    monkeypatch.setattr(apply.shutil, "which", lambda name: None)
    _git(project, "remote", "set-url", "origin", str(repo))
    where = apply.publish(stack_file, apply.Publish(push_branch="rb", open_pr=False), "t")
    assert where == "pushed to origin rb"
    assert (
        apply._compare_url("git@github.com:acme/ml.git", "main", "rb")
        == "https://github.com/acme/ml/compare/main...rb?expand=1"
    )
