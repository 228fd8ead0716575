"""A rollout verb reads and validates its stack file once per command."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from mlplatform.tools.rollout import cli, context
from mlplatform.tools.stackfile import editor
from tests.rollout.conftest import STACK
from tests.rollout.test_concurrency import _healthy


def _run(project: Path, *argv: str) -> tuple[int, list[dict]]:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    command, *rest = argv
    args = parser.parse_args(["rollout", command, STACK, "--project-dir", str(project), "--json", *rest])
    stream = io.StringIO()
    code = cli.run(args, stream=stream)
    return code, [json.loads(line) for line in stream.getvalue().splitlines()]


def test_next_reads_the_file_once_and_validates_it_once(project: Path, stack_file: Path, monkeypatch) -> None:
    """`next` used to read the file 4 times and validate it 3 times: a window for a second writer
    between the reads, and three chances to disagree with itself. Now: one read of the file's bytes,
    one validation of what was read, one validation of the edit's result before it is written."""
    reads: list[Path] = []
    validated: list[str] = []
    real_read_bytes, real_validate = Path.read_bytes, editor.validate_stack_config

    def read_bytes(self: Path) -> bytes:
        if self.resolve() == stack_file.resolve():
            reads.append(self)
        return real_read_bytes(self)

    def validate(stack_config, *args, **kwargs):
        validated.append(stack_config.values["mlmodel:canary"]["weight"])
        return real_validate(stack_config, *args, **kwargs)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: read_bytes(self).decode(*a, **k))
    monkeypatch.setattr(editor, "validate_stack_config", validate)
    monkeypatch.setattr(context.Context, "gate", lambda self, config, **window: _healthy(config))
    code, events = _run(project, "next", "--prometheus-url", "http://127.0.0.1:9")
    assert code == 0, events
    assert events[-1]["weight"] == 25
    assert len(reads) == 1, reads
    assert validated == [10, 25], "the file as read (10%), then the edit's result (25%)"
