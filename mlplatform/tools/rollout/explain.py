"""`rollout explain STACK [--at TIME] [--since TIME] [--record FILE]`: the gate's verdict re-derived
from Prometheus, and why.

Read-only, and no lock: it runs the gate's own code (`Context.gate`) at a chosen
time over the same Prometheus, so a verdict that `watch` acted on can be checked
afterwards. A verdict continues the sequential tests of the canary's earlier
steps, so replaying one needs where they stood when its step began: `--record`
takes a recorded verdict (the status' lastVerdict, the `verdict:` line of a
commit message, or this command's --json) and replays it exactly, its window and
the evidence it carried in (`evidenceIn`). Without --record or --since, the
current step is judged as `watch` judges it: from the step start and the
evidence in the rollout status, when the status can be read. Exit 0 whatever the
outcome: it explains, it does not gate.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlplatform.model.config import ModelStackConfig
from mlplatform.tools import kube
from mlplatform.tools.rollout import state
from mlplatform.tools.rollout.context import EXIT_OK, Context, UsageError
from mlplatform.tools.rollout.gate import FAIL, NOT_YET, PASS, GateVerdict
from mlplatform.tools.rollout.platform import PlatformOutputError
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
        help="the step's start, where the evidence begins (default: the step start in the rollout status, "
        "else the current step's dwell before --at); no evidence is carried in from earlier steps",
    )
    parser.add_argument(
        "--record",
        metavar="FILE",
        help="replay a recorded verdict exactly (its window and the evidence it carried in): a file holding "
        "the verdict record, the rollout status, a commit message with a `verdict:` line, or explain's --json; "
        "- reads stdin",
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
        carried = f" ({c['carriedIntervals']} carried from earlier steps)" if c.get("carriedIntervals") else ""
        lines.append(f"    bad/requests over {c['intervals']} intervals{carried}: {counts}")
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
    if verdict.evidence_in:
        lines.append(
            f"  carried in: the tests continue from earlier steps of this canary (through "
            f"{verdict.evidence_in.get('through')})"
        )
    lines += _comparison_lines(verdict)
    lines += [f"  because: {r}" for r in verdict.reasons]
    lines += [f"  note: {n}" for n in verdict.notes]
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _find_record(data: Any) -> dict | None:
    """The verdict record inside what a user may hand over: the record itself, a status, explain's --json."""
    if isinstance(data, dict):
        if "window" in data and "outcome" in data:
            return data
        for key in ("lastVerdict", "verdict"):
            if key in data:
                return _find_record(data[key])
    return None


def load_record(source: str) -> dict:
    """The recorded verdict in `source` (a path, or - for stdin); UsageError names what is wrong."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"--record {source}: cannot read it: {err}") from None
    candidates = [text] + [line.removeprefix("verdict: ") for line in text.splitlines() if line.startswith("verdict: ")]
    for candidate in candidates:
        try:
            record = _find_record(json.loads(candidate))
        except json.JSONDecodeError:
            continue
        if record is not None:
            window = record.get("window") or {}
            if not window.get("since") or not window.get("checkedAt"):
                raise UsageError(f"--record {source}: the verdict names no window.since/window.checkedAt to replay")
            return record
    raise UsageError(
        f"--record {source}: no verdict record found (allowed: a verdict record, a rollout status with "
        "lastVerdict, explain's --json, or a commit message with a `verdict: {...}` line)"
    )


def _current_step(ctx: Context, config: ModelStackConfig) -> tuple[datetime | None, dict | None, str]:
    """The step start and carried evidence from the rollout status, as `watch` would use them."""
    canary = rules.require_canary(config)
    try:
        recorded = ctx.status_store(config).get(missing_ok=True)
    except (kube.KubeError, PlatformOutputError, OSError) as err:
        return None, None, f"rollout status unavailable ({err}): judged over the last dwell, nothing carried in"
    if recorded is None or not recorded.is_for(canary.version, canary.weight):
        return None, None, "no rollout status for this step: judged over the last dwell, nothing carried in"
    started = datetime.fromtimestamp(state.parse_iso(recorded.step_started_at), UTC)
    return started, recorded.evidence, f"step start and carried evidence from {ctx.status_store(config).where}"


def _replay(ctx: Context, config: ModelStackConfig) -> tuple[GateVerdict, dict[str, Any]]:
    if ctx.args.record:
        if ctx.args.at or ctx.args.since:
            raise UsageError("--record replays the recorded window: drop --at and --since")
        record = load_record(ctx.args.record)
        try:
            since, at = _time(record["window"]["since"]), _time(record["window"]["checkedAt"])
        except argparse.ArgumentTypeError as err:
            raise UsageError(f"--record {ctx.args.record}: {err}") from None
        verdict = ctx.gate(config, since=since, at=at, evidence=record.get("evidenceIn"))
        same = verdict.outcome == record.get("outcome")
        said = f"replayed the recorded verdict: {'same' if same else 'DIFFERENT'} outcome ({record.get('outcome')})"
        return verdict, {"replayed": True, "sameOutcome": same, "source": said}
    if ctx.args.since:
        return ctx.gate(config, since=ctx.args.since, at=ctx.args.at), {"source": "--since: nothing carried in"}
    since, evidence, source = _current_step(ctx, config)
    return ctx.gate(config, since=since, at=ctx.args.at, evidence=evidence), {"source": source}


def run(ctx: Context) -> int:
    config = ctx.load().config
    rules.require_canary(config)
    verdict, how = _replay(ctx, config)
    ctx.out.event("explain", words(verdict) + f"\n  ({how['source']})", verdict=verdict.to_record(), **how)
    return EXIT_OK
