"""A chart mirror (`mlplatform:chartMirror` or MLPLATFORM_CHART_MIRROR) replaces every release's repository.

Air-gapped users reach no upstream Helm repository: one release left pointing
upstream fails their `pulumi up`, so every test here covers all seven releases.
"""

from __future__ import annotations

import contextlib
import io

import pytest
import yaml

from mlplatform.configuration import ConfigError
from mlplatform.platform.chart_mirror import CHART_MIRROR_ENV
from mlplatform.platform.charts_config import ChartsConfig
from mlplatform.tools.cli import main
from mlplatform.tools.offline.engine import Recording, recording_of
from tests.support.helpers import ROOT, platform_config, run_platform
from tests.support.types import HELM_RELEASE

MIRROR = "https://charts.internal.example/helm"
OTHER_MIRROR = "http://127.0.0.1:8879/charts"
RELEASE = HELM_RELEASE
# Every chart the platform installs, by upstream chart name, as `mlplatform:charts` pins it.
PINNED = {name.replace("_", "-"): pin for name, pin in ChartsConfig()}
# Mode aws releases all but metrics-server (the EKS add-on serves metrics.k8s.io there).
UPSTREAM = {chart: pin for chart, pin in PINNED.items() if chart != "metrics-server"}


@pytest.fixture(autouse=True)
def no_ambient_mirror(monkeypatch):
    """Whatever the machine exports must not decide these tests; each sets what it needs."""
    monkeypatch.delenv(CHART_MIRROR_ENV, raising=False)


def _every_release() -> dict:
    """A config under which all seven releases exist: mode aws, the GPU pool (its autoscaler), linkerd-smi."""
    return platform_config(nodePools={"gpu": {"enabled": True}}, mesh={"smi": True})


def _repos(recording: Recording) -> dict[str, str]:
    """Release chart -> the repository it is installed from."""
    releases = recording.of_type(RELEASE)
    repos = {r.inputs["chart"]: r.inputs["repositoryOpts"]["repo"] for r in releases}
    assert len(repos) == len(releases), "two releases install the same chart"
    return repos


def test_the_platform_has_seven_releases_one_per_pinned_chart():
    """The tests below are only as good as this: every pinned chart is released, under its upstream name."""
    assert len(UPSTREAM) == 7
    assert set(_repos(run_platform(_every_release()))) == set(UPSTREAM)


def test_mode_existing_fetches_metrics_server_from_the_mirror_too():
    """The eighth chart, installed only on an existing cluster, follows the mirror like the others."""
    existing = platform_config(
        cluster={"mode": "existing"}, mlflow={"backend": "in-cluster", "artifactBucket": "ml-artifacts"}
    )
    assert _repos(run_platform(existing))["metrics-server"] == PINNED["metrics-server"].repo
    assert _repos(run_platform({**existing, "chartMirror": MIRROR}))["metrics-server"] == MIRROR


def test_without_a_mirror_every_release_uses_its_upstream_repository():
    """The default stays what `mlplatform:charts` pins, chart by chart."""
    repos = _repos(run_platform(_every_release()))
    assert repos == {chart: pin.repo for chart, pin in UPSTREAM.items()}
    assert MIRROR not in repos.values()


def test_config_key_replaces_every_release_repository():
    """`mlplatform:chartMirror` points all seven releases at the mirror, keeping chart names and versions."""
    recording = run_platform(platform_config(**_every_release(), chartMirror=MIRROR))
    assert _repos(recording) == dict.fromkeys(UPSTREAM, MIRROR)
    versions = {r.inputs["chart"]: r.inputs["version"] for r in recording.of_type(RELEASE)}
    assert versions == {chart: pin.version for chart, pin in UPSTREAM.items()}


def test_environment_variable_replaces_every_release_repository(monkeypatch):
    """A runner inside the air gap exports MLPLATFORM_CHART_MIRROR once, for stacks that do not name a mirror."""
    monkeypatch.setenv(CHART_MIRROR_ENV, OTHER_MIRROR)
    assert _repos(run_platform(_every_release())) == dict.fromkeys(UPSTREAM, OTHER_MIRROR)


def test_config_key_takes_precedence_over_the_environment(monkeypatch):
    """A stack that names its mirror is not redirected by what the machine running it exports."""
    monkeypatch.setenv(CHART_MIRROR_ENV, OTHER_MIRROR)
    recording = run_platform(platform_config(**_every_release(), chartMirror=MIRROR))
    assert _repos(recording) == dict.fromkeys(UPSTREAM, MIRROR)


def test_an_empty_environment_variable_means_upstream(monkeypatch):
    """`MLPLATFORM_CHART_MIRROR= pulumi up` is how a shell unsets it for one command."""
    monkeypatch.setenv(CHART_MIRROR_ENV, "")
    assert _repos(run_platform(_every_release())) == {chart: pin.repo for chart, pin in UPSTREAM.items()}


@pytest.mark.parametrize(
    "url",
    [
        "charts.internal.example",
        "ftp://charts.internal.example",
        "oci://registry/charts",
        "https://charts.internal.example/?x=1",
    ],
)
def test_invalid_config_key_fails_before_any_resource(url):
    """A mistyped mirror stops the entry point with the key, the value and the rule named."""
    with pytest.raises(ConfigError) as excinfo:
        run_platform(platform_config(chartMirror=url))
    message = str(excinfo.value)
    assert f"mlplatform:chartMirror = '{url}'" in message
    assert "http:// or https:// URL" in message
    assert recording_of(excinfo.value).resources == []


def test_invalid_environment_variable_fails_before_any_resource(monkeypatch):
    """The variable is checked like the key, and the message says which of the two wins."""
    monkeypatch.setenv(CHART_MIRROR_ENV, "charts.internal.example")
    with pytest.raises(ConfigError) as excinfo:
        run_platform(platform_config())
    message = str(excinfo.value)
    assert f"{CHART_MIRROR_ENV} = 'charts.internal.example'" in message
    assert "mlplatform:chartMirror, when set, takes precedence" in message
    assert recording_of(excinfo.value).resources == []


def test_invalid_environment_variable_fails_even_when_the_key_wins(monkeypatch):
    """A typo on a runner must surface, not hide until a stack without the key runs there."""
    monkeypatch.setenv(CHART_MIRROR_ENV, "not a url")
    with pytest.raises(ConfigError, match=CHART_MIRROR_ENV):
        run_platform(platform_config(chartMirror=MIRROR))


def test_render_plan_shows_the_mirror(monkeypatch, tmp_path):
    """A reviewer reads plan.yaml to see where `pulumi up` fetches each chart from: the effective repository."""
    monkeypatch.setenv(CHART_MIRROR_ENV, MIRROR)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["render", str(ROOT), "prod", "--out", str(tmp_path)]) == 0
    releases = yaml.safe_load((tmp_path / "plan.yaml").read_text())["helmReleases"]
    assert {r["chart"] for r in releases} == set(UPSTREAM)
    assert {r["chart"]: r["repo"] for r in releases} == dict.fromkeys(UPSTREAM, MIRROR)
