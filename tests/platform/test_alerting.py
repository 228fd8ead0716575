"""Where alerts go (Alertmanager's receivers, routed by severity) and Grafana's admin password.

Both are credentials: the tests check that they reach the cluster only inside
Secrets whose contents are Pulumi secrets, and never through the chart's values.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mlplatform.configuration import ConfigError
from mlplatform.platform.alertmanager import alertmanager_config
from mlplatform.platform.monitoring_config import AlertingConfig
from mlplatform.tools.offline.engine import Recording, recording_of, run_entry_point
from tests.support.helpers import ROOT, build, platform_config, qualify, run_platform
from tests.support.types import HELM_RELEASE, K8S_SECRET, RANDOM_PASSWORD

SECRET = K8S_SECRET
RELEASE = HELM_RELEASE
SLACK = "https://hooks.slack.com/services/T000/B000/abcdefghijklmnop"
WEBHOOK = "https://alerts.example.com/hook"
PAGERDUTY_KEY = "0123456789abcdef0123456789ABCDEF"
ALERTING = {"slackWebhookUrl": SLACK, "webhookUrl": WEBHOOK, "pagerdutyRoutingKey": PAGERDUTY_KEY}


def _run_with_alerting(alerting: dict[str, Any], **monitoring: Any) -> Recording:
    """The platform with `monitoring.alerting` given as a Pulumi secret, as docs/configuration.md says to set it."""
    config = qualify("mlplatform", platform_config(monitoring={"alerting": alerting, **monitoring}))
    config["aws:region"] = "us-west-2"
    return run_entry_point(ROOT, stack="dev", config=config, secret_keys=["mlplatform:monitoring"])


@pytest.fixture(scope="module")
def alerting() -> Recording:
    return _run_with_alerting(ALERTING)


def _alertmanager_secret(recording: Recording):
    return recording.one(SECRET, "monitoring-alertmanager-config")


def _routed(config: dict[str, Any], labels: dict[str, str]) -> str:
    """The receiver Alertmanager's routing tree picks for an alert (first matching child, else the root)."""
    for route in config["route"]["routes"]:
        matchers = [m.replace('"', "").split(" = ") for m in route["matchers"]]
        if all(labels.get(key) == value for key, value in matchers):
            return route["receiver"]
    return config["route"]["receiver"]


def test_receivers_reach_alertmanager_only_as_a_secret(alerting):
    """The URLs and the routing key are in our Secret, marked secret; the chart's values never see them."""
    secret = _alertmanager_secret(alerting)
    assert secret.metadata["name"] == "alertmanager-config"
    assert secret.input_is_secret("stringData")
    rendered = secret.inputs["stringData"]["alertmanager.yaml"]
    for credential in (SLACK, WEBHOOK, PAGERDUTY_KEY):
        assert credential in rendered
    release = alerting.one(RELEASE, "monitoring-kube-prometheus-stack")
    text = yaml.safe_dump(release.inputs["values"])
    assert all(credential not in text for credential in (SLACK, WEBHOOK, PAGERDUTY_KEY))
    spec = release.inputs["values"]["alertmanager"]["alertmanagerSpec"]
    assert {k: v for k, v in spec.items() if k != "resources"} == {
        "useExistingSecret": True,
        "configSecret": "alertmanager-config",
    }
    assert alerting.depends_on(release, secret)


def test_critical_pages_and_the_rest_goes_to_chat(alerting):
    """Routed by severity: PagerDuty for critical, Slack and the webhook for everything else."""
    config = yaml.safe_load(_alertmanager_secret(alerting).inputs["stringData"]["alertmanager.yaml"])
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["pagerduty"]["pagerduty_configs"][0]["routing_key"] == PAGERDUTY_KEY
    assert receivers["chat"]["slack_configs"][0]["api_url"] == SLACK
    assert receivers["chat"]["webhook_configs"][0]["url"] == WEBHOOK
    assert _routed(config, {"alertname": "ModelTrainingFailed", "severity": "critical"}) == "pagerduty"
    assert _routed(config, {"alertname": "GpuIdle", "severity": "warning"}) == "chat"
    assert _routed(config, {"alertname": "Watchdog", "severity": "none"}) == "null"


def test_critical_goes_to_chat_without_pagerduty():
    """Without a routing key nothing pages, but critical alerts still reach a person."""
    config = alertmanager_config(build(AlertingConfig, slack_webhook_url=SLACK))
    assert [r["name"] for r in config["receivers"]] == ["null", "chat"]
    assert _routed(config, {"alertname": "ModelTrainingFailed", "severity": "critical"}) == "chat"


def test_without_receivers_alerts_stay_in_alertmanager():
    """No receiver configured: a valid config whose routes end in the null receiver (docs/platform.md says so)."""
    config = alertmanager_config(build(AlertingConfig))
    assert config["receivers"] == [{"name": "null"}]
    assert config["route"]["receiver"] == "null"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("slackWebhookUrl", "http://hooks.slack.com/services/x", "must be an https:// URL"),
        ("webhookUrl", "alerts.example.com", "must be an https:// URL"),
        ("pagerdutyRoutingKey", "short", "32-character PagerDuty integration key"),
    ],
)
def test_bad_receiver_values_stop_before_any_resource(key, value, message):
    """A malformed receiver is a config error naming the key, and nothing is registered."""
    with pytest.raises(ConfigError, match=message) as caught:
        _run_with_alerting({key: value})
    assert f"mlplatform:monitoring.alerting.{key}" in str(caught.value)
    assert value not in str(caught.value), "a secret's value must not be echoed"


@pytest.mark.parametrize("key", sorted(ALERTING))
def test_a_receiver_in_plain_text_stops_before_any_resource(key):
    """A webhook URL or routing key typed in plain text would sit unencrypted in the stack file
    and the state: the config loader refuses it, naming the key and how to set it as a secret."""
    config = qualify("mlplatform", platform_config(monitoring={"alerting": {key: ALERTING[key]}}))
    config["aws:region"] = "us-west-2"
    with pytest.raises(ConfigError) as caught:
        run_entry_point(ROOT, stack="dev", config=config)
    message = str(caught.value)
    assert f"mlplatform:monitoring.alerting.{key} must be a Pulumi secret" in message
    assert ALERTING[key] not in message
    assert recording_of(caught.value).resources == []


def test_receiver_fields_are_marked_secret():
    """The marker the config loader checks: each receiver credential must come as a Pulumi secret."""
    for name in ("slack_webhook_url", "webhook_url", "pagerduty_routing_key"):
        assert AlertingConfig.model_fields[name].json_schema_extra == {"secret": True}, name


def test_grafana_admin_password_is_generated_and_secret(dev_platform):
    """Not the chart's default password: a random one, in a Secret the chart is pointed at."""
    password = dev_platform.one(RANDOM_PASSWORD, "monitoring-grafana-admin-password")
    assert password.inputs["length"] >= 32
    secret = dev_platform.one(SECRET, "monitoring-grafana-admin")
    assert secret.metadata["name"] == "grafana-admin"
    assert secret.input_is_secret("stringData")
    assert set(secret.inputs["stringData"]) == {"admin-user", "admin-password"}
    release = dev_platform.one(RELEASE, "monitoring-kube-prometheus-stack")
    grafana = release.inputs["values"]["grafana"]
    assert grafana["admin"] == {
        "existingSecret": "grafana-admin",
        "userKey": "admin-user",
        "passwordKey": "admin-password",
    }
    assert "adminPassword" not in grafana
    assert dev_platform.depends_on(release, secret)


def test_grafana_off_declares_no_password():
    """`monitoring.grafana: false` turns Grafana off, and with it the password and its Secret."""
    recording = run_platform(platform_config(monitoring={"grafana": False}))
    release = recording.one(RELEASE, "monitoring-kube-prometheus-stack")
    assert release.inputs["values"]["grafana"] == {"enabled": False}
    # MLflow's database password is the only generated one left.
    assert [p.name for p in recording.of_type(RANDOM_PASSWORD)] == ["mlflow-db-password"]
    assert [s.name for s in recording.of_type(SECRET) if "grafana" in s.name] == []
