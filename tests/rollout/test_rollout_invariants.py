"""Random sequences of rollout verbs over the real stack-file editor and rules, with Hypothesis.

Each sequence starts from the test stack file (canary v6 at 10%) and applies verbs
as the commands do (the same rules, the same edits, the same `gate.act` for watch
checks, verdicts drawn at random). After every verb:
- the split's weights sum to 100, and only the stable and canary versions, the
  Deployments the model program declares, get any;
- the last healthy version is never removed: stable changes only by a promotion
  after a passing verdict at 100%;
- an abort is never undone except by an explicit retry (`start`);
- the stack file stays a valid model stack (it is re-read and validated) and is
  byte-identical outside the lines the verb edits;
- its preview is a valid program: the real model program renders it with the
  offline engine (as `mlplatform render` and the PR's preview do), and what it
  declares routes every weighted backend of the TrafficSplit, with the file's
  weights, to a Service selecting a declared Deployment that autoscaling keeps
  at one replica or more.
Racing verbs (two commands on one file and status at once) are in
`test_race_properties`.
The anchors' outages this guards against: Flagger #1898 (a failed promotion
leaves traffic on a broken primary) and Argo Rollouts #3372 (a superseding
release moves traffic to a stable that is not up).
"""

from __future__ import annotations

import difflib
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlplatform.tools.offline.engine import project_name, read_stack_file
from mlplatform.tools.render import render_stack
from mlplatform.tools.rollout import gate
from mlplatform.tools.stackfile import editor as stackfile
from mlplatform.tools.stackfile import rules
from tests.rollout.conftest import STACK, STACK_TEXT

# 1,000 sequences a run (the floor); derandomized so CI runs the same ones.
SEQUENCES = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
VERDICTS = st.sampled_from([gate.PASS, gate.FAIL, gate.NOT_YET, "decisive"])
VERBS = st.one_of(
    st.tuples(st.just("next"), VERDICTS),
    st.tuples(st.just("watch"), VERDICTS),
    st.tuples(st.just("promote"), VERDICTS),
    st.tuples(st.just("abort"), st.sampled_from(["errors", ""])),
    st.tuples(st.just("start"), st.sampled_from(["v7", "v6"])),
)
# The editor is a pure function of the file's text, and parsing plus validating a stack file
# costs tens of milliseconds: each distinct (text, edit) runs the real editor once, and
# repeats reuse its answer, so 1,000 sequences fit in the unit tier's minute.
SCRATCH = Path(tempfile.mkdtemp(prefix="invariants-")) / f"Pulumi.{STACK}.yaml"
ROOT = Path(__file__).resolve().parents[2]
MODEL_PROJECT = ROOT / "stacks" / "model"
# The platform stack the model stack references, rendered once for every preview.
PLATFORM_OUTPUTS: dict[str, dict] = {}


@cache
def _config(text: str):
    SCRATCH.write_text(text)
    return stackfile.load(SCRATCH).config  # validated: a file that is not a valid stack raises


@cache
def _preview(text: str) -> dict[str, tuple[int, int]]:
    """Render the stack file with the real model program offline; for each TrafficSplit backend with
    weight, (weight, the least replicas autoscaling keeps behind it). Raises if the program rejects it."""
    SCRATCH.write_text(text)
    config, secrets = read_stack_file(SCRATCH, project_name(MODEL_PROJECT))
    recording = render_stack(
        MODEL_PROJECT,
        "fraud-detector-dev",  # the project's own stack file must exist; `config` replaces its contents
        platform_dir=ROOT,
        platform_outputs=PLATFORM_OUTPUTS,
        config=config,
        secret_keys=secrets,
    )
    by_type: dict[str, list[dict]] = {}
    for resource in recording.resources:
        by_type.setdefault(resource.type.rsplit(":", 1)[-1], []).append(resource.inputs)
    (split,) = by_type["TrafficSplit"]
    services = {s["metadata"]["name"]: s["spec"].get("selector", {}) for s in by_type["Service"]}
    least = {h["spec"]["scaleTargetRef"]["name"]: h["spec"]["minReplicas"] for h in by_type["HorizontalPodAutoscaler"]}
    backends = {}
    for backend in split["spec"]["backends"]:
        selector = services[backend["service"]]  # KeyError: traffic to a Service the program does not declare
        deployments = [
            d["metadata"]["name"]
            for d in by_type["Deployment"]
            if selector and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        backends[backend["service"]] = (backend["weight"], min((least.get(d, 0) for d in deployments), default=0))
    return backends


@cache
def _edited(text: str, key: tuple) -> str | None:
    """The editor's new text for `key` on `text`; None when a rollout rule refuses."""
    SCRATCH.write_text(text)
    verb, *args = key
    edit = {
        "start": lambda v: stackfile.start_canary(
            v, "ghcr.io/example/fraud-detector-serving:2.0.0", f"models:/fraud_detector/{v[1:]}"
        ),
        "abort": stackfile.abort,
        "weight": stackfile.set_weight,
        "promote": stackfile.promote,
    }[verb](*args)
    try:
        return stackfile.apply_edit(SCRATCH, edit).text
    except rules.Refused:
        return None


def _verdict(outcome: str) -> gate.GateVerdict:
    return gate.GateVerdict(
        healthy=outcome == gate.PASS,
        outcome=gate.FAIL if outcome == "decisive" else outcome,
        decisive=outcome == "decisive",
        namespace="ns",
        deployment="d",
        interval="1m",
        requests=100,
        success_rate=1.0,
        p99_latency_ms=10,
        accuracy=None,
        stable_success_rate=None,
        thresholds=gate.Thresholds(50, 0.99, 500, None, True),
    )


@dataclass
class Expected:
    """What the sequence must have done so far, kept beside the file."""

    stable: str = "v5"
    aborted: bool = False
    failures: int = 0
    edited: set = field(default_factory=set)


def _apply(path: Path, *key) -> bool:
    """Apply an edit to the file as the commands do; False when a rule refused it (nothing written)."""
    text = _edited(path.read_text(), key)
    if text is None:
        return False
    path.write_text(text)
    return True


def _act(path: Path, verb: str, arg: str, expected: Expected) -> None:
    config = _config(path.read_text())
    if verb == "start":
        if _apply(path, "start", arg):
            expected.aborted, expected.failures = False, 0
        return
    if verb == "abort":
        if config.canary is not None:
            _apply(path, "abort", arg)
            expected.aborted = True
        return
    try:
        canary = rules.require_live_canary(config)
    except rules.Refused:
        return  # the commands refuse: no live canary
    verdict = _verdict(arg)
    if verb == "promote":
        if canary.weight == 100 and verdict.healthy:
            _apply(path, "promote")
            expected.stable = canary.version
        return  # refused: not at 100, or the gate did not pass (Flagger #1898: nothing moves)
    if verb == "next":
        if verdict.healthy and config.next_step() is not None:
            _apply(path, "weight", config.next_step())
        return
    action, expected.failures = gate.act(verdict, expected.failures, config.analysis.failure_threshold, True)
    if action == gate.ABORT:
        _apply(path, "abort", "watch: " + "; ".join(verdict.reasons))
        expected.aborted = True
    elif action == gate.ADVANCE and config.next_step() is not None:
        _apply(path, "weight", config.next_step())
        expected.failures = 0


def _changed_lines(before: str, after: str) -> list[str]:
    """The lines of `before` that `after` no longer has, in place (replaced or removed)."""
    ops = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False).get_opcodes()
    return [line for tag, i1, i2, _, _ in ops if tag in ("replace", "delete") for line in before.splitlines()[i1:i2]]


def _check(path: Path, before: str, verb: str, expected: Expected) -> None:
    after = path.read_text()
    config = _config(after)  # re-read and validated: still a valid model stack
    weights = {b.object_name: b.weight for b in config.traffic_weights().backends}
    assert sum(weights.values()) == 100
    declared = {config.version_object_name(config.stable.version)}
    if config.canary is not None:
        declared.add(config.version_object_name(config.canary.version))
    assert {name for name, weight in weights.items() if weight > 0} <= declared
    assert config.stable.version == expected.stable, "stable changed without a passing promotion at 100%"
    if expected.aborted:
        assert config.canary is not None and config.canary.weight == 0, "an abort was undone without a retry"
    preview = _preview(after)
    assert {name: weight for name, (weight, _) in preview.items()} == weights, (preview, weights)
    assert all(replicas >= 1 for weight, replicas in preview.values() if weight > 0), preview
    removed = _changed_lines(before, after)
    if verb in ("next", "watch", "abort"):
        assert all(line.lstrip().startswith("weight:") for line in removed), removed
        assert len(after.splitlines()) == len(before.splitlines())
    else:
        # start and promote rewrite the canary block (and stable's version lines); the rest stays as it was.
        untouched = [line for line in removed if not line.startswith(("    ", "  mlmodel:canary:"))]
        assert untouched == [], untouched


@SEQUENCES
@given(verbs=st.lists(VERBS, min_size=1, max_size=8))
def test_random_verb_sequences_keep_the_invariants(tmp_path_factory, verbs) -> None:
    path = tmp_path_factory.mktemp("inv") / f"Pulumi.{STACK}.yaml"
    path.write_text(STACK_TEXT)
    expected = Expected()
    for verb, arg in verbs:
        before = path.read_text()
        _act(path, verb, arg, expected)
        _check(path, before, verb, expected)
