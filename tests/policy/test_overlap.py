"""Rules that live in two places: the config models' validation and the policy pack.

Both stay, for different readers. The pydantic validation (mlplatform/*/config.py,
config_types.py) fails a bad stack file before any resource is declared, with an
error naming the stack file's key. The policy pack checks what any program built on
the platform declares (a user's own stack program, a hand edit in a fork), where no
config model runs. The pack cannot import mlplatform (it runs beside any program),
so each shared rule is written twice; these tests hold the two copies to the same
verdicts, and `OVERLAP` is the list a reviewer reads.
"""

from __future__ import annotations

import json

import pytest
import yaml

from mlplatform import labels
from mlplatform.config_types import pinned_image
from mlplatform.model.config import TOTAL_WEIGHT, check_split_weights
from mlplatform.platform.iam import web_identity_trust
from policy.guardrails import traffic, workloads
from policy.guardrails.catalog import BY_NAME, evaluate
from policy.guardrails.exposure import check_irsa_trust
from policy.guardrails.model import Resource
from tests.support.helpers import ROOT
from tests.support.types import AWS_IAM_ROLE, K8S_TRAFFIC_SPLIT

# pack rule -> (where the config model checks it, why both)
OVERLAP: dict[str, tuple[str, str]] = {
    "images-pinned": (
        "mlplatform/config_types.py pinned_image (stable.image, canary.image, training.image)",
        "the stack file's image fails before any resource; the pack catches images other programs declare",
    ),
    "traffic-weights-sum": (
        "mlplatform/model/config.py check_split_weights (canary.weight builds the split)",
        "the config builds a split that sums to 100; the pack checks splits built by any program or edited by hand",
    ),
    "gpu-pods-scheduling": (
        "mlplatform/labels.py GPU_TAINT, GPU_NODE_SELECTOR (every GPU workload the program builds uses them)",
        "our program cannot forget them; another program on the same pool can",
    ),
    "gpu-namespace-quota": (
        "mlplatform/model/config.py _training_needs_team (training runs in a team namespace with a quota)",
        "the config puts training in the team namespace; the pack checks any GPU pod's namespace",
    ),
    "irsa-single-service-account": (
        "mlplatform/platform/iam.py web_identity_trust (StringEquals, one subject)",
        "our roles are built one way; the pack checks any role a program declares",
    ),
}


def test_every_overlapping_rule_is_a_rule_of_the_pack() -> None:
    assert set(OVERLAP) <= set(BY_NAME)


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/mlflow/mlflow:v3.15.1-full",
        "ghcr.io/mlflow/mlflow",
        "ghcr.io/mlflow/mlflow:latest",
        "registry.local:5000/team/model:1.0",
        "registry.local:5000/team/model",
        "ghcr.io/x/y@sha256:" + "b" * 64,
    ],
)
def test_image_pinning_gives_the_same_verdict_in_both_places(image: str) -> None:
    try:
        pinned_image(image)
        config_accepts = True
    except ValueError:
        config_accepts = False
    assert (workloads.image_problem(image) is None) == config_accepts, image


@pytest.mark.parametrize("weights", [[90, 10], [80, 10], [100], [60, 50], [100, 0]])
def test_split_weights_give_the_same_verdict_in_both_places(weights: list[int]) -> None:
    try:
        check_split_weights(weights)
        config_accepts = True
    except ValueError:
        config_accepts = False
    split = Resource(
        K8S_TRAFFIC_SPLIT, {"spec": {"backends": [{"service": f"v{i}", "weight": w} for i, w in enumerate(weights)]}}
    )
    assert (traffic.check_weights_sum(split) == []) == config_accepts
    assert traffic.TOTAL == TOTAL_WEIGHT


def test_the_pack_knows_the_gpu_taint_and_pool_the_platform_declares() -> None:
    assert labels.GPU_TAINT["key"] == workloads.GPU_TAINT_KEY
    assert labels.GPU_TAINT["effect"] == "NoSchedule"
    assert workloads.GPU_RESOURCE == labels.GPU_RESOURCE
    assert dict([workloads.GPU_POOL_LABEL]) == dict(labels.GPU_NODE_SELECTOR)


def test_the_pack_config_lists_the_quota_namespaces_the_platform_declares() -> None:
    """policy-config.json names the namespaces with a GPU quota; they are the teams of the platform stacks."""
    config = json.loads((ROOT / "policy" / "policy-config.json").read_text())
    teams = set()
    for stack_file in ROOT.glob("Pulumi.*.yaml"):
        settings = yaml.safe_load(stack_file.read_text())["config"]
        teams |= {team["name"] for team in settings.get("mlplatform:namespaces", {}).get("teams", [])}
    assert set(config["gpu-namespace-quota"]["gpuQuotaNamespaces"]) == teams


def test_the_trust_policy_the_platform_builds_passes_and_a_widened_one_does_not() -> None:
    issuer = "oidc.eks.eu-west-1.amazonaws.com/id/ABC"
    arn = f"arn:aws:iam::123456789012:oidc-provider/{issuer}"
    ours = web_identity_trust(arn, issuer, "system:serviceaccount:team-fraud:fraud-detector-training")
    role = Resource(AWS_IAM_ROLE, {"assumeRolePolicy": json.dumps(ours)}, "urn:x")
    assert check_irsa_trust(role) == []
    widened = web_identity_trust(arn, issuer, ["system:serviceaccount:a:b", "system:serviceaccount:a:c"])
    assert check_irsa_trust(Resource(AWS_IAM_ROLE, {"assumeRolePolicy": json.dumps(widened)}, "urn:x"))


# Advisory findings on the example stacks, each a known gap with its owner. A new finding, or a
# fixed one, fails the test below until this list says so.
# (MLflow's 2 prod replicas were the last one; the platform now gives every replicated workload a
# PodDisruptionBudget.)
KNOWN_ADVISORIES: set[tuple[str, str, str]] = set()


def test_rendered_example_stacks_pass_the_pack() -> None:
    """Cheap twin of the e2e check, with the AWS resources the e2e tier cannot preview: the example
    stacks rendered offline (the platform in mode eks included) break no mandatory rule."""
    from tests.policy.rendered import rendered_resources

    config = json.loads((ROOT / "policy" / "policy-config.json").read_text())
    advisories = set()
    for project, stack in (
        ("stacks/model", "fraud-detector-prod"),
        ("stacks/model", "fraud-detector-dev"),
        (".", "dev"),
        (".", "prod"),
    ):
        found = evaluate(rendered_resources(project, stack), config)
        mandatory = {name: v for name, v in found.items() if not BY_NAME[name].advisory}
        assert mandatory == {}, f"{stack}: {mandatory}"
        advisories |= {(stack, name, " ".join(v.message.split()[:2])) for name, vs in found.items() for v in vs}
    assert advisories == KNOWN_ADVISORIES
