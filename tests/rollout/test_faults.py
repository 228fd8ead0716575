"""Faults and bad input: every verb exits with its documented code, one clear line, no traceback,
no temporary file, and the stack file as it was."""

from __future__ import annotations

import argparse
import errno
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlplatform.tools.rollout import cli
from mlplatform.tools.stackfile import atomic
from tests.rollout.conftest import STACK, STACK_TEXT
from tests.support.helpers import ROOT

VERB_ARGS = {
    "status": [],
    "start": ["--version", "v7", "--image", "ghcr.io/example/fd:2.0.0", "--model-uri", "models:/fraud_detector/7"],
    "next": [],
    "abort": ["--reason", "x"],
    "promote": [],
    "watch": ["--max-checks", "1", "--interval", "1"],
}
VERBS = sorted(VERB_ARGS)
CLOSED = "http://127.0.0.1:9"


def _run(project: Path, verb: str, *extra: str) -> tuple[int, list[dict]]:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    argv = ["rollout", verb, STACK, "--project-dir", str(project), "--json", *VERB_ARGS[verb], *extra]
    if verb in ("status", "next", "promote", "watch"):
        argv += ["--prometheus-url", CLOSED, "--prometheus-timeout", "1"]
    stream = io.StringIO()
    code = cli.run(parser.parse_args(argv), stream=stream)
    return code, [json.loads(line) for line in stream.getvalue().splitlines()]


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# -- malformed input: exit 2 with file, line and column ---------------------------

MALFORMED = {
    "unclosed-flow": ("config:\n  mlmodel:stable: [unclosed\n", r":3:1: not valid YAML"),
    "tab-indent": ("config:\n\tmlmodel:environment: dev\n", r":2:1: not valid YAML: .*tab.*spaces, never tabs"),
    "duplicate-key": ("config:\n  mlmodel:environment: dev\n  mlmodel:environment: prod\n", r":3:3: not valid YAML"),
}


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_yaml_is_exit_2_with_position(project: Path, stack_file: Path, verb: str, case: str) -> None:
    """A syntax error, a tab or a duplicate key names file:line:column for every verb."""
    text, pattern = MALFORMED[case]
    stack_file.write_text(text)
    code, events = _run(project, verb)
    assert code == 2, events
    assert events[-1]["event"] == "error"

    assert re.search(re.escape(str(stack_file)) + pattern, events[-1]["error"]), events[-1]["error"]
    assert stack_file.read_text() == text


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize(
    "line, named",
    [
        ("  mlmodl:canary.weight: 25\n", "mlmodl:canary.weight"),
        ("  mlplatform:environment: dev\n", "mlplatform:environment"),
    ],
)
def test_a_key_of_a_foreign_namespace_is_exit_2(
    project: Path, stack_file: Path, verb: str, line: str, named: str
) -> None:
    """The same namespace check as `pulumi up` and `render`: a misspelt `mlmodl:` key would be
    ignored by the program (and the canary deleted), so no verb acts on such a file."""
    text = STACK_TEXT.replace("  mlmodel:analysis:\n", line + "  mlmodel:analysis:\n")
    stack_file.write_text(text)
    code, events = _run(project, verb)
    assert code == 2, events
    assert named in events[-1]["error"]
    assert stack_file.read_text() == text


def test_a_secure_value_is_an_opaque_placeholder_for_the_rollout_verbs(project: Path, stack_file: Path) -> None:
    """Real stacks carry `secure:` values (a provider credential); the rollout verbs accept them
    as `pulumi up` does, and an edit keeps them byte for byte."""
    secure = "  aws:secretKey:\n    secure: v1:abc:def\n"
    stack_file.write_text(STACK_TEXT + secure)
    code, events = _run(project, "abort")
    assert code == 0, events
    assert stack_file.read_text().endswith(secure)


@pytest.mark.parametrize("verb", VERBS)
def test_non_utf8_is_exit_2_with_position(project: Path, stack_file: Path, verb: str) -> None:
    """A Latin-1 byte in a comment is named with its line and column, not a UnicodeDecodeError."""
    raw = STACK_TEXT.encode().replace(b"# the first step", b"# caf\xe9 step")
    stack_file.write_bytes(raw)
    code, events = _run(project, verb)
    assert code == 2
    line = STACK_TEXT.splitlines().index("    weight: 10  # the first step") + 1
    assert f"{stack_file}:{line}:22: is not UTF-8 (byte 0xe9)" in events[-1]["error"]
    assert stack_file.read_bytes() == raw


def test_no_traceback_from_the_real_entry_point(project: Path, stack_file: Path) -> None:
    """As a user runs it: one line on stdout, nothing on stderr, exit 2."""
    stack_file.write_text("config:\n\tmlmodel:environment: dev\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlplatform.tools.rollout",
            "abort",
            STACK,
            "--project-dir",
            str(project),
            "--reason",
            "x",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2
    assert done.stderr == "" and "Traceback" not in done.stdout
    assert done.stdout.startswith(f"error: {stack_file}:2:1: not valid YAML")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["start", STACK, "--version", "v7"], "--from-registry"),
        (["start", STACK, "--version", "v7", "--image", "x:1"], "--from-registry"),
        (["abort", STACK], "--reason"),
        (["next", STACK, "--prometheus-timeout", "0"], "greater than 0"),
        (["watch", STACK, "--interval", "-1"], "greater than 0"),
        (["status", STACK, "--lock-timeout", "soon"], "not a number"),
        (["frobnicate", STACK], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_in_every_verb(project: Path, argv: list[str], needle: str, capsys) -> None:
    """Argument errors are exit 2, whether argparse or the command finds them."""
    code: int | str | None  # SystemExit.code
    try:
        code = cli.main(["rollout", *argv, "--project-dir", str(project)])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    assert code == 2
    assert needle in captured.out + captured.err


# -- I/O faults: exit 4, the file named, nothing left behind -----------------------


@pytest.mark.parametrize(
    ("failing", "error"),
    [
        ("write", errno.ENOSPC),
        ("write", errno.EROFS),
        ("mkstemp", errno.EACCES),
        ("mkstemp", errno.EROFS),
        ("replace", errno.EACCES),
    ],
    ids=["disk-full", "read-only-at-write", "permission-denied", "read-only-file-system", "rename-denied"],
)
def test_write_faults_exit_4_and_leave_no_trace(
    project: Path, stack_file: Path, monkeypatch, failing: str, error: int
) -> None:
    """Disk full, a read-only file system, permission denied: exit 4 (not 1, the gate's refusal),
    the message names the stack file, which is unchanged, and no temp file is left."""
    message = os.strerror(error)

    def fail(*args, **kwargs):
        raise OSError(error, message)

    if failing == "write":
        real_fdopen = os.fdopen

        def fdopen(fd, *args, **kwargs):
            handle = real_fdopen(fd, *args, **kwargs)

            class Failing:
                def __enter__(self):
                    return self

                def __exit__(self, *exc):
                    handle.close()

                def write(self, data):
                    fail()

            return Failing()

        monkeypatch.setattr(atomic.os, "fdopen", fdopen)
    elif failing == "mkstemp":
        monkeypatch.setattr(atomic.tempfile, "mkstemp", fail)
    else:
        monkeypatch.setattr(atomic.os, "replace", fail)
    code, events = _run(project, "abort")
    assert code == 4
    assert events[-1]["error"].startswith(f"{stack_file}: cannot write the stack file: {message}")
    assert stack_file.read_text() == STACK_TEXT
    assert _leftovers(project) == []


def test_read_permission_denied_exits_4(project: Path, stack_file: Path, monkeypatch) -> None:
    """An unreadable stack file is an I/O error naming it, not a traceback."""
    real = Path.read_bytes

    def read_bytes(self):
        if self == stack_file:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    code, events = _run(project, "status")
    assert code == 4
    assert events[-1]["error"] == f"{stack_file}: cannot read the stack file: Permission denied"


def test_read_only_stack_file_is_not_replaced(project: Path, stack_file: Path, monkeypatch) -> None:
    """A rename would overwrite a read-only file; the tool refuses like an editor does."""
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: Path(path) != stack_file)
    code, events = _run(project, "abort")
    assert code == 4
    assert events[-1]["error"] == (
        f"{stack_file}: cannot write the stack file: permission denied (the file is read-only)"
    )
    assert stack_file.read_text() == STACK_TEXT


def test_failed_commit_restores_the_file(project: Path, stack_file: Path) -> None:
    """--commit outside a Git checkout: exit 4 with git's own words, and the edit is undone."""
    code, events = _run(project, "abort", "--commit")
    assert code == 4
    error = events[-1]["error"]
    assert "`git add` failed: " in error and "not a git repository" in error.lower()
    assert stack_file.read_text() == STACK_TEXT and _leftovers(project) == []


def test_status_reports_an_unreachable_gate_with_exit_3(project: Path) -> None:
    """status prints the state even when Prometheus cannot be reached, then exits 3."""
    code, events = _run(project, "status")
    assert code == 3
    (status,) = events
    assert status["weight"] == 10 and status["canary"]["version"] == "v6"
    assert "cannot reach Prometheus" in status["gateError"]
