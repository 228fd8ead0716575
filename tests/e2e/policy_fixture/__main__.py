"""Declares the Kubernetes objects of objects.json, each with its real type token.

`CustomResource` takes any grouped apiVersion/kind with camelCase fields untouched; its
type token is `kubernetes:<apiVersion>:<kind>`, the same as the typed class's, so the pack
sees what a program using `k8s.apps.v1.Deployment` would declare. The core group
(`apiVersion: v1`) has no group for it to name, so those objects use their typed class
(`kubernetes:core/v1:<kind>`). Resource names follow tests/policy/fixtures.py `resource_name`.
"""

import json
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

config = pulumi.Config()
provider = k8s.Provider("cluster", kubeconfig=config.require_secret("kubeconfig"))
for obj in json.loads((Path(__file__).parent / "objects.json").read_text()):
    name = f"{obj['kind'].lower()}-{obj['metadata']['name']}"
    opts = pulumi.ResourceOptions(provider=provider)
    if obj["apiVersion"] == "v1":
        getattr(k8s.core.v1, obj["kind"])(name, metadata=obj["metadata"], spec=obj.get("spec"), opts=opts)
    else:
        k8s.apiextensions.CustomResource(
            name,
            api_version=obj["apiVersion"],
            kind=obj["kind"],
            metadata=obj["metadata"],
            spec=obj.get("spec"),
            opts=opts,
        )
