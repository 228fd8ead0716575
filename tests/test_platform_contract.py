"""The platform's outputs are one contract: what the program exports is what its consumers parse."""

from __future__ import annotations

import pytest

from mlplatform.platform_contract import ContractError, PlatformContract, Problem, required_outputs
from mlplatform.tools.offline.secrets import unwrap_secrets
from mlplatform.tools.render import render_stack
from tests.model.helpers import PLATFORM_OUTPUTS
from tests.support.helpers import ROOT


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_example_platform_stacks_export_the_contract(stack: str) -> None:
    """Both example stacks (mode existing and mode aws) export outputs every consumer can parse, and no other key."""
    outputs = unwrap_secrets(render_stack(ROOT, stack).stack_outputs)
    contract = PlatformContract.parse(outputs)
    assert set(outputs) == set(contract.exported())
    assert set(required_outputs()) <= set(outputs)


def test_the_keys_consumers_rely_on() -> None:
    """Renaming an output breaks every model stack already deployed: these names are the contract."""
    assert required_outputs() == (
        "namespaces",
        "gpuNodeSelector",
        "gpuTaint",
        "gpuPoolEnabled",
        "storageClasses",
        "workloadIdentity",
        "mlflowTrackingUri",
        "prometheusUrl",
        "trafficSplitApis",
        "crdGroup",
    )


def test_a_parsed_contract_exports_what_it_read() -> None:
    """Parsing and exporting are inverse: the producer and the consumers use the same names at every depth."""
    assert PlatformContract.parse(PLATFORM_OUTPUTS).exported() == {
        **PLATFORM_OUTPUTS,
        "ciRoles": None,
        "imageRegistry": None,
    }


@pytest.mark.parametrize(
    ("change", "problems"),
    [
        pytest.param(
            {"workloadIdentity": {"kind": "irsa", "region": "us-west-2"}},
            [Problem(("workloadIdentity", "oidcProviderArn")), Problem(("workloadIdentity", "oidcProviderUrl"))],
            id="irsa-without-provider",
        ),
        pytest.param({"workloadIdentity": {}}, [Problem(("workloadIdentity", "kind"))], id="no-kind"),
        pytest.param(
            {"workloadIdentity": {"kind": "gke"}},
            [Problem(("workloadIdentity", "kind"), "one of 'irsa', 'none'", "gke")],
            id="unknown-kind",
        ),
        pytest.param(
            {"gpuPoolEnabled": "true"}, [Problem(("gpuPoolEnabled",), "true or false", "true")], id="bool-as-string"
        ),
        pytest.param({"crdGroup": ""}, [Problem(("crdGroup",), "a non-empty string", "")], id="empty-group"),
        pytest.param(
            {"namespaces": {**PLATFORM_OUTPUTS["namespaces"], "teams": "team-a"}},
            [Problem(("namespaces", "teams"), "a list", "team-a")],
            id="teams-not-a-list",
        ),
    ],
)
def test_every_problem_names_its_key_path(change: dict, problems: list[Problem]) -> None:
    """A consumer words each problem for its users; the contract gives it the path as the outputs spell it."""
    with pytest.raises(ContractError) as caught:
        PlatformContract.parse({**PLATFORM_OUTPUTS, **change})
    assert caught.value.problems == problems


def test_missing_outputs_are_listed_at_once() -> None:
    """An older platform stack lacking several outputs: one error, each missing key named."""
    with pytest.raises(ContractError) as caught:
        PlatformContract.parse({"namespaces": PLATFORM_OUTPUTS["namespaces"]})
    assert [p.key for p in caught.value.problems] == list(required_outputs()[1:])
    assert all(p.expected is None for p in caught.value.problems)
