"""The binaries the integration and e2e tiers run for real, and how to get them.

A missing one fails the test that needs it, on every machine: a suite that
skips what it cannot run reports success for tests that never ran. The message
names the Debian package and `make deps`, which installs them all
(the Makefile's DEB_TOOLS is the one list; tests/test_prerequisites.py keeps
this table and it in step).
"""

from __future__ import annotations

import shutil

import pytest

# binary -> the Debian package that provides it.
DEBIAN_PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
    "etcd": "etcd-server",
    # actionlint runs it on the workflows' `run:` scripts (make lint-workflows).
    "shellcheck": "shellcheck",
}


def install_hint(package: str) -> str:
    return f"run `make deps` as root (it runs apt-get), or `apt-get install {package}`"


def require_binary(name: str) -> str:
    """The path of `name` on PATH; fails the calling test naming its package and the install command."""
    path = shutil.which(name)
    if path is None:
        package = DEBIAN_PACKAGES[name]
        pytest.fail(f"`{name}` is not on PATH: it comes from the Debian package `{package}`; {install_hint(package)}")
    return path
