"""The traffic split between a model's live versions: the one object a weight change touches.

Two APIs, one config:

- `smi`: an SMI TrafficSplit, which the linkerd-smi extension turns into the
  apex ServiceProfile's `dstOverrides`. It is what the reference design uses,
  but upstream has archived that extension.
- `gateway`: a Gateway API HTTPRoute whose parent is the apex Service (Linkerd's
  GAMMA support), with weighted backendRefs. A ServiceProfile for the same
  Service would take precedence over the route, so in this mode the route also
  carries the per-route timeouts and no ServiceProfile is declared (see policy.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.model.config import TrafficWeights, check_gateway_route_count
from mlplatform.model.serving_config import RouteConfig

SMI_API_VERSION = "split.smi-spec.io/v1alpha2"
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"


@dataclass
class ModelTrafficArgs:
    model_name: str
    api: Literal["smi", "gateway"]
    namespace: pulumi.Input[str]
    apex_service: pulumi.Input[str]
    port: int
    weights: TrafficWeights
    services: Mapping[str, pulumi.Input[str]]
    """Each version's Service name by its object name; passing the Service's Output
    makes the split wait for the Service."""
    routes: Sequence[RouteConfig] = ()
    """Per-route timeouts, carried by the HTTPRoute (`gateway` only)."""
    ready: Sequence[pulumi.Resource] = field(default_factory=list)
    """Resources the split waits for, e.g. the version Deployments, so a new
    canary gets traffic only once the provider has seen its rollout finish."""


class ModelTraffic(pulumi.ComponentResource):
    """The TrafficSplit or HTTPRoute `<model>` that weighs the model's versions.

    Removing a version (promotion, or dropping a canary) updates this object
    before the version's Deployment and Service are deleted: the engine deletes
    resources that left the program only after every create and update of the
    run, so the split stops routing to a version before its pods go.
    """

    split: k8s.apiextensions.CustomResource
    kind: str
    object_name: str

    def __init__(self, name: str, args: ModelTrafficArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:model:ModelTraffic", name, None, opts)

        self.object_name = args.model_name
        metadata = k8s.meta.v1.ObjectMetaArgs(
            name=self.object_name,
            namespace=args.namespace,
            labels=labels.k8s_labels("traffic", name=args.model_name, instance=args.model_name),
        )
        child_opts = pulumi.ResourceOptions(parent=self, depends_on=list(args.ready))
        if args.api == "smi":
            self.kind = "TrafficSplit"
            self.split = k8s.apiextensions.CustomResource(
                f"{name}-split",
                api_version=SMI_API_VERSION,
                kind=self.kind,
                metadata=metadata,
                spec={
                    "service": args.apex_service,
                    "backends": [{"service": service, "weight": weight} for service, weight in _backends(args)],
                },
                opts=child_opts,
            )
        else:
            self.kind = "HTTPRoute"
            self.split = k8s.apiextensions.CustomResource(
                f"{name}-route",
                api_version=GATEWAY_API_VERSION,
                kind=self.kind,
                metadata=metadata,
                spec=http_route_spec(args),
                opts=child_opts,
            )

        self.register_outputs({"kind": self.kind, "name": self.object_name})


def http_route_spec(args: ModelTrafficArgs) -> dict[str, Any]:
    """One rule per configured route (its method, path and timeout), then a catch-all;
    every rule splits by the same weights."""
    check_gateway_route_count(len(args.routes))
    backend_refs = [
        {"group": "", "kind": "Service", "name": service, "port": args.port, "weight": weight}
        for service, weight in _backends(args)
    ]
    rules: list[dict[str, Any]] = [
        {
            "matches": [{"method": r.method, "path": {"type": "RegularExpression", "value": _anchored(r.path_regex)}}],
            "timeouts": {"request": r.timeout},
            "backendRefs": backend_refs,
        }
        for r in args.routes
    ]
    rules.append({"backendRefs": backend_refs})
    return {
        # `core` is how Linkerd's GAMMA docs name the Service parent's group.
        "parentRefs": [{"group": "core", "kind": "Service", "name": args.apex_service, "port": args.port}],
        "rules": rules,
    }


def _backends(args: ModelTrafficArgs) -> list[tuple[pulumi.Input[str], int]]:
    """Each backend's Service and weight, stable first."""
    return [(args.services[b.object_name], b.weight) for b in args.weights.backends]


def _anchored(regex: str) -> str:
    # ServiceProfiles anchor pathRegex; Gateway API leaves regex semantics to the
    # implementation, so anchor explicitly and keep the meaning identical.
    return f"^(?:{regex})$"
