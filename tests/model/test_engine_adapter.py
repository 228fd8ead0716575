"""The SDK internals the program uses are pinned: an SDK upgrade must re-check the adapter."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from mlplatform.model import engine_adapter

ROOT = Path(__file__).resolve().parents[2]


def test_the_adapter_names_the_sdk_version_requirements_pin():
    pinned = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert pinned, "requirements.txt pins no pulumi version"
    assert pinned.group(1) == engine_adapter.PULUMI_SDK_VERSION, (
        "requirements.txt pins another Pulumi SDK than mlplatform/model/engine_adapter.py was checked "
        "against: re-run tests/model/test_provider_first.py, then update PULUMI_SDK_VERSION"
    )


def test_the_installed_sdk_is_the_pinned_one():
    assert metadata.version("pulumi") == engine_adapter.PULUMI_SDK_VERSION


def test_no_other_program_module_reaches_into_sdk_internals():
    """The program wing's one adapter; the tools' offline engine drives the SDK's runtime on purpose."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "mlplatform").rglob("*.py")
        if "tools" not in path.relative_to(ROOT).parts
        and path.name != "engine_adapter.py"
        and "_sync_await" in path.read_text()
    ]
    assert offenders == []
