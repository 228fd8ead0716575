"""`mlplatform:imageRegistry`: every image the platform and its model stacks declare is pinned and,
with a mirror set, pulled through it.

An air-gapped cluster has no route to public registries, so one image left pointing
upstream is a pod stuck in ImagePullBackOff. These tests scan every pod spec the
programs declare (the platform's example stacks and the model stacks' examples);
tests/platform/test_image_mirror_charts.py does the same for what the charts render.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlplatform.configuration import ConfigError
from mlplatform.images import IMAGE_REGISTRY_ENV, canonical, is_pinned, mirrored
from mlplatform.platform.chart_images import CHART_IMAGES, mirrored_image_values
from mlplatform.platform.image_mirror import effective_image_registry
from mlplatform.tools.ci.policy_config import main as policy_config_main
from mlplatform.tools.offline.engine import Recording, read_stack_file, run_entry_point
from tests.model.helpers import MODEL_STACK_DIR, PLATFORM_OUTPUTS
from tests.support.helpers import ROOT, run_platform
from tests.support.types import HELM_RELEASE

MIRROR = "registry.internal.example/mirror"
PLATFORM_STACKS = ("dev", "prod")
MODEL_STACKS = ("fraud-detector-dev", "fraud-detector-prod")


@pytest.fixture(autouse=True)
def no_ambient_registry(monkeypatch):
    """Whatever the machine exports must not decide these tests; each sets what it needs."""
    monkeypatch.delenv(IMAGE_REGISTRY_ENV, raising=False)


def _images(value: Any, where: str = "") -> list[tuple[str, str]]:
    """(path, image) of every container in `value`, at any depth: Deployments, Jobs and custom resources alike."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            if key in ("containers", "initContainers", "ephemeralContainers") and isinstance(child, list):
                found += [(f"{where}.{key}[{c.get('name')}]", c["image"]) for c in child if "image" in c]
            else:
                found += _images(child, f"{where}.{key}")
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += _images(child, f"{where}[{i}]")
    return found


def _declared_images(recording: Recording) -> list[tuple[str, str]]:
    # Helm releases' values are the charts' business: the chart scan renders them.
    return [
        (f"{r.name}{path}", image)
        for r in recording.resources
        if r.type != HELM_RELEASE
        for path, image in _images(r.inputs)
    ]


def _platform(stack: str, registry: str | None = None) -> Recording:
    config, secrets = read_stack_file(ROOT / f"Pulumi.{stack}.yaml", "mlplatform")
    if registry is not None:
        config = {**config, "mlplatform:imageRegistry": registry}
    return run_entry_point(ROOT, stack=stack, config=config, secret_keys=secrets)


def _model(stack: str, registry: str | None = None) -> Recording:
    outputs = {**PLATFORM_OUTPUTS, "imageRegistry": registry}
    references = {"organization/mlplatform/dev": outputs, "organization/mlplatform/prod": outputs}
    return run_entry_point(MODEL_STACK_DIR, stack=stack, stack_references=references)


# -- the rewrite ------------------------------------------------------------------
def test_an_image_keeps_its_own_registry_under_the_prefix():
    """Two registries' images never collide under one prefix, and tags and digests stay as pinned."""
    assert canonical("postgres:17.6") == "docker.io/library/postgres:17.6"
    assert canonical("grafana/grafana:13.2.0") == "docker.io/grafana/grafana:13.2.0"
    assert canonical("localhost:5000/team/app:1.0") == "localhost:5000/team/app:1.0"
    assert (
        mirrored("quay.io/prometheus/prometheus:v3.14.0", MIRROR) == f"{MIRROR}/quay.io/prometheus/prometheus:v3.14.0"
    )
    assert mirrored("postgres:17.6", MIRROR) == f"{MIRROR}/docker.io/library/postgres:17.6"
    assert mirrored("postgres:17.6", None) == "postgres:17.6"


def test_an_image_already_from_the_mirror_is_left_alone():
    """A stack file that names the mirrored image itself must not get the prefix twice."""
    image = f"{MIRROR}/ghcr.io/example/fraud-serving:5.0.0"
    assert mirrored(image, MIRROR) == image


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("quay.io/prometheus/prometheus:v3.14.0-distroless", True),
        ("cr.l5d.io/linkerd/proxy:edge-25.8.5", True),
        ("nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-ubuntu22.04", True),
        ("ghcr.io/example/app@sha256:" + "a" * 64, True),
        ("cr.l5d.io/linkerd/smi-adaptor:linkerdSMIVersionValue", False),  # a chart's unstamped placeholder
        ("ghcr.io/example/app:main", False),
        ("ghcr.io/example/app:latest", False),
        ("registry:5000/example/app", False),
    ],
)
def test_pinned_means_a_digest_or_a_versioned_tag(image, pinned):
    assert is_pinned(image) is pinned


def test_each_chart_value_gets_the_prefix_before_its_upstream_value():
    values = mirrored_image_values("linkerd-control-plane", MIRROR)
    assert values["proxy"]["image"]["name"] == f"{MIRROR}/cr.l5d.io/linkerd/proxy"
    assert values["controllerImage"] == f"{MIRROR}/cr.l5d.io/linkerd/controller"
    assert mirrored_image_values("linkerd-control-plane", None) == {}


# -- where the prefix comes from ---------------------------------------------------
def test_the_stack_key_wins_over_the_variable_and_the_variable_applies_without_it():
    environ = {IMAGE_REGISTRY_ENV: "runner.example/cache"}
    assert effective_image_registry(MIRROR, environ, stack="dev") == MIRROR
    assert effective_image_registry(None, environ, stack="dev") == "runner.example/cache"
    assert effective_image_registry(None, {}, stack="dev") is None


def test_a_malformed_variable_is_refused_even_when_the_key_wins():
    with pytest.raises(ConfigError, match=rf"{IMAGE_REGISTRY_ENV} = 'https://x.example'.*mlplatform:imageRegistry"):
        effective_image_registry(MIRROR, {IMAGE_REGISTRY_ENV: "https://x.example"}, stack="dev")


@pytest.mark.parametrize("value", ["https://registry.example", "registry.example/", "Registry.Example"])
def test_a_malformed_key_is_refused_naming_it(value):
    from tests.support.helpers import platform_config

    with pytest.raises(ConfigError, match=r"mlplatform:imageRegistry") as error:
        run_platform(platform_config(imageRegistry=value))
    assert "registry host" in str(error.value)


# -- every pod spec the programs declare ------------------------------------------
@pytest.mark.parametrize("stack", PLATFORM_STACKS)
def test_every_platform_image_is_pinned(stack):
    images = _declared_images(_platform(stack))
    assert len(images) >= 2, images  # MLflow and the GPU exporter at least: an empty scan proves nothing
    assert [i for i in images if not is_pinned(i[1])] == []


@pytest.mark.parametrize("stack", PLATFORM_STACKS)
def test_with_a_mirror_every_platform_image_and_chart_comes_through_it(stack):
    recording = _platform(stack, MIRROR)
    images = _declared_images(recording)
    assert images and [i for i in images if not i[1].startswith(f"{MIRROR}/")] == []
    assert [i for i in images if not is_pinned(i[1])] == []
    # Every release gets its chart's whole image table, which the chart scan checks against the charts.
    for release in recording.of_type(HELM_RELEASE):
        expected = mirrored_image_values(release.inputs["chart"], MIRROR)
        assert _contains(release.inputs.get("values") or {}, expected), release.inputs["chart"]
    assert recording.stack_outputs["imageRegistry"] == MIRROR


def test_without_a_mirror_no_release_sets_an_image_value():
    """Turning the feature off leaves the charts' own image values (and so the plans) as they were."""
    for release in _platform("prod").of_type(HELM_RELEASE):
        values = release.inputs.get("values") or {}
        for path, _ in CHART_IMAGES[release.inputs["chart"]]:
            assert _lookup(values, path) is None, (release.inputs["chart"], path)


def test_the_variable_alone_sends_the_platform_through_the_mirror(monkeypatch):
    monkeypatch.setenv(IMAGE_REGISTRY_ENV, MIRROR)
    images = _declared_images(_platform("dev"))
    assert images and all(image.startswith(f"{MIRROR}/") for _, image in images), images


@pytest.mark.parametrize("stack", MODEL_STACKS)
def test_model_stacks_pull_through_the_platforms_mirror(stack):
    """The model stack has no key of its own: the platform it runs on decides, through its output."""
    upstream = _declared_images(_model(stack))
    assert upstream and [i for i in upstream if not is_pinned(i[1])] == []
    assert not any(image.startswith(f"{MIRROR}/") for _, image in upstream)
    through = _declared_images(_model(stack, MIRROR))
    assert sorted(through) == sorted((path, mirrored(image, MIRROR)) for path, image in upstream)


def test_the_policy_packs_mirror_comes_from_the_platform_stack(tmp_path):
    """One place: the pack's `images-from-mirror` rule checks the prefix the stack file sets."""
    stack_file = tmp_path / "Pulumi.air.yaml"
    stack_file.write_text(f"config:\n  mlplatform:imageRegistry: {MIRROR}\n")
    out = tmp_path / "policy.json"
    assert policy_config_main(["--platform-stack-file", str(stack_file), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["images-from-mirror"]["imageMirror"] == MIRROR
    # A stack without the key: the rule has nothing to enforce.
    stack_file.write_text("config:\n  mlplatform:environment: dev\n")
    assert policy_config_main(["--platform-stack-file", str(stack_file), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["images-from-mirror"]["imageMirror"] == ""


def test_the_workflows_find_the_platform_stack_from_the_previewed_stack(tmp_path):
    """deploy.yml and preview.yml pass the previewed stack's file: a model stack's mirror is its platform's."""
    (tmp_path / "Pulumi.air.yaml").write_text(f"config:\n  mlplatform:imageRegistry: {MIRROR}\n")
    model = tmp_path / "stacks" / "Pulumi.fraud-air.yaml"
    model.parent.mkdir()
    model.write_text("config:\n  mlmodel:platformStack: organization/mlplatform/air\n")
    out = tmp_path / "policy.json"
    for stack_file in (model, tmp_path / "Pulumi.air.yaml"):
        argv = ["--stack-file", str(stack_file), "--platform-dir", str(tmp_path), "--out", str(out)]
        assert policy_config_main(argv) == 0
        assert json.loads(out.read_text())["images-from-mirror"]["imageMirror"] == MIRROR
    # A platform stack the repository does not hold: refused, naming the key, rather than checking nothing.
    model.write_text("config:\n  mlmodel:platformStack: organization/mlplatform/gone\n")
    argv = ["--stack-file", str(model), "--platform-dir", str(tmp_path), "--out", str(out)]
    assert policy_config_main(argv) == 2


def _contains(values: dict[str, Any], expected: dict[str, Any]) -> bool:
    return all(
        _contains(values.get(k) or {}, v) if isinstance(v, dict) else values.get(k) == v for k, v in expected.items()
    )


def _lookup(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node
