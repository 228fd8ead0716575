"""The platform's `mlplatform:storage` config: which StorageClasses it creates or names.

Kept apart from `config.py` (which embeds it in `PlatformConfig`) so each
config module stays readable; the rules that depend on the cluster mode live
with `PlatformConfig`, which knows the mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from mlplatform.config_types import DnsSubdomain
from mlplatform.configuration import ConfigModel

# A StorageClass name is a DNS-1123 subdomain, as the API server checks it.
StorageClassName = DnsSubdomain
DEFAULT_RWO_CLASS = "gp3"
DEFAULT_RWX_CLASS = "efs"
AddonVersion = Annotated[str, Field(pattern=r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")]


class StorageConfig(ConfigModel):
    """The platform's StorageClasses: one ReadWriteOnce (Prometheus, databases) and,
    optionally, one ReadWriteMany (training checkpoints shared by every worker)."""

    read_write_once_class: StorageClassName | None = Field(
        None,
        description=f"Mode aws: name of the encrypted gp3 class the program creates and makes the cluster "
        f"default (default `{DEFAULT_RWO_CLASS}`). Mode existing: an existing ReadWriteOnce class; null uses "
        "the cluster's default class.",
    )
    read_write_many_class: StorageClassName | None = Field(
        None,
        description=f"Mode aws: name of the EFS class the program creates (default `{DEFAULT_RWX_CLASS}`; "
        "needs `efs`). Mode existing: an existing ReadWriteMany class; null means the cluster has none, and "
        "model stacks whose training needs one are refused.",
    )
    efs: bool | None = Field(
        None,
        description="Mode aws: create an EFS file system, the EFS CSI driver and the ReadWriteMany class "
        "(default on); false leaves the platform without a ReadWriteMany class. Mode existing: not allowed, "
        "name an existing class in `readWriteManyClass`.",
    )
    ebs_csi_addon_version: AddonVersion | None = Field(
        None,
        description="Mode aws: pinned `aws-ebs-csi-driver` add-on version, e.g. `v1.48.0-eksbuild.2`; "
        "default: the EKS default for the cluster's Kubernetes version.",
    )
    efs_csi_addon_version: AddonVersion | None = Field(
        None,
        description="Mode aws: pinned `aws-efs-csi-driver` add-on version, e.g. `v2.1.11-eksbuild.1`; "
        "default: the EKS default for the cluster's Kubernetes version.",
    )


@dataclass(frozen=True)
class StorageClassNames:
    """The class names the platform offers; None where it has none (or, for
    ReadWriteOnce in mode existing, where the cluster's default class is meant)."""

    read_write_once: str | None
    read_write_many: str | None
