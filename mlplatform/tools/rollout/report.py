"""The gate's and the registry's report lines, printed the same way by every verb that gates or checks the registry.

Below the verbs (it needs neither the stack file nor the command context), so `status`, `next`,
`promote` and the CLI's error report share it without importing one another.
"""

from __future__ import annotations

from typing import Any

from mlplatform.tools.rollout.gate import GateVerdict
from mlplatform.tools.rollout.registry import RegistryVersion


def verdict_lines(verdict: GateVerdict) -> str:
    lines = [f"gate {verdict.namespace}/{verdict.deployment}: {verdict.summary()}"]
    t = verdict.thresholds
    lines.append(
        f"  thresholds: requests >= {t.min_requests}, success >= {t.min_success_rate * 100:.2f}%, "
        f"p99 <= {t.max_p99_latency_ms:.0f}ms"
        + (f", accuracy >= {t.min_accuracy}" if t.min_accuracy is not None else "")
        + (
            f", vs stable at {t.confidence:.0%}: errors <= +{t.max_error_rate_increase:.0%}, slow requests <= "
            f"+{t.max_slow_request_increase:.0%}"
            if t.compare_with_stable
            else ""
        )
    )
    lines += [f"  - {r}" for r in verdict.reasons]
    lines += [f"  note: {n}" for n in verdict.notes]
    return "\n".join(lines)


def registry_checks(version: RegistryVersion) -> list[dict[str, Any]]:
    return [{"metric": c.metric, "actual": c.actual, "threshold": c.threshold} for c in version.checks]
