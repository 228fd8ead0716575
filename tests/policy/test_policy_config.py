"""mlplatform.tools.ci.policy_config: the old state a preview's canary-step rule compares with."""

from __future__ import annotations

import json
from pathlib import Path

from mlplatform.tools.ci.policy_config import main, stack_policy_config
from policy.guardrails.catalog import evaluate
from tests.policy.fixtures import k8s_resources, split_services, traffic_split
from tests.support.helpers import ROOT
from tests.support.types import K8S_TRAFFIC_SPLIT, PULUMI_STACK, custom_resource

SPLIT = "urn:pulumi:fixture::policy-fixture::kubernetes:split.smi-spec.io/v1alpha2:TrafficSplit::trafficsplit-web"
BASE = json.loads((ROOT / "policy" / "policy-config.json").read_text())


def _state(weights: dict[str, int], stable: str | None = "v1") -> dict:
    resources = [
        {
            "urn": "urn:pulumi:fixture::policy-fixture::pulumi:pulumi:Stack::policy-fixture-fixture",
            "type": PULUMI_STACK,
        },
        {"urn": SPLIT, "type": K8S_TRAFFIC_SPLIT, "inputs": traffic_split(weights), "outputs": {}},
    ]
    if stable:
        resources.append(
            {
                "urn": "urn:pulumi:fixture::policy-fixture::kubernetes:ml.example.com/v1alpha1:"
                "InferenceService::record",
                "type": custom_resource("ml.example.com/v1alpha1", "InferenceService"),
                "inputs": {"metadata": {"namespace": "team-fraud"}, "spec": {"stable": {"version": stable}}},
            }
        )
    return {"version": 3, "deployment": {"resources": resources}}


def test_the_old_weights_and_the_recorded_stable_reach_the_rule() -> None:
    config = stack_policy_config(BASE, _state({"web-v1": 25, "web-v2": 75}))
    assert config["canary-weight-step"]["splits"] == {
        SPLIT: {"weights": {"web-v1": 25, "web-v2": 75}, "stable": "web-v1"}
    }
    assert config["canary-weight-step"]["maxStepPercent"] == BASE["canary-weight-step"]["maxStepPercent"]
    # With that config, a rollback at 75% passes and a jump does not.
    split = lambda w: k8s_resources([*split_services("web", "web-v1", "web-v2"), traffic_split(w)])  # noqa: E731
    assert "canary-weight-step" not in evaluate(split({"web-v1": 100, "web-v2": 0}), config)
    config = stack_policy_config(BASE, _state({"web-v1": 90, "web-v2": 10}))
    assert "canary-weight-step" in evaluate(split({"web-v1": 50, "web-v2": 50}), config)


def test_a_stack_without_state_gets_no_old_weights(tmp_path: Path) -> None:
    out = tmp_path / "policy.json"
    assert main(["--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["canary-weight-step"]["splits"] == {}
    # Without a platform stack file, no image mirror is enforced (tests/test_image_registry.py covers one).
    assert written["images-from-mirror"] == {"imageMirror": ""}
    assert {k: v for k, v in written.items() if k not in ("canary-weight-step", "images-from-mirror")} == {
        k: v for k, v in BASE.items() if k != "canary-weight-step"
    }


def test_an_unreadable_state_file_fails_naming_it(tmp_path: Path, capsys) -> None:
    assert main(["--state", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
