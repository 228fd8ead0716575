"""The `pulumi` CLI the tools run, found in one place.

Every tool that runs the CLI (`rollout --apply`'s `up`, reading the platform
stack's outputs) takes the first `pulumi` on PATH, as the Automation API did
before: the CLI the user and CI log in with, and so its backend and credentials.
"""

from __future__ import annotations

import os
import shutil

# What the Automation API sets too: no network round trip to ask for a newer CLI on every run.
QUIET_ENV = {"PULUMI_SKIP_UPDATE_CHECK": "true"}


def find() -> str | None:
    """The `pulumi` executable on PATH, or None."""
    return shutil.which("pulumi")


def environment() -> dict[str, str]:
    """This process's environment (backend login, PULUMI_CONFIG_PASSPHRASE, PULUMI_ACCESS_TOKEN), quieted."""
    return {**os.environ, **QUIET_ENV}
