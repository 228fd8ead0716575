"""No path that applies main brings back an aborted canary: `rollout guard` before every `up`."""

from __future__ import annotations

import io
import json
from pathlib import Path

from mlplatform.tools.rollout import cli, context
from mlplatform.tools.stackfile import editor as stackfile
from tests.rollout.conftest import STACK, STACK_TEXT, with_weight
from tests.rollout.test_concurrency import _args


def _guard(project: Path, *extra: str) -> tuple[int, list[dict]]:
    stream = io.StringIO()
    ctx = context.Context(
        path=stackfile.stack_path(STACK, project),
        out=context.Output(True, stream),
        args=_args(project, "guard", *extra),
    )
    code = cli.run_context(ctx)
    return code, [json.loads(line) for line in stream.getvalue().splitlines()]


def _aborted(status_file: Path, pr: str | None = "rollout/fraud-detector-test-20270115080000") -> None:
    status_file.write_text(
        json.dumps(
            {
                "phase": "Aborted",
                "canaryVersion": "v6",
                "weight": 0,
                "stepStartedAt": "2027-01-15T08:00:00Z",
                "failedChecks": 2,
                "abort": {"reason": "2 consecutive failed checks: success 50%", "at": "2027-01-15T08:00:00Z", "pr": pr},
            }
        )
    )


def test_a_file_that_would_bring_back_an_aborted_canary_is_refused(project, stack_file, status_file):
    """Main still says 10% (the rollback PR is open); the cluster aborted v6: the deploy must not run."""
    _aborted(status_file)
    code, events = _guard(project)
    assert code == 1
    reason = events[-1]["reason"]
    assert "canary v6 was aborted on the cluster at 2027-01-15T08:00:00Z" in reason
    assert "2 consecutive failed checks: success 50%" in reason
    assert "rollout/fraud-detector-test-20270115080000" in reason


def test_main_that_records_the_abort_passes(project, stack_file, status_file):
    _aborted(status_file)
    stack_file.write_text(with_weight(0))
    assert _guard(project)[0] == 0


def test_a_canary_that_was_not_aborted_passes(project, stack_file, status_file):
    assert _guard(project)[0] == 0


def test_a_new_canary_version_is_not_the_aborted_one(project, stack_file, status_file):
    _aborted(status_file)
    stack_file.write_text(STACK_TEXT.replace("version: v6", "version: v7").replace("/6\n", "/7\n"))
    assert _guard(project)[0] == 0


def test_retry_on_purpose_clears_the_abort(project, stack_file, status_file):
    _aborted(status_file)
    code, events = _guard(project, "--retry", "fixed the model server, INC-7")
    assert code == 0 and events[-1]["retry"] == "fixed the model server, INC-7"
    assert json.loads(status_file.read_text())["phase"] == "Progressing"
    assert _guard(project)[0] == 0
