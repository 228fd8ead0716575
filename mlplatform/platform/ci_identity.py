"""GitHub Actions' identity: OIDC provider, three roles, and their EKS access entries.

No static AWS key exists anywhere: a workflow job exchanges its GitHub OIDC token
for short-lived credentials of one role, and that role reaches the cluster through
an EKS access entry (the cluster's authentication mode is `API_AND_CONFIG_MAP`,
set in `cluster.py`), never through the aws-auth ConfigMap.

Least privilege, role by role:
- `preview` (pull requests): AWS `ViewOnlyAccess` (lists and describes, never reads
  data such as S3 objects or secrets: a PR author controls the code it runs) and
  EKS view on the whole cluster. The state backend is Pulumi Cloud, reached with
  the Pulumi token, so no AWS permission is needed for state.
- `deploy` (platform stacks): `AdministratorAccess` and EKS cluster admin. The
  platform creates IAM roles, KMS keys and the VPC; any role allowed to create
  IAM roles is admin-equivalent, so a narrower list would only look safer. What
  guards it is the trust policy: only jobs in the configured GitHub environments
  (prod with required reviewers) of the one repository.
- `deploy-models` (model stacks): a separate role so that a model-stack job never
  holds cluster admin. EKS edit only in the serving and team namespaces, plus a
  Role for the custom resources model stacks write (EKS access policies do not
  cover CRDs), and IAM only on the `*-train-*` roles model stacks create for
  training (IRSA).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.platform.ci_identity_config import GITHUB_OIDC_ISSUER, GITHUB_OIDC_URL, CiConfig
from mlplatform.platform.iam import STS_AUDIENCE, web_identity_trust

CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"
EDIT_POLICY = "AmazonEKSEditPolicy"
VIEW_POLICY = "AmazonEKSViewPolicy"
# The Kubernetes group the deploy-models access entry maps to; RoleBindings in the
# model namespaces give it the custom resources that AmazonEKSEditPolicy lacks.
MODEL_DEPLOYERS_GROUP = "mlplatform:model-deployers"
# The group the preview access entry maps to. AmazonEKSViewPolicy is evaluated by EKS's own
# authorizer and covers no custom resource (an `aggregate-to-view` ClusterRole does not extend it),
# so the preview role reads the InferenceService records (the canary judge's verdict in the PR
# comment, the model program's aborted-canary check) through RoleBindings to this group.
PREVIEWERS_GROUP = "mlplatform:previewers"
# Read-only: the records' spec and status; nothing else of the ML CRD group.
RECORD_READ_VERBS = ["get", "list", "watch"]
RECORD_RESOURCES = ["inferenceservices"]
# Custom resources a model stack declares (records, traffic, mesh policy, monitoring).
MODEL_STACK_API_GROUPS = (
    "split.smi-spec.io",
    "gateway.networking.k8s.io",
    "policy.linkerd.io",
    "linkerd.io",
    "monitoring.coreos.com",
)
WRITE_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]


def github_trust_policy(provider_arn: pulumi.Input[str], subjects: Sequence[str]) -> pulumi.Output[str]:
    """Trust for GitHub Actions jobs whose `sub` is exactly one of `subjects`.

    `StringEquals`, not `StringLike`: no wildcard can widen the set of jobs, and
    the audience is pinned so a token minted for another service is refused.
    """
    return pulumi.Output.json_dumps(
        pulumi.Output.from_input(provider_arn).apply(
            lambda arn: web_identity_trust(arn, GITHUB_OIDC_ISSUER, list(subjects))
        )
    )


def training_roles_policy(partition: str, account_id: str) -> dict:
    """IAM on the model stacks' training roles (named `<model>-train-<suffix>`), nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "iam:CreateRole",
                    "iam:DeleteRole",
                    "iam:GetRole",
                    "iam:TagRole",
                    "iam:UntagRole",
                    "iam:UpdateRole",
                    "iam:UpdateAssumeRolePolicy",
                    "iam:ListRolePolicies",
                    "iam:ListAttachedRolePolicies",
                    "iam:ListInstanceProfilesForRole",
                    "iam:PutRolePolicy",
                    "iam:GetRolePolicy",
                    "iam:DeleteRolePolicy",
                ],
                "Resource": f"arn:{partition}:iam::{account_id}:role/*-train-*",
            }
        ],
    }


@dataclass
class CiIdentityArgs:
    config: CiConfig
    cluster_name: pulumi.Input[str]
    # Plain names from config: one RoleBinding per namespace must be known at preview.
    model_namespaces: Sequence[str]
    # The API group of the platform's ML CRDs (ModelVersion, InferenceService).
    crd_group: str
    # (namespace, service, port) the rollout gate reads through the API server's service
    # proxy: Prometheus and MLflow. The model deployers may `get` exactly these proxies.
    service_proxies: Sequence[tuple[str, str, int]] = ()
    # The namespaces must exist before RoleBindings land in them.
    namespaces_ready: Sequence[pulumi.Resource] = field(default_factory=list)
    tags: Mapping[str, str] = field(default_factory=dict)


class CiIdentity(pulumi.ComponentResource):
    """GitHub's OIDC provider and the preview, deploy and deploy-models roles with cluster access."""

    oidc_provider_arn: pulumi.Output[str]
    preview_role_arn: pulumi.Output[str]
    deploy_role_arn: pulumi.Output[str]
    deploy_models_role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: CiIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:platform:CiIdentity", name, None, opts)
        cfg = args.config
        tags = dict(args.tags)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        account_id = aws.get_caller_identity_output(opts=invoke).account_id

        if cfg.oidc_provider_arn is not None:
            provider_arn: pulumi.Input[str] = cfg.oidc_provider_arn
        else:
            # No thumbprint: IAM validates GitHub's issuer against its own trusted CAs.
            provider_arn = aws.iam.OpenIdConnectProvider(
                f"{name}-github-oidc",
                url=GITHUB_OIDC_URL,
                client_id_lists=[STS_AUDIENCE],
                tags=tags,
                opts=child,
            ).arn

        def role(part: str, subjects: list[str], description: str, session: int = 3600) -> aws.iam.Role:
            return aws.iam.Role(
                f"{name}-{part}",
                description=description,
                assume_role_policy=github_trust_policy(provider_arn, subjects),
                # Credentials that expire mid-update leave resources half created and the state locked.
                max_session_duration=session,
                tags=tags,
                opts=child,
            )

        def managed(role_: aws.iam.Role, part: str, policy: str) -> None:
            aws.iam.RolePolicyAttachment(
                f"{name}-{part}-{policy}",
                role=role_.name,
                policy_arn=pulumi.Output.concat("arn:", partition, ":iam::aws:policy/", policy),
                opts=child,
            )

        def access(
            role_: aws.iam.Role,
            part: str,
            policy: str,
            namespaces: Sequence[str] | None,
            groups: Sequence[str] | None = None,
        ) -> aws.eks.AccessEntry:
            entry = aws.eks.AccessEntry(
                f"{name}-{part}",
                cluster_name=args.cluster_name,
                principal_arn=role_.arn,
                type="STANDARD",
                kubernetes_groups=list(groups) if groups else None,
                tags=tags,
                opts=child,
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-{part}-{policy}",
                cluster_name=args.cluster_name,
                principal_arn=entry.principal_arn,
                policy_arn=pulumi.Output.concat("arn:", partition, ":eks::aws:cluster-access-policy/", policy),
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster")
                if namespaces is None
                else aws.eks.AccessPolicyAssociationAccessScopeArgs(type="namespace", namespaces=list(namespaces)),
                opts=child,
            )
            return entry

        preview = role("preview", [cfg.pull_request_subject()], f"pulumi preview from {cfg.github_repository} PRs")
        managed(preview, "preview", "job-function/ViewOnlyAccess")
        preview_entry = access(preview, "preview", VIEW_POLICY, None, [PREVIEWERS_GROUP])

        deploy_subjects = cfg.deploy_subjects()
        deploy = role(
            "deploy",
            deploy_subjects,
            f"pulumi up of platform stacks from {cfg.github_repository}",
            cfg.deploy_session_seconds,
        )
        managed(deploy, "deploy", "AdministratorAccess")
        access(deploy, "deploy", CLUSTER_ADMIN_POLICY, None)

        models = role(
            "deploy-models",
            deploy_subjects,
            f"pulumi up of model stacks from {cfg.github_repository}",
            cfg.deploy_session_seconds,
        )
        aws.iam.RolePolicy(
            f"{name}-deploy-models-training-roles",
            role=models.id,
            policy=pulumi.Output.json_dumps(
                pulumi.Output.all(partition, account_id).apply(lambda a: training_roles_policy(a[0], a[1]))
            ),
            opts=child,
        )
        models_entry = access(models, "deploy-models", EDIT_POLICY, args.model_namespaces, [MODEL_DEPLOYERS_GROUP])

        crds_role = k8s.rbac.v1.ClusterRole(
            f"{name}-model-stack-crds",
            # Named, not auto-named: `mlplatform render` writes one file per object by name, and
            # `kubectl get clusterrole` should show what grants the model deployers.
            metadata=k8s.meta.v1.ObjectMetaArgs(name="mlplatform-model-deployers", labels=labels.k8s_labels("ci")),
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[args.crd_group, *MODEL_STACK_API_GROUPS], resources=["*"], verbs=WRITE_VERBS
                )
            ],
            opts=child,
        )
        _bind_group(
            f"{name}-model-stack-crds",
            crds_role,
            "mlplatform-model-deployers",
            MODEL_DEPLOYERS_GROUP,
            args.model_namespaces,
            pulumi.ResourceOptions(parent=self, depends_on=[*args.namespaces_ready, models_entry]),
        )

        records_role = k8s.rbac.v1.ClusterRole(
            f"{name}-model-record-readers",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="mlplatform-model-record-readers", labels=labels.k8s_labels("ci")),
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[args.crd_group], resources=RECORD_RESOURCES, verbs=RECORD_READ_VERBS
                )
            ],
            opts=child,
        )
        _bind_group(
            f"{name}-model-record-readers",
            records_role,
            "mlplatform-model-record-readers",
            PREVIEWERS_GROUP,
            args.model_namespaces,
            pulumi.ResourceOptions(parent=self, depends_on=[*args.namespaces_ready, preview_entry]),
        )

        for namespace, service, port in args.service_proxies:
            _service_proxy_access(
                f"{name}-proxy-{namespace}",
                namespace,
                service,
                port,
                pulumi.ResourceOptions(parent=self, depends_on=[*args.namespaces_ready, models_entry]),
            )

        self.oidc_provider_arn = pulumi.Output.from_input(provider_arn)
        self.preview_role_arn = preview.arn
        self.deploy_role_arn = deploy.arn
        self.deploy_models_role_arn = models.arn
        self.register_outputs(
            {
                "oidcProviderArn": self.oidc_provider_arn,
                "previewRoleArn": self.preview_role_arn,
                "deployRoleArn": self.deploy_role_arn,
                "deployModelsRoleArn": self.deploy_models_role_arn,
            }
        )


def _bind_group(
    name: str,
    role: k8s.rbac.v1.ClusterRole,
    object_name: str,
    group: str,
    namespaces: Sequence[str],
    opts: pulumi.ResourceOptions,
) -> None:
    """A RoleBinding `<name>-<namespace>` per namespace, named as the ClusterRole (known at preview), granting
    it to `group`."""
    for namespace in namespaces:
        k8s.rbac.v1.RoleBinding(
            f"{name}-{namespace}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=namespace, labels=labels.k8s_labels("ci")),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role.metadata.name
            ),
            subjects=[k8s.rbac.v1.SubjectArgs(api_group="rbac.authorization.k8s.io", kind="Group", name=group)],
            opts=opts,
        )


def _service_proxy_access(name: str, namespace: str, service: str, port: int, opts: pulumi.ResourceOptions) -> None:
    """`get` on one Service's proxy subresource for the model deployers, nothing else in the namespace.

    The API server authorizes `/services/<segment>/proxy` with the path segment as the resource
    name, so each spelling a client may use (`name`, `name:port`, `http:name:port`) is listed."""
    metadata = k8s.meta.v1.ObjectMetaArgs(
        name=f"mlplatform-{service}-proxy", namespace=namespace, labels=labels.k8s_labels("ci")
    )
    role = k8s.rbac.v1.Role(
        name,
        metadata=metadata,
        rules=[
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=[""],
                resources=["services/proxy"],
                verbs=["get"],
                resource_names=[service, f"{service}:{port}", f"http:{service}:{port}"],
            )
        ],
        opts=opts,
    )
    k8s.rbac.v1.RoleBinding(
        name,
        metadata=metadata,
        role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name=role.metadata.name),
        subjects=[
            k8s.rbac.v1.SubjectArgs(api_group="rbac.authorization.k8s.io", kind="Group", name=MODEL_DEPLOYERS_GROUP)
        ],
        opts=opts,
    )
