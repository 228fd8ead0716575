"""Stand-in for the platform stack in the end-to-end tier.

The real platform needs EKS and Helm chart repositories, neither of which can be
reached here. A model stack needs only what the platform leaves in the cluster
for it, and the outputs it reads through its StackReference; this program
declares exactly that on the local control plane, with the real engine:

- the serving and training namespaces, and one team namespace with its GPU quota;
- the simulated cluster's StorageClass, exported for both access modes;
- the platform's own ML CRDs, through the platform's `MlCrds` component;
- the third-party CRDs a model stack's objects belong to, which the real
  platform gets from the Linkerd, linkerd-smi and kube-prometheus-stack charts;
- the same stack outputs, under the same keys, that `build_platform` exports.
"""

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.model import platform_outputs as keys
from mlplatform.platform.crds import MlCrds, MlCrdsArgs
from tests.e2e.crds import THIRD_PARTY_CRDS

config = pulumi.Config("e2e")
kubeconfig = config.require_secret("kubeconfig")
crd_group = config.get("crdGroup") or "ml.example.com"
serving_namespace = config.get("servingNamespace") or "ml-serving"
training_namespace = config.get("trainingNamespace") or "ml-training"
team_namespace = config.get("teamNamespace") or "team-fraud"

provider = k8s.Provider("control-plane", kubeconfig=kubeconfig)
k8s_opts = pulumi.ResourceOptions(provider=provider)

namespaces = [
    k8s.core.v1.Namespace(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, annotations=dict(labels.MESH_INJECT_ANNOTATION)),
        opts=k8s_opts,
    )
    for name in (serving_namespace, training_namespace, team_namespace)
]
k8s.core.v1.ResourceQuota(
    "team-gpu-quota",
    metadata=k8s.meta.v1.ObjectMetaArgs(name="gpu-quota", namespace=namespaces[2].metadata.name),
    spec=k8s.core.v1.ResourceQuotaSpecArgs(
        hard={f"requests.{labels.GPU_RESOURCE}": "4", f"limits.{labels.GPU_RESOURCE}": "8"}
    ),
    opts=k8s_opts,
)
# The simulated cluster's own class (kwok provisions and binds its claims), as a real
# cluster's gp3 or EFS class is there before the platform.
storage_class = config.require("storageClass")

MlCrds("ml-crds", MlCrdsArgs(group=crd_group), opts=k8s_opts)
for manifest in THIRD_PARTY_CRDS:
    k8s.apiextensions.v1.CustomResourceDefinition(
        manifest["metadata"]["name"],
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=k8s_opts,
    )

pulumi.export(keys.KUBECONFIG, kubeconfig)
pulumi.export(
    keys.NAMESPACES,
    {
        "serving": namespaces[0].metadata.name,
        "training": namespaces[1].metadata.name,
        "teams": [namespaces[2].metadata.name],
    },
)
pulumi.export(keys.GPU_NODE_SELECTOR, dict(labels.GPU_NODE_SELECTOR))
pulumi.export(keys.GPU_TAINT, dict(labels.GPU_TAINT))
pulumi.export(keys.GPU_POOL_ENABLED, True)
pulumi.export(
    keys.STORAGE_CLASSES,
    {
        "readWriteOnce": storage_class,
        "readWriteMany": storage_class,
    },
)
# A platform on an existing cluster offers no IRSA; the model stack then creates no AWS resource.
pulumi.export(keys.WORKLOAD_IDENTITY, {"kind": "none"})
pulumi.export(keys.MLFLOW_TRACKING_URI, "http://mlflow.mlflow.svc.cluster.local:5000")
pulumi.export(keys.PROMETHEUS_URL, "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090")
pulumi.export(keys.TRAFFIC_SPLIT_APIS, ["smi"])
pulumi.export(keys.CRD_GROUP, crd_group)
