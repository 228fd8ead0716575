"""The rendered Alertmanager configuration, checked by Alertmanager's own tool (`amtool`).

`amtool check-config` parses it with Alertmanager's config loader (receivers,
matchers, inhibit rules), and `amtool config routes test` walks its routing
tree, so the severity routing is proven by Alertmanager rather than by our
reading of it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlplatform.platform.alertmanager import alertmanager_yaml
from mlplatform.platform.monitoring_config import AlertingConfig
from tests.support.helpers import build
from tests.support.prerequisites import require_binary

pytestmark = pytest.mark.integration

SLACK = "https://hooks.slack.com/services/T000/B000/abcdefghijklmnop"
WEBHOOK = "https://alerts.example.com/hook"
PAGERDUTY_KEY = "0123456789abcdef0123456789ABCDEF"


def _amtool() -> str:
    return require_binary("amtool")


def _config_file(tmp_path: Path, alerting: AlertingConfig) -> Path:
    path = tmp_path / "alertmanager.yaml"
    path.write_text(alertmanager_yaml(alerting))
    result = subprocess.run(
        [_amtool(), "check-config", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return path


def _receiver(config: Path, *labels: str) -> str:
    result = subprocess.run(
        [_amtool(), "config", "routes", "test", f"--config.file={config}", *labels],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_every_receiver_set_routes_by_severity(tmp_path):
    """Critical pages, the rest goes to chat, the chart's Watchdog nowhere."""
    alerting = build(AlertingConfig, slack_webhook_url=SLACK, webhook_url=WEBHOOK, pagerduty_routing_key=PAGERDUTY_KEY)
    config = _config_file(tmp_path, alerting)
    assert _receiver(config, "alertname=ModelTrainingFailed", "severity=critical") == "pagerduty"
    assert _receiver(config, "alertname=GpuIdle", "severity=warning") == "chat"
    assert _receiver(config, "alertname=Watchdog", "severity=none") == "null"


def test_without_pagerduty_critical_alerts_reach_chat(tmp_path):
    """No routing key: critical alerts must still reach a person rather than vanish."""
    config = _config_file(tmp_path, build(AlertingConfig, webhook_url=WEBHOOK))
    assert _receiver(config, "alertname=ModelStableSuccessRateLow", "severity=critical") == "chat"


def test_without_receivers_the_config_is_still_valid(tmp_path):
    """A stack with no receivers yet still gets a configuration Alertmanager loads."""
    config = _config_file(tmp_path, build(AlertingConfig))
    assert _receiver(config, "alertname=ModelTrainingFailed", "severity=critical") == "null"
