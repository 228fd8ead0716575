"""Two rollout verbs racing on one stack file and its status, with Hypothesis: the real commands, the real
lock and the real editor, in two threads that are made to overlap on every example.

The property is linearizability with a busy exit: after the race, either both verbs took effect and the
stack file is what running them one after the other gives (in one order or the other), or one exited 5
(busy, "changed while this command waited") and the file is what the other alone gives. Never a crash,
never a lost or doubled step, never a half-written file; the status describes the step the file is at.
This is the race behind Flagger #1898 and Argo Rollouts #3372 (two writers of the traffic split
disagreeing about which version is healthy).
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlplatform.tools.rollout import cli, context, lock, state
from mlplatform.tools.stackfile import editor as stackfile
from tests.rollout.conftest import STACK, STACK_TEXT, seed_status, with_weight
from tests.rollout.test_concurrency import _args
from tests.rollout.test_rollout_invariants import _verdict

RACES = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
OUTCOMES = st.sampled_from(["pass", "fail", "not-yet", "decisive"])
VERBS = st.one_of(
    st.tuples(st.sampled_from(["next", "watch", "promote"]), OUTCOMES),
    st.tuples(st.just("abort"), st.just("")),
    st.tuples(st.just("start"), st.just("v7")),
)
STARTS = st.tuples(st.sampled_from([10, 25, 50, 75, 100, 0]), st.integers(0, 1))
PROMETHEUS = ("--prometheus-url", "http://127.0.0.1:9")
ARGV = {
    "next": ["next", *PROMETHEUS],
    "watch": ["watch", "--max-checks", "1", *PROMETHEUS],
    "promote": ["promote", *PROMETHEUS],
    "abort": ["abort", "--reason", "pager"],
    "start": ["start", "--version", "v7", "--image", "ghcr.io/example/fd:2.0.0", "--model-uri", "models:/fd/7"],
}
_outcome = threading.local()


def _gate(self, config, **window):
    """The verdict this thread's verb was dealt (the race is about the lock and the edits, not Prometheus)."""
    return _verdict(_outcome.value)


@cache
def _start_text(weight: int) -> str:
    if weight:
        return with_weight(weight)
    scratch = Path(tempfile.mkdtemp(prefix="race-abort-")) / f"Pulumi.{STACK}.yaml"
    scratch.write_text(STACK_TEXT)
    return stackfile.apply_edit(scratch, stackfile.abort("earlier")).text


def _project(start: tuple[int, int]) -> Path:
    weight, failed = start
    project = Path(tempfile.mkdtemp(prefix="race-"))
    (project / f"Pulumi.{STACK}.yaml").write_text(_start_text(weight))
    seed_status(project / "status.json", weight=weight, failed=failed)
    return project


def _run(project: Path, verb: tuple[str, str], on_done=None) -> int:
    name, outcome = verb
    _outcome.value = outcome
    args = _args(project, *ARGV[name], "--status-file", str(project / "status.json"), "--lock-timeout", "20")
    try:
        return cli.run(args, stream=io.StringIO())
    finally:
        if on_done is not None:
            on_done()


@cache
def _serial(start: tuple[int, int], verbs: tuple[tuple[str, str], ...]) -> str:
    """The stack file after running `verbs` one after the other from `start` (no race)."""
    project = _project(start)
    try:
        for verb in verbs:
            _run(project, verb)
        return (project / f"Pulumi.{STACK}.yaml").read_text()
    finally:
        shutil.rmtree(project)


def _race(start: tuple[int, int], first: tuple[str, str], second: tuple[str, str]) -> tuple[list[int], Path]:
    """Both verbs at once. Whichever takes the lock first holds it until the other is waiting for it (or
    done without it), so the two overlap on every example whatever the thread timing."""
    project = _project(start)
    other_waits = threading.Event()
    real = lock.exclusive

    @contextmanager
    def overlapping(stack_file, *, command, timeout, on_wait=None) -> Iterator[Path]:
        def waiting(holder: str) -> None:
            other_waits.set()
            if on_wait is not None:
                on_wait(holder)

        with real(stack_file, command=command, timeout=timeout, on_wait=waiting) as path:
            other_waits.wait(timeout=5)
            yield path

    codes = [0, 0]

    def run(index: int, verb: tuple[str, str]) -> None:
        codes[index] = _run(project, verb, on_done=other_waits.set)

    with mock.patch.object(lock, "exclusive", overlapping):
        threads = [threading.Thread(target=run, args=(i, v)) for i, v in enumerate((first, second))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    return codes, project


@RACES
@given(start=STARTS, first=VERBS, second=VERBS)
def test_two_racing_verbs_act_as_if_one_ran_after_the_other(start, first, second) -> None:
    with mock.patch.object(context.Context, "gate", _gate):
        codes, project = _race(start, first, second)
        try:
            after = (project / f"Pulumi.{STACK}.yaml").read_text()
            assert set(codes) <= {0, 1, 5}, (codes, first, second)  # done, refused, busy: never an error
            if 5 in codes:
                (winner,) = [v for v, c in zip((first, second), codes, strict=True) if c != 5] or [None]
                allowed = {_serial(start, (winner,) if winner else ())}
            else:
                allowed = {_serial(start, (first, second)), _serial(start, (second, first))}
            assert after in allowed, (codes, first, second, after)
            _status_matches_file(project, after)
        finally:
            shutil.rmtree(project)


def _status_matches_file(project: Path, text: str) -> None:
    """The status describes the step the file is at: the canary and its weight, or the promotion."""
    recorded = state.FileStatusStore(project / "status.json").get()
    assert recorded is not None
    scratch = project / "check" / f"Pulumi.{STACK}.yaml"
    scratch.parent.mkdir()
    scratch.write_text(text)
    config = stackfile.load(scratch).config
    if config.canary is None:
        assert recorded.phase == state.PROMOTED and recorded.canary_version == config.stable.version
    else:
        assert (recorded.canary_version, recorded.weight) == (config.canary.version, config.canary.weight), (
            json.loads((project / "status.json").read_text()),
            text,
        )
