"""Storage: the CSI add-ons, their IRSA roles, EFS and the StorageClasses claims bind to.

The aws-mode tests read the `dev` stack exactly as `Pulumi.dev.yaml` declares it,
so they also prove the wiring: the cluster's key, subnets and node group reach
the Storage component, and Prometheus claims the class it creates.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlplatform.configuration import ConfigError
from mlplatform.platform.storage import ebs_key_policy
from mlplatform.tools.offline.engine import RecordedResource, Recording, recording_of
from tests.support.helpers import platform_config, run_platform
from tests.support.types import (
    AWS_EC2_SECURITY_GROUP,
    AWS_EC2_SUBNET,
    AWS_EFS_FILE_SYSTEM,
    AWS_EFS_MOUNT_TARGET,
    AWS_EKS_ADDON,
    AWS_EKS_CLUSTER,
    AWS_IAM_ROLE,
    AWS_IAM_ROLE_POLICY,
    AWS_IAM_ROLE_POLICY_ATTACHMENT,
    AWS_KMS_KEY,
    HELM_RELEASE,
    K8S_STATEFUL_SET,
    K8S_STORAGE_CLASS,
)

STORAGE_CLASS = K8S_STORAGE_CLASS
ADDON = AWS_EKS_ADDON
ROLE = AWS_IAM_ROLE
ROLE_POLICY = AWS_IAM_ROLE_POLICY
ATTACHMENT = AWS_IAM_ROLE_POLICY_ATTACHMENT
KMS_KEY = AWS_KMS_KEY
FILE_SYSTEM = AWS_EFS_FILE_SYSTEM
MOUNT_TARGET = AWS_EFS_MOUNT_TARGET
SECURITY_GROUP = AWS_EC2_SECURITY_GROUP
SUBNET = AWS_EC2_SUBNET
EKS = AWS_EKS_CLUSTER
RELEASE = HELM_RELEASE
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


def _class(recording: Recording, provisioner: str) -> RecordedResource:
    (found,) = [c for c in recording.of_type(STORAGE_CLASS) if c.inputs["provisioner"] == provisioner]
    return found


def _addon(recording: Recording, addon_name: str) -> RecordedResource:
    (found,) = [a for a in recording.of_type(ADDON) if a.inputs["addonName"] == addon_name]
    return found


def _role_by_arn(recording: Recording, arn: str) -> RecordedResource:
    (role,) = [r for r in recording.of_type(ROLE) if r.outputs.get("arn") == arn]
    return role


def _trust(role: RecordedResource) -> dict[str, Any]:
    return json.loads(role.inputs["assumeRolePolicy"])


def _node_security_group(recording: Recording) -> str:
    return recording.one(EKS).outputs["vpcConfig"]["clusterSecurityGroupId"]


# -- the default ReadWriteOnce class ------------------------------------------
def test_gp3_is_the_only_default_class_and_is_encrypted_with_the_cluster_key(dev_platform):
    """Claims without a class (chart defaults) must bind to an encrypted volume, and only one
    class may claim to be the default or the API server picks none."""
    gp3 = _class(dev_platform, "ebs.csi.aws.com")
    assert gp3.metadata["name"] == "gp3"
    assert gp3.metadata["annotations"] == {DEFAULT_CLASS: "true"}
    assert gp3.inputs["parameters"]["type"] == "gp3"
    assert gp3.inputs["parameters"]["encrypted"] == "true"
    assert gp3.inputs["parameters"]["kmsKeyId"] == dev_platform.one(KMS_KEY).outputs["arn"]
    defaults = [c for c in dev_platform.of_type(STORAGE_CLASS) if c.metadata.get("annotations", {}).get(DEFAULT_CLASS)]
    assert defaults == [gp3]


def test_gp3_binds_where_the_pod_lands_and_can_grow(dev_platform):
    """An EBS volume lives in one AZ: binding before scheduling could strand the pod. Volumes grow in place."""
    gp3 = _class(dev_platform, "ebs.csi.aws.com")
    assert gp3.inputs["volumeBindingMode"] == "WaitForFirstConsumer"
    assert gp3.inputs["allowVolumeExpansion"] is True


def test_prometheus_claims_the_platform_class(dev_platform):
    """Prometheus' volume names the gp3 class, so it binds even where another class is the default."""
    (release,) = [r for r in dev_platform.of_type(RELEASE) if r.inputs["chart"] == "kube-prometheus-stack"]
    spec = release.inputs["values"]["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert spec["storageClassName"] == "gp3"


# -- the CSI drivers and their roles ------------------------------------------
@pytest.mark.parametrize(
    "addon_name,service_account,policy",
    [
        ("aws-ebs-csi-driver", "ebs-csi-controller-sa", "service-role/AmazonEBSCSIDriverPolicy"),
        ("aws-efs-csi-driver", "efs-csi-controller-sa", "service-role/AmazonEFSCSIDriverPolicy"),
    ],
)
def test_each_driver_runs_under_its_own_role_trusted_by_its_controller_only(
    dev_platform, addon_name, service_account, policy
):
    """A role trusted by any other ServiceAccount would hand EC2/EFS volume rights to that workload."""
    addon = _addon(dev_platform, addon_name)
    assert addon.inputs["clusterName"] == dev_platform.one(EKS).outputs["name"]
    role = _role_by_arn(dev_platform, addon.inputs["serviceAccountRoleArn"])
    (statement,) = _trust(role)["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    conditions = statement["Condition"]["StringEquals"]
    subjects = [v for k, v in conditions.items() if k.endswith(":sub")]
    assert subjects == [f"system:serviceaccount:kube-system:{service_account}"]
    attachments = [a for a in dev_platform.of_type(ATTACHMENT) if a.inputs["role"].startswith(role.name)]
    assert [a.inputs["policyArn"] for a in attachments] == [f"arn:aws:iam::aws:policy/{policy}"]


def test_the_ebs_role_may_use_the_cluster_key_through_aws_services_only(dev_platform):
    """The managed policy covers AWS-managed keys only: without this, volumes encrypted with our key
    are never created. Grants are limited to AWS resources (EC2 attaching the volume)."""
    key_arn = dev_platform.one(KMS_KEY).outputs["arn"]
    role = _role_by_arn(dev_platform, _addon(dev_platform, "aws-ebs-csi-driver").inputs["serviceAccountRoleArn"])
    (policy,) = [p for p in dev_platform.of_type(ROLE_POLICY) if p.inputs["role"] == role.id]
    document = json.loads(policy.inputs["policy"])
    assert document == ebs_key_policy(key_arn)
    grants, use = document["Statement"]
    assert grants["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert all(s["Resource"] == [key_arn] for s in document["Statement"])
    assert "kms:*" not in grants["Action"] + use["Action"]


def test_addons_wait_for_their_permissions_and_the_nodes(dev_platform):
    """An add-on whose pods cannot run, or run without permissions, degrades and fails `up`."""
    nodes = dev_platform.by_name("cluster-k8s")  # the provider, which waits for the system node group
    for addon_name, prefix in (("aws-ebs-csi-driver", "storage-ebs-csi"), ("aws-efs-csi-driver", "storage-efs-csi")):
        addon = _addon(dev_platform, addon_name)
        assert dev_platform.depends_on(addon, nodes), addon.urn
        assert dev_platform.depends_on(addon, dev_platform.by_name(f"{prefix}-policy")), addon.urn
    ebs = _addon(dev_platform, "aws-ebs-csi-driver")
    assert dev_platform.depends_on(ebs, dev_platform.by_name("storage-ebs-csi-kms"))


# -- EFS -----------------------------------------------------------------------
def test_efs_has_a_mount_target_in_every_private_subnet(dev_platform):
    """A node in an AZ without a mount target cannot mount the checkpoints."""
    private = {s.id for s in dev_platform.of_type(SUBNET) if "-private-" in s.name}
    assert len(private) == 2
    targets = dev_platform.of_type(MOUNT_TARGET)
    assert {t.inputs["subnetId"] for t in targets} == private
    file_system = dev_platform.one(FILE_SYSTEM)
    assert {t.inputs["fileSystemId"] for t in targets} == {file_system.id}


def test_efs_accepts_nfs_from_the_nodes_only(dev_platform):
    """The only way in is NFS from the cluster's nodes: no CIDR, no other port."""
    (security_group,) = [g for g in dev_platform.of_type(SECURITY_GROUP) if g.name == "storage-efs"]
    assert security_group.inputs["ingress"] == [
        {
            "description": "NFS from the cluster's nodes",
            "protocol": "tcp",
            "fromPort": 2049,
            "toPort": 2049,
            "securityGroups": [_node_security_group(dev_platform)],
        }
    ]
    targets = dev_platform.of_type(MOUNT_TARGET)
    assert targets and all(t.inputs["securityGroups"] == [security_group.id] for t in targets)


def test_efs_is_encrypted_with_the_cluster_key(dev_platform):
    file_system = dev_platform.one(FILE_SYSTEM)
    assert file_system.inputs["encrypted"] is True
    assert file_system.inputs["kmsKeyId"] == dev_platform.one(KMS_KEY).outputs["arn"]


def test_efs_class_provisions_an_access_point_per_claim(dev_platform):
    """`efs-ap` gives each claim its own directory and POSIX identity on the shared file system."""
    efs = _class(dev_platform, "efs.csi.aws.com")
    assert efs.metadata["name"] == "efs"
    assert DEFAULT_CLASS not in efs.metadata.get("annotations", {})
    parameters = efs.inputs["parameters"]
    assert parameters["provisioningMode"] == "efs-ap"
    assert parameters["fileSystemId"] == dev_platform.one(FILE_SYSTEM).id
    assert parameters["directoryPerms"] == "700"
    assert efs.inputs["mountOptions"] == ["tls"]


def test_outputs_name_the_classes_the_stack_created(dev_platform):
    """Model stacks take the class names from here, never from a default of their own."""
    assert dev_platform.stack_outputs["storageClasses"] == {"readWriteOnce": "gp3", "readWriteMany": "efs"}
    identity = dev_platform.stack_outputs["workloadIdentity"]
    assert identity["kind"] == "irsa"
    assert identity["oidcProviderArn"].endswith(identity["oidcProviderUrl"])


def test_without_efs_there_is_no_read_write_many_class():
    """`storage.efs: false` creates no file system, driver or class, and says so in the outputs."""
    recording = run_platform(platform_config(storage={"efs": False, "readWriteOnceClass": "ebs"}))
    assert recording.of_type(FILE_SYSTEM) == [] and recording.of_type(MOUNT_TARGET) == []
    assert [a.inputs["addonName"] for a in recording.of_type(ADDON) if "csi" in a.inputs["addonName"]] == [
        "aws-ebs-csi-driver"
    ]
    assert [c.metadata["name"] for c in recording.of_type(STORAGE_CLASS)] == ["ebs"]
    assert recording.stack_outputs["storageClasses"] == {"readWriteOnce": "ebs", "readWriteMany": None}


# -- mode existing --------------------------------------------------------------
EXISTING = platform_config(
    cluster={"mode": "existing", "context": "kind-ml", "gpuNodes": True},
    mlflow={"backend": "in-cluster", "artifactBucket": "mlflow-artifacts"},
    storage={"readWriteOnceClass": "standard", "readWriteManyClass": "nfs-client"},
)


def test_existing_mode_creates_no_storage_and_exports_the_configured_names():
    """On an existing cluster the classes already exist: nothing is created, their names are passed on."""
    recording = run_platform(EXISTING)
    assert [r for r in recording.resources if r.type.startswith("aws:")] == []
    assert recording.of_type(STORAGE_CLASS) == []
    assert recording.stack_outputs["storageClasses"] == {"readWriteOnce": "standard", "readWriteMany": "nfs-client"}
    assert recording.stack_outputs["workloadIdentity"] == {"kind": "none"}
    assert recording.stack_outputs["gpuPoolEnabled"] is True


def test_every_platform_claim_names_the_configured_class():
    """Prometheus's volume and the in-cluster Postgres's both claim `readWriteOnceClass`, not the
    cluster's default (which a cluster need not have; the e2e tier's simulated cluster has none)."""
    recording = run_platform(EXISTING)
    (postgres,) = recording.of_type(K8S_STATEFUL_SET)
    (claim,) = postgres.inputs["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "standard"
    (release,) = [r for r in recording.of_type(HELM_RELEASE) if r.inputs["name"] == "kube-prometheus-stack"]
    prometheus_claim = release.inputs["values"]["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]
    assert prometheus_claim["spec"]["storageClassName"] == "standard"


def test_existing_mode_without_classes_offers_no_read_write_many():
    """Null ReadWriteOnce means the cluster's default class; null ReadWriteMany means none at all."""
    values = platform_config(
        cluster={"mode": "existing", "context": "kind-ml"},
        mlflow={"backend": "in-cluster", "artifactBucket": "mlflow-artifacts"},
    )
    recording = run_platform(values)
    assert recording.stack_outputs["storageClasses"] == {"readWriteOnce": None, "readWriteMany": None}
    assert recording.stack_outputs["gpuPoolEnabled"] is False
    (release,) = [r for r in recording.of_type(RELEASE) if r.inputs["chart"] == "kube-prometheus-stack"]
    spec = release.inputs["values"]["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert "storageClassName" not in spec


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        pytest.param(
            {"cluster": {"mode": "existing", "context": "kind-ml"}, "storage": {"efs": True}},
            "storage.efs only applies to cluster.mode 'aws'",
            id="efs-on-existing-cluster",
        ),
        pytest.param(
            {"storage": {"efs": False, "readWriteManyClass": "shared"}},
            "storage.readWriteManyClass is 'shared' but storage.efs is false",
            id="rwx-name-without-efs",
        ),
        pytest.param(
            {"storage": {"readWriteOnceClass": "fast", "readWriteManyClass": "fast"}},
            "are both 'fast'",
            id="one-name-for-two-classes",
        ),
        pytest.param(
            {"cluster": {"gpuNodes": True}}, "cluster.gpuNodes describes an existing cluster", id="gpu-nodes-on-aws"
        ),
        pytest.param(
            {"storage": {"readWriteOnceClass": "GP3"}},
            "mlplatform:storage.readWriteOnceClass = 'GP3'",
            id="bad-class-name",
        ),
        pytest.param(
            {"storage": {"ebsCsiAddonVersion": "latest"}},
            "mlplatform:storage.ebsCsiAddonVersion = 'latest'",
            id="floating-addon-version",
        ),
    ],
)
def test_bad_storage_config_stops_before_any_resource(overrides, fragment):
    values = platform_config(mlflow={"backend": "in-cluster", "artifactBucket": "mlflow-artifacts"}, **overrides)
    with pytest.raises(ConfigError) as caught:
        run_platform(values)
    assert fragment in str(caught.value)
    assert recording_of(caught.value).resources == []
