"""Linkerd policy for a model: per-route behaviour (ServiceProfile) and who may call it.

Authorization: a Server on the model pods' port, a MeshTLSAuthentication
listing the allowed clients' mTLS identities, and an AuthorizationPolicy tying
the two. With the Server's access policy `deny`, a request to that port from
any other identity, or from an unmeshed client, is refused by the proxy.

What the Server leaves alone:
- kubelet probes: Linkerd authorizes the probe paths declared in the pod spec
  on their own, so readiness and liveness keep working.
- the proxy's admin port (4191), where the platform's PodMonitor scrapes the
  golden metrics: no Server here selects it, so it keeps the cluster's default
  policy. Only a scraper of the model server's own /metrics (custom runtime)
  goes through this Server and needs its identity listed in `allowedClients`.

Network policy, the second layer: the platform denies all traffic in the serving
namespace by default and admits Prometheus (the proxies' 4191 and any metrics
port of the model's own) and linkerd-viz's tap (4190) there. The model adds what
only it knows: its clients' namespaces may reach its pods on the proxy's inbound
port (4143), where a meshed client's proxy connects
whatever the application port. The allowed clients are meshed (the
AuthorizationPolicy requires their mTLS identity), so the application port itself
stays closed to the network: an unmeshed pod in a client namespace is stopped by
both layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.model.serving import PORT_NAME, selector_labels
from mlplatform.model.serving_config import RetryBudget, RouteConfig

SERVICE_PROFILE_API_VERSION = "linkerd.io/v1alpha2"
# v1beta3 is the Server version the upstream CRD stores; it has `accessPolicy`.
SERVER_API_VERSION = "policy.linkerd.io/v1beta3"
AUTHN_API_VERSION = "policy.linkerd.io/v1alpha1"
AUTHZ_API_VERSION = "policy.linkerd.io/v1alpha1"
POLICY_GROUP = "policy.linkerd.io"
CLUSTER_DOMAIN = "cluster.local"
PROXY_INBOUND_PORT = 4143
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def service_profile_routes(routes: Sequence[RouteConfig]) -> list[dict[str, object]]:
    return [
        {
            "name": r.name,
            "condition": {"method": r.method, "pathRegex": r.path_regex},
            "timeout": r.timeout,
            "isRetryable": r.retryable,
        }
        for r in routes
    ]


@dataclass
class ModelMeshPolicyArgs:
    model_name: str
    namespace: pulumi.Input[str]
    identities: Sequence[str]
    """mTLS identities allowed to call the model,
    e.g. `api-gateway.gw.serviceaccount.identity.linkerd.cluster.local`."""
    client_namespaces: Sequence[str]
    """The namespaces of those identities: the NetworkPolicy admits traffic from them only."""
    routes: Sequence[RouteConfig]
    retry_budget: RetryBudget
    service_profile: bool = True
    """False with the Gateway API: a ServiceProfile would override the HTTPRoute's weights and timeouts."""


class ModelMeshPolicy(pulumi.ComponentResource):
    """ServiceProfile for the apex Service, and the Server / MeshTLSAuthentication / AuthorizationPolicy trio.

    The linkerd-smi extension writes the TrafficSplit's weights into this same
    ServiceProfile (`dstOverrides`). Pulumi applies server-side and owns only the
    fields declared here, so the two writers do not overwrite each other.
    """

    service_profile: k8s.apiextensions.CustomResource | None
    service_profile_name: pulumi.Output[str] | None
    server: k8s.apiextensions.CustomResource
    authentication: k8s.apiextensions.CustomResource
    authorization: k8s.apiextensions.CustomResource
    network_policy: k8s.networking.v1.NetworkPolicy

    def __init__(self, name: str, args: ModelMeshPolicyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:model:ModelMeshPolicy", name, None, opts)
        if not args.identities:
            raise ValueError("at least one client identity is required; an empty list would match no one")
        if not args.client_namespaces:
            raise ValueError("at least one client namespace is required; an empty list would admit no one")
        model = args.model_name
        object_labels = labels.k8s_labels("mesh-policy", name=model, instance=model)

        def metadata(object_name: pulumi.Input[str]) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=args.namespace, labels=object_labels)

        self.service_profile = None
        self.service_profile_name = None
        server_name, authn_name = model, f"{model}-clients"
        if args.service_profile:
            budget = args.retry_budget
            # Linkerd matches a profile by the Service's fully qualified name.
            self.service_profile_name = pulumi.Output.from_input(args.namespace).apply(
                lambda ns: f"{model}.{ns}.svc.{CLUSTER_DOMAIN}"
            )
            self.service_profile = k8s.apiextensions.CustomResource(
                f"{name}-service-profile",
                api_version=SERVICE_PROFILE_API_VERSION,
                kind="ServiceProfile",
                metadata=metadata(self.service_profile_name),
                spec={
                    "routes": service_profile_routes(args.routes),
                    "retryBudget": {
                        "retryRatio": budget.retry_ratio,
                        "minRetriesPerSecond": budget.min_retries_per_second,
                        "ttl": budget.ttl,
                    },
                },
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.server = k8s.apiextensions.CustomResource(
            f"{name}-server",
            api_version=SERVER_API_VERSION,
            kind="Server",
            metadata=metadata(server_name),
            spec={
                # Every version's pods: a canary is protected from its first pod on.
                "podSelector": {"matchLabels": selector_labels(model)},
                "port": PORT_NAME,
                "proxyProtocol": "HTTP/1",
                "accessPolicy": "deny",
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.authentication = k8s.apiextensions.CustomResource(
            f"{name}-clients",
            api_version=AUTHN_API_VERSION,
            kind="MeshTLSAuthentication",
            metadata=metadata(authn_name),
            spec={"identities": list(args.identities)},
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.authorization = k8s.apiextensions.CustomResource(
            f"{name}-authorization",
            api_version=AUTHZ_API_VERSION,
            kind="AuthorizationPolicy",
            metadata=metadata(authn_name),
            spec={
                "targetRef": {"group": POLICY_GROUP, "kind": "Server", "name": server_name},
                "requiredAuthenticationRefs": [
                    {"group": POLICY_GROUP, "kind": "MeshTLSAuthentication", "name": authn_name}
                ],
            },
            # Linkerd ignores a policy whose references are missing; create them first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.server, self.authentication]),
        )

        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata=metadata(authn_name),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                # Every version's pods, as the Server selects them.
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(model)),
                policy_types=["Ingress"],
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=[
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                                    match_labels={NAMESPACE_NAME_LABEL: namespace}
                                )
                            )
                            for namespace in args.client_namespaces
                        ],
                        ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=PROXY_INBOUND_PORT, protocol="TCP")],
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.register_outputs(
            {
                "server": server_name,
                "identities": list(args.identities),
            }
        )
