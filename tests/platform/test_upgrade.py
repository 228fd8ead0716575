"""An EKS minor-version upgrade, as the runbook in the platform docs describes it: bumping
`cluster.kubernetesVersion` by one minor touches the control plane and the managed node groups,
in place, and nothing else (no add-on, chart, Kubernetes object or IAM change rides along)."""

from __future__ import annotations

from mlplatform.tools.diff import diff_stack, parse_assignment
from tests.support.helpers import ROOT
from tests.support.types import AWS_EKS_CLUSTER, AWS_EKS_NODE_GROUP


def test_one_minor_bump_changes_only_the_cluster_and_its_node_groups():
    """What `pulumi preview` would show for 1.33 -> 1.34 on the prod stack: three in-place version updates."""
    report = diff_stack(ROOT, "prod", overrides=[parse_assignment('cluster.kubernetesVersion="1.34"', stack="prod")])
    assert report.added == [] and report.removed == []
    changed = sorted((c.type, c.name) for c in report.changed)
    assert changed == [
        (AWS_EKS_CLUSTER, "cluster-eks"),
        (AWS_EKS_NODE_GROUP, "cluster-system"),
        (AWS_EKS_NODE_GROUP, "gpu-nodes"),
    ], changed
    for change in report.changed:
        assert [p.path for p in change.paths] == ["version"], (change.urn, change.paths)
        assert (change.paths[0].before, change.paths[0].after) == ("1.33", "1.34")
