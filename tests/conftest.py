"""Shared fixtures: the platform stacks exactly as their stack files declare them."""

from __future__ import annotations

import pytest

from mlplatform.offline import Recording, run_entry_point
from tests.helpers import ROOT


@pytest.fixture(scope="session")
def dev_platform() -> Recording:
    """The `dev` stack exactly as `Pulumi.dev.yaml` declares it (one run, shared)."""
    return run_entry_point(ROOT, stack="dev")


@pytest.fixture(scope="session")
def prod_platform() -> Recording:
    """The `prod` stack exactly as `Pulumi.prod.yaml` declares it (one run, shared)."""
    return run_entry_point(ROOT, stack="prod")
