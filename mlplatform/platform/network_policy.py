"""Kubernetes NetworkPolicy: the second layer under Linkerd's AuthorizationPolicy.

Linkerd decides *who* (mTLS identity) may call a meshed workload; it cannot stop
an unmeshed pod, a pod whose proxy is bypassed, or egress to anything outside the
mesh. NetworkPolicy, enforced by the CNI, closes that: every namespace the
platform owns denies all ingress and egress by default, and each flow the
platform needs is allowed by name below. A flow not listed here is dropped.

Linkerd's ports, as its documentation lists them:
- 4143, the proxy's inbound port: a meshed client's proxy connects to the
  destination pod on 4143, whatever port the application uses, so a meshed
  destination must admit 4143 from its callers;
- 4191, the proxy's admin port, which Prometheus scrapes, and 4190, the tap
  port that linkerd-viz's tap reads;
- 8080 (identity), 8086 (destination) and 8090 (policy) on the control plane in
  the `linkerd` namespace, which every proxy calls;
- 8443, the injector's and validator's webhooks, called by the API server: they
  run in the `linkerd` namespace, which the chart owns and this module leaves open.

Trade-offs NetworkPolicy forces:
- It selects pods and CIDRs, never DNS names. S3 (the artifact store, and the
  training datasets) and STS (IRSA) are public AWS endpoints without a stable
  CIDR, and an S3 gateway endpoint routes by prefix list, not by an address a
  policy can name. Those pods get HTTPS (443) to anywhere; what they may do there
  is bounded by IAM instead.
- The API server and the nodes (kubelet, node-exporter on the host network) are
  not pods. They are named by CIDR: the VPC in mode aws (EKS control-plane ENIs
  and nodes live there), anywhere in mode existing, where the platform does not
  know the network.
- kubelet probes come from the node and are not subject to these policies in the
  common implementations (VPC CNI, Calico, Cilium), so no rule admits them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.platform.namespaces import OwnedNamespace

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
ANYWHERE = "0.0.0.0/0"

PROXY_INBOUND_PORT = 4143
PROXY_ADMIN_PORT = 4191
PROXY_TAP_PORT = 4190
# identity, destination, policy
LINKERD_CONTROL_PORTS = (8080, 8086, 8090)
DNS_PORT = 53
KUBE_DNS_POD = {"k8s-app": "kube-dns"}
API_SERVER_PORTS = (443, 6443)
HTTPS_PORT = 443
KUBELET_PORT = 10250
NODE_EXPORTER_PORT = 9100
PROMETHEUS_PORT = 9090
# The prometheus-operator's admission webhook (kube-prometheus-stack serves it on 10250).
OPERATOR_WEBHOOK_PORT = 10250

# The labels the prometheus-operator puts on the pods it runs, and the chart on its operator.
PROMETHEUS_POD = {"app.kubernetes.io/name": "prometheus"}
ALERTMANAGER_POD = {"app.kubernetes.io/name": "alertmanager"}
OPERATOR_POD = {"app": "kube-prometheus-stack-operator"}
# Training Jobs' pods (model/training.py labels them with the `training` component).
TRAINING_POD = {"app.kubernetes.io/component": "training"}


@dataclass
class DatabaseRoute:
    """Where MLflow's database listens: a CIDR (RDS in the VPC) or pods next to MLflow."""

    port: int
    cidr: str | None = None
    pod_selector: Mapping[str, str] | None = None


@dataclass
class NetworkPoliciesArgs:
    namespaces: Sequence[OwnedNamespace]
    """Every namespace the platform owns; each gets a default deny."""
    linkerd_namespace: str
    viz_namespace: str
    mlflow_pods: Mapping[str, str]
    mlflow_port: int
    database: DatabaseRoute
    object_store_port: int
    """Port of MLflow's artifact store: 443 for S3, the endpoint's port for an S3-compatible store."""
    infrastructure_cidrs: Sequence[str]
    """Where the nodes and the API server's endpoints are: the VPC in mode aws, anywhere otherwise."""


def _ports(*numbers: int, protocol: str = "TCP") -> list[k8s.networking.v1.NetworkPolicyPortArgs]:
    return [k8s.networking.v1.NetworkPolicyPortArgs(port=n, protocol=protocol) for n in numbers]


def _selector(match: Mapping[str, str] | None) -> k8s.meta.v1.LabelSelectorArgs:
    """An empty selector selects every pod (or namespace)."""
    return k8s.meta.v1.LabelSelectorArgs(match_labels=dict(match) if match else None)


def _in_namespace(namespace: pulumi.Input[str], pods: Mapping[str, str] | None = None):
    return k8s.networking.v1.NetworkPolicyPeerArgs(
        namespace_selector=_selector({NAMESPACE_NAME_LABEL: namespace}),  # type: ignore[dict-item]
        pod_selector=_selector(pods) if pods else None,
    )


def _cidrs(cidrs: Sequence[str]) -> list[k8s.networking.v1.NetworkPolicyPeerArgs]:
    return [k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr=c)) for c in cidrs]


def _any_namespace(pods: Mapping[str, str] | None = None) -> k8s.networking.v1.NetworkPolicyPeerArgs:
    return k8s.networking.v1.NetworkPolicyPeerArgs(namespace_selector=_selector(None), pod_selector=_selector(pods))


class NetworkPolicies(pulumi.ComponentResource):
    """A default deny in every owned namespace, and the allows the platform's flows need.

    Policies are additive: a pod's allowed traffic is the union of every policy
    selecting it, so each allow below is its own object, named after the flow.
    """

    policies: list[k8s.networking.v1.NetworkPolicy]

    def __init__(self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:platform:NetworkPolicies", name, None, opts)
        self.policies = []
        by_purpose: dict[str, list[OwnedNamespace]] = {}
        for owned in args.namespaces:
            by_purpose.setdefault(owned.purpose, []).append(owned)
        (mlflow,) = by_purpose["mlflow"]
        (monitoring,) = by_purpose["monitoring"]
        (serving,) = by_purpose["serving"]
        trainers = by_purpose["training"] + by_purpose.get("team", [])

        def policy(owned: OwnedNamespace, flow: str, **spec) -> None:
            self.policies.append(
                k8s.networking.v1.NetworkPolicy(
                    f"{name}-{owned.key}-{flow}",
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        name=flow, namespace=owned.name, labels=labels.k8s_labels("network-policy", name=flow)
                    ),
                    spec=k8s.networking.v1.NetworkPolicySpecArgs(**spec),
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )

        ingress, egress = k8s.networking.v1.NetworkPolicyIngressRuleArgs, k8s.networking.v1.NetworkPolicyEgressRuleArgs
        mlflow_ports = _ports(args.mlflow_port, PROXY_INBOUND_PORT)

        for owned in args.namespaces:
            # No rules: nothing in, nothing out, until an allow below selects the pod.
            policy(owned, "default-deny", pod_selector=_selector(None), policy_types=["Ingress", "Egress"])
            kube_dns = _in_namespace("kube-system", KUBE_DNS_POD)
            policy(
                owned,
                "allow-dns",
                pod_selector=_selector(None),
                policy_types=["Egress"],
                egress=[
                    egress(to=[kube_dns], ports=_ports(DNS_PORT, protocol="UDP") + _ports(DNS_PORT, protocol="TCP"))
                ],
            )
            if owned.meshed:
                policy(
                    owned,
                    "allow-linkerd",
                    pod_selector=_selector(None),
                    policy_types=["Ingress", "Egress"],
                    ingress=[
                        ingress(from_=[_in_namespace(monitoring.name, PROMETHEUS_POD)], ports=_ports(PROXY_ADMIN_PORT)),
                        ingress(from_=[_in_namespace(args.viz_namespace)], ports=_ports(PROXY_TAP_PORT)),
                    ],
                    egress=[egress(to=[_in_namespace(args.linkerd_namespace)], ports=_ports(*LINKERD_CONTROL_PORTS))],
                )

        # Training pods, in the training namespace and in team namespaces: MLflow (unmeshed
        # ones on its port, meshed ones through the proxy), datasets on S3 or GCS over HTTPS,
        # and each other (NCCL and torchrun rendezvous use ports chosen at run time).
        for owned in trainers:
            same_namespace_trainers = k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=_selector(TRAINING_POD))
            policy(
                owned,
                "allow-training",
                pod_selector=_selector(TRAINING_POD),
                policy_types=["Ingress", "Egress"],
                ingress=[ingress(from_=[same_namespace_trainers])],
                egress=[
                    egress(to=[same_namespace_trainers]),
                    egress(to=[_in_namespace(mlflow.name, args.mlflow_pods)], ports=mlflow_ports),
                    egress(to=_cidrs([ANYWHERE]), ports=_ports(HTTPS_PORT)),
                ],
            )
        for owned in by_purpose.get("team", []):
            # A team's services may call models; Linkerd's AuthorizationPolicy decides which identity may.
            policy(
                owned,
                "allow-model-calls",
                pod_selector=_selector(None),
                policy_types=["Egress"],
                egress=[egress(to=[_in_namespace(serving.name)], ports=_ports(PROXY_INBOUND_PORT))],
            )

        # Model servers may expose metrics of their own on a port the model stack declares
        # (a PodMonitor scrapes it); the network admits Prometheus on any port, and the
        # model's Linkerd Server still refuses it on the serving port.
        policy(
            serving,
            "allow-prometheus",
            pod_selector=_selector(None),
            policy_types=["Ingress"],
            ingress=[ingress(from_=[_in_namespace(monitoring.name, PROMETHEUS_POD)])],
        )
        # Model servers load `models:/` URIs from MLflow at start-up.
        policy(
            serving,
            "allow-mlflow",
            pod_selector=_selector(None),
            policy_types=["Egress"],
            egress=[egress(to=[_in_namespace(mlflow.name, args.mlflow_pods)], ports=mlflow_ports)],
        )

        self._mlflow(policy, args, mlflow, serving, trainers)
        self._monitoring(policy, args, monitoring)
        self.register_outputs({})

    @staticmethod
    def _mlflow(
        policy: Callable[..., None],
        args: NetworkPoliciesArgs,
        mlflow: OwnedNamespace,
        serving: OwnedNamespace,
        trainers: Sequence[OwnedNamespace],
    ) -> None:
        """MLflow's clients in, its database and artifact store out; Postgres admits MLflow only."""
        ingress, egress = k8s.networking.v1.NetworkPolicyIngressRuleArgs, k8s.networking.v1.NetworkPolicyEgressRuleArgs
        clients = [_in_namespace(t.name, TRAINING_POD) for t in trainers] + [_in_namespace(serving.name)]
        database = args.database
        if database.pod_selector is not None:
            database_peers = [k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=_selector(database.pod_selector))]
            # The in-cluster Postgres is meshed with MLflow: its proxy receives on 4143.
            database_ports = _ports(database.port, PROXY_INBOUND_PORT)
        else:
            database_peers = _cidrs([database.cidr or ANYWHERE])
            database_ports = _ports(database.port)
        policy(
            mlflow,
            "allow-mlflow",
            pod_selector=_selector(args.mlflow_pods),
            policy_types=["Ingress", "Egress"],
            ingress=[
                ingress(from_=clients, ports=_ports(args.mlflow_port, PROXY_INBOUND_PORT)),
                # The API server's service proxy (the rollout gate from a runner): its source is the
                # control plane's ENIs in the VPC, which no pod or namespace selector can name.
                ingress(from_=_cidrs(args.infrastructure_cidrs), ports=_ports(args.mlflow_port, PROXY_INBOUND_PORT)),
            ],
            egress=[
                egress(to=database_peers, ports=database_ports),
                # S3 and STS (IRSA) have no CIDR a policy can name; an S3-compatible store
                # may also run in the cluster, where an ipBlock does not reach pods.
                egress(to=[*_cidrs([ANYWHERE]), _any_namespace()], ports=_ports(args.object_store_port)),
            ],
        )
        if database.pod_selector is not None:
            policy(
                mlflow,
                "allow-postgres",
                pod_selector=_selector(database.pod_selector),
                policy_types=["Ingress"],
                ingress=[
                    ingress(
                        from_=[k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=_selector(args.mlflow_pods))],
                        ports=_ports(database.port, PROXY_INBOUND_PORT),
                    )
                ],
            )

    @staticmethod
    def _monitoring(policy: Callable[..., None], args: NetworkPoliciesArgs, monitoring: OwnedNamespace) -> None:
        """Prometheus' scrapes and queries, the API server, the operator's webhook, alert receivers."""
        ingress, egress = k8s.networking.v1.NetworkPolicyIngressRuleArgs, k8s.networking.v1.NetworkPolicyEgressRuleArgs
        infrastructure = _cidrs(args.infrastructure_cidrs)
        same_namespace = k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=_selector(None))
        # Prometheus, Alertmanager, Grafana, kube-state-metrics and the operator talk to each other.
        policy(
            monitoring,
            "allow-same-namespace",
            pod_selector=_selector(None),
            policy_types=["Ingress", "Egress"],
            ingress=[ingress(from_=[same_namespace])],
            egress=[egress(to=[same_namespace])],
        )
        # The operator, kube-state-metrics, Prometheus' service discovery, Grafana's sidecar
        # and the chart's admission Jobs all read or write the Kubernetes API.
        policy(
            monitoring,
            "allow-api-server",
            pod_selector=_selector(None),
            policy_types=["Egress"],
            egress=[egress(to=infrastructure, ports=_ports(*API_SERVER_PORTS))],
        )
        policy(
            monitoring,
            "allow-operator-webhook",
            pod_selector=_selector(OPERATOR_POD),
            policy_types=["Ingress"],
            ingress=[ingress(from_=infrastructure, ports=_ports(OPERATOR_WEBHOOK_PORT))],
        )
        # Scrape targets are every pod the monitors select, in any namespace and on any
        # port, plus the kubelets and node-exporter on the nodes' addresses.
        policy(
            monitoring,
            "allow-prometheus",
            pod_selector=_selector(PROMETHEUS_POD),
            policy_types=["Ingress", "Egress"],
            ingress=[
                ingress(from_=[_in_namespace(args.viz_namespace)], ports=_ports(PROMETHEUS_PORT)),
                # The API server's service proxy, as for MLflow.
                ingress(from_=infrastructure, ports=_ports(PROMETHEUS_PORT)),
            ],
            egress=[
                egress(to=[_any_namespace()]),
                egress(to=infrastructure, ports=_ports(KUBELET_PORT, NODE_EXPORTER_PORT)),
            ],
        )
        # Alert receivers (Slack, PagerDuty, e-mail relays) are outside the cluster.
        policy(
            monitoring,
            "allow-alertmanager-receivers",
            pod_selector=_selector(ALERTMANAGER_POD),
            policy_types=["Egress"],
            egress=[egress(to=_cidrs([ANYWHERE]), ports=_ports(HTTPS_PORT))],
        )
