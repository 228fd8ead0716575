"""The dwell and the failed checks live in the rollout status, so `next` honours the dwell and every
scheduled `watch` run resumes where the last one stopped (issue 18)."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

from mlplatform.tools.rollout import cli, context, state, watch
from mlplatform.tools.rollout.gate import GateVerdict
from mlplatform.tools.stackfile import editor as stackfile
from tests.rollout.conftest import STACK, STACK_TEXT, canary_in, seed_status
from tests.rollout.test_concurrency import _args, _git_repo, _healthy

T0 = 1_800_000_000.0
# Dwells as durations: the 10% step dwells 15 minutes, as in the defaults.
DWELLS = STACK_TEXT + "    dwellMinutes: [15m, 10m, 30s, 30s, 30s]\n"


def _unhealthy(config) -> GateVerdict:
    verdict = _healthy(config)
    return GateVerdict(
        **{**verdict.__dict__, "healthy": False, "outcome": "fail", "success_rate": 0.5, "reasons": ["success 50%"]}
    )


def _ctx(project: Path, now: list[float], *argv: str) -> tuple[context.Context, io.StringIO]:
    stream = io.StringIO()
    args = _args(project, *argv, "--prometheus-url", "http://127.0.0.1:9")
    return context.Context(
        path=stackfile.stack_path(STACK, project), out=context.Output(True, stream), args=args, now=lambda: now[0]
    ), stream


def _events(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_next_refuses_before_the_dwell_and_names_the_time_left(project, stack_file, status_file, monkeypatch):
    """Stepping early skips the evidence the dwell is for: exit 1, the time left named, nothing written."""
    stack_file.write_text(DWELLS)
    seed_status(status_file, started=state.now_iso(T0))
    monkeypatch.setattr(context.Context, "gate", lambda self, config, **window: _healthy(config))
    ctx, stream = _ctx(project, [T0 + 600], "next")
    assert cli.run_context(ctx) == 1
    refused = _events(stream)[-1]
    assert refused["event"] == "refused" and round(refused["dwellLeft"]) == 300, refused
    assert "dwelled 600s at 10%" in refused["reason"] and "300s left" in refused["reason"]
    assert stack_file.read_text() == DWELLS


def test_next_steps_once_the_dwell_has_passed(project, stack_file, status_file, monkeypatch):
    stack_file.write_text(DWELLS)
    seed_status(status_file, started=state.now_iso(T0))
    monkeypatch.setattr(context.Context, "gate", lambda self, config, **window: _healthy(config))
    ctx, _ = _ctx(project, [T0 + 900], "next")
    assert cli.run_context(ctx) == 0
    assert canary_in(stack_file).weight == 25
    recorded = json.loads(status_file.read_text())
    assert (recorded["weight"], recorded["stepStartedAt"], recorded["failedChecks"]) == (25, state.now_iso(T0 + 900), 0)
    assert recorded["lastVerdict"]["outcome"] == "pass"


def test_skip_dwell_steps_and_puts_the_reason_in_the_commit(project, stack_file, status_file, monkeypatch):
    stack_file.write_text(DWELLS)
    _git_repo(project)
    seed_status(status_file, started=state.now_iso(T0))
    monkeypatch.setattr(context.Context, "gate", lambda self, config, **window: _healthy(config))
    ctx, _ = _ctx(project, [T0 + 1], "next", "--commit", "--skip-dwell", "hotfix INC-42 verified by hand")
    assert cli.run_context(ctx) == 0
    message = subprocess.run(
        ["git", "log", "-1", "--format=%B"], cwd=project, capture_output=True, text=True, check=True
    ).stdout
    assert "dwell skipped: hotfix INC-42 verified by hand" in message
    # The gate's whole record rides along, so the decision can be replayed from `git log`.
    (record,) = [line for line in message.splitlines() if line.startswith("verdict: ")]
    assert json.loads(record.removeprefix("verdict: "))["outcome"] == "pass"


def test_an_unknown_step_starts_its_dwell_now(project, stack_file, status_file, monkeypatch):
    """No status for this canary at this weight (a new canary, a hand edit): the dwell starts, never is assumed."""
    stack_file.write_text(DWELLS)
    seed_status(status_file, version="v5", weight=10)
    monkeypatch.setattr(context.Context, "gate", lambda self, config, **window: _healthy(config))
    ctx, _ = _ctx(project, [T0], "next")
    assert cli.run_context(ctx) == 1
    assert json.loads(status_file.read_text())["stepStartedAt"] == state.now_iso(T0)


def test_next_from_another_weight_exits_5(project, stack_file, monkeypatch):
    monkeypatch.setattr(context.Context, "gate", lambda self, config, **window: _healthy(config))
    ctx, stream = _ctx(project, [T0], "next", "--from", "25")
    assert cli.run_context(ctx) == 5
    assert "is at 10%, not at --from 25%" in _events(stream)[-1]["error"]
    assert stack_file.read_text() == STACK_TEXT


def test_a_15_minute_dwell_completes_across_runs_shorter_than_it(project, stack_file, status_file, monkeypatch):
    """Scheduled runs of 2 checks a minute apart (a few minutes each, every 10 minutes): the dwell is
    counted from the step start in the status, so the third run steps."""
    stack_file.write_text(DWELLS)
    status_file.unlink()
    monkeypatch.setattr(context.Context, "gate", lambda self, config, **window: _healthy(config))
    now = [T0]
    weights = []
    for _ in range(3):
        ctx, _ = _ctx(project, now, "watch", "--interval", "60", "--max-checks", "2")
        assert watch.watch(ctx, sleep=lambda s: now.__setitem__(0, now[0] + s)) == 0
        weights.append(canary_in(stack_file).weight)
        now[0] += 10 * 60 - 60
    assert weights == [10, 10, 25]


def test_failed_checks_carry_over_between_runs_and_a_new_step_resets_them(
    project, stack_file, status_file, monkeypatch
):
    """failureThreshold 2, one failed check per run: the second run aborts. A fresh status each run
    (the old behaviour) would never reach 2."""
    monkeypatch.setattr(context.Context, "gate", lambda self, config, **window: _unhealthy(config))
    now = [T0]
    ctx, _ = _ctx(project, now, "watch", "--max-checks", "1")
    assert watch.watch(ctx) == 0
    assert json.loads(status_file.read_text())["failedChecks"] == 1
    ctx, _ = _ctx(project, now, "watch", "--max-checks", "1")
    assert watch.watch(ctx) == 1
    assert canary_in(stack_file).weight == 0
    recorded = json.loads(status_file.read_text())
    assert recorded["phase"] == "Aborted" and "2 consecutive failed checks" in recorded["abort"]["reason"]
    # A new step (here: someone moved the weight) starts with no failed checks.
    seed_status(status_file, failed=1)
    stack_file.write_text(STACK_TEXT.replace("weight: 10", "weight: 25"))
    ctx, _ = _ctx(project, now, "watch", "--max-checks", "1")
    assert watch.watch(ctx) == 0
    assert json.loads(status_file.read_text())["failedChecks"] == 1


def test_status_shows_the_recorded_state(project, stack_file, status_file):
    seed_status(status_file, started=state.now_iso(T0), failed=1)
    ctx, stream = _ctx(project, [T0 + 90], "status")
    cli.run_context(ctx)
    event = _events(stream)[-1]
    assert event["state"]["failedChecks"] == 1 and event["state"]["weight"] == 10


def test_a_watch_check_that_advances_records_the_next_step_once(project, stack_file, status_file, monkeypatch):
    """The advance is the check's one status write: the new step at its weight, its dwell from now, no failed
    checks carried over from the step it left, and the verdict that moved it. Writing the judged step's status
    as well would leave the record a step behind the file."""
    seed_status(status_file, started=state.now_iso(T0), failed=1)
    monkeypatch.setattr(context.Context, "gate", lambda self, config, **window: _healthy(config))
    writes: list[dict] = []
    put = state.FileStatusStore.put

    def counted_put(store: state.FileStatusStore, status: state.RolloutStatus) -> None:
        writes.append(status.to_status())
        put(store, status)

    monkeypatch.setattr(state.FileStatusStore, "put", counted_put)
    ctx, _ = _ctx(project, [T0 + 3600], "watch", "--dwell-seconds", "60", "--max-checks", "1")
    assert watch.watch(ctx) == 0
    assert canary_in(stack_file).weight == 25
    assert [(w["weight"], w["failedChecks"], w["lastVerdict"]["outcome"]) for w in writes] == [(25, 0, "pass")]
    recorded = json.loads(status_file.read_text())
    assert (recorded["weight"], recorded["stepStartedAt"]) == (25, state.now_iso(T0 + 3600))
