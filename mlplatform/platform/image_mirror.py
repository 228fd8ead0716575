"""Which image registry every image is pulled through: `mlplatform:imageRegistry`, or the runner's variable.

Resolved as the chart mirror is (mlplatform/platform/chart_mirror.py), for the same
reasons: the stack's own key wins because it is reviewed with the stack; else
`MLPLATFORM_IMAGE_REGISTRY`, set once on a runner inside the air gap; else none,
and every image comes from its own registry. A variable that is set must be valid
even when the key wins, so a typo on a runner is never silently ignored.

Called by the entry point only; components receive the resolved prefix. The
platform exports it (output `imageRegistry`), so the model stacks on it pull
through the same mirror without a key of their own.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlplatform.configuration import ConfigError
from mlplatform.images import IMAGE_REGISTRY_ENV, REGISTRY_PREFIX, REGISTRY_RULE
from mlplatform.platform.config import CONFIG_NAMESPACE, PlatformConfig

IMAGE_REGISTRY_KEY = f"{CONFIG_NAMESPACE}:imageRegistry"


def effective_image_registry(configured: str | None, environ: Mapping[str, str], *, stack: str) -> str | None:
    """The prefix every image is pulled through, or None for the images' own registries."""
    from_env = environ.get(IMAGE_REGISTRY_ENV, "")
    if from_env and not REGISTRY_PREFIX.match(from_env):
        raise ConfigError(
            stack,
            [
                f"environment variable {IMAGE_REGISTRY_ENV} = {from_env!r}: {REGISTRY_RULE}; unset it or fix it "
                f"({IMAGE_REGISTRY_KEY}, when set, takes precedence over it)"
            ],
        )
    return configured or from_env or None


def with_image_registry(config: PlatformConfig, environ: Mapping[str, str], *, stack: str) -> PlatformConfig:
    """`config` with `image_registry` resolved from the key and the environment."""
    registry = effective_image_registry(config.image_registry, environ, stack=stack)
    return config.model_copy(update={"image_registry": registry})
