"""The opt-in plugin-discovery shim: a cached `pip list` that never misses a new package."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlplatform.tools.plugin_shim import PIP_LIST_ARGS, SHIM_NAME, ShimError, install


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real virtualenv with pip (ensurepip, no index needed)."""
    path = tmp_path_factory.mktemp("shim") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path


def _listing(shim: Path) -> list[dict]:
    done = subprocess.run([str(shim), *PIP_LIST_ARGS], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _add_distribution(venv: Path, name: str, version: str) -> None:
    """What pip leaves behind when it installs a package: a `*.dist-info` with METADATA."""
    (site,) = (venv / "lib").glob("python*/site-packages")
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist_info / "RECORD").write_text("")
    (dist_info / "INSTALLER").write_text("pip\n")


def test_first_listing_is_pips_own_answer(venv: Path) -> None:
    """Through the shim the host sees exactly what `python -m pip list -v --format json` prints."""
    shim = install(venv)
    real = subprocess.run([str(venv / "bin" / "python"), *PIP_LIST_ARGS], capture_output=True, text=True, check=True)
    assert _listing(shim) == json.loads(real.stdout)
    assert {p["name"] for p in _listing(shim)} >= {"pip"}


def test_an_unchanged_virtualenv_is_answered_from_the_cache(venv: Path) -> None:
    """With site-packages untouched, the cached listing is served without running pip."""
    shim = install(venv)
    _listing(shim)  # fills the cache
    cache = venv / ".pulumi-plugin-listing.json"
    cache.write_text(json.dumps([{"name": "from-the-cache", "version": "0", "location": "x"}]))
    assert _listing(shim) == [{"name": "from-the-cache", "version": "0", "location": "x"}]


def test_a_new_provider_package_is_never_missed(venv: Path) -> None:
    """Installing a package changes site-packages, so the next listing runs pip again and names it."""
    shim = install(venv)
    _listing(shim)
    (venv / ".pulumi-plugin-listing.json").write_text("[]")  # a stale cache must not survive the install
    time.sleep(0.01)
    _add_distribution(venv, "pulumi-fakeprovider", "1.2.3")
    names = {p["name"]: p["version"] for p in _listing(shim)}
    assert names.get("pulumi-fakeprovider") == "1.2.3"


def test_every_other_command_runs_the_virtualenvs_python(venv: Path) -> None:
    """The program itself goes through the shim untouched: same interpreter, arguments and exit code."""
    shim = install(venv)
    done = subprocess.run(  # noqa: PLW1510 - the exit code is what the test checks
        [str(shim), "-c", "import sys; print(sys.prefix); sys.exit(3)"], capture_output=True, text=True
    )
    assert done.returncode == 3
    assert Path(done.stdout.strip()).resolve() == venv.resolve()
    assert shim.name == SHIM_NAME


def test_a_virtualenv_seeing_system_packages_is_refused(tmp_path: Path) -> None:
    """Packages installed outside the virtualenv would not change its fingerprint."""
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(path)], check=True)
    with pytest.raises(ShimError, match="include-system-site-packages"):
        install(path)


def test_not_a_virtualenv_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ShimError, match="not a virtualenv"):
        install(tmp_path)
