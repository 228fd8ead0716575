"""The recording mocks' answers: plausible provider outputs for an offline run.

`mlplatform.tools.offline.engine` runs a program under these mocks. Each answer is what a
program reads back from a real provider (ids, ARNs, endpoints, AZs, a StackReference's
outputs), derived from the resource's name so that two runs answer alike.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks

from mlplatform.model.live_abort import self_reference_name

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-west-2"


def _short_hash(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers resource registrations and provider calls with plausible values.

    `stack_references` maps a StackReference's name (e.g. `acme/mlplatform/dev`)
    to the outputs it should expose; `resolve_stack_reference`, when given, is asked
    for names not in that map (the offline render computes them by running the
    referenced stack).
    """

    def __init__(
        self,
        *,
        stack_references: Mapping[str, Mapping[str, Any]] | None = None,
        resolve_stack_reference: Callable[[str], Mapping[str, Any]] | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
        region: str = DEFAULT_REGION,
    ):
        self.stack_references = dict(stack_references or {})
        self.resolve_stack_reference = resolve_stack_reference
        self.account_id = account_id
        self.region = region

    # -- resources -------------------------------------------------------
    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        inputs = copy.deepcopy(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            ref_name = inputs.get("name") or args.name
            if ref_name not in self.stack_references and ref_name == self_reference_name():
                # A stack's reference to itself (the model stack's, see live_abort.py): offline, every
                # run is a first deploy with no previous outputs, unless a test gives some.
                return ref_name, {"name": ref_name, "outputs": {}, "secretOutputNames": []}
            if ref_name not in self.stack_references and self.resolve_stack_reference is not None:
                self.stack_references[ref_name] = self.resolve_stack_reference(ref_name)
            if ref_name not in self.stack_references:
                raise KeyError(
                    f"no outputs configured for StackReference {ref_name!r}; known: {sorted(self.stack_references)}"
                )
            outputs = copy.deepcopy(dict(self.stack_references[ref_name]))
            return ref_name, {"name": ref_name, "outputs": outputs, "secretOutputNames": []}
        if args.typ.startswith("kubernetes:"):
            return self._kubernetes(args, inputs)
        extra = self._extras(args.typ, args.name, inputs)
        physical_id = extra.pop("__id", None) or f"{args.name}-{_short_hash(args.typ, args.name)}"
        return physical_id, {**inputs, **extra}

    def _kubernetes(self, args, inputs: dict) -> tuple[str, dict]:
        if args.typ.startswith("kubernetes:helm.sh/"):
            name = inputs.get("name") or f"{args.name}-{_short_hash(args.name)}"
            namespace = inputs.get("namespace") or "default"
            status = {
                "name": name,
                "namespace": namespace,
                "status": "deployed",
                "chart": inputs.get("chart"),
                "version": inputs.get("version"),
            }
            return f"{namespace}/{name}", {**inputs, "name": name, "status": status}
        metadata = dict(inputs.get("metadata") or {})
        if "name" not in metadata:
            # The provider auto-names objects that have no explicit name.
            metadata["name"] = f"{args.name}-{_short_hash(args.name)}"
        metadata.setdefault("uid", _short_hash(args.typ, args.name, length=32))
        inputs["metadata"] = metadata
        namespace = metadata.get("namespace")
        physical_id = f"{namespace}/{metadata['name']}" if namespace else metadata["name"]
        return physical_id, inputs

    def _extras(self, typ: str, name: str, inputs: dict) -> dict[str, Any]:
        """Provider-computed outputs that programs read, by resource type."""
        acct, region = self.account_id, self.region
        physical = inputs.get("name") or f"{name}-{_short_hash(typ, name, length=7)}"
        hexid = _short_hash(typ, name, length=17)
        if typ == "aws:ec2/vpc:Vpc":
            return {"__id": f"vpc-{hexid}", "arn": f"arn:aws:ec2:{region}:{acct}:vpc/vpc-{hexid}"}
        if typ == "aws:ec2/subnet:Subnet":
            return {"__id": f"subnet-{hexid}", "arn": f"arn:aws:ec2:{region}:{acct}:subnet/subnet-{hexid}"}
        if typ == "aws:ec2/securityGroup:SecurityGroup":
            return {"__id": f"sg-{hexid}", "arn": f"arn:aws:ec2:{region}:{acct}:security-group/sg-{hexid}"}
        if typ.startswith("aws:ec2/"):
            return {"__id": f"{typ.rsplit(':', maxsplit=1)[-1].lower()[:5]}-{hexid}"}
        if typ == "aws:iam/role:Role":
            return {"name": physical, "arn": f"arn:aws:iam::{acct}:role/{physical}", "uniqueId": f"AROA{hexid.upper()}"}
        if typ == "aws:iam/policy:Policy":
            return {"name": physical, "arn": f"arn:aws:iam::{acct}:policy/{physical}"}
        if typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
            url = str(inputs.get("url", "")).removeprefix("https://")
            return {"arn": f"arn:aws:iam::{acct}:oidc-provider/{url}"}
        if typ == "aws:kms/key:Key":
            key_id = "-".join(
                (
                    _short_hash(name, length=8),
                    _short_hash(name, "k", length=4),
                    "4000",
                    "8000",
                    _short_hash(name, "x", length=12),
                )
            )
            return {"__id": key_id, "keyId": key_id, "arn": f"arn:aws:kms:{region}:{acct}:key/{key_id}"}
        if typ == "aws:eks/cluster:Cluster":
            oidc_id = _short_hash(name, length=32).upper()
            return {
                "name": physical,
                "arn": f"arn:aws:eks:{region}:{acct}:cluster/{physical}",
                "endpoint": f"https://{oidc_id}.gr7.{region}.eks.amazonaws.com",
                "certificateAuthority": {
                    "data": base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMOCK\n-----END CERTIFICATE-----\n").decode()
                },
                "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{oidc_id}"}]}],
                "version": inputs.get("version", "1.33"),
                "status": "ACTIVE",
                "vpcConfig": {**(inputs.get("vpcConfig") or {}), "clusterSecurityGroupId": f"sg-{hexid}"},
            }
        if typ == "aws:eks/nodeGroup:NodeGroup":
            group = inputs.get("nodeGroupName") or physical
            return {
                "arn": f"arn:aws:eks:{region}:{acct}:nodegroup/{inputs.get('clusterName', 'cluster')}/{group}/{hexid}",
                "nodeGroupName": group,
                "resources": [
                    {"autoscalingGroups": [{"name": f"eks-{group}-{hexid}"}], "remoteAccessSecurityGroupId": ""}
                ],
                "status": "ACTIVE",
            }
        if typ in ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"):
            bucket = inputs.get("bucket") or f"{name}-{_short_hash(name, length=7)}"
            return {
                "__id": bucket,
                "bucket": bucket,
                "arn": f"arn:aws:s3:::{bucket}",
                "bucketRegionalDomainName": f"{bucket}.s3.{region}.amazonaws.com",
                "region": region,
            }
        if typ == "aws:rds/instance:Instance":
            ident = inputs.get("identifier") or physical
            host = f"{ident}.c{hexid[:10]}.{region}.rds.amazonaws.com"
            return {
                "address": host,
                "endpoint": f"{host}:5432",
                "port": inputs.get("port", 5432),
                "arn": f"arn:aws:rds:{region}:{acct}:db:{ident}",
                "identifier": ident,
            }
        if typ == "aws:rds/subnetGroup:SubnetGroup":
            return {"name": physical, "arn": f"arn:aws:rds:{region}:{acct}:subgrp:{physical}"}
        if typ == "random:index/randomPassword:RandomPassword":
            length = int(inputs.get("length", 32))
            return {"result": ("p" + _short_hash(name, length=64))[:length]}
        if typ == "tls:index/privateKey:PrivateKey":
            pem = f"-----BEGIN PRIVATE KEY-----\nMOCK-{name}\n-----END PRIVATE KEY-----\n"
            return {"privateKeyPem": pem, "publicKeyPem": pem.replace("PRIVATE", "PUBLIC")}
        if typ in ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"):
            return {"certPem": f"-----BEGIN CERTIFICATE-----\nMOCK-{name}\n-----END CERTIFICATE-----\n"}
        if typ == "tls:index/certRequest:CertRequest":
            csr = f"-----BEGIN CERTIFICATE REQUEST-----\nMOCK-{name}\n-----END CERTIFICATE REQUEST-----\n"
            return {"certRequestPem": csr}
        if typ.startswith("aws:"):
            return {"arn": f"arn:aws:{typ.split(':')[1].split('/', maxsplit=1)[0]}:{region}:{acct}:{physical}"}
        return {}

    # -- provider functions ---------------------------------------------
    # A plain dict, which the SDK's mock monitor accepts (`isinstance(tup, dict)`) though `Mocks.call` is typed as a
    # tuple; and the tuple `(outputs, None)` that the base class returns would fail there, iterating None.
    def call(self, args: pulumi_mocks.MockCallArgs) -> dict:  # pyright: ignore[reportIncompatibleMethodOverride]
        token, region, acct = args.token, self.region, self.account_id
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{region}{s}" for s in "abcd"]
            return {"names": names, "zoneIds": [f"usw2-az{i}" for i in range(1, 5)], "id": region}
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": acct, "arn": f"arn:aws:iam::{acct}:user/render", "userId": "AIDAMOCK", "id": acct}
        if token == "aws:index/getRegion:getRegion":
            return {"name": region, "region": region, "id": region, "endpoint": f"ec2.{region}.amazonaws.com"}
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        return {}
