"""The resource type tokens the tests look for, in one place.

A type token is part of every URN, so a test that finds resources by type also pins
the token: a renamed or re-versioned type fails here, once, instead of in every test
that spelled it. Names: the provider, then (for AWS) the module, then the kind.
"""

from __future__ import annotations

# Providers.
AWS_PROVIDER = "pulumi:providers:aws"
K8S_PROVIDER = "pulumi:providers:kubernetes"
# The engine's own resource that reads another stack's outputs.
STACK_REFERENCE = "pulumi:pulumi:StackReference"

# Our components: `mlplatform:<area>:<Name>`.
MODEL_TRAINING_RUN = "mlplatform:model:TrainingRun"
PLATFORM_CI_IDENTITY = "mlplatform:platform:CiIdentity"
PLATFORM_CLUSTER = "mlplatform:platform:Cluster"
PLATFORM_CLUSTER_AUTOSCALER = "mlplatform:platform:ClusterAutoscaler"
PLATFORM_GPU_NODE_POOL = "mlplatform:platform:GpuNodePool"
PLATFORM_SERVICE_MESH = "mlplatform:platform:ServiceMesh"

# Kubernetes (pulumi-kubernetes), built-in kinds and the charts' CRDs.
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
K8S_AUTHORIZATION_POLICY = "kubernetes:policy.linkerd.io/v1alpha1:AuthorizationPolicy"
K8S_CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
K8S_CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
K8S_CUSTOM_RESOURCE_DEFINITION = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
K8S_DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
K8S_DEPLOYMENT = "kubernetes:apps/v1:Deployment"
K8S_HORIZONTAL_POD_AUTOSCALER = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
K8S_HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
K8S_JOB = "kubernetes:batch/v1:Job"
K8S_MESH_TLS_AUTHENTICATION = "kubernetes:policy.linkerd.io/v1alpha1:MeshTLSAuthentication"
K8S_NAMESPACE = "kubernetes:core/v1:Namespace"
K8S_NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
K8S_PERSISTENT_VOLUME_CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"
K8S_POD_DISRUPTION_BUDGET = "kubernetes:policy/v1:PodDisruptionBudget"
K8S_API_SERVICE = "kubernetes:apiregistration.k8s.io/v1:APIService"
K8S_POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
K8S_PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
K8S_RESOURCE_QUOTA = "kubernetes:core/v1:ResourceQuota"
K8S_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
K8S_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
K8S_SECRET = "kubernetes:core/v1:Secret"
K8S_SERVER = "kubernetes:policy.linkerd.io/v1beta3:Server"
K8S_SERVICE = "kubernetes:core/v1:Service"
K8S_SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
K8S_SERVICE_PROFILE = "kubernetes:linkerd.io/v1alpha2:ServiceProfile"
K8S_STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
K8S_STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
K8S_TRAFFIC_SPLIT = "kubernetes:split.smi-spec.io/v1alpha2:TrafficSplit"

# Pulumi itself.
PULUMI_STACK = "pulumi:pulumi:Stack"

# AWS (pulumi-aws).
AWS_AUTOSCALING_TAG = "aws:autoscaling/tag:Tag"
AWS_EC2_EIP = "aws:ec2/eip:Eip"
AWS_EC2_NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
AWS_EC2_ROUTE = "aws:ec2/route:Route"
AWS_EC2_ROUTE_TABLE_ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
AWS_EC2_SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
AWS_EC2_SUBNET = "aws:ec2/subnet:Subnet"
AWS_VPC_SECURITY_GROUP_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
AWS_EC2_VPC = "aws:ec2/vpc:Vpc"
AWS_EFS_FILE_SYSTEM = "aws:efs/fileSystem:FileSystem"
AWS_EFS_MOUNT_TARGET = "aws:efs/mountTarget:MountTarget"
AWS_EKS_ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
AWS_EKS_ACCESS_POLICY_ASSOCIATION = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
AWS_EKS_ADDON = "aws:eks/addon:Addon"
AWS_EKS_CLUSTER = "aws:eks/cluster:Cluster"
AWS_EKS_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
AWS_IAM_OPEN_ID_CONNECT_PROVIDER = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
AWS_IAM_POLICY = "aws:iam/policy:Policy"
AWS_IAM_ROLE = "aws:iam/role:Role"
AWS_IAM_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
AWS_IAM_ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
AWS_KMS_KEY = "aws:kms/key:Key"
AWS_RDS_INSTANCE = "aws:rds/instance:Instance"
AWS_RDS_SUBNET_GROUP = "aws:rds/subnetGroup:SubnetGroup"
AWS_S3_BUCKET = "aws:s3/bucket:Bucket"
AWS_S3_BUCKET_LIFECYCLE_CONFIGURATION = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
AWS_S3_BUCKET_OWNERSHIP_CONTROLS = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
AWS_S3_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
AWS_S3_BUCKET_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
AWS_S3_BUCKET_SERVER_SIDE_ENCRYPTION_CONFIGURATION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
AWS_S3_BUCKET_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"

# TLS (pulumi-tls).
TLS_CERT_REQUEST = "tls:index/certRequest:CertRequest"
TLS_LOCALLY_SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert"
TLS_PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
TLS_SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"

# Random (pulumi-random).
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"


def custom_resource(api_version: str, kind: str) -> str:
    """The type token of a custom resource whose group a test chooses, e.g. `ml.example.com/v1`."""
    return f"kubernetes:{api_version}:{kind}"
