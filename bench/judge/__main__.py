"""`python -m bench.judge` (or `make bench-judge`): replay synthetic canaries through the judge and
through the old threshold-only gate; write section 6 of docs/benchmarks.md and docs/img/judge.png.

Not a timed test: the figures are error rates and intervals, which do not depend on the machine.
Seeded: a rerun with the same --canaries writes the same numbers.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from bench.judge import replay
from bench.run import DEFAULT_OUT, KEPT_MARKER, ROOT

HEADING = "## 6. Canary judge: replayed canaries with known ground truth"
PLOT = ROOT / "docs" / "img" / "judge.png"
PLOT_CLASSES = ("equal, 5000 req/min", "errors 2x, 5000 req/min")


def _run_class(truth: replay.Truth, canaries: int) -> dict:
    analysis = replay.benchmark_analysis()
    row = {}
    for name, runner in (("judge", replay.run_judge), ("old", replay.run_legacy)):
        outcomes = [runner(truth, seed, analysis) for seed in range(canaries)]
        counts = Counter(o.result for o in outcomes)
        rollbacks = [o.intervals for o in outcomes if o.result == "rolled back"]
        row[name] = {
            "promoted": counts["promoted"] / canaries,
            "rolled back": counts["rolled back"] / canaries,
            "undecided": counts["undecided"] / canaries,
            "median": statistics.median(rollbacks) if rollbacks else None,
        }
    return row


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _median(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _wrong(truth: replay.Truth, figures: dict) -> str:
    """The error the ground truth defines: promoting a worse canary, rolling back one that is not."""
    return _pct(figures["promoted"] if truth.must_not_promote else figures["rolled back"])


def markdown(results: dict[str, dict], canaries: int, seconds: float) -> str:
    lines = [
        HEADING,
        "",
        f"{canaries} seeded canaries per class, each driven through a whole rollout as `rollout watch` drives it: "
        "the model stack defaults (steps 10/25/50/75/100, dwells 5/10/15/10/5 min, minRequests 50, "
        "minSuccessRate 99%, maxP99LatencyMs 500, failureThreshold 3), a check at the end of every 1-minute "
        f"interval, at most {replay.MAX_INTERVALS} intervals. Stable: 0.2% errors, log-normal latency with a 150 ms "
        "p99; the request rate is the model's, split by the canary's weight (so 500 req/min is 50 canary requests "
        "per interval at 10%). The judge runs `gate.evaluate` and `gate.act`, the code `watch` runs, against a "
        "fake Prometheus answering its PromQL (`bench/judge/fake_prometheus.py`), and carries its tests' evidence "
        "from one step to the next as the rollout status does; the old gate is the threshold-only "
        "rules of before (`bench/judge/legacy.py`). `python -m bench.judge` regenerates this section.",
        "",
        "Wrong = a promotion of a worse canary or of one with too little traffic to judge, a rollback otherwise. "
        "Median = intervals from the start of the rollout to a rollback.",
        "",
        "| class | worse? | judge: promoted | judge: rolled back | judge: wrong | judge: median | old: promoted | "
        "old: rolled back | old: wrong | old: median |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for truth in replay.CLASSES:
        j, o = results[truth.name]["judge"], results[truth.name]["old"]
        worse = "yes" if truth.worse else "too little traffic" if truth.starved else "no"
        lines.append(
            f"| {truth.name} | {worse} | {_pct(j['promoted'])} | {_pct(j['rolled back'])} | "
            f"**{_wrong(truth, j)}** | {_median(j['median'])} | {_pct(o['promoted'])} | {_pct(o['rolled back'])} | "
            f"{_wrong(truth, o)} | {_median(o['median'])} |"
        )
    lines += ["", "Targets:", ""]
    lines += _targets(results)
    lines += [
        "",
        f"![The judge's e-value for a good and a bad canary](img/{PLOT.name})",
        "",
        f"Replay time: {seconds:.0f} s for both gates.",
        "",
    ]
    return "\n".join(lines)


def oracle_intervals(truth: replay.Truth, analysis) -> int | None:
    """Intervals an SPRT that knew the truth exactly (ρ = `error_ratio` against ρ0 = 1 + tolerance)
    needs, on average, to reach 1/α: the first interval where the expected log likelihood ratio (the
    Kullback-Leibler divergence of the interval's binomial split, summed over the rollout's schedule)
    reaches log(1/α). Wald and Wolfowitz (1948): no test at that α stops sooner on average, so this is
    the floor any valid judge's detection time stands on. None: not within the rollout."""
    steps = [10, 25, 50, 75, 100]
    rho0, p = 1.0 + analysis.max_error_rate_increase, truth.stable_error_rate
    target, total, k = math.log(1.0 / (1.0 - analysis.confidence)), 0.0, 0
    for index, weight in enumerate(steps):
        for _ in range(int(analysis.dwell_seconds(index) // replay.INTERVAL_SECONDS)):
            k += 1
            canary, stable = truth.requests_per_minute * weight / 100, truth.requests_per_minute * (1 - weight / 100)
            if stable <= 0:
                continue
            errors = canary * p * truth.error_ratio + stable * p
            theta1, theta0 = canary * p * truth.error_ratio / errors, rho0 * canary / (rho0 * canary + stable)
            total += errors * (
                theta1 * math.log(theta1 / theta0) + (1 - theta1) * math.log((1 - theta1) / (1 - theta0))
            )
            if total >= target:
                return k
    return None


def _targets(results: dict[str, dict]) -> list[str]:
    def judge(name: str) -> dict:
        return results[name]["judge"]

    def truth(name: str) -> replay.Truth:
        return next(t for t in replay.CLASSES if t.name == name)

    analysis = replay.benchmark_analysis()
    equal = judge("equal, 500 req/min")["rolled back"]
    names = ("errors 2x, 500 req/min", "errors 2x, 5000 req/min", "errors 2x, 50000 req/min")
    two = [judge(name) for name in names]
    floor = [oracle_intervals(truth(name), analysis) for name in names]
    none = judge("no traffic")["promoted"]
    return [
        f"- False rollbacks of equal versions at 50 canary requests per interval: {_pct(equal)} "
        f"(target <= 1%: {'met' if equal <= 0.01 else 'missed'}).",
        f"- False promotions of a 2x error-rate canary: {_pct(two[1]['promoted'])} at 5000 req/min "
        f"(target <= 1%: {'met' if two[1]['promoted'] <= 0.01 else 'missed'}); {_pct(two[0]['promoted'])} at "
        "500 req/min, where a 0.2% -> 0.4% change gives the canary one error more than stable's rate every 10 "
        "minutes at 10%: "
        "the whole rollout holds too few errors to tell it from noise at 99% confidence (even a test that "
        "knew the truth would not get there before promotion), so the judge lets it through rather than "
        "roll back equal versions.",
        f"- Promotions with no traffic: {_pct(none)} (target 0).",
        f"- Median intervals to roll back a 2x canary: {_median(two[1]['median'])} at 5000 req/min "
        f"(target <= 3: {'met' if (two[1]['median'] or 99) <= 3 else 'missed'}), {_median(two[2]['median'])} at "
        f"50000 req/min. The floor under any valid test: a sequential test that knew the canary is exactly 2x "
        f"needs {_median(floor[1])} intervals on average at 5000 req/min and {_median(floor[2])} at 50000 "
        "(Wald-Wolfowitz; `oracle_intervals` sums the expected evidence over the default steps and dwells). "
        "At 5000 req/min and 10% the canary sees two errors a minute against stable's nine, so 3 intervals "
        "hold about an e-value of 2 for any test, not 100: speed is bought with traffic (a larger first "
        "step) or a lower `confidence`, not with a looser test. The judge's tests run for the canary's whole "
        "rollout, not one step: the evidence a step gathers carries into the next (it no longer restarts).",
    ]


def plot(path: Path) -> None:
    """The error-rate e-value at every check of one good and one bad replayed canary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    analysis = replay.benchmark_analysis()
    figure, axis = plt.subplots(figsize=(8, 4), dpi=120)
    for name, colour in zip(PLOT_CLASSES, ("tab:green", "tab:red"), strict=True):
        truth = next(t for t in replay.CLASSES if t.name == name)
        trace: list = []
        outcome = replay.run_judge(truth, 0, analysis, trace)
        xs = [k for k, _, _ in trace]
        ys: list[float] = []
        for _, _, verdict in trace:
            # No comparison (stable without traffic at 100%): the test holds where it stood.
            e_value = verdict.comparisons.get("errorRate", {}).get("eValue", ys[-1] if ys else 1.0)
            ys.append(max(e_value, 1e-3))
        axis.step(xs, ys, where="post", color=colour, label=f"{name}: {outcome.result} at interval {outcome.intervals}")
        for k, weight, _ in trace:
            if k > 1 and trace[k - 2][1] != weight:
                axis.axvline(k - 0.5, color=colour, alpha=0.2, linewidth=1)
    axis.axhline(1 / (1 - analysis.confidence), color="black", linestyle="--", label="reject: 1 / (1 - confidence)")
    axis.set_yscale("log")
    axis.set_xlabel("interval (1 min) since the canary started; faint lines: a new step (the test carries on)")
    axis.set_ylabel("error-rate e-value (running max)")
    axis.set_title("The judge's sequential statistic, canary vs stable")
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


def write_section(report: Path, section: str) -> None:
    """Put the section after KEPT_MARKER (a `make bench` rerun keeps it), replacing an earlier copy."""
    text = report.read_text() if report.exists() else "# Benchmarks\n"
    if KEPT_MARKER not in text:
        text = text.rstrip("\n") + f"\n\n{KEPT_MARKER}\n"
    start = text.find(HEADING)
    if start >= 0:
        end = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + ("" if end < 0 else text[end + 1 :])
    else:
        text = text.rstrip("\n") + "\n\n" + section
    report.write_text(text.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.judge", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--canaries", type=int, default=200, help="seeded canaries per class (default 200)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report file (default {DEFAULT_OUT})")
    parser.add_argument("--plot", type=Path, default=PLOT, help=f"plot file (default {PLOT})")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = {}
    for truth in replay.CLASSES:
        results[truth.name] = _run_class(truth, args.canaries)
        print(f"{truth.name}: {results[truth.name]}", file=sys.stderr, flush=True)
    section = markdown(results, args.canaries, time.monotonic() - started)
    write_section(args.out, section)
    plot(args.plot)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
