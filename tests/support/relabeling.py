"""Prometheus' relabeling, for the actions our PodMonitors use, so tests can apply a monitor's
relabelings to a service-discovery target and see the labels its series get."""

from __future__ import annotations

import re
from typing import Any


def _expand(template: str, match: re.Match[str]) -> str:
    return re.sub(r"\$\{?(\d+)\}?", lambda m: match.group(int(m.group(1))) or "", template)


def relabel(target: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus relabeling of one target, for the actions our monitors use; None when the target is dropped."""
    labels = dict(target)
    for rule in rules:
        action, regex = rule.get("action", "replace"), re.compile(rule.get("regex", "(.*)"))
        value = rule.get("separator", ";").join(labels.get(s, "") for s in rule.get("sourceLabels", []))
        if action == "keep" and not regex.fullmatch(value):
            return None
        if action == "drop" and regex.fullmatch(value):
            return None
        if action == "replace" and (match := regex.fullmatch(value)):
            result = _expand(rule.get("replacement", "$1"), match)
            if result:
                labels[rule["targetLabel"]] = result
            else:
                labels.pop(rule["targetLabel"], None)
        if action == "labeldrop":
            labels = {k: v for k, v in labels.items() if not regex.fullmatch(k)}
        if action == "labelmap":
            for name, val in list(labels.items()):
                if match := regex.fullmatch(name):
                    labels[_expand(rule.get("replacement", "$1"), match)] = val
    return {k: v for k, v in labels.items() if not k.startswith("__")}
