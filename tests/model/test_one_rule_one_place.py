"""Rules the model program and the rollout tool share live in one function each; both callers use it."""

from __future__ import annotations

import pytest

from mlplatform.configuration import ConfigError, validate_config
from mlplatform.model import config as model_config_module
from mlplatform.model.config import (
    CONFIG_NAMESPACE,
    ModelStackConfig,
    TrafficWeights,
    VersionWeight,
    check_split_weights,
)
from mlplatform.model.serving_config import RouteConfig
from mlplatform.model.traffic import ModelTrafficArgs, http_route_spec
from tests.model.helpers import model_config, run_model, with_canary


def _routes(count: int) -> list[dict]:
    return [{"name": f"r{i}", "method": "GET", "pathRegex": f"/r{i}", "timeout": "1s"} for i in range(count)]


def test_route_cap_is_one_rule_for_config_and_httproute(monkeypatch) -> None:
    """Lowering the cap in its one home changes what the config accepts and what the HTTPRoute builder accepts."""
    monkeypatch.setattr(model_config_module, "MAX_GATEWAY_ROUTES", 2)
    values = model_config(trafficApi="gateway", serving={"routes": _routes(3)})
    with pytest.raises(ConfigError, match="may list at most 2, got 3"):
        validate_config(ModelStackConfig, values, stack="s", namespace=CONFIG_NAMESPACE)
    routes = [RouteConfig.model_validate(r) for r in _routes(3)]
    args = ModelTrafficArgs(
        model_name="m",
        api="gateway",
        namespace="ns",
        apex_service="m",
        port=8080,
        weights=TrafficWeights(VersionWeight("v1", "m-v1", 100), None),
        services={"m-v1": "m-v1"},
        routes=routes,
    )
    with pytest.raises(ValueError, match="may list at most 2, got 3"):
        http_route_spec(args)
    assert http_route_spec(ModelTrafficArgs(**{**args.__dict__, "routes": routes[:2]}))["rules"]


@pytest.mark.parametrize("weights", [[90, 20], [110, -10], [50]])
def test_split_weights_rule(weights: list[int]) -> None:
    """Non-negative and summing to 100, or the split is refused, in the program's config and its component."""
    with pytest.raises(ValueError, match="non-negative and sum to 100"):
        check_split_weights(weights)


def test_traffic_weights_are_valid_by_construction() -> None:
    """A split that does not sum to 100 cannot exist as a value, so nothing downstream re-checks it."""
    with pytest.raises(ValueError, match="non-negative and sum to 100, got \\[90, 20\\]"):
        TrafficWeights(VersionWeight("v1", "m-v1", 90), VersionWeight("v2", "m-v2", 20))
    weights = TrafficWeights(VersionWeight("v1", "m-v1", 75), VersionWeight("v2", "m-v2", 25))
    assert weights.by_object_name() == {"m-v1": 75, "m-v2": 25}


@pytest.mark.parametrize(("values", "split"), [(with_canary(25), [75, 25]), (model_config(), [100])])
def test_the_split_rule_runs_once_per_run(monkeypatch, values, split) -> None:
    """The model program computes the weights once and hands the value to the split, the records and the outputs."""
    calls: list[list[int]] = []
    checked = model_config_module.check_split_weights
    monkeypatch.setattr(model_config_module, "check_split_weights", lambda w: (calls.append(list(w)), checked(w))[1])
    recording = run_model(values)
    assert calls == [split]
    assert list(recording.stack_outputs["weights"].values()) == split


def test_serving_namespace_asks_the_platform_only_when_needed() -> None:
    """`model.namespace` wins; otherwise the platform's value, looked up lazily (the rollout tool skips the lookup)."""
    asked: list[bool] = []

    def platform() -> str:
        asked.append(True)
        return "from-platform"

    pinned = validate_config(
        ModelStackConfig, model_config(model={"name": "m", "namespace": "own"}), stack="s", namespace=CONFIG_NAMESPACE
    )
    assert pinned.serving_namespace(platform) == "own" and asked == []
    default = validate_config(ModelStackConfig, model_config(), stack="s", namespace=CONFIG_NAMESPACE)
    assert default.serving_namespace(platform) == "from-platform" and asked == [True]
