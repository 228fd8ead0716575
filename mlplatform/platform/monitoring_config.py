"""The platform's `mlplatform:monitoring` config: Prometheus, Grafana, the GPU exporter
and where Alertmanager sends alerts.

Kept apart from `config.py` (which embeds it in `PlatformConfig`); `monitoring.py`
and `alertmanager.py` read it.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from mlplatform.configuration import ConfigModel, CrossFieldError, is_secret_placeholder


def _secret(description: str):
    """An optional string that must be given as a Pulumi secret (`pulumi config set --secret --path ...`)."""
    return Field(None, description=description, json_schema_extra={"secret": True})


class AlertingConfig(ConfigModel):
    """Where Alertmanager sends alerts. Every value is a credential: a webhook URL lets anyone who holds
    it post to the channel, so each must be a Pulumi secret and reaches the cluster only inside a Secret."""

    slack_webhook_url: str | None = _secret(
        "Slack incoming-webhook URL (`https://hooks.slack.com/...`); receives every alert not paged. Secret."
    )
    webhook_url: str | None = _secret(
        "Generic webhook URL (Alertmanager's JSON payload); receives every alert not paged, alongside Slack. Secret."
    )
    pagerduty_routing_key: str | None = _secret(
        "PagerDuty Events API v2 integration (routing) key; `severity: critical` alerts page it. Secret."
    )

    no_receivers_reason: str | None = Field(
        None,
        min_length=10,
        description="Why a `prod` stack sends its alerts nowhere (e.g. `staging copy; alerts reach the team through "
        "the federated Prometheus`). A prod stack with no receiver is refused unless this says why; not allowed "
        "together with a receiver.",
    )

    @field_validator("slack_webhook_url", "webhook_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        # An offline run sees a placeholder for a `secure:` value; `pulumi up` checks the real one.
        if value is not None and not is_secret_placeholder(value) and not re.match(r"^https://[^\s/]+/\S*$", value):
            raise ValueError("must be an https:// URL")
        return value

    @field_validator("pagerduty_routing_key")
    @classmethod
    def _routing_key(cls, value: str | None) -> str | None:
        if value is not None and not is_secret_placeholder(value) and not re.fullmatch(r"[A-Za-z0-9]{32}", value):
            raise ValueError("must be a 32-character PagerDuty integration key (letters and digits)")
        return value

    @property
    def receivers_configured(self) -> bool:
        return any((self.slack_webhook_url, self.webhook_url, self.pagerduty_routing_key))

    @model_validator(mode="after")
    def _opt_out_only_without_receivers(self) -> AlertingConfig:
        if self.no_receivers_reason is not None and self.receivers_configured:
            raise CrossFieldError(
                "noReceiversReason explains a stack without receivers, but a receiver is set: drop the reason",
                "noReceiversReason",
            )
        return self


class MonitoringConfig(ConfigModel):
    retention: str = Field("15d", pattern=r"^\d+[smhdwy]$", description="Prometheus TSDB retention.")
    storage_size_gib: int = Field(50, ge=1, description="Prometheus persistent volume size.")
    replicas: int = Field(1, ge=1, le=5, description="Prometheus replicas.")
    grafana: bool = Field(
        True,
        description="Install Grafana with the chart; its admin password is generated (pulumi-random) and kept "
        "in the Secret `grafana-admin` of the monitoring namespace. `false` installs no Grafana.",
    )
    gpu_metrics: bool = Field(
        True,
        description="Run NVIDIA's DCGM exporter on the GPU nodes (GPU utilisation, memory, temperature) and "
        "alert on idle GPUs (`GpuIdle`).",
    )
    alerting: AlertingConfig = Field(
        default_factory=AlertingConfig.defaults,
        description="Alertmanager receivers: `critical` alerts page PagerDuty, the rest go to Slack and/or the "
        "webhook. With none set, alerts are only visible in Alertmanager's UI.",
    )
