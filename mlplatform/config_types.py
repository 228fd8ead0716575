"""Value types that both config models share: pinned images and chart versions, and
Kubernetes quantities compared the way the API server compares them.

Each rule here is one that `pulumi up` would otherwise discover late: an image that
floats (`latest`, no tag) makes two applies of the same config run different code,
a chart version range makes the Helm provider pick whatever is newest, and a request
above its limit is rejected by the API server in the middle of an update.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from mlplatform.configuration import ConfigModel, CrossFieldError
from mlplatform.images import DIGEST as DIGEST
from mlplatform.images import TAG as TAG

# Kubernetes object names (namespaces, service accounts, model and route names).
DnsLabel = Annotated[
    str,
    Field(pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", description="A DNS-1035 label."),
]
# Names the API server checks as DNS-1123 subdomains (Secrets, StorageClasses, ConfigMaps):
# a value it would refuse fails here, at config time, instead of in the middle of an update.
DnsSubdomain = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        max_length=253,
        description="A DNS-1123 subdomain: lowercase letters, digits, '-' and '.', at most 253 characters.",
    ),
]
PositiveInt = Annotated[int, Field(ge=1)]
Duration = Annotated[str, Field(pattern=r"^\d+(ms|s|m|h)$", description="A duration such as `5s` or `1m`.")]


def pinned_image(value: str) -> str:
    """An image reference that names one build: a tag other than `latest`, or a digest."""
    if DIGEST.search(value):
        return value
    tag = TAG.search(value.rsplit("/", 1)[-1])
    if tag is None:
        raise ValueError(
            "the image has no tag, so every pull may get a different build; pin a tag "
            "(image:1.2.3) or, strongest, a digest (image@sha256:<64 hex digits>)"
        )
    if tag.group(1) == "latest":
        raise ValueError(
            "the tag 'latest' moves with every push; pin a version tag (image:1.2.3) or, "
            "strongest, a digest (image@sha256:<64 hex digits>)"
        )
    return value


PinnedImage = Annotated[str, AfterValidator(pinned_image)]
# A pinned image whose reference must also parse (the model stack's serving and training images).
# The tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`: the distribution spec's `\w` is ASCII. Spelled out,
# because pydantic-core's Unicode `\w` under `{0,127}` compiled to a regex of ~0.1 s per model class
# that holds an image, paid at import on every `pulumi up` (docs/benchmarks.md, "Imports").
ImageRef = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
        r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$",
        description="Container image reference; pin a tag or digest.",
    ),
    AfterValidator(pinned_image),
]

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)


def exact_chart_version(value: str) -> str:
    """A full semantic version (`1.2.3`, `2025.8.5`, `1.0.0-rc.1`): never a range or a prefix."""
    if _SEMVER.match(value):
        return value
    if any(c in value for c in "^~<>=*xX|, ") or value.count(".") < 2:
        raise ValueError(
            "a chart version must be one exact release (e.g. 1.2.3), not a range or a partial "
            "version: Helm would install whatever is newest at apply time"
        )
    raise ValueError("not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.2.3)")


ChartVersion = Annotated[str, AfterValidator(exact_chart_version), Field(min_length=1)]

# Kubernetes resource quantities: decimal SI and binary suffixes.
_SUFFIX = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
}
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")


def quantity_value(quantity: str) -> Decimal:
    """`500m` -> 0.5, `1Gi` -> 1073741824: the number the API server compares."""
    match = _QUANTITY.match(quantity)
    if match is None:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity")
    return Decimal(match.group(1)) * _SUFFIX[match.group(2) or ""]


Quantity = Annotated[str, Field(pattern=_QUANTITY.pattern)]


# Requests and limits per pod: a serving replica's, and each training pod's (with its own defaults).
class ResourceSpec(ConfigModel):
    cpu: Quantity = Field(description="CPU quantity.")
    memory: Quantity = Field(description="Memory quantity.")


class Resources(ConfigModel):
    requests: ResourceSpec = Field(
        default_factory=lambda: ResourceSpec(cpu="500m", memory="1Gi"), description="Requests."
    )
    limits: ResourceSpec = Field(default_factory=lambda: ResourceSpec(cpu="2", memory="4Gi"), description="Limits.")

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        # The API server rejects a pod whose request exceeds its limit, mid-update.
        for resource in ("cpu", "memory"):
            request, limit = getattr(self.requests, resource), getattr(self.limits, resource)
            if quantity_value(request) > quantity_value(limit):
                raise CrossFieldError(
                    f"the {resource} request {request} is above its limit {limit}; Kubernetes rejects such a pod",
                    f"requests.{resource}",
                    f"limits.{resource}",
                )
        return self


class ScratchConfig(ConfigModel):
    """Local disk a pod may fill: its `emptyDir` volumes and container writable layers.

    Without bounds one pod filling /tmp evicts its neighbours when the node runs out of
    disk (the kubelet's DiskPressure evicts by usage above request); with them the pod
    that overflows is the one evicted, and the scheduler counts the request."""

    ephemeral_storage_request: str = Field(
        "1Gi", pattern=_QUANTITY.pattern, description="`ephemeral-storage` request per container."
    )
    ephemeral_storage_limit: str = Field(
        "4Gi", pattern=_QUANTITY.pattern, description="`ephemeral-storage` limit per container."
    )
    empty_dir_size_limit: str = Field(
        "1Gi", pattern=_QUANTITY.pattern, description="`sizeLimit` of each scratch `emptyDir` volume."
    )

    @model_validator(mode="after")
    def _ordered(self) -> ScratchConfig:
        request, limit = quantity_value(self.ephemeral_storage_request), quantity_value(self.ephemeral_storage_limit)
        if request > limit:
            raise CrossFieldError(
                f"ephemeralStorageRequest {self.ephemeral_storage_request} is above ephemeralStorageLimit "
                f"{self.ephemeral_storage_limit}; Kubernetes rejects such a pod",
                "ephemeralStorageRequest",
                "ephemeralStorageLimit",
            )
        if quantity_value(self.empty_dir_size_limit) > limit:
            raise CrossFieldError(
                f"emptyDirSizeLimit {self.empty_dir_size_limit} is above ephemeralStorageLimit "
                f"{self.ephemeral_storage_limit}: the pod would be evicted before the volume is full",
                "emptyDirSizeLimit",
                "ephemeralStorageLimit",
            )
        return self

    def requests(self) -> dict[str, str]:
        return {"ephemeral-storage": self.ephemeral_storage_request}

    def limits(self) -> dict[str, str]:
        return {"ephemeral-storage": self.ephemeral_storage_limit}
