"""Two rollout commands on one stack file never both act: the lock and what the loser does."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mlplatform.tools.rollout import cli, context, lock
from mlplatform.tools.rollout.gate import GateVerdict, Thresholds
from tests.rollout.conftest import STACK, STACK_TEXT, canary_in, seed_status
from tests.support.helpers import ROOT

PAIRS = 20


def _healthy(config) -> GateVerdict:
    return GateVerdict(
        healthy=True,
        namespace="mlserve-test",
        deployment=config.version_object_name(config.canary.version),
        interval="20s",
        requests=500,
        success_rate=1.0,
        p99_latency_ms=20,
        accuracy=None,
        stable_success_rate=None,
        thresholds=Thresholds(20, 0.99, 500, None, False),
    )


class _Events(io.StringIO):
    """A command's output; sets `waiting` when the command reports that it waits for the lock."""

    def __init__(self, waiting: threading.Event):
        super().__init__()
        self.waiting = waiting

    def write(self, text: str) -> int:
        if '"event": "waiting"' in text:
            self.waiting.set()
        return super().write(text)


def _args(project: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    command, *rest = argv
    return parser.parse_args(["rollout", command, STACK, "--project-dir", str(project), "--json", *rest])


def _git(project: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=True).stdout


def _git_repo(project: Path) -> None:
    _git(project, "init", "-q")
    _git(project, "config", "user.name", "t")
    _git(project, "config", "user.email", "t@example.com")
    _git(project, "add", ".")
    _git(project, "commit", "-q", "-m", "init")


def test_concurrent_next_pairs_take_exactly_one_step(
    project: Path, stack_file: Path, status_file: Path, monkeypatch
) -> None:
    """20 times, two `next --commit` race on a canary at 10%: each time exactly one steps to 25
    and commits; the other waits, sees the file changed and exits 5 (busy), never with a git error.

    The gate (stubbed: this is about the lock) of whichever command runs first returns
    only once the other has said it is waiting for the lock, so the two overlap on every
    run and the test does not depend on thread timing."""
    _git_repo(project)
    waiting = threading.Event()

    def gate(self, config, **window):
        waiting.wait(timeout=10)
        return _healthy(config)

    monkeypatch.setattr(context.Context, "gate", gate)
    for pair in range(PAIRS):
        waiting.clear()
        barrier = threading.Barrier(2)
        results: list[tuple[int, list[dict]]] = []
        commits = int(_git(project, "rev-list", "--count", "HEAD"))

        # This pair's barrier and results, passed in: a closure would read whatever the loop holds.
        def run_next(barrier: threading.Barrier, results: list[tuple[int, list[dict]]]) -> None:
            stream = _Events(waiting)
            args = _args(project, "next", "--commit", "--prometheus-url", "http://127.0.0.1:9")
            barrier.wait()
            code = cli.run(args, stream=stream)
            results.append((code, [json.loads(line) for line in stream.getvalue().splitlines()]))

        threads = [threading.Thread(target=run_next, args=(barrier, results)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(code for code, _ in results) == [0, 5], (pair, results)
        (loser_events,) = [events for code, events in results if code == 5]
        assert loser_events[-1]["event"] == "error" and "in progress" in loser_events[-1]["error"]
        assert "changed while this command waited" in loser_events[-1]["error"]
        assert canary_in(stack_file).weight == 25, pair
        assert int(_git(project, "rev-list", "--count", "HEAD")) == commits + 1, pair
        assert _git(project, "log", "--format=%s", "-1").strip() == f"rollout({STACK}): canary v6 10% -> 25%"
        # The next pair starts from 10% again, its dwell long passed.
        stack_file.write_text(STACK_TEXT)
        seed_status(status_file)
        _git(project, "commit", "-q", "-am", f"reset {pair}")
    steps = [s for s in _git(project, "log", "--format=%s").splitlines() if s.endswith("10% -> 25%")]
    assert len(steps) == PAIRS
    assert _git(project, "status", "--porcelain") == "", "the lock file must not show in git status"


def test_a_held_lock_makes_the_second_command_exit_busy(project: Path, stack_file: Path) -> None:
    """While another command holds the stack file, `next` waits up to --lock-timeout, then exits 5
    with "in progress" and the holder, before reading Prometheus or writing anything."""
    with lock.exclusive(stack_file, command="watch", timeout=0):
        stream = io.StringIO()
        code = cli.run(
            _args(project, "next", "--lock-timeout", "0.2", "--prometheus-url", "http://127.0.0.1:9"), stream=stream
        )
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert code == 5
    assert [e["event"] for e in events] == ["waiting", "error"]
    assert "in progress" in events[-1]["error"] and "`rollout watch`" in events[-1]["error"]
    assert stack_file.read_text() == STACK_TEXT


def test_abort_waits_and_acts_on_the_latest_file(project: Path, stack_file: Path) -> None:
    """A rollback is never refused for a change it waited out: abort takes the lock once it is free
    and zeroes the weight the other command wrote."""
    held = threading.Event()

    def hold() -> None:
        with lock.exclusive(stack_file, command="next", timeout=0):
            stack_file.write_text(STACK_TEXT.replace("weight: 10", "weight: 25"))
            held.set()
            time.sleep(0.3)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(timeout=10)
    stream = io.StringIO()
    code = cli.run(_args(project, "abort", "--reason", "pager"), stream=stream)
    holder.join()
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert code == 0, events
    assert [e["event"] for e in events] == ["waiting", "aborted"]
    assert events[-1]["previous"] == 25
    assert canary_in(stack_file).weight == 0


def test_lock_lives_in_the_git_directory(project: Path, stack_file: Path) -> None:
    """Inside a checkout the lock file sits under .git (shared by its users, invisible to git status);
    outside one, in the temp directory. It is keyed by the stack file's path."""
    outside = lock.lock_path(stack_file)
    assert ".git" not in outside.parts
    _git_repo(project)
    inside = lock.lock_path(stack_file)
    assert inside.parent == (project / ".git" / lock.LOCK_DIR_NAME).resolve()
    assert lock.lock_path(project / "Pulumi.other.yaml") != inside


@pytest.mark.parametrize("verb", ["start", "next", "abort", "promote", "watch"])
def test_every_writing_verb_takes_the_lock(project: Path, stack_file: Path, verb: str) -> None:
    """No verb that writes can slip past a held lock."""
    extra = {
        "start": ["--version", "v7", "--image", "ghcr.io/example/fd:2.0.0", "--model-uri", "models:/fraud_detector/7"],
        "abort": ["--reason", "x"],
        "watch": ["--max-checks", "1"],
    }.get(verb, [])
    if verb in ("next", "promote", "watch"):
        extra += ["--prometheus-url", "http://127.0.0.1:9"]
    with lock.exclusive(stack_file, command="next", timeout=0):
        code = cli.run(_args(project, verb, "--lock-timeout", "0", *extra), stream=io.StringIO())
    assert code == 5
    assert stack_file.read_text() == STACK_TEXT


def test_the_lock_holds_across_processes(project: Path, stack_file: Path) -> None:
    """flock between two processes, as two shells would run the commands."""
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from mlplatform.tools.rollout import lock\n"
            f"with lock.exclusive(Path({str(stack_file)!r}), command='promote', timeout=0):\n"
            "    print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        stream = io.StringIO()
        code = cli.run(_args(project, "abort", "--reason", "x", "--lock-timeout", "0.3"), stream=stream)
    finally:
        holder.kill()
        holder.wait()
    assert code == 5 and "`rollout promote`, pid" in stream.getvalue()
    assert stack_file.read_text() == STACK_TEXT
    # The kernel released the lock with the process: the next command goes through.
    assert cli.run(_args(project, "abort", "--reason", "x", "--lock-timeout", "0"), stream=io.StringIO()) == 0


def test_watch_restarts_the_dwell_when_someone_else_moves_the_weight(
    project, stack_file, status_file, monkeypatch
) -> None:
    """A `next` from another shell between two checks must not let watch skip the new step's dwell."""
    from mlplatform.tools.rollout import state, watch

    monkeypatch.setattr(context.Context, "gate", lambda self, config, **window: _healthy(config))
    start = 1_800_000_000.0
    now = [start]
    seed_status(status_file, started=state.now_iso(start))

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] == start + 5:
            stack_file.write_text(STACK_TEXT.replace("weight: 10", "weight: 25"))

    stream = io.StringIO()
    args = _args(
        project,
        "watch",
        "--interval",
        "5",
        "--dwell-seconds",
        "10",
        "--max-checks",
        "4",
        "--prometheus-url",
        "http://127.0.0.1:9",
    )
    ctx = context.Context(path=stack_file, out=context.Output(True, stream), args=args, now=lambda: now[0])
    assert watch.watch(ctx, sleep=sleep) == 0
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    checks = [(e["check"], e["weight"], e["dwelled"]) for e in events if e["event"] == "check"]
    assert checks == [(1, 10, 0), (2, 25, 0), (3, 25, 5), (4, 25, 10)]
    (advanced,) = [e for e in events if e["event"] == "advanced"]
    assert (advanced["previous"], advanced["weight"]) == (25, 50)
    assert canary_in(stack_file).weight == 50


class _HeldPrometheus:
    """A Prometheus API on 127.0.0.1 with healthy canary numbers that answers only once released."""

    def __init__(self) -> None:
        from tests.support.fake_prometheus_http import HttpPrometheus, steady

        self.release = threading.Event()
        healthy = steady(20, {"fraud-detector-v6": (500, 0, "20"), "fraud-detector-v5": (500, 0, "20")})
        self.http = HttpPrometheus(healthy, before_answer=lambda: self.release.wait(timeout=30))
        self.url = self.http.url

    def close(self) -> None:
        self.release.set()
        self.http.close()


def test_concurrent_next_processes_take_one_step(project: Path, stack_file: Path, status_file: Path) -> None:
    """The real CLI in two processes, both `next --from 10`, against a Prometheus that holds its answers
    until one process reports it is waiting for the lock: one steps, the other finds 25% and exits 5.
    (Issue 18 saw 10 of 20 such pairs end at 50%.)"""
    import sys

    prometheus = _HeldPrometheus()
    try:
        for pair in range(3):
            prometheus.release.clear()
            stack_file.write_text(STACK_TEXT)
            seed_status(status_file)
            argv = [
                sys.executable,
                "-m",
                "mlplatform.tools.rollout",
                "next",
                STACK,
                "--project-dir",
                str(project),
                "--json",
                "--prometheus-url",
                prometheus.url,
                "--from",
                "10",
            ]
            processes = [
                subprocess.Popen(
                    argv,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )
                for _ in range(2)
            ]
            outputs: list[list[dict]] = [[], []]

            def read(process: subprocess.Popen[str], output: list[dict]) -> None:
                assert process.stdout is not None  # a pipe
                for line in process.stdout:
                    event = json.loads(line)
                    output.append(event)
                    if event["event"] == "waiting":
                        prometheus.release.set()

            readers = [
                threading.Thread(target=read, args=(process, output))
                for process, output in zip(processes, outputs, strict=True)
            ]
            for reader in readers:
                reader.start()
            codes = sorted(process.wait(timeout=120) for process in processes)
            for reader in readers:
                reader.join()
            assert codes == [0, 5], (pair, outputs, [p.stderr.read() if p.stderr else "" for p in processes])
            assert canary_in(stack_file).weight == 25
            (loser,) = [events for events in outputs if events[-1]["event"] == "error"]
            assert "is at 25%, not at --from 10%" in loser[-1]["error"], loser
    finally:
        prometheus.close()
