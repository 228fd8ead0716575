"""The rounds of `bench.engine`: every timed command, alternating, so drift hits each side alike."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.engine import legacy, stacks
from mlplatform.tools.rollout import apply, cli
from tests.e2e.control_plane import ControlPlane
from tests.e2e.engine import E2E_TOOLS, program_virtualenv, pulumi_cli
from tests.e2e.platform_stack import provision
from tests.e2e.simulated_cluster import start_simulated_cluster
from tests.e2e.test_model_stack_rollout import SERVING
from tests.e2e.tools import provide_tools
from tests.support.chart_mirror import chart_mirror

POLL_SECONDS = 0.05
PLANNED_STEP = "weight step under a plan (`preview --save-plan`, check, `up --plan`)"
# The tools' kube client as a one-shot command, as `kubectl patch` is one: process, kubeconfig, request.
KUBE_CLIENT_PATCH = """
import json, sys
from pathlib import Path
from mlplatform.tools.kube import KubeClient, from_kubeconfig
KubeClient(from_kubeconfig(Path(sys.argv[1]))).merge_patch(sys.argv[2], json.loads(sys.argv[3]))
"""


@dataclass
class Results:
    """Wall seconds per label, one entry per round (lists stay paired by index)."""

    rounds: int
    runs: dict[str, list[float]] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)

    def add(self, label: str, seconds: float) -> None:
        self.runs.setdefault(label, []).append(seconds)


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """The rollback runs in this process, as `mlplatform rollout` would: with the CI's environment."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _abort_apply(stack: stacks.Stack, up: apply.UpFunction, api: ControlPlane) -> tuple[float, float]:
    """`rollout abort --apply`'s wall, and when (from its start) the API server's split first read 100/0."""
    path = f"/apis/split.smi-spec.io/v1alpha2/namespaces/{SERVING}/trafficsplits/{stack.name}"
    moved: list[float] = []
    done = threading.Event()

    def poll(started: float) -> None:
        while not done.is_set():
            split = api.get(path) or {}
            if [b["weight"] for b in split.get("spec", {}).get("backends", [])] == [100, 0]:
                moved.append(time.perf_counter() - started)
                return
            time.sleep(POLL_SECONDS)

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["rollout", "abort", stack.name, "--project-dir", str(stack.project), "--json", "--apply", "--reason", "bench"]
    )
    out = io.StringIO()
    started = time.perf_counter()
    poller = threading.Thread(target=poll, args=(started,), daemon=True)
    poller.start()
    code = cli.run(args, stream=out, up=up)
    seconds = time.perf_counter() - started
    poller.join(timeout=10)
    done.set()
    if code != 0 or not moved:
        raise SystemExit(f"bench.engine: `rollout abort --apply` exited {code}, split moved: {moved}: {out.getvalue()}")
    return seconds, moved[0]


def _retry_aborted(stack: stacks.Stack) -> None:
    """`rollout guard --retry`: the record forgets the abort, so the next round's `up` at 10 % is not
    refused by the program's aborted-canary check (it would be, rightly, for anyone else)."""
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["rollout", "guard", stack.name, "--project-dir", str(stack.project), "--json", "--retry", "bench round"]
    )
    out = io.StringIO()
    code = cli.run(args, stream=out)
    if code != 0:
        raise SystemExit(f"bench.engine: `rollout guard --retry` exited {code}: {out.getvalue()}")


def _patch(kind: str, kubeconfig: Path, path: str, weight: int) -> float:
    model = path.rsplit("/", 1)[-1].removesuffix("-bench-copy")
    patch = {"spec": {"backends": [{"service": f"{model}-v5", "weight": 100 - weight}]}}
    patch["spec"]["backends"].append({"service": f"{model}-v6", "weight": weight})
    if kind == "kubectl":
        name = path.rsplit("/", 1)[-1]
        argv = ["kubectl", f"--kubeconfig={kubeconfig}", "-n", SERVING, "patch", "trafficsplit", name]
        argv += ["--type=merge", "-p", json.dumps(patch)]
    else:
        argv = [sys.executable, "-c", KUBE_CLIENT_PATCH, str(kubeconfig), path, json.dumps(patch)]
    return _timed(lambda: subprocess.run(argv, check=True, capture_output=True))


def _rounds(results: Results, plan: list[tuple[str, Callable[[int], float]]]) -> None:
    """Each round runs every entry once, the order rotated by one per round."""
    for index in range(results.rounds):
        shift = index % len(plan)
        for label, run in plan[shift:] + plan[:shift]:
            results.add(label, run(index))
        print(f"bench.engine: round {index + 1}/{results.rounds} done", file=sys.stderr, flush=True)


def _step_runner(stack: stacks.Stack, verb: str) -> Callable[[int], float]:
    def run(index: int) -> float:
        stacks.step(stack)
        if verb == "preview":
            seconds = _timed(lambda: stack.run("preview", "--diff"))
            stacks.step(stack)  # the preview left the cluster as it was: so must the file
            return seconds
        return _timed(lambda: stack.run("up", "--yes", "--skip-preview"))

    return run


def _planned_runner(stack: stacks.Stack, env: dict[str, str]) -> Callable[[int], float]:
    """The same weight step as `rollout next --apply` applies it: `preview --save-plan`, the plan checked
    (only the split's and the record's updates), `up --plan` (`apply.cli_planned_up`)."""

    def run(index: int) -> float:
        stacks.step(stack)
        with _environment(env):
            return _timed(lambda: apply.cli_planned_up(stack.project, stack.name, lambda line: None))

    return run


def _floor_runner(floor: stacks.Floor) -> Callable[[int], float]:
    def run(index: int) -> float:
        floor.set_value(str(index))
        return _timed(lambda: floor.stack.run("up", "--yes", "--skip-preview"))

    return run


def _left(results: Results, tools: dict[str, str], python: Path, api: ControlPlane) -> None:
    """What the project cannot cut: CLI start, `import pulumi`, the provider's OpenAPI fetch."""
    for _ in range(results.rounds):
        results.add("left: CLI start (`pulumi version`)", _timed(lambda: _quiet([tools["pulumi"], "version"])))
        bare = _timed(lambda: _quiet([str(python), "-c", "pass"]))
        results.add("left: `import pulumi`", _timed(lambda: _quiet([str(python), "-c", "import pulumi"])) - bare)
        started = time.perf_counter()
        document = _openapi(api)
        results.add("left: GET /openapi/v2 (the provider's Configure)", time.perf_counter() - started)
        results.facts["openapi_bytes"] = str(len(document))


def _quiet(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _openapi(api: ControlPlane) -> bytes:
    from mlplatform.tools.kube import KubeClient, from_kubeconfig

    return KubeClient(from_kubeconfig(api.admin_kubeconfig), timeout=60).request("GET", "/openapi/v2")[1]


def run(workdir: Path, rounds: int) -> Results:
    if not shutil.which("kubectl"):
        raise SystemExit("bench.engine: kubectl is not on PATH (the floor it is compared with)")
    results = Results(rounds)
    tools = provide_tools(tools=E2E_TOOLS)
    python = program_virtualenv(Path(tools["CACHE"]))
    api = start_simulated_cluster(tools, workdir / "cluster")
    try:
        pulumi = pulumi_cli(tools, python, workdir / "pulumi")
        with chart_mirror() as mirror:
            provision(pulumi, api, workdir / "platform-project", chart_mirror=mirror)
        models = workdir / "models"
        base = stacks.model_stack("weight step", pulumi, models, "step-base")
        variants = [
            stacks.model_stack(
                "provider first off", pulumi, models, "step-late-provider", main_prefix=stacks.PROVIDER_FIRST_OFF
            ),
            stacks.model_stack(
                "old image tag pattern",
                stacks.with_repo(pulumi, stacks.old_image_tag_tree(workdir)),
                models,
                "step-old-tag",
            ),
            stacks.model_stack("no plugin-discovery shim", stacks.without_shim(pulumi), models, "step-no-shim"),
        ]
        empty, configmap = stacks.floor("empty", pulumi, workdir, api), stacks.floor("configmap", pulumi, workdir, api)
        copy = stacks.split_copy(api, base.name)
        plan: list[tuple[str, Callable[[int], float]]] = [
            ("weight step `up`", _step_runner(base, "up")),
            ("weight step `preview --diff`", _step_runner(base, "preview")),
            (PLANNED_STEP, _planned_runner(base, pulumi.rollout_env(api.admin_kubeconfig, author="bench"))),
            *((f"knob off: {v.label}", _step_runner(v, "up")) for v in variants),
            ("floor: empty program `up`", _floor_runner(empty)),
            ("floor: one-ConfigMap program `up`", _floor_runner(configmap)),
            (
                "`kubectl patch` of a copy of the split",
                lambda i: _patch("kubectl", api.admin_kubeconfig, copy, 25 - i % 2),
            ),
            ("kube client patch (one process)", lambda i: _patch("kube", api.admin_kubeconfig, copy, 25 - i % 2)),
        ]
        _rounds(results, plan)
        _rollback(results, pulumi, models, api)
        _left(results, tools, python, api)
    finally:
        api.stop()
    return results


def _rollback(results: Results, pulumi, models: Path, api: ControlPlane) -> None:
    """`rollout abort --apply`, in this process, with the old and the new `up`, alternating."""
    stack = stacks.model_stack("rollback", pulumi, models / "repo", "rollback")
    committed = stacks.git_checkout(stack)
    env = pulumi.rollout_env(api.admin_kubeconfig, author="bench")
    ups: dict[str, apply.UpFunction] = {"one CLI `up`": apply.cli_up, "Automation API": legacy.automation_up}

    def timed_up(label: str, up: apply.UpFunction) -> apply.UpFunction:
        def wrapped(project_dir: Path, name: str, on_output: Callable[[str], None]) -> None:
            results.add(f"rollback `up` only: {label}", _timed(lambda: up(project_dir, name, lambda line: None)))

        return wrapped

    with _environment(env):
        for index in range(results.rounds):
            order = list(ups.items()) if index % 2 == 0 else list(reversed(ups.items()))
            for label, up in order:
                wall, moved = _abort_apply(stack, timed_up(label, up), api)
                results.add(f"rollback `abort --apply`: {label}", wall)
                results.add(f"rollback start → split 100/0 on the API server: {label}", moved)
                stacks.reset_rollback(stack, committed, before_up=lambda: _retry_aborted(stack))
