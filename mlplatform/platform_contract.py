"""The platform stack's outputs: one typed contract between the platform and its consumers.

The platform program declares its outputs with this model (`build_platform`
returns one, `__main__.py` exports `exported()`), and every consumer reads them
through `parse`: the model stacks (through a StackReference), the rollout CLI
(`pulumi stack output --json`, a saved file or an offline render) and the tests.
A key renamed here is renamed for all of them; a platform stack older than a
consumer's code fails `parse` with every missing or malformed output named.

The producer's values are mostly Outputs, known only after `up`, while the
consumers see plain JSON values. The model declares the plain types, and the
platform builds it with `declared`, which skips validation: the engine resolves
the Outputs to the values `parse` then checks. A test renders the example
platform stacks and parses their outputs, so the producer cannot drift from
the declared types unnoticed.

Lives beside the program wing's other ground modules so the platform program
needs nothing of the model stack's code to export it, nor the tools of the
program.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

NonEmpty = Annotated[str, StringConstraints(min_length=1)]
DISCRIMINATOR = "kind"


class _Contract(BaseModel):
    # Strict: `"true"` is not a bool and `5` not a namespace; extra keys are
    # ignored so an older consumer reads a newer platform's outputs.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, strict=True, frozen=True)

    @classmethod
    def key(cls, field: str) -> str:
        """The output's name for a field, e.g. `gpuNodeSelector` for `gpu_node_selector`."""
        return cls.model_fields[field].alias or field

    @classmethod
    def declared(cls, **values: Any) -> Self:
        """The producer's instance: values may still be Outputs, so nothing is validated here."""
        return cls.model_construct(**values)

    def exported(self) -> dict[str, Any]:
        """The stack outputs, keyed by their camelCase names, nested models as plain dicts."""
        return {
            (field.alias or name): value.exported() if isinstance(value, _Contract) else value
            for name, field in type(self).model_fields.items()
            for value in (getattr(self, name),)
        }


class Namespaces(_Contract):
    serving: NonEmpty = Field(description="Where model servers run.")
    training: NonEmpty = Field(description="Where training runs without a team run.")
    mlflow: NonEmpty = Field(description="MLflow's namespace.")
    monitoring: NonEmpty = Field(description="Prometheus's namespace.")
    teams: list[NonEmpty] = Field(description="The team namespaces a model stack may train in.")


class StorageClasses(_Contract):
    """A class the platform lacks is null, and a null inside an output object may
    arrive as an absent key: both mean "none" (ReadWriteOnce on an existing
    cluster: its default class)."""

    read_write_once: str | None = None
    read_write_many: str | None = None


class IrsaIdentity(_Contract):
    """What a model stack needs to create an IAM role a ServiceAccount can assume."""

    kind: Literal["irsa"]
    oidc_provider_arn: NonEmpty
    oidc_provider_url: NonEmpty
    region: NonEmpty

    @property
    def partition(self) -> str:
        """`aws`, `aws-us-gov`, ... from the provider's ARN (`arn:<partition>:iam::...`)."""
        return self.oidc_provider_arn.split(":")[1]


class NoIdentity(_Contract):
    """Mode existing has no OIDC provider of ours, so no AWS identity is offered."""

    kind: Literal["none"]


class CiRoles(_Contract):
    """For people, not model stacks: the ARNs to set as the repository variables the workflows read."""

    preview: str
    deploy: str
    deploy_models: str
    runner_label: str | None = None


class PlatformContract(_Contract):
    """Every output of a platform stack, in the order the platform exports them."""

    kubeconfig: str | None = Field(
        None, description="Secret; None when the platform runs against an existing cluster with the ambient kubeconfig."
    )
    cluster_name: str | None = Field(None, description="The EKS cluster (mode aws).")
    namespaces: Namespaces
    gpu_node_selector: dict[str, str]
    gpu_taint: dict[str, str]
    gpu_pool_enabled: bool
    storage_classes: StorageClasses
    workload_identity: Annotated[IrsaIdentity | NoIdentity, Field(discriminator=DISCRIMINATOR)]
    mlflow_tracking_uri: NonEmpty
    prometheus_url: NonEmpty
    traffic_split_apis: list[str]
    crd_group: NonEmpty
    ci_roles: CiRoles | None = Field(None, description="None when CI is off.")
    image_registry: str | None = Field(
        None, description="The prefix every image is pulled through (`mlplatform:imageRegistry`); None: upstream."
    )

    @classmethod
    def parse(cls, outputs: Mapping[str, Any]) -> PlatformContract:
        """The contract from a platform stack's plain outputs; `ContractError` lists every problem."""
        try:
            return cls.model_validate(dict(outputs))
        except ValidationError as err:
            raise ContractError([_problem(outputs, e) for e in err.errors()]) from None


def required_outputs() -> tuple[str, ...]:
    """The outputs every platform stack has; the others may be null, and so absent."""
    return tuple(f.alias or n for n, f in PlatformContract.model_fields.items() if f.is_required())


@dataclass(frozen=True)
class Problem:
    """One output a consumer cannot use: `path` is its key path; `expected` None means it is missing."""

    path: tuple[str, ...]
    expected: str | None = None
    got: Any = None

    @property
    def key(self) -> str:
        return ".".join(self.path)


class ContractError(Exception):
    """The platform stack's outputs do not meet the contract; each consumer words the problems for its users."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(
            "; ".join(p.key + (f" must be {p.expected}" if p.expected else " is missing") for p in problems)
        )


# How a pydantic error type reads as "must be ...".
_EXPECTED = {
    "string_type": "a string",
    "string_too_short": "a non-empty string",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def _problem(outputs: Mapping[str, Any], error: Any) -> Problem:
    path: list[str] = []
    node: Any = outputs
    for part in error["loc"]:
        # pydantic puts a tagged union's tag in the location: `workloadIdentity.irsa.region`.
        if isinstance(node, Mapping) and part not in node and node.get(DISCRIMINATOR) == part:
            continue
        path.append(str(part))
        node = node.get(part) if isinstance(node, Mapping) else node[part] if isinstance(node, list) else None
    kind = error["type"]
    if kind == "missing":
        return Problem(tuple(path))
    if kind == "union_tag_not_found":
        return Problem((*path, DISCRIMINATOR))
    if kind == "union_tag_invalid":
        return Problem((*path, DISCRIMINATOR), "one of " + error["ctx"]["expected_tags"], error["ctx"]["tag"])
    if kind == "literal_error":
        return Problem(tuple(path), error["ctx"]["expected"], error["input"])
    return Problem(tuple(path), _EXPECTED.get(kind, error["msg"]), error["input"])
