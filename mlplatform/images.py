"""Where every image the platform and the model stacks run is pulled from: its own registry, or one mirror.

An air-gapped or regulated cluster has no route to public registries; it pulls
through an internal one (Harbor, Artifactory, ECR pull-through) that serves each
upstream image under a prefix. `mlplatform:imageRegistry` names that prefix, and
every image is rewritten the same way, ours and each chart's:

    <prefix>/<the image's own registry>/<its repository>:<tag>
    quay.io/prometheus/prometheus:v3.14.0 -> mirror.internal/quay.io/prometheus/prometheus:v3.14.0

Keeping the upstream registry in the path (rather than replacing it, as a chart's
`global.imageRegistry` does) means two registries' images never collide under one
prefix and the mirror's layout is what `crane copy` or a pull-through cache
produces without a mapping table. Tags and digests are kept: the pin is upstream's.

The prefix is resolved once, by the platform's entry point (the stack's key, else
`MLPLATFORM_IMAGE_REGISTRY`), and model stacks read it from the platform's
outputs, so one stack file decides it for both; the policy pack's
`images-from-mirror` rule gets it from there too (mlplatform/tools/ci/policy_config.py).
"""

from __future__ import annotations

import re

# An image reference's digest, and its tag: whatever follows the last colon after the last slash
# (a colon before a slash is a registry port: `registry:5000/team/image`). `config_types` validates
# image fields with the same two patterns.
DIGEST = re.compile(r"@sha256:[a-f0-9]{64}$")
TAG = re.compile(r":([\w][\w.-]{0,127})$")

IMAGE_REGISTRY_ENV = "MLPLATFORM_IMAGE_REGISTRY"
# A registry host (with an optional port) and an optional path, no scheme: what
# precedes an image's repository in a pull reference.
REGISTRY_PREFIX = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
REGISTRY_RULE = (
    "must be a registry host with an optional port and path, without a scheme or a trailing slash "
    "(registry.internal.example/mirror)"
)
DOCKER_HUB = "docker.io"
# A tag that names a release: it carries a version number (v1.2.3, 4.5.3-4.8.2-ubuntu22.04, edge-25.8.5).
_VERSION_IN_TAG = re.compile(r"\d+\.\d+")


def canonical(image: str) -> str:
    """`image` with its registry spelled out, as the container runtime resolves it.

    `postgres:17.6` -> `docker.io/library/postgres:17.6`; `grafana/grafana:13` ->
    `docker.io/grafana/grafana:13`. The first path part is a registry when it has
    a dot or a port, or is `localhost`, as the runtime decides."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"{DOCKER_HUB}/{image}" if rest else f"{DOCKER_HUB}/library/{image}"


def mirrored(image: str, registry: str | None) -> str:
    """`image` as pulled through `registry`; unchanged without one, or when it already comes from it."""
    if registry is None or image.startswith(f"{registry}/"):
        return image
    return f"{registry}/{canonical(image)}"


def is_pinned(image: str) -> bool:
    """Whether `image` names one build: a digest, or a tag carrying a version number.

    Stricter than the config's `pinned_image` rule (which refuses only `latest` and
    no tag): a chart's placeholder tag or a branch name (`main`, `stable`) is not a
    release, and the scan of the charts' output holds every image to this."""
    if DIGEST.search(image):
        return True
    tag = TAG.search(image.rsplit("/", 1)[-1])
    return tag is not None and bool(_VERSION_IN_TAG.search(tag.group(1)))
