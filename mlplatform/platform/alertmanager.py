"""Alertmanager's configuration: receivers from `mlplatform:monitoring.alerting`, routed by severity.

- `severity: critical` pages PagerDuty when a routing key is set;
- everything else (and critical alerts without PagerDuty) goes to the chat
  receiver: Slack and/or the generic webhook, whichever are set;
- the chart's always-firing `Watchdog` and its `InfoInhibitor` go nowhere, as
  in the chart's own default.

With no receiver at all, alerts still reach Alertmanager (its UI and API show
them) but notify no one; docs/platform.md says so.

The rendered file holds credentials, so the Monitoring component only ever
passes it on as a Pulumi secret, inside a Kubernetes Secret.
"""

from __future__ import annotations

from typing import Any

import yaml

from mlplatform.platform.monitoring_config import AlertingConfig

CONFIG_KEY = "alertmanager.yaml"
NULL_RECEIVER = "null"
CHAT_RECEIVER = "chat"
PAGER_RECEIVER = "pagerduty"
# Alerts of one model (or one training run) are grouped into one notification.
GROUP_BY = ["alertname", "namespace", "model"]

_SLACK_TITLE = "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})"
_SLACK_TEXT = "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ .Annotations.description }}\n\n{{ end }}"


def _inhibit_rules() -> list[dict[str, Any]]:
    """The chart's defaults: a critical alert mutes the warnings of the same alert and namespace."""
    return [
        {
            "source_matchers": ["severity = critical"],
            "target_matchers": ["severity =~ warning|info"],
            "equal": ["namespace", "alertname"],
        },
        {
            "source_matchers": ["severity = warning"],
            "target_matchers": ["severity = info"],
            "equal": ["namespace", "alertname"],
        },
        {
            "source_matchers": ["alertname = InfoInhibitor"],
            "target_matchers": ["severity = info"],
            "equal": ["namespace"],
        },
    ]


def alertmanager_config(alerting: AlertingConfig) -> dict[str, Any]:
    receivers: list[dict[str, Any]] = [{"name": NULL_RECEIVER}]
    chat: dict[str, Any] = {"name": CHAT_RECEIVER}
    if alerting.slack_webhook_url:
        chat["slack_configs"] = [
            {"api_url": alerting.slack_webhook_url, "send_resolved": True, "title": _SLACK_TITLE, "text": _SLACK_TEXT}
        ]
    if alerting.webhook_url:
        chat["webhook_configs"] = [{"url": alerting.webhook_url, "send_resolved": True}]
    has_chat = len(chat) > 1
    if has_chat:
        receivers.append(chat)

    routes: list[dict[str, Any]] = [
        {"receiver": NULL_RECEIVER, "matchers": ['alertname = "Watchdog"']},
        {"receiver": NULL_RECEIVER, "matchers": ['alertname = "InfoInhibitor"']},
    ]
    if alerting.pagerduty_routing_key:
        receivers.append(
            {
                "name": PAGER_RECEIVER,
                "pagerduty_configs": [
                    {
                        "routing_key": alerting.pagerduty_routing_key,
                        "send_resolved": True,
                        "description": "{{ .CommonAnnotations.summary }}",
                    }
                ],
            }
        )
        routes.append({"receiver": PAGER_RECEIVER, "matchers": ['severity = "critical"']})

    return {
        "global": {"resolve_timeout": "5m"},
        "inhibit_rules": _inhibit_rules(),
        "route": {
            "receiver": CHAT_RECEIVER if has_chat else NULL_RECEIVER,
            "group_by": GROUP_BY,
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": routes,
        },
        "receivers": receivers,
    }


def alertmanager_yaml(alerting: AlertingConfig) -> str:
    return yaml.safe_dump(alertmanager_config(alerting), sort_keys=False)
