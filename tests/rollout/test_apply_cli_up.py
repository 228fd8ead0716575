"""`--apply`'s `up` is one `pulumi up` process: its exit and its words become the rollout's exit code.

A fake `pulumi` on PATH stands in for the CLI: it records its arguments, its
working directory and the stack file it was given, prints on both streams, and
fails as it is told (a DIY backend's lock, the Pulumi Cloud's 409, a failed
update). The real engine runs the same paths in tests/e2e/test_rollback_apply.py.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mlplatform.tools.rollout import apply
from tests.rollout.conftest import STACK
from tests.rollout.test_apply import _git, _head, _run

FAKE_PULUMI = """#!/bin/sh
# A stand-in for `pulumi`: records the call, then behaves as $FAKE_PULUMI_MODE says.
printf '%s\\n' "$(pwd)" "$*" > "$FAKE_PULUMI_LOG"
cat "Pulumi.{stack}.yaml" >> "$FAKE_PULUMI_LOG"
echo "Updating ({stack})"
echo "warning: a line on stderr" >&2
case "$FAKE_PULUMI_MODE" in
  ok) echo "Resources: 1 updated"; exit 0 ;;
  diy-locked) echo "error: the stack is currently locked by 1 lock(s)." >&2; exit 255 ;;
  cloud-locked) echo "error: [409] Conflict: Another update is currently in progress." >&2; exit 255 ;;
  fail) echo "    error: update failed" ; echo "error: 1 resource failed" >&2; exit 255 ;;
esac
exit 99
"""


@pytest.fixture
def fake_pulumi(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `pulumi` first on PATH (outside the checkout); returns the file it records its call in."""
    bin_dir = tmp_path_factory.mktemp("fake-bin")
    executable = bin_dir / "pulumi"
    executable.write_text(FAKE_PULUMI.format(stack=STACK))
    executable.chmod(executable.stat().st_mode | stat.S_IXUSR)
    log = bin_dir / "fake-pulumi.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    return log


def _abort(project: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> tuple[int, list[dict]]:
    monkeypatch.setenv("FAKE_PULUMI_MODE", mode)
    return _run(project, apply.cli_up, "abort")  # type: ignore[arg-type]  the real `up`, not a FakeUp


def test_success_is_one_up_in_the_project_then_a_commit(
    project: Path, stack_file: Path, repo: Path, fake_pulumi: Path, monkeypatch: pytest.MonkeyPatch
):
    """One process, `up --yes --skip-preview --non-interactive --stack S`, run where the stack file is,
    on the edited file; then the commit."""
    head = _head(project)
    code, events = _abort(project, monkeypatch, "ok")
    assert code == 0, events
    cwd, args, *seen = fake_pulumi.read_text().splitlines()
    assert Path(cwd).resolve() == project.resolve()
    assert args == f"up --yes --skip-preview --non-interactive --color never --stack {STACK}"
    assert "    weight: 0  # aborted: p99 too high" in seen
    assert _git(project, "rev-parse", "HEAD~1").strip() == head
    assert _git(project, "status", "--porcelain") == ""


@pytest.mark.parametrize("mode", ["diy-locked", "cloud-locked"])
def test_a_lock_held_by_another_update_is_exit_5_with_the_file_unchanged(
    project: Path, stack_file: Path, repo: Path, fake_pulumi: Path, monkeypatch: pytest.MonkeyPatch, mode: str
):
    before, head = stack_file.read_bytes(), _head(project)
    code, events = _abort(project, monkeypatch, mode)
    assert code == 5, events
    assert "locked by another update" in events[-1]["error"]
    assert "exit code 255" in events[-1]["error"]
    assert stack_file.read_bytes() == before
    assert _head(project) == head


def test_a_failed_up_is_exit_6_with_the_file_back_byte_for_byte(
    project: Path, stack_file: Path, repo: Path, fake_pulumi: Path, monkeypatch: pytest.MonkeyPatch
):
    raw = stack_file.read_bytes().replace(b"\n", b"\r\n")
    stack_file.write_bytes(raw)
    _git(project, "commit", "-q", "-am", "crlf")
    head = _head(project)
    code, events = _abort(project, monkeypatch, "fail")
    assert code == 6, events
    assert "1 resource failed" in events[-1]["error"], "the error quotes the CLI's last lines"
    assert stack_file.read_bytes() == raw
    assert _head(project) == head


def test_the_output_is_streamed_from_both_streams(tmp_path: Path, fake_pulumi: Path, monkeypatch):
    (tmp_path / f"Pulumi.{STACK}.yaml").write_text("config: {}\n")
    monkeypatch.setenv("FAKE_PULUMI_MODE", "ok")
    lines: list[str] = []
    apply.cli_up(tmp_path, STACK, lines.append)
    assert sorted(lines) == sorted([f"Updating ({STACK})\n", "warning: a line on stderr\n", "Resources: 1 updated\n"])


def test_no_pulumi_on_path_is_a_failed_up_that_names_it(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(apply.UpFailed, match="`pulumi` CLI is not on PATH"):
        apply.cli_up(tmp_path, STACK, print)


def test_the_default_up_of_apply_is_the_cli(project: Path):
    """`--apply` without an injected `up` runs the one-process CLI `up`, not the Automation API."""
    from mlplatform.tools.rollout.context import Context

    assert Context.up is apply.cli_up
