"""Every image the platform's charts run is pinned and, with `mlplatform:imageRegistry`, comes from the mirror.

The charts are templated as tests/platform/test_chart_scan.py does (the values the
real entry point passes, the pinned versions, from `MLPLATFORM_TEST_CHARTS`), for
the dev and prod stacks, without and with a mirror. An image is anything a pod or
an operator will pull: a container's `image`, a Prometheus or Alertmanager
resource's `spec.image`, and the image flags the Prometheus operator passes on
(its config-reloader and Thanos images). The chart value table
(mlplatform/platform/chart_images.py) is checked against each chart's own
values.yaml at the pinned version: a key a chart does not have would be ignored
by Helm without a word.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.images import is_pinned
from mlplatform.platform.chart_images import CHART_IMAGES
from mlplatform.platform.charts_config import ChartsConfig
from mlplatform.tools.offline.engine import read_stack_file, run_entry_point
from tests.platform.test_chart_scan import _template, chart_repo, helm  # noqa: F401 (fixtures)
from tests.support.helpers import ROOT
from tests.support.types import HELM_RELEASE

pytestmark = pytest.mark.integration

MIRROR = "registry.internal.example/mirror"
# Operator flags whose value is an image the operator puts in the pods it creates.
IMAGE_FLAGS = ("--prometheus-config-reloader=", "--thanos-default-base-image=")
# Subcharts packaged inside kube-prometheus-stack: their values sit under their names.
SUBCHARTS = {"grafana", "kube-state-metrics", "prometheus-node-exporter", "prometheus-windows-exporter"}


def _images(value: Any, where: str = "") -> list[tuple[str, str]]:
    """(where, image) for every image reference in a rendered object."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "image" and isinstance(child, str):
                found.append((where, child))
            else:
                found += _images(child, f"{where}.{key}")
    elif isinstance(value, list):
        for i, child in enumerate(value):
            if isinstance(child, str) and child.startswith(IMAGE_FLAGS):
                found.append((f"{where}[{i}]", child.split("=", 1)[1]))
            else:
                found += _images(child, f"{where}[{i}]")
    return found


@functools.cache
def _releases(stack: str, registry: str | None) -> tuple[str, tuple[dict[str, Any], ...]]:
    config, secrets = read_stack_file(ROOT / f"Pulumi.{stack}.yaml", "mlplatform")
    if registry is not None:
        config = {**config, "mlplatform:imageRegistry": registry}
    recording = run_entry_point(ROOT, stack=stack, config=config, secret_keys=secrets)
    return config["mlplatform:cluster"]["kubernetesVersion"], tuple(r.inputs for r in recording.of_type(HELM_RELEASE))


def _render(stack: str, registry: str | None, helm_path: str, repo: str | None, workdir: Path) -> list[tuple[str, str]]:
    kube_version, releases = _releases(stack, registry)
    workdir.mkdir(parents=True, exist_ok=True)
    assert len(releases) >= 7, [r["chart"] for r in releases]
    return [
        (f"{release['chart']} {doc['kind']}/{doc['metadata']['name']}{where}", image)
        for release in releases
        for doc in _template(helm_path, repo, release, workdir, kube_version)
        for where, image in _images(doc)
    ]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_chart_image_is_pinned(stack, helm, chart_repo, tmp_path):  # noqa: F811
    images = _render(stack, None, helm, chart_repo, tmp_path)
    assert len({image for _, image in images}) >= 15, images  # every chart's images, not an empty scan
    assert [i for i in images if not is_pinned(i[1])] == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_with_an_image_registry_every_chart_image_comes_from_it(stack, helm, chart_repo, tmp_path):  # noqa: F811
    upstream = _render(stack, None, helm, chart_repo, tmp_path / "upstream")
    through = _render(stack, MIRROR, helm, chart_repo, tmp_path / "mirror")
    assert [i for i in through if not i[1].startswith(f"{MIRROR}/")] == []
    assert [i for i in through if not is_pinned(i[1])] == []
    # The same images, each under the prefix with its own registry kept.
    assert sorted({image for _, image in through}) == sorted({f"{MIRROR}/{image}" for _, image in upstream})


def _chart_values(helm_path: str, repo: str | None, chart: str, version: str, workdir: Path) -> dict[str, dict]:
    """values.yaml of the chart and of each subchart it packages, by chart name."""
    default_repo = getattr(ChartsConfig(), chart.replace("-", "_")).repo
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir), "HELM_CACHE_HOME": str(workdir / "cache"),
           "HELM_CONFIG_HOME": str(workdir / "config"), "HELM_DATA_HOME": str(workdir / "data")}  # fmt: skip
    command = [helm_path, "pull", chart, "--repo", repo or default_repo, "--version", version, "-d", str(workdir)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert result.returncode == 0, result.stderr
    values: dict[str, dict] = {}
    with tarfile.open(workdir / f"{chart}-{version}.tgz") as archive:
        for member in archive.getmembers():
            parts = member.name.split("/")
            if parts[-1] == "values.yaml" and (len(parts) == 2 or (len(parts) == 4 and parts[1] == "charts")):
                data = archive.extractfile(member)
                assert data is not None
                values[parts[-2] if len(parts) == 4 else chart] = yaml.safe_load(data) or {}
    return values


def _lookup(values: dict[str, Any], path: list[str]) -> Any:
    node: Any = values
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return KeyError(".".join(path))
        node = node[part]
    return node


@pytest.mark.parametrize("chart", sorted(CHART_IMAGES))
def test_each_image_value_is_the_charts_own_at_the_pinned_version(chart, helm, chart_repo, tmp_path):  # noqa: F811
    """The key exists in the chart's values.yaml and holds the upstream value the table prefixes."""
    version = getattr(ChartsConfig(), chart.replace("-", "_")).version
    values = _chart_values(helm, chart_repo, chart, version, tmp_path)
    problems = []
    for path, upstream in CHART_IMAGES[chart]:
        first, *rest = path.split(".")
        found = _lookup(values[first], rest) if first in SUBCHARTS else _lookup(values[chart], [first, *rest])
        # linkerd-viz's Prometheus registry is `prom`, Docker Hub's short form.
        if found != upstream and not (found == "prom" and upstream == "docker.io/prom"):
            problems.append(f"{chart} {path}: the chart has {found!r}, the table says {upstream!r}")
    assert not problems, "\n".join(problems)
