"""Where the platform's Helm charts come from: their upstream repositories, or one internal mirror.

Air-gapped and regulated users cannot reach the upstream repositories; they run an
internal Helm repository (Artifactory, Nexus, ChartMuseum, Harbor) that serves the
same chart names at the same versions. One setting points every release at it:

1. `mlplatform:chartMirror` in the stack's config, if set; else
2. the environment variable `MLPLATFORM_CHART_MIRROR`, if set and not empty; else
3. each chart's own `mlplatform:charts.<chart>.repo` (the upstream repositories).

The stack's own key wins because it is reviewed and committed with the stack,
while the variable is a property of the machine running `pulumi up`: a runner
inside the air gap exports it once for every stack, and a stack that names its
mirror is not redirected by whatever the runner exports. A variable that is set
must be a valid URL even when the key wins, so a typo on a runner is never
silently ignored.

The trade-off: a mirror is all-or-nothing. Pinned versions still come from
`mlplatform:charts`; only the repository URL is replaced, so a mirror missing
one chart fails that release at `pulumi up` rather than falling back upstream,
which is what an air gap needs.

This module is called by the entry point only; components receive the resolved
`ChartConfig`s and never look at the environment.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlplatform.configuration import ConfigError
from mlplatform.platform.charts_config import MIRROR_RULE, MIRROR_URL, ChartsConfig
from mlplatform.platform.config import CONFIG_NAMESPACE, PlatformConfig

CHART_MIRROR_ENV = "MLPLATFORM_CHART_MIRROR"
CHART_MIRROR_KEY = f"{CONFIG_NAMESPACE}:chartMirror"


def effective_chart_mirror(configured: str | None, environ: Mapping[str, str], *, stack: str) -> str | None:
    """The mirror every release uses, or None for the upstream repositories.

    `configured` is the validated `mlplatform:chartMirror`; `environ` is the
    process environment (passed in, so callers and tests decide what it is).
    """
    from_env = environ.get(CHART_MIRROR_ENV, "")
    if from_env and not MIRROR_URL.match(from_env):
        raise ConfigError(
            stack,
            [
                f"environment variable {CHART_MIRROR_ENV} = {from_env!r}: {MIRROR_RULE}; unset it or fix it "
                f"({CHART_MIRROR_KEY}, when set, takes precedence over it)"
            ],
        )
    return configured or from_env or None


def mirrored_charts(charts: ChartsConfig, mirror: str | None) -> ChartsConfig:
    """`charts` with every repository replaced by `mirror`; the names and pinned versions are kept."""
    if mirror is None:
        return charts
    return charts.model_copy(
        update={name: getattr(charts, name).model_copy(update={"repo": mirror}) for name in ChartsConfig.model_fields}
    )


def with_chart_mirror(config: PlatformConfig, environ: Mapping[str, str], *, stack: str) -> PlatformConfig:
    """`config` with its charts taken from the effective mirror, if there is one."""
    mirror = effective_chart_mirror(config.chart_mirror, environ, stack=stack)
    return config.model_copy(update={"charts": mirrored_charts(config.charts, mirror)})
