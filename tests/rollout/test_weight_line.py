"""A step or an abort changes the weight line and nothing else, whatever the file's style."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
from pathlib import Path

import pytest

from mlplatform.tools.rollout import cli
from mlplatform.tools.stackfile import editor as stackfile
from mlplatform.tools.stackfile import rules
from tests.rollout.conftest import STACK, STACK_TEXT

REST = """\
  mlmodel:allowedClients:
    - serviceAccount: api-gateway
      namespace: api-gateway
"""
HEAD = """\
  mlmodel:platformStack: organization/mlplatform/dev
  mlmodel:model:
    name: fraud-detector
    namespace: mlserve-test
  mlmodel:stable:
    version: v5
    image: ghcr.io/example/fraud-detector-serving:1.0.0
    modelUri: models:/fraud_detector/5
"""
CANARY_BLOCK = """\
  mlmodel:canary:
    version: v6
    image: ghcr.io/example/fraud-detector-serving:1.0.0
    modelUri: models:/fraud_detector/6
"""

# name -> (file text, index of the weight line)
ODD_FILES = {
    "crlf": (
        "config:\r\n"
        + (HEAD + CANARY_BLOCK + "    weight: 10  # step one\r\n" + REST)
        .replace("\n", "\r\n")
        .replace("\r\r\n", "\r\n")
    ),
    "document-marker-and-comments": (
        "# leading comment\n---\nconfig:\n"
        + HEAD
        + "\n\n  # about the canary\n"
        + CANARY_BLOCK
        + "    # the weight moves\n    weight: 10\n    # after the weight\n\n"
        + REST
        + "# trailing\n"
    ),
    "four-space-indent": "config:\n"
    + "\n".join(line.replace("  ", "    ") for line in (HEAD + CANARY_BLOCK + "    weight: 10\n").split("\n"))
    + "    mlmodel:allowedClients: [{serviceAccount: api-gateway, namespace: api-gateway}]\n",
    "flow-map": (
        "config:\n" + HEAD + '  mlmodel:canary: {version: v6, image: "ghcr.io/example/fraud-detector-serving:1.0.0",'
        " modelUri: 'models:/fraud_detector/6#x', weight: 10}   # flow style\n" + REST
    ),
    "multi-line-flow-map": (
        "config:\n"
        + HEAD
        + "  mlmodel:canary: {\n    version: v6,\n    image: ghcr.io/example/fraud-detector-serving:1.0.0,\n"
        "    modelUri: models:/fraud_detector/6,\n    weight: 10,\n  }\n" + REST
    ),
    "value-on-next-line": ("config:\n" + HEAD + CANARY_BLOCK + "    weight:\n      10\n" + REST),
    "quoted-key": ("config:\n" + HEAD + CANARY_BLOCK + '    "weight": 10 # quoted\n' + REST),
}


def _weight_index(text: str) -> int:
    lines = text.replace("\r\n", "\n").split("\n")
    return next(
        i
        for i, line in enumerate(lines)
        if line.strip().startswith("10") or 'weight": 10' in line or "weight: 10" in line
    )


def _lines(text: str) -> list[str]:
    return text.split("\n")  # keeps each line's \r: a CRLF line lost is a changed line


def _run(project: Path, *argv: str) -> tuple[int, list[dict]]:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    command, *rest = argv
    stream = io.StringIO()
    code = cli.run(
        parser.parse_args(["rollout", command, STACK, "--project-dir", str(project), "--json", *rest]), stream=stream
    )
    return code, [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize("name", sorted(ODD_FILES))
@pytest.mark.parametrize(
    ("edit", "weight"), [(stackfile.set_weight(25), 25), (stackfile.abort("p99 900ms"), 0)], ids=["step", "abort"]
)
def test_only_the_weight_line_changes(stack_file: Path, name: str, edit, weight: int) -> None:
    """Comments, blank lines, indentation, flow maps, `---` and CRLF survive byte for byte."""
    before = ODD_FILES[name]
    stack_file.write_bytes(before.encode())
    result = stackfile.apply_edit(stack_file, edit)
    after = stack_file.read_bytes().decode()
    assert rules.require_canary(result.after).weight == weight
    old, new = _lines(before), _lines(after)
    assert len(old) == len(new)
    changed = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    assert changed == [_weight_index(before)], (old, new)
    line = new[changed[0]]
    assert str(weight) in line
    if weight == 0:
        assert "# aborted: p99 900ms" in line
    assert line.endswith("\r") == old[changed[0]].endswith("\r")


def test_abort_replaces_only_the_weight_lines_own_comment(stack_file: Path) -> None:
    """The reason replaces the weight line's comment; a `#` inside a quoted value is not a comment."""
    text = STACK_TEXT.replace("    weight: 10  # the first step", "    weight: 10  # the first step")
    stack_file.write_text(text)
    stackfile.apply_edit(stack_file, stackfile.abort("customer   complaints\nfrom EU"))
    assert "    weight: 0  # aborted: customer complaints from EU\n" in stack_file.read_text()
    flow = ODD_FILES["flow-map"]
    stack_file.write_text(flow)
    stackfile.apply_edit(stack_file, stackfile.abort("x"))
    assert "modelUri: 'models:/fraud_detector/6#x', weight: 0}  # aborted: x\n" in stack_file.read_text()


def test_second_abort_keeps_the_first_reason(project: Path, stack_file: Path) -> None:
    """The first abort's reason is the one that matters; a second abort writes nothing and says so."""
    assert _run(project, "abort", "--reason", "p99 900ms")[0] == 0
    first = stack_file.read_text()
    code, events = _run(project, "abort", "--reason", "again, from the pager")
    assert code == 0
    assert events[-1] == {
        "event": "aborted",
        "previous": 0,
        "weight": 0,
        "reason": "p99 900ms",
        "written": False,
        "alreadyAborted": True,
    }
    assert stack_file.read_text() == first
    assert "# aborted: p99 900ms" in first


def test_second_abort_with_commit_is_not_a_git_error(project: Path, stack_file: Path) -> None:
    """Nothing to change means nothing to commit, not git's "nothing to commit" as an error."""
    for command in (
        ["init", "-q"],
        ["config", "user.name", "t"],
        ["config", "user.email", "t@x"],
        ["add", "."],
        ["commit", "-q", "-m", "init"],
    ):
        subprocess.run(["git", *command], cwd=project, check=True, capture_output=True)
    assert _run(project, "abort", "--reason", "first", "--commit")[0] == 0
    code, events = _run(project, "abort", "--reason", "second", "--commit")
    assert code == 0 and events[-1]["reason"] == "first"
    log = subprocess.run(["git", "log", "--format=%s"], cwd=project, capture_output=True, text=True, check=True).stdout
    assert log.count("abort canary v6") == 1


def test_hand_set_zero_gets_the_reason(stack_file: Path) -> None:
    """A weight set to 0 by hand, with no abort comment, is recorded by the first `abort`."""
    stack_file.write_text(STACK_TEXT.replace("weight: 10  # the first step", "weight: 0"))
    result = stackfile.apply_edit(stack_file, stackfile.abort("broken"))
    assert result.written and "    weight: 0  # aborted: broken\n" in stack_file.read_text()
