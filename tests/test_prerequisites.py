"""A missing prerequisite fails the tests that need it, naming what to install: nothing is skipped.

`make test` on a fresh machine used to report success with the Prometheus,
amtool and e2e tests skipped. These tests run each prerequisite check with the
binary out of reach and assert it fails with the package and the command.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.tools import TOOLS_SCRIPT, provide_tools
from tests.support.helpers import ROOT, must_search
from tests.support.prerequisites import DEBIAN_PACKAGES, require_binary
from tests.support.servers import running_prometheus

# What the tools script needs before it looks for etcd and Go.
SCRIPT_UTILITIES = ("bash", "dirname", "cat", "mkdir")


def _failure(check) -> str:
    """The message `check()` fails with; a skip (what these checks used to do) is an assertion error."""
    try:
        check()
    except pytest.fail.Exception as failure:
        return str(failure)
    except pytest.skip.Exception as skip:
        raise AssertionError(f"skipped instead of failing: {skip}") from None
    raise AssertionError("the check passed with its prerequisite out of reach")


def _path_with(tmp_path: Path, *names: str) -> str:
    """A PATH holding only `names`, linked from this machine's, so nothing else is found."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in names:
        found = shutil.which(name)
        assert found, f"{name} is needed to run this test"
        (bin_dir / name).symlink_to(found)
    return str(bin_dir)


@pytest.mark.parametrize("binary", sorted(DEBIAN_PACKAGES))
def test_missing_binary_fails_naming_its_package(monkeypatch, binary):
    """The failure tells a newcomer what to install and how, instead of a skip nobody reads."""
    monkeypatch.setenv("PATH", "")
    message = _failure(lambda: require_binary(binary))
    assert f"`{binary}` is not on PATH" in message
    assert f"Debian package `{DEBIAN_PACKAGES[binary]}`" in message
    assert "make deps" in message and f"apt-get install {DEBIAN_PACKAGES[binary]}" in message


def test_prometheus_fixture_fails_without_prometheus(monkeypatch, tmp_path):
    """The integration tier's Prometheus fixture fails (it used to skip outside CI)."""
    monkeypatch.setenv("PATH", "")

    def start() -> None:
        with running_prometheus("127.0.0.1:9", tmp_path):
            pass

    assert re.search(r"Debian package `prometheus`.*make deps", _failure(start))


def test_e2e_tools_fail_without_etcd_naming_its_package(tmp_path):
    """The e2e tier fails, naming etcd-server, before any build starts."""
    env = {"PATH": _path_with(tmp_path, *SCRIPT_UTILITIES), "MLPLATFORM_E2E_CACHE": str(tmp_path / "cache")}
    message = _failure(lambda: provide_tools(env=env))
    assert "etcd is not on PATH" in message and "etcd-server" in message and "make deps" in message


def test_e2e_tools_fail_without_go_naming_the_version(tmp_path):
    """With etcd there but neither Go nor the tools, the tier fails naming the Go it needs."""
    path = _path_with(tmp_path, *SCRIPT_UTILITIES)
    fake_etcd = Path(path) / "etcd"
    fake_etcd.write_text("#!/bin/sh\nexit 0\n")
    fake_etcd.chmod(0o755)
    env = {"PATH": path, "MLPLATFORM_E2E_CACHE": str(tmp_path / "cache")}
    message = _failure(lambda: provide_tools(env=env))
    go_min = must_search(r"^GO_MIN := (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert re.search(rf"Go is needed to build \S+ and is not on PATH; install Go {re.escape(go_min)} or newer", message)


def test_makefile_installs_every_package_the_tests_name():
    """`make deps` and the tests' messages follow one list: a package named in a failure is one deps installs."""
    makefile = (ROOT / "Makefile").read_text()
    line = re.search(r"^DEB_TOOLS := (.+)$", makefile, re.M)
    assert line, "Makefile must define DEB_TOOLS"
    pairs = dict(pair.split(":", 1) for pair in line.group(1).split())
    assert pairs == DEBIAN_PACKAGES


def test_go_minimum_matches_the_tools_modules():
    """`make deps` checks for the Go that the newest `go` line under tests/e2e/go-modules/ asks for."""
    makefile_min = re.search(r"^GO_MIN := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert makefile_min
    modules = (ROOT / "tests" / "e2e" / "go-modules").glob("*/go.mod")
    go_lines = [must_search(r"^go (\S+)$", mod.read_text(), re.M).group(1) for mod in modules]
    assert go_lines
    newest = max(go_lines, key=lambda v: tuple(int(p) for p in v.split(".")))
    assert makefile_min.group(1) == newest
    assert f"install Go {newest} or newer" in TOOLS_SCRIPT.read_text()


def test_no_test_skips_itself():
    """A skip in the suite is a test that never ran reported as fine; CI (.ci/run) also fails on any."""
    patterns = re.compile(r"pytest\.(skip|importorskip)\(|mark\.(skip|skipif)\b")
    this_file = Path(__file__).resolve()
    modules = [p for p in (ROOT / "tests").rglob("*.py") if p.resolve() != this_file]
    assert modules
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in modules
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if patterns.search(line)
    ]
    assert offenders == []


def _make_deps(tmp_path: Path, *overrides: str, uid: int) -> subprocess.CompletedProcess:
    """`make deps` as user `uid`, with a recording apt-get and a Go 1.26, ahead of the real PATH."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    for name, body in {
        "id": f"echo {uid}",
        "apt-get": f'echo "apt-get $*" >> {tmp_path / "apt.log"}',
        "go": 'test "$1 $2" = "env GOVERSION" && echo go1.26.0',
    }.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(
        ["make", "-s", "-C", str(ROOT), "deps", *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_make_deps_as_a_user_names_the_missing_packages_and_sudo(tmp_path):
    """apt-get needs root: without it, deps stops with what is missing and how to install it."""
    result = _make_deps(tmp_path, "DEB_TOOLS=no-such-binary-x:pkg-x amtool:prometheus-alertmanager", uid=1000)
    assert result.returncode != 0
    assert "missing Debian packages: pkg-x" in result.stderr and "sudo make deps" in result.stderr
    assert not (tmp_path / "apt.log").exists()


def test_make_deps_as_root_updates_then_installs_only_what_is_missing(tmp_path):
    """One apt-get update, then an install of the missing packages alone."""
    result = _make_deps(tmp_path, "DEB_TOOLS=no-such-binary-x:pkg-x sh:dash", uid=0)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert calls == ["apt-get update -qq", "apt-get install -y -qq pkg-x"]


def test_make_deps_fails_on_a_go_older_than_the_tools_need(tmp_path):
    """A Go too old to build tests/e2e/go-modules/ is named with the version needed, before a build fails obscurely."""
    result = _make_deps(tmp_path, "DEB_TOOLS=", "GO_MIN=1.99.0", uid=0)
    assert result.returncode != 0
    assert "Go 1.26.0 is too old" in result.stderr and "install Go 1.99.0 or newer" in result.stderr
