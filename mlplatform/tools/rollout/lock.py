"""One rollout command at a time per stack file: an advisory `flock` lock.

A rollout step is read, validate, gate, write (and commit, with `--commit`).
Two commands doing that on the same file at once could both read weight 10,
both pass the gate and step 10 -> 25 -> 50, skipping the 25% dwell. The lock
covers the whole sequence.

Where the lock file lives: inside the Git directory of the stack file's
checkout (`.git/mlplatform-rollout/`), so every user of that checkout shares it
and `git status` never shows it; outside a Git checkout, in the system temp
directory. The name is keyed by the stack file's resolved path. `flock` locks
belong to the open file and go when the process exits, even on `kill -9`, so a
crashed command never leaves a stale lock; the empty lock file itself stays.

Trade-off: the lock is per machine. Two laptops stepping the same stack still
meet only in Git, where the second push or PR conflicts on the weight line.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_DIR_NAME = "mlplatform-rollout"
POLL_SECONDS = 0.05


class RolloutBusy(Exception):
    """Another rollout command holds the stack file, or changed it while this one waited."""


class LockError(OSError):
    """The lock file could not be created or opened."""


def _git_dir(directory: Path) -> Path | None:
    """The Git directory of the checkout holding `directory`, without running git.
    A worktree's `.git` is a file naming its own directory (`gitdir: <path>`)."""
    for candidate in (directory, *directory.parents):
        dot_git = candidate / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("gitdir:"):
                return (candidate / text[len("gitdir:") :].strip()).resolve()
    return None


def lock_path(stack_file: Path) -> Path:
    """Where the lock for `stack_file` lives (see the module docstring)."""
    resolved = Path(stack_file).resolve()
    key = hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    git_dir = _git_dir(resolved.parent)
    base = git_dir / LOCK_DIR_NAME if git_dir is not None else Path(tempfile.gettempdir()) / LOCK_DIR_NAME
    return base / f"{resolved.name}.{key}.lock"


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "another rollout command"


@contextmanager
def exclusive(
    stack_file: Path,
    *,
    command: str,
    timeout: float,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold the stack file's lock for the body; wait up to `timeout` seconds for it.

    `on_wait(holder)` is called once if the lock is busy, before waiting, so the
    user sees why nothing happens. Raises RolloutBusy when the wait runs out and
    LockError when the lock file cannot be created.
    """
    path = lock_path(stack_file)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise LockError(err.errno, f"cannot create the rollout lock {path} for {stack_file}: {err.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if on_wait is not None:
                on_wait(holder)
            deadline = time.monotonic() + timeout
            while True:
                time.sleep(POLL_SECONDS)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise RolloutBusy(
                            f"{stack_file}: a rollout is in progress ({_holder(fd)}); waited {timeout:g}s. "
                            "Nothing was written; run the command again once it has finished."
                        ) from None
        # Who holds it, for the message of a command that has to wait.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"`rollout {command}`, pid {os.getpid()}".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
