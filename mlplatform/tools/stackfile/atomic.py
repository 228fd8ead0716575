"""Writing a stack file in one rename, and the error a failed read or write raises.

A leaf of the tools wing (no config model): `rollout --apply` restores a file through it, and the
editor writes through it, without either pulling in the other's imports."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


class StackFileIOError(Exception):
    """The stack file exists but could not be read or written (permission, read-only, disk full)."""


def write_atomically(path: Path, text: str | bytes) -> None:
    """Replace `path` with `text` (bytes: as they are) in one rename. On any failure the file is unchanged and
    no temporary file is left; the error names the stack file."""
    if not os.access(path, os.W_OK):
        raise StackFileIOError(f"{path}: cannot write the stack file: permission denied (the file is read-only)")
    try:
        mode = path.stat().st_mode & 0o777
        # The temp file lives in the same directory so os.replace is a rename on one
        # filesystem: readers see the old file or the new one, never a partial write.
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise StackFileIOError(f"{path}: cannot write the stack file: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text if isinstance(text, bytes) else text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(err, OSError):
            raise StackFileIOError(
                f"{path}: cannot write the stack file: {err.strerror or err}; it is unchanged"
            ) from None
        raise
