"""`rollout explain STACK [--at TIME] [--since TIME]`: the gate's verdict re-derived from Prometheus, and why.

Read-only, and no lock: it runs the gate's own code (`Context.gate`) at a chosen
time over the same Prometheus, so a verdict that `watch` acted on (its record
names the window) can be checked afterwards. Exit 0 whatever the outcome: it
explains, it does not gate.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from mlplatform.tools.rollout.context import EXIT_OK, Context
from mlplatform.tools.rollout.gate import FAIL, NOT_YET, PASS, GateVerdict
from mlplatform.tools.stackfile import rules

_HEADLINE = {
    PASS: "PASS: enough traffic, no guard rail crossed, no regression against stable",
    FAIL: "FAIL",
    NOT_YET: "NOT YET: too little evidence to judge; never a promotion",
}


def _time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (allowed: ISO 8601, e.g. 2026-12-04T17:30:00Z)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--at", type=_time, help="judge as of this time (ISO 8601, UTC if no zone; default now)")
    parser.add_argument(
        "--since",
        type=_time,
        help="the step's start, where the evidence begins (default: the current step's dwell before --at)",
    )
    parser.set_defaults(rollout_handler=run)


def _comparison_lines(verdict: GateVerdict) -> list[str]:
    lines = []
    for name, c in verdict.comparisons.items():
        crossed = c["eValue"] == "inf" or c["eValue"] >= c["threshold"]
        lines.append(f"  {name}: {c['what']}")
        counts = f"canary {c['canary']['bad']:.0f}/{c['canary']['requests']:.0f}"
        if c.get("stable"):
            counts += f", stable {c['stable']['bad']:.0f}/{c['stable']['requests']:.0f}"
        if c.get("observedRatio") is not None:
            counts += f", canary/stable {c['observedRatio']:.2f} (tolerated up to {c['nullRatio']:.2f})"
        lines.append(f"    bad/requests over {c['intervals']} intervals: {counts}")
        e_value = c["eValue"] if isinstance(c["eValue"], str) else f"{c['eValue']:.3g}"
        lines.append(
            f"    e-value {e_value} {'>=' if crossed else '<'} {c['threshold']:g}: "
            + ("the evidence rejects 'no worse than tolerated'" if crossed else "no evidence of a regression")
        )
        if "boundaryLe" in c:
            lines.append(f"    boundary: stable's p99 bucket le={c['boundaryLe']} ms, from {c['boundaryFrom']}")
    return lines


def words(verdict: GateVerdict) -> str:
    """The verdict in sentences: what was judged, over which window, which numbers, which decision."""
    headline = _HEADLINE[verdict.outcome] + (" (watch rolls back at once)" if verdict.decisive else "")
    lines = [
        f"{verdict.namespace}/{verdict.deployment}: {headline}",
        f"  window: {verdict.since} to {verdict.window_end} ({verdict.intervals} intervals of {verdict.interval})",
        f"  canary requests {verdict.requests:.0f}, success {_pct(verdict.success_rate)}, p99 "
        + ("n/a" if verdict.p99_latency_ms is None else f"{verdict.p99_latency_ms:.0f}ms"),
    ]
    if verdict.stable_deployment:
        stable_n = verdict.stable_requests or 0
        lines.append(
            f"  stable {verdict.stable_deployment}: requests {stable_n:.0f}, "
            f"success {_pct(verdict.stable_success_rate)}"
        )
    lines += _comparison_lines(verdict)
    lines += [f"  because: {r}" for r in verdict.reasons]
    lines += [f"  note: {n}" for n in verdict.notes]
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def run(ctx: Context) -> int:
    config = ctx.load().config
    rules.require_canary(config)
    verdict = ctx.gate(config, since=ctx.args.since, at=ctx.args.at)
    ctx.out.event("explain", words(verdict), verdict=verdict.to_record())
    return EXIT_OK
