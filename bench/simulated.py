"""`python -m bench.simulated` (`make bench-e2e`): the real engine on the simulated cluster, timed.

It builds what the e2e tier builds (tests/e2e: the tools, the simulated cluster,
the chart mirror from MLPLATFORM_TEST_CHARTS, the real platform stack) and
measures, printing a markdown section for docs/benchmarks.md:

1. wall time of the platform's `pulumi up`, of a model stack's `up`, and of each
   weight step's `preview` and `up` (the step is the edit `rollout next` makes,
   `stackfile.set_weight`, without the gate);
2. the same weight change made with `kubectl patch` on the same API server, and
   the ratio: a hand-run rollout's floor;
3. API writes per weight step, from the API server's audit log (requests whose
   user agent is the Kubernetes provider's);
4. `preview` time with 1 and 2 live versions in a stack, and over 1, 5 and 20
   model stacks previewed one after another, with where the time goes: the
   interpreter that runs the program is wrapped, so its start and end are known.

A benchmark, not a test: nothing fails on a slow machine. Needs kubectl on PATH.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from mlplatform.tools.stackfile import editor as stackfile
from tests.e2e.control_plane import ControlPlane
from tests.e2e.engine import E2E_TOOLS, program_virtualenv, pulumi_cli
from tests.e2e.platform_stack import STACK as PLATFORM_STACK
from tests.e2e.platform_stack import provision
from tests.e2e.pulumi_cli import PulumiCli
from tests.e2e.simulated_cluster import start_simulated_cluster
from tests.e2e.test_model_stack_rollout import STACK_CONFIG, WINDOW
from tests.e2e.tools import provide_tools
from tests.support.chart_mirror import chart_mirror
from tests.support.helpers import ROOT

SERVING = "ml-serving"
PROVIDER_AGENT = "pulumi-kubernetes/"
REPEAT = 3

TIMED_PYTHON = """#!/bin/sh
# Wraps the program's interpreter: logs when each run starts and ends, and what it ran.
start=$(date +%s.%N)
"{python}" "$@"
status=$?
echo "$start $(date +%s.%N) $*" >> "{log}"
exit $status
"""


@dataclass
class Timed:
    """One CLI command's wall time, split at the wrapped interpreter's start and end."""

    wall: float
    before_program: float = 0.0
    plugin_discovery: float = 0.0
    """Of `before_program`: the language host's `python -m pip list`, which finds the plugins."""
    program: float = 0.0
    after_program: float = 0.0


@dataclass
class Results:
    platform_up: float = 0.0
    model_up: float = 0.0
    steps: list[tuple[int, Timed, Timed, list[str]]] = field(default_factory=list)
    kubectl: list[float] = field(default_factory=list)
    versions: dict[int, list[Timed]] = field(default_factory=dict)
    stacks: dict[int, list[Timed]] = field(default_factory=dict)
    cli_start: float = 0.0
    kubectl_version: str = ""


class Bench:
    def __init__(self, pulumi: PulumiCli, api: ControlPlane, workdir: Path, program_log: Path):
        self.pulumi, self.api, self.workdir, self.program_log = pulumi, api, workdir, program_log

    def timed(self, *args: str, cwd: Path) -> Timed:
        self.program_log.write_text("")
        started = time.time()
        self.pulumi.run(*args, cwd=cwd)
        ended = time.time()
        timed = Timed(wall=ended - started)
        runs = [line.split(" ", 2) for line in self.program_log.read_text().splitlines()]
        program = [(float(a), float(b)) for a, b, argv in runs if "pulumi-language-python-exec" in argv]
        if program:
            first, last = program[0][0], program[-1][1]
            timed.before_program, timed.program, timed.after_program = first - started, last - first, ended - last
        timed.plugin_discovery = sum(float(b) - float(a) for a, b, argv in runs if "pip list" in argv)
        return timed

    def model_project(self, name: str, stack: str, *, canary: bool, training: bool) -> Path:
        project = self.workdir / stack
        project.mkdir()
        for file in ("Pulumi.yaml", "__main__.py"):
            shutil.copy(ROOT / "stacks" / "model" / file, project / file)
        config = STACK_CONFIG.format(platform=f"organization/mlplatform/{PLATFORM_STACK}", window=WINDOW)
        config = config.replace("fraud-detector", name).replace("fraud_detector", name.replace("-", "_"))
        if not canary:
            config = config[: config.index("  mlmodel:canary:")] + config[config.index("  mlmodel:allowedClients:") :]
        if not training:
            config = config[: config.index("  mlmodel:training:")]
        self.pulumi.stack_init(project, stack)
        stack_file = project / f"Pulumi.{stack}.yaml"
        stack_file.write_text(stack_file.read_text() + "config:\n" + config)
        return project

    def api_writes_by_provider(self, since_line: int) -> list[str]:
        """`verb resource/name`, with `(dry run)` for server-side dry runs, which change nothing."""
        return [
            f"{event['verb']} {event['objectRef'].get('resource')}/{event['objectRef'].get('name')}"
            + (" (dry run)" if "dryRun=All" in event.get("requestURI", "") else "")
            for event in self.api.api_writes(since_line)
            if event.get("userAgent", "").startswith(PROVIDER_AGENT)
        ]

    def kubectl_patch(self, kubeconfig: Path, weights: tuple[int, int], model: str) -> float:
        patch = {
            "spec": {
                "backends": [
                    {"service": f"{model}-v5", "weight": weights[0]},
                    {"service": f"{model}-v6", "weight": weights[1]},
                ]
            }
        }
        started = time.time()
        subprocess.run(
            [
                "kubectl",
                f"--kubeconfig={kubeconfig}",
                "-n",
                SERVING,
                "patch",
                "trafficsplit",
                model,
                "--type=merge",
                "-p",
                json.dumps(patch),
            ],
            check=True,
            capture_output=True,
        )
        return time.time() - started


def run(workdir: Path) -> Results:
    if not shutil.which("kubectl"):
        sys.exit("bench.simulated: kubectl is not on PATH (it measures `kubectl patch` as the floor)")
    results = Results()
    client = subprocess.run(
        ["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True, check=False
    ).stdout
    results.kubectl_version = json.loads(client or "{}").get("clientVersion", {}).get("gitVersion", "?")
    tools = provide_tools(tools=E2E_TOOLS)
    python = program_virtualenv(Path(tools["CACHE"]))
    program_log = workdir / "program-runs.log"
    wrapper_dir = workdir / "timed-python"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "python"
    wrapper.write_text(TIMED_PYTHON.format(python=python, log=program_log))
    wrapper.chmod(0o755)
    api = start_simulated_cluster(tools, workdir / "cluster")
    try:
        pulumi = pulumi_cli(tools, wrapper, workdir / "pulumi")
        bench = Bench(pulumi, api, workdir, program_log)
        with chart_mirror() as mirror:
            platform = provision(pulumi, api, workdir / "platform-project", chart_mirror=mirror)
        results.platform_up = platform.up_seconds

        starts = [time.time()]
        for _ in range(REPEAT):
            subprocess.run([tools["pulumi"], "version"], capture_output=True, check=True)
            starts.append(time.time())
        results.cli_start = statistics.median(b - a for a, b in pairwise(starts))

        # 1-3: the walk of one model stack.
        model = "fraud-detector"
        project = bench.model_project(model, "walk", canary=True, training=True)
        started = time.time()
        pulumi.up(project, "walk")
        results.model_up = time.time() - started
        for weight in (25, 50, 75, 100):
            stackfile.apply_edit(project / "Pulumi.walk.yaml", stackfile.set_weight(weight))
            preview = bench.timed("preview", "--stack", "walk", "--diff", "--json", cwd=project)
            mark = api.audit_lines()
            up = bench.timed("up", "--stack", "walk", "--yes", "--skip-preview", cwd=project)
            results.steps.append((weight, preview, up, bench.api_writes_by_provider(mark)))
        for index in range(5):
            weights = (90, 10) if index % 2 == 0 else (0, 100)
            results.kubectl.append(bench.kubectl_patch(api.admin_kubeconfig, weights, model))

        # 4a: live versions in one stack: the walk (2) against a stable-only stack (1).
        single = bench.model_project("single-model", "single", canary=False, training=False)
        pulumi.up(single, "single")
        results.versions[1] = [bench.timed("preview", "--stack", "single", cwd=single) for _ in range(REPEAT)]
        results.versions[2] = [bench.timed("preview", "--stack", "walk", cwd=project) for _ in range(REPEAT)]

        # 4b: model stacks previewed one after another.
        stacks = []
        for index in range(20):
            name = f"model-{index:02d}"
            stacks.append(bench.model_project(name, name, canary=True, training=False))
            pulumi.up(stacks[-1], name)
        for count in (1, 5, 20):
            results.stacks[count] = [
                bench.timed("preview", "--stack", stack.name, cwd=stack) for stack in stacks[:count]
            ]
    finally:
        api.stop()
    return results


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


def markdown(results: Results) -> str:
    kubectl = statistics.median(results.kubectl)
    lines = [
        "## 5. The real platform and a rollout on the simulated cluster (e2e)",
        "",
        "Measured by `python -m bench.simulated` (`make bench-e2e`) on "
        f"{time.strftime('%Y-%m-%d')}, tools cached: the real engine and Kubernetes provider against the",
        "e2e tier's simulated cluster (kube-apiserver, controller manager, scheduler, kwok; 2 system and",
        "2 GPU nodes), every chart from the mirror on 127.0.0.1.",
        "",
        "| what | wall |",
        "|---|---:|",
        "| platform `pulumi up` (six releases with Helm's waits, MLflow, Postgres, CRDs, policies) | "
        f"{_seconds(results.platform_up)} |",
        f"| model stack `pulumi up` (canary at 10 %, training Job, awaitReadiness on) | {_seconds(results.model_up)} |",
        "",
        "Each weight step (the edit `rollout next` makes), previewed then applied:",
        "",
        "| step | `preview --diff` | `up` | API writes by the provider during `up` | of which dry runs |",
        "|---|---:|---:|---:|---:|",
    ]
    for weight, preview, up, writes in results.steps:
        dry = sum(1 for write in writes if write.endswith("(dry run)"))
        lines.append(f"| → {weight} | {_seconds(preview.wall)} | {_seconds(up.wall)} | {len(writes)} | {dry} |")
    lines += ["", "The last step's writes, in order: " + "; ".join(f"`{w}`" for w in results.steps[-1][3]) + "."]
    up_median = statistics.median(up.wall for _, _, up, _ in results.steps)
    lines += [
        "",
        f"The same weight change with `kubectl patch trafficsplit --type=merge` (kubectl {results.kubectl_version}), "
        f"median of {len(results.kubectl)}: **{kubectl:.2f} s**; a step's `up` takes "
        f"**{up_median / kubectl:.0f}×** that (median {up_median:.1f} s), and its preview as much again.",
        "",
        "Where a `preview` spends its time (medians). `before program`: from the CLI's start to the",
        "program's interpreter starting (CLI start, state, plugin discovery, language host); `program`: the",
        "interpreter's life (imports, the program, and its waits on the engine, including the provider's",
        "load and diffs); `after`: the engine finishing. "
        f"The CLI alone (`pulumi version`) starts in {results.cli_start:.2f} s.",
        "",
        "| preview of | total | before program | of which `pip list` (plugin discovery) | program | after |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def row(label: str, runs: list[Timed]) -> str:
        def median(attr: str) -> float:
            return statistics.median(getattr(run, attr) for run in runs)

        return (
            f"| {label} | {_seconds(median('wall'))} | {_seconds(median('before_program'))} | "
            f"{_seconds(median('plugin_discovery'))} | {_seconds(median('program'))} | "
            f"{_seconds(median('after_program'))} |"
        )

    for count, runs in sorted(results.versions.items()):
        lines.append(row(f"one stack, {count} live version{'s' if count > 1 else ''} ({len(runs)} runs)", runs))
    for count, runs in sorted(results.stacks.items()):
        lines.append(row(f"{count} stack{'s' if count > 1 else ''}, one after another: per stack", runs))
    lines.append("")
    lines.append(
        "| stacks previewed one after another | total |\n|---|---:|\n"
        + "\n".join(
            f"| {count} | {_seconds(sum(r.wall for r in runs))} |" for count, runs in sorted(results.stacks.items())
        )
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simulated", description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-simulated-") as tmp:
        results = run(Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(results, default=lambda o: o.__dict__, indent=1))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
