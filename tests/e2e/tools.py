"""Running scripts/e2e-tools.sh for the e2e tier's fixtures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

TOOLS_SCRIPT = ROOT / "scripts" / "e2e-tools.sh"
# A cold build of all the tools takes minutes (41 on a loaded 2-core machine); a warm one, none.
TOOLS_TIMEOUT = 60 * 60


def provide_tools(script: Path = TOOLS_SCRIPT, *, env: dict[str, str] | None = None) -> dict[str, str]:
    """Run the tools script and parse its `NAME=PATH` lines; fail with its message if it cannot.

    A missing etcd or Go is a failure here on every machine, with the script's
    message naming what to install: a skipped tier would let `make test` pass
    without running it.
    """
    try:
        result = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, timeout=TOOLS_TIMEOUT, env=env
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script.name} did not finish in {TOOLS_TIMEOUT}s")
    # Build progress and times, visible with -s and in the CI log on failure.
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        pytest.fail(f"{script.name} failed ({result.returncode}):\n{result.stderr}")
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
