"""A stack rendered offline (mlplatform render's engine), as the policy pack's rules see it."""

from __future__ import annotations

from policy.guardrails.model import Resource
from tests.support.helpers import ROOT


def rendered_resources(project: str, stack: str) -> list[Resource]:
    from mlplatform.tools.render import render_stack

    recording = render_stack(ROOT / project, stack)
    return [
        Resource(r.type, r.inputs, r.urn, {k: list(v) for k, v in r.property_dependencies.items()})
        for r in recording.resources
        if r.custom
    ]
