"""A bare `pulumi up` refuses to bring back an aborted canary, with the real engine and API server.

The rollback was applied (the split at 100/0) and the cluster records the abort in the InferenceService
record's status, written by the rollout tools' state store through the status subresource. Main still
gives the canary 10% (its rollback PR is open). `pulumi preview` and `pulumi up` of that stack file,
with no tool in front of them, fail naming the abort's reason and the PR, and the split stays at
100/0. After `rollout guard --retry` clears the abort on purpose, `up` applies the 10% again.

Its own model name, so its objects never meet the walk's in test_model_stack_rollout.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlplatform.tools import kube
from mlplatform.tools.rollout import state
from tests.e2e.control_plane import ControlPlane
from tests.e2e.pulumi_cli import PulumiCli, PulumiError
from tests.e2e.test_model_stack_rollout import GROUP, SERVING, STACK_CONFIG, _changes
from tests.support.helpers import ROOT

pytestmark = pytest.mark.e2e

MODEL = "fraud-abortguard"
STACK = "fraud-abortguard-e2e"
REASON = "e2e: 2 consecutive failed checks, success 50%"
PR = "rollout/fraud-abortguard-e2e-20270115080000"


def _split(api: ControlPlane) -> dict[str, int]:
    split = api.get(f"/apis/split.smi-spec.io/v1alpha2/namespaces/{SERVING}/trafficsplits/{MODEL}")
    assert split is not None, "the TrafficSplit is missing"
    return {backend["service"]: backend["weight"] for backend in split["spec"]["backends"]}


def model_project(pulumi: PulumiCli, platform_stack: str, directory: Path, model: str, stack: str) -> Path:
    """The model stack's real entry point, its stack file giving `model`'s canary v6 10%."""
    config = STACK_CONFIG.format(platform=platform_stack, window="10s").replace(
        "name: fraud-detector\n", f"name: {model}\n"
    )
    config = config.replace("runId: fraud-e2e-r1", f"runId: {model}-r1")
    return pulumi.model_stack(directory, stack, config)


def _record_abort(api: ControlPlane) -> None:
    """As `rollout watch` records a rollback whose push to main was refused."""
    store = state.KubeStatusStore(
        kube.KubeClient(kube.from_kubeconfig(api.admin_kubeconfig)), group=GROUP, namespace=SERVING, name=MODEL
    )
    aborted = state.new_step("v6", 0, 1_800_000_000.0, phase=state.ABORTED)
    aborted.abort = state.Abort(reason=REASON, at=aborted.step_started_at, pr=PR)
    store.put(aborted)


def _guard_retry(project: Path, api: ControlPlane, pulumi: PulumiCli, platform_stack: str, tmp: Path) -> None:
    outputs = tmp / "platform-outputs.json"
    outputs.write_text(pulumi.run("stack", "output", "--json", "--stack", platform_stack, cwd=project).stdout)
    executable = shutil.which("mlplatform", path=str(Path(sys.executable).parent))
    assert executable, "the mlplatform CLI is installed with the project (pip install -e .)"
    argv = [executable, "rollout", "guard", STACK, "--project-dir", str(project), "--json"]
    argv += ["--platform-outputs", str(outputs), "--retry", "e2e: fixed the model server"]
    env = {k: v for k, v in os.environ.items() if k != "ROLLOUT_STATUS_FILE"}
    env["KUBECONFIG"] = str(api.admin_kubeconfig)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done


def test_a_bare_up_refuses_the_aborted_canary_until_a_retry(
    pulumi: PulumiCli, control_plane: ControlPlane, platform_stack: str, tmp_path: Path
) -> None:
    api = control_plane
    project = tmp_path / "model"
    stack_file = model_project(pulumi, platform_stack, project, MODEL, STACK)
    main = stack_file.read_text()
    pulumi.up(project, STACK)  # the first deploy: no previous outputs, nothing read
    assert _split(api) == {f"{MODEL}-v5": 90, f"{MODEL}-v6": 10}

    # The rollback, applied from its branch, and the abort recorded on the cluster.
    stack_file.write_text(main.replace("    weight: 10\n", "    weight: 0\n"))
    pulumi.up(project, STACK)
    _record_abort(api)
    assert _changes(pulumi.preview(project, STACK)) == {}, "the rollback's own file must still apply"

    # Main, which still gives v6 10%.
    stack_file.write_text(main)
    # Twice `up`: a refused `up` must leave the stack's outputs, which locate the record, for the next.
    up = lambda: pulumi.up(project, STACK)  # noqa: E731
    for command in (lambda: pulumi.preview(project, STACK), up, up):
        with pytest.raises(PulumiError) as refused:
            command()
        message = str(refused.value)
        print(f"\n--- refused:\n{message[-2500:]}")
        assert f"stack '{STACK}': refusing to apply: canary v6 was aborted on the cluster" in message, message
        assert REASON in message and f"PR branch {PR}" in message, message
        assert f"mlplatform rollout guard {STACK} --retry REASON" in message, message
        assert _split(api) == {f"{MODEL}-v5": 100, f"{MODEL}-v6": 0}
    record = api.get(f"/apis/{GROUP}/v1/namespaces/{SERVING}/inferenceservices/{MODEL}")
    assert record is not None and record["spec"]["canary"]["weight"] == 0, "the record's spec was not touched"

    _guard_retry(project, api, pulumi, platform_stack, tmp_path)
    pulumi.up(project, STACK)
    assert _split(api) == {f"{MODEL}-v5": 90, f"{MODEL}-v6": 10}
    assert _changes(pulumi.preview(project, STACK)) == {}, "the read is no drift"
    pulumi.destroy(project, STACK)


PAIRS = 5


def test_cost_of_the_check_per_steady_state_up(
    pulumi: PulumiCli, control_plane: ControlPlane, platform_stack: str, tmp_path: Path
) -> None:
    """What the self-reference and the read add to a no-change `up` with a canary at 10% (docs/benchmarks.md).

    Two stacks of two models, both deployed and unchanged: one runs the real entry point (it reads the
    record), the other the same entry point without the self-reference. Their `up`s alternate, in
    turn first and second, and the medians of the times and of the paired differences are printed.
    No timing is asserted: the machine is shared; that each side did what it stands for is."""
    entry = (ROOT / "stacks" / "model" / "__main__.py").read_text()
    previous_line = "previous = previous_record(pulumi.StackReference(self_reference_name()))\n"
    assert previous_line in entry, "the entry point's self-reference line moved: update this benchmark"
    projects: dict[str, tuple[Path, str]] = {}
    for side, model in (("guarded", "fraud-cost-a"), ("unguarded", "fraud-cost-b")):
        project = tmp_path / side
        model_project(pulumi, platform_stack, project, model, f"{model}-e2e")
        if side == "unguarded":
            (project / "__main__.py").write_text(entry.replace(previous_line, "previous = None\n"))
        projects[side] = (project, f"{model}-e2e")
        pulumi.up(project, f"{model}-e2e")
    times: dict[str, list[float]] = {"guarded": [], "unguarded": []}
    reads: dict[str, set[int]] = {"guarded": set(), "unguarded": set()}
    for pair in range(PAIRS):
        order = ("guarded", "unguarded") if pair % 2 == 0 else ("unguarded", "guarded")
        for side in order:
            project, stack = projects[side]
            started = time.monotonic()
            done = pulumi.run("up", "--stack", stack, "--yes", "--skip-preview", "--json", cwd=project)
            times[side].append(time.monotonic() - started)
            # `up --json` streams engine events, one a line; the summary event counts the steps.
            events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
            (summary,) = [e["summaryEvent"]["resourceChanges"] for e in events if "summaryEvent" in e]
            reads[side].add(summary.get("read", 0))
            assert set(summary) <= {"same", "read"}, (side, summary)
    # Both read the platform's outputs; the guarded side also its own (the self-reference) and the record.
    assert min(reads["guarded"]) > max(reads["unguarded"]), reads
    guarded, unguarded = statistics.median(times["guarded"]), statistics.median(times["unguarded"])
    paired = statistics.median(g - u for g, u in zip(times["guarded"], times["unguarded"], strict=True))
    print(
        f"\nsteady-state up, canary at 10%, {PAIRS} pairs: median {guarded:.2f}s with the check, "
        f"{unguarded:.2f}s without (ratio {guarded / unguarded:.3f}); median paired difference {paired:+.2f}s"
    )
    for project, stack in projects.values():
        pulumi.destroy(project, stack)
