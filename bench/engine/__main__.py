"""`python -m bench.engine` (`make bench-e2e`): a weight step and a rollback at the engine's floor.

On the e2e tier's simulated cluster, with the real CLI, language host and Kubernetes
provider, in one run and alternating round by round (the order rotated each round):

- a weight step's `up` and `preview --diff` on a model stack, against the engine's floors
  (an empty program's `up`, a one-ConfigMap program's `up`) and against a patch of a
  copy of the split with `kubectl patch` and with the tools' kube client as one process;
- each knob of issue 22 switched off on its own stack (provider first, the ASCII image
  tag pattern, the plugin-discovery shim): its saving is the paired median of
  (knob off - weight step), the ones that did nothing included;
- the same weight step as `rollout next --apply` / `watch --apply` applies it: `preview
  --save-plan`, the plan checked, `up --plan` (its cost over one `up`, paired);
- `rollout abort --apply` with the rollback's `up` as one CLI run against the
  Automation API's, alternating;
- what is left: the CLI's start, `import pulumi`, the API server's OpenAPI document.

A benchmark, not a test: it asserts nothing about time. It prints a markdown table of
medians and ratios with the issue's targets.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.engine.measure import PLANNED_STEP, Results, run

ROUNDS = 5
STEP = "weight step `up`"
FLOOR = "floor: one-ConfigMap program `up`"
KUBECTL = "`kubectl patch` of a copy of the split"
OLD, NEW = "Automation API", "one CLI `up`"
UP_ONLY, ABORT = "rollback `up` only: ", "rollback `abort --apply`: "
MOVED = "rollback start → split 100/0 on the API server: "
ROLLBACK_BUDGET = 2.5  # seconds after the deciding check, on top of one analysis interval (issue 22)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _paired(results: Results, slower: str, faster: str) -> float:
    """Median of the per-round differences: the saving, drift cancelled."""
    return _median([a - b for a, b in zip(results.runs[slower], results.runs[faster], strict=True)])


def _verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def _ratio(results: Results, numerator: str, denominator: str) -> float:
    """Median of the per-round ratios."""
    return _median([a / b for a, b in zip(results.runs[numerator], results.runs[denominator], strict=True)])


def markdown(results: Results) -> str:
    runs = results.runs
    to_floor, to_kubectl = _ratio(results, STEP, FLOOR), _ratio(results, STEP, KUBECTL)
    saved = _paired(results, f"{ABORT}{OLD}", f"{ABORT}{NEW}")
    moved = _median(runs[f"{MOVED}{NEW}"])
    lines = [
        f"Measured by `python -m bench.engine` (`make bench-e2e`) on {time.strftime('%Y-%m-%d')}, "
        f"{results.rounds} rounds, medians.",
        "",
        "| what | median |",
        "|---|---:|",
        *(f"| {label} | {_median(values):.2f} s |" for label, values in runs.items()),
        "",
        "| target (issue 22) | measured (paired) | |",
        "|---|---:|---|",
        f"| weight step `up` ≤ 1.15 × the one-ConfigMap floor | {to_floor:.2f}× | {_verdict(to_floor <= 1.15)} |",
        f"| weight step `up` ≤ 15 × `kubectl patch` | {to_kubectl:.1f}× | {_verdict(to_kubectl <= 15)} |",
        f"| rollback: ≥ 0.8 s saved (`abort --apply`, old − new) | {saved:.2f} s | {_verdict(saved >= 0.8)} |",
        f"| rollback: deciding check → 100/0 ≤ 1 interval + {ROLLBACK_BUDGET} s (start of `abort --apply` → split "
        f"100/0; the interval excluded) | {moved:.2f} s | {_verdict(moved <= ROLLBACK_BUDGET)} |",
        "",
        "| knob | saving (paired median, knob off − on) |",
        "|---|---:|",
    ]
    for label in runs:
        if label.startswith("knob off: "):
            lines.append(
                f"| weight step `up`: {label.removeprefix('knob off: ')} | {_paired(results, label, STEP):+.2f} s |"
            )
    for prefix, what in ((UP_ONLY, "the `up` alone"), (ABORT, "`abort --apply`"), (MOVED, "to split 100/0")):
        lines.append(
            f"| rollback as one CLI run, {what} | {_paired(results, f'{prefix}{OLD}', f'{prefix}{NEW}'):+.2f} s |"
        )
    if PLANNED_STEP in runs:
        lines += [
            "",
            "| a step forward through `--apply` (issue 21) | paired |",
            "|---|---:|",
            f"| under a plan ÷ one `up` | {_ratio(results, PLANNED_STEP, STEP):.2f}× |",
            f"| under a plan − one `up` | {_paired(results, PLANNED_STEP, STEP):+.2f} s |",
        ]
    if "openapi_bytes" in results.facts:
        lines += ["", f"The API server's `/openapi/v2` document: {int(results.facts['openapi_bytes']) / 1e6:.1f} MB."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds (default {ROUNDS})")
    parser.add_argument("--json", type=Path, help="also write the raw per-round seconds here")
    parser.add_argument("--from-json", type=Path, help="print the table of an earlier run's --json; measure nothing")
    args = parser.parse_args(argv)
    if args.from_json:
        raw = json.loads(args.from_json.read_text())
        print(markdown(Results(raw["rounds"], raw["runs"], raw.get("facts", {}))))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        results = run(Path(tmp), args.rounds)
    if args.json:
        args.json.write_text(
            json.dumps({"rounds": results.rounds, "runs": results.runs, "facts": results.facts}, indent=1)
        )
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
