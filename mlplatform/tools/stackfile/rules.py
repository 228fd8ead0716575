"""The rules of a rollout, in one place: the CLI and the stack-file edits both call these.

Each raises Refused (exit code 1) with a message that says what to do instead.
The rules about a single config (weights in [0, 100], a canary that differs
from stable) are the stack's config model's (`mlplatform/model/config.py`);
these are about moving from one config to the next.
"""

from __future__ import annotations

from mlplatform.model.config import CONFIG_NAMESPACE, CanaryConfig, ModelStackConfig

PROMOTE_AT = 100


class Refused(Exception):
    """The gate, the registry or a rollout rule said no; nothing was written."""


def require_canary(config: ModelStackConfig) -> CanaryConfig:
    """A canary exists (at any weight, 0 included)."""
    if config.canary is None:
        raise Refused(f"no canary in the stack (no `{CONFIG_NAMESPACE}:canary` key): start one with `rollout start`")
    return config.canary


def require_live_canary(config: ModelStackConfig) -> CanaryConfig:
    """A canary exists and takes traffic: an aborted canary (weight 0) never creeps back by a step."""
    canary = require_canary(config)
    if canary.weight == 0:
        raise Refused(f"canary {canary.version} was aborted (weight 0); start a new rollout with `rollout start`")
    return canary


def require_promotable(config: ModelStackConfig) -> CanaryConfig:
    """Promotion only at 100%: promoting earlier would skip the last gated steps."""
    canary = require_live_canary(config)
    if canary.weight != PROMOTE_AT:
        raise Refused(f"canary {canary.version} is at {canary.weight}%; promote only at {PROMOTE_AT}%")
    return canary


def require_no_live_canary(config: ModelStackConfig) -> None:
    """A new canary may replace an aborted one, never one that takes traffic."""
    if config.canary is not None and config.canary.weight > 0:
        raise Refused(
            f"a rollout is under way: canary {config.canary.version} at {config.canary.weight}%; "
            "promote or abort it first"
        )


def dwell_seconds(config: ModelStackConfig, weight: int, override: float | None) -> float:
    """How long the step at `weight` dwells: `override` (watch's --dwell-seconds), else its configured dwell."""
    if override is not None:
        return override
    # A hand-set weight between steps dwells as long as the step below it.
    index = max((i for i, s in enumerate(config.steps) if s <= weight), default=0)
    return config.analysis.dwell_seconds(index)
