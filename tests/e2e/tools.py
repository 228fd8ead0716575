"""Running scripts/e2e-tools.sh for the e2e tier's fixtures, with its progress on the terminal.

The first run on a machine builds the tools for many minutes (41 on a loaded
2-core machine). Under pytest's output capture that looked like a hang on the
first e2e test, so the script's progress lines (each build's start and end, and
its log's path) are passed to the terminal as they come, past the capture.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from _pytest.capture import CaptureManager  # pytest does not export the plugin class it registers

from tests.support.helpers import ROOT

TOOLS_SCRIPT = ROOT / "scripts" / "e2e-tools.sh"
# A cold build of all the tools takes minutes (41 on a loaded 2-core machine); a warm one, none.
TOOLS_TIMEOUT = 60 * 60


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def terminal_progress(config: pytest.Config) -> Callable[[str], None]:
    """Writes a line to the terminal now, with pytest's capture suspended for it (as `--setup-show` does)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if not isinstance(capture, CaptureManager):  # -p no:capture: nothing to get past
        return _to_stderr

    def show(line: str) -> None:
        with capture.global_and_fixture_disabled():
            _to_stderr(line)

    return show


def provide_tools(
    script: Path = TOOLS_SCRIPT,
    tools: tuple[str, ...] = (),
    *,
    env: dict[str, str] | None = None,
    progress: Callable[[str], None] = _to_stderr,
    timeout: float = TOOLS_TIMEOUT,
) -> dict[str, str]:
    """Run the tools script and parse its `NAME=PATH` lines; fail with its message if it cannot.

    Each line the script writes on stderr goes to `progress` as soon as it is
    written, not when the script ends. A missing etcd or Go is a failure here
    on every machine, with the script's message naming what to install: a
    skipped tier would let `make test` pass without running it.
    """
    process = subprocess.Popen(
        ["bash", str(script), *tools],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Its own process group, so a timeout ends the compilers too: they hold the pipes open.
        start_new_session=True,
    )
    # Read on this thread (progress may suspend pytest's capture, which is not
    # thread-safe); a timer kills a script still running after `timeout` seconds.
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        os.killpg(process.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    lines: list[str] = []
    try:
        assert process.stderr is not None and process.stdout is not None
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            progress(lines[-1])
        # stdout is a handful of NAME=PATH lines: it cannot fill its pipe while stderr is read.
        stdout = process.stdout.read()
        returncode = process.wait()
    finally:
        timer.cancel()
    stderr = "\n".join(lines)
    if killed.is_set():
        pytest.fail(f"{script.name} did not finish in {timeout}s:\n{stderr}")
    if returncode != 0:
        pytest.fail(f"{script.name} failed ({returncode}):\n{stderr}")
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)
