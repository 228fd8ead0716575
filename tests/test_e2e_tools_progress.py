"""The first build of the e2e tools shows its progress: each tool's start and end, and its log's path.

A cold build takes 15 to 40 minutes. Under pytest's capture it used to look like
a hang on the first e2e test. These tests run the real scripts/e2e-tools.sh
through the fixture's runner with a stand-in `go` that "builds" instantly, so the
cold-build path is exercised without compiling anything.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.e2e.tools import TOOLS_SCRIPT, provide_tools

# A `go` that answers what the script asks: its version, a module's directory, the
# provider's schema generator, and builds (an executable stub, and a line in the log).
FAKE_GO = r"""#!/bin/sh
case "$1" in
    env) echo go1.26.0 ;;
    mod) printf '{\n\t"Path": "%s",\n\t"Dir": "%s",\n}\n' "$4" "$FAKE_MODULE_DIR" ;;
    run) echo "generated the provider schema" ;;
    build)
        out=""; previous=""
        for arg in "$@"; do [ "$previous" = "-o" ] && out="$arg"; previous="$arg"; done
        if [ -n "$FAIL_BUILD" ] && echo "$*" | grep -q "$FAIL_BUILD"; then
            echo "compile error in $FAIL_BUILD: undefined: Foo" >&2; exit 1
        fi
        echo "compiling $FAKE_PACKAGE_LINE"
        printf '#!/bin/sh\n' > "$out"; chmod +x "$out" ;;
    *) echo "fake go: unexpected $*" >&2; exit 2 ;;
esac
"""
FAKE_PACKAGE_LINE = "k8s.io/apimachinery/pkg/runtime"
SYSTEM_PATH = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"


def _tools() -> list[str]:
    """The tools the script provides, from its own table."""
    table = re.search(r"tool_table\(\) \{\n    cat <<'EOF'\n(.*?)\nEOF\n", TOOLS_SCRIPT.read_text(), re.S)
    assert table, "scripts/e2e-tools.sh must keep its tool_table heredoc"
    tools = [line.split("|", 1)[0] for line in table.group(1).splitlines()]
    assert len(tools) >= 5
    return tools


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def cold_machine(tmp_path: Path) -> dict[str, str]:
    """The environment of a machine with etcd and Go, none of the tools, and an empty cache."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "go", FAKE_GO)
    _executable(bin_dir / "etcd", "#!/bin/sh\nexit 0\n")
    modules = tmp_path / "modules"
    (modules / "cmd" / "pulumi-resource-kubernetes").mkdir(parents=True)
    for name in ("schema.json", "terraform-mapping.json"):
        (modules / "cmd" / "pulumi-resource-kubernetes" / name).write_text("{}")
    (modules / "python" / "cmd").mkdir(parents=True)
    _executable(modules / "python" / "cmd" / "pulumi-language-python-exec", "#!/bin/sh\n")
    found = [t for t in _tools() for d in SYSTEM_PATH.split(":") if (Path(d) / t).exists()]
    assert found == [], f"these tools are installed system-wide, so this test cannot see them built: {found}"
    return {
        "PATH": f"{bin_dir}:{SYSTEM_PATH}",
        "HOME": str(tmp_path / "home"),
        "MLPLATFORM_E2E_CACHE": str(tmp_path / "cache"),
        "FAKE_MODULE_DIR": str(modules),
        "FAKE_PACKAGE_LINE": FAKE_PACKAGE_LINE,
    }


def test_a_cold_build_shows_each_tools_start_end_and_log(cold_machine):
    """Each tool is announced with its log's path before it builds, and its time after."""
    shown: list[str] = []
    tools = provide_tools(env=cold_machine, progress=shown.append)
    logs = Path(cold_machine["MLPLATFORM_E2E_CACHE"]) / "logs"
    expected = _tools()
    assert [t for t in tools if t not in ("ETCD", "KWOK_STAGES", "CACHE")] == expected
    assert tools["KWOK_STAGES"] == f"{cold_machine['FAKE_MODULE_DIR']}/kustomize/stage"
    announcement = r"needs about 4\.6 GB of memory at peak and 15 GB of disk.*Build logs: "
    assert re.search(announcement + re.escape(str(logs)), shown[0]), shown[0]
    progress = [line for line in shown if re.search(r"\d\d:\d\d:\d\d (building|built) ", line)]
    assert len(progress) == 2 * len(expected), shown
    for index, tool in enumerate(expected):
        start, end = progress[2 * index], progress[2 * index + 1]
        assert f"building {tool} from " in start and start.endswith(f"; log: {logs / tool}.log"), start
        assert re.search(rf"built {re.escape(tool)} in \d+s$", end), end
        # The compiler's output is in the log, not on the terminal.
        assert FAKE_PACKAGE_LINE in (logs / f"{tool}.log").read_text()
    assert not any(FAKE_PACKAGE_LINE in line for line in shown)


def test_a_failed_build_shows_the_end_of_its_log(cold_machine):
    """A failed build names its log and prints its last lines, so the error is on screen."""
    cold_machine["FAIL_BUILD"] = "kube-apiserver"
    shown: list[str] = []
    with pytest.raises(pytest.fail.Exception) as excinfo:
        provide_tools(env=cold_machine, progress=shown.append)
    log = Path(cold_machine["MLPLATFORM_E2E_CACHE"]) / "logs" / "kube-apiserver.log"
    assert any("building kube-apiserver failed after" in line and str(log) in line for line in shown), shown
    assert "compile error in kube-apiserver: undefined: Foo" in str(excinfo.value)


def test_progress_arrives_while_the_script_runs(tmp_path):
    """Lines reach the terminal as they are written: this script waits until its first line has been shown."""
    shown_marker = tmp_path / "first-line-shown"
    script = tmp_path / "slow-tools.sh"
    script.write_text(
        "echo 'e2e-tools: building pulumi' >&2\n"
        f"for _ in $(seq 100); do [ -e '{shown_marker}' ] && break; sleep 0.1; done\n"
        f"[ -e '{shown_marker}' ] || {{ echo 'first line never shown while running' >&2; exit 3; }}\n"
        "echo 'e2e-tools: built pulumi in 1s' >&2\n"
        "echo pulumi=/opt/pulumi\n"
    )
    shown: list[str] = []

    def progress(line: str) -> None:
        shown.append(line)
        shown_marker.touch()

    assert provide_tools(script, progress=progress) == {"pulumi": "/opt/pulumi"}
    assert shown == ["e2e-tools: building pulumi", "e2e-tools: built pulumi in 1s"]


def test_a_script_past_its_timeout_is_killed_and_fails(tmp_path):
    """A build that never ends fails the tier with what it printed, instead of hanging CI."""
    script = tmp_path / "stuck.sh"
    # The sleep is a child, as a compiler is: it must be killed too, or it holds the pipe open.
    script.write_text("echo 'e2e-tools: building pulumi' >&2\nsleep 30\necho done\n")
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=r"did not finish in 0\.5s:\ne2e-tools: building pulumi"):
        provide_tools(script, progress=lambda _: None, timeout=0.5)
    assert time.monotonic() - started < 10
