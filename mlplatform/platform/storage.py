"""Storage on the platform's own EKS cluster: the EBS and EFS CSI drivers and their StorageClasses.

Since Kubernetes 1.23 EKS provisions EBS volumes only through the EBS CSI
driver, which a new cluster does not run, and a cluster created on 1.30 or
later has no default StorageClass. Without this component every claim
(Prometheus, the training checkpoints) stays Pending.

- `gp3` (ReadWriteOnce, the default class): EBS gp3, encrypted with the
  cluster's KMS key, bound when the first pod is scheduled so the volume is
  created in that pod's AZ, and expandable in place.
- `efs` (ReadWriteMany): one EFS file system with a mount target in every
  private subnet; each claim becomes an access point with its own directory.
  A distributed run's workers on different nodes and AZs share it.

Each driver runs as an EKS add-on under its own IRSA role, trusted by its
controller's ServiceAccount only. Both add-ons' node plugins tolerate every
taint by default (upstream charts: EBS `node.tolerateAllTaints: true`, EFS
`node.tolerations: [{operator: Exists}]`), so they also run on the tainted GPU
nodes, where training mounts its checkpoints. In mode `existing` this component is not
used: the classes already exist and their names come from config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.platform.iam import irsa_trust_policy
from mlplatform.platform.storage_config import StorageClassNames, StorageConfig

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
EBS_PROVISIONER = "ebs.csi.aws.com"
EFS_PROVISIONER = "efs.csi.aws.com"
# The add-ons' controller ServiceAccounts, which their roles trust (and nothing else).
EBS_CONTROLLER_SA = "ebs-csi-controller-sa"
EFS_CONTROLLER_SA = "efs-csi-controller-sa"
ADDON_NAMESPACE = "kube-system"
EBS_POLICY = "service-role/AmazonEBSCSIDriverPolicy"
EFS_POLICY = "service-role/AmazonEFSCSIDriverPolicy"
NFS_PORT = 2049
# Access points get POSIX ids from this range; each claim's directory is owned
# by its own id, so two claims never read each other's files.
EFS_GID_RANGE = ("1000000", "1999999")


def ebs_key_policy(key_arn: str) -> dict:
    """What the EBS CSI controller needs to create and attach volumes encrypted with
    our own KMS key; the managed policy covers AWS-managed keys only.

    Grants are limited to AWS services (`kms:GrantIsForAWSResource`): EC2 takes a
    grant when it attaches a volume, and the role can give it to nothing else.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                "Resource": [key_arn],
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
            {
                "Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": [key_arn],
            },
        ],
    }


@dataclass
class StorageArgs:
    config: StorageConfig
    class_names: StorageClassNames
    """The names to give the classes (`PlatformConfig.storage_class_names`)."""
    cluster_name: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    """The cluster's KMS key; EBS volumes and the EFS file system are encrypted with it."""
    oidc_provider_arn: pulumi.Input[str]
    oidc_provider_url: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    node_security_group_id: pulumi.Input[str]
    """The only source EFS accepts NFS from."""
    private_subnet_ids: pulumi.Input[Sequence[str]]
    subnet_count: int
    """How many private subnets there are; one mount target each. A plain number,
    because resources cannot be declared inside an Output's apply."""
    nodes_ready: Sequence[pulumi.Resource] = field(default_factory=list)
    """Resources that exist once nodes can run the drivers' pods; the add-ons
    wait for them, as EKS reports an add-on without running pods as degraded."""
    tags: Mapping[str, str] = field(default_factory=dict)


class Storage(pulumi.ComponentResource):
    """The EBS CSI add-on and the default `gp3` class, and (unless `storage.efs`
    is false) an encrypted EFS file system, the EFS CSI add-on and the `efs` class.

    Trade-offs: one EFS file system for the whole cluster, in General Purpose
    mode with elastic throughput, so cost follows use and no capacity is
    planned; per-claim isolation comes from access points, not file systems.
    Reclaim policy is Delete for both: a deleted claim deletes its volume or
    directory, as a model stack's `pulumi destroy` should.
    """

    read_write_once_class: pulumi.Output[str]
    read_write_many_class: pulumi.Output[str] | None
    file_system_id: pulumi.Output[str] | None

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:platform:Storage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        partition = aws.get_partition_output(opts=pulumi.InvokeOptions(parent=self)).partition
        class_labels = labels.k8s_labels("storage", instance=name)

        # -- EBS -----------------------------------------------------------
        ebs_role, ebs_grants = self._driver_role(
            f"{name}-ebs-csi", args, EBS_CONTROLLER_SA, EBS_POLICY, partition, tags
        )
        ebs_grants.append(
            aws.iam.RolePolicy(
                f"{name}-ebs-csi-kms",
                role=ebs_role.id,
                policy=pulumi.Output.json_dumps(pulumi.Output.from_input(args.kms_key_arn).apply(ebs_key_policy)),
                opts=child,
            )
        )
        ebs_addon = aws.eks.Addon(
            f"{name}-ebs-csi",
            cluster_name=args.cluster_name,
            addon_name="aws-ebs-csi-driver",
            addon_version=args.config.ebs_csi_addon_version,
            service_account_role_arn=ebs_role.arn,
            tags=tags,
            # The controller needs its permissions from its first volume on.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*ebs_grants, *args.nodes_ready]),
        )
        gp3 = k8s.storage.v1.StorageClass(
            f"{name}-rwo",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.class_names.read_write_once,
                labels=class_labels,
                # Claims without a class (chart defaults) get this one.
                annotations={DEFAULT_CLASS_ANNOTATION: "true"},
            ),
            provisioner=EBS_PROVISIONER,
            parameters=pulumi.Output.from_input(args.kms_key_arn).apply(
                lambda key: {"type": "gp3", "encrypted": "true", "kmsKeyId": key, "csi.storage.k8s.io/fstype": "ext4"}
            ),
            # An EBS volume lives in one AZ: creating it before the pod is scheduled
            # could put it where the pod can never run.
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            reclaim_policy="Delete",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ebs_addon]),
        )
        self.read_write_once_class = gp3.metadata.name

        # -- EFS -----------------------------------------------------------
        self.read_write_many_class = None
        self.file_system_id = None
        if args.class_names.read_write_many is not None:
            security_group = aws.ec2.SecurityGroup(
                f"{name}-efs",
                vpc_id=args.vpc_id,
                description="NFS to the EFS mount targets, from the cluster's nodes only",
                ingress=[
                    aws.ec2.SecurityGroupIngressArgs(
                        description="NFS from the cluster's nodes",
                        protocol="tcp",
                        from_port=NFS_PORT,
                        to_port=NFS_PORT,
                        security_groups=[args.node_security_group_id],
                    )
                ],
                # Mount targets only answer; stateful rules carry the replies.
                egress=[],
                tags={**tags, "Name": f"{name}-efs"},
                opts=child,
            )
            file_system = aws.efs.FileSystem(
                f"{name}-efs",
                encrypted=True,
                kms_key_id=args.kms_key_arn,
                performance_mode="generalPurpose",
                throughput_mode="elastic",
                tags={**tags, "Name": f"{name}-efs"},
                opts=child,
            )
            subnet_ids = pulumi.Output.from_input(args.private_subnet_ids)
            mount_targets = [
                aws.efs.MountTarget(
                    f"{name}-efs-{i}",
                    file_system_id=file_system.id,
                    subnet_id=subnet_ids.apply(lambda ids, i=i: ids[i]),
                    security_groups=[security_group.id],
                    opts=child,
                )
                for i in range(args.subnet_count)
            ]
            efs_role, efs_grants = self._driver_role(
                f"{name}-efs-csi", args, EFS_CONTROLLER_SA, EFS_POLICY, partition, tags
            )
            efs_addon = aws.eks.Addon(
                f"{name}-efs-csi",
                cluster_name=args.cluster_name,
                addon_name="aws-efs-csi-driver",
                addon_version=args.config.efs_csi_addon_version,
                service_account_role_arn=efs_role.arn,
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*efs_grants, *args.nodes_ready]),
            )
            efs_class = k8s.storage.v1.StorageClass(
                f"{name}-rwx",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=args.class_names.read_write_many, labels=class_labels),
                provisioner=EFS_PROVISIONER,
                parameters=file_system.id.apply(
                    lambda fs_id: {
                        # Dynamic provisioning: one access point (and directory) per claim.
                        "provisioningMode": "efs-ap",
                        "fileSystemId": fs_id,
                        "directoryPerms": "700",
                        "gidRangeStart": EFS_GID_RANGE[0],
                        "gidRangeEnd": EFS_GID_RANGE[1],
                        "basePath": "/dynamic",
                    }
                ),
                # Encryption in transit as well as at rest.
                mount_options=["tls"],
                # EFS is regional, so binding early cannot strand a pod in the wrong AZ.
                volume_binding_mode="Immediate",
                reclaim_policy="Delete",
                # A claim is only usable once a mount target exists in the node's AZ.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[efs_addon, *mount_targets]),
            )
            self.read_write_many_class = efs_class.metadata.name
            self.file_system_id = file_system.id

        self.register_outputs(
            {
                "readWriteOnceClass": self.read_write_once_class,
                "readWriteManyClass": self.read_write_many_class,
                "fileSystemId": self.file_system_id,
            }
        )

    def _driver_role(
        self,
        prefix: str,
        args: StorageArgs,
        service_account: str,
        managed_policy: str,
        partition: pulumi.Output[str],
        tags: dict[str, str],
    ) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
        """An IRSA role for one driver's controller ServiceAccount, with its AWS-managed policy."""
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{prefix}-role",
            assume_role_policy=irsa_trust_policy(
                args.oidc_provider_arn, args.oidc_provider_url, ADDON_NAMESPACE, service_account
            ),
            tags=tags,
            opts=child,
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{prefix}-policy",
            role=role.name,
            policy_arn=pulumi.Output.concat("arn:", partition, ":iam::aws:policy/", managed_policy),
            opts=child,
        )
        return role, [attachment]
