"""The mlplatform policy pack: the rules of guardrails/catalog.py, wired to the engine.

Run it with any backend, the local file backend included:

    pulumi preview --policy-pack policy --policy-pack-config policy/policy-config.json

The rule logic lives in plain functions (guardrails/); this file only adapts the engine's
arguments to them, so the same rules run in the tests without an engine.
"""

from __future__ import annotations

from typing import Any

from guardrails.catalog import RULES, Rule
from guardrails.model import Resource
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)


def _config(rule: Rule, given: Any) -> dict[str, Any]:
    return {**rule.defaults(), **dict(given or {})}


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        resource = Resource(args.resource_type, args.props, args.urn)
        for violation in rule.check(resource, _config(rule, args.get_config())):
            report(violation.message, violation.urn or None)

    return ResourceValidationPolicy(name=rule.name, description=rule.description, validate=validate, **_options(rule))


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [
            Resource(
                r.resource_type,
                r.props,
                r.urn,
                {key: [dep.urn for dep in deps] for key, deps in r.property_dependencies.items()},
            )
            for r in args.resources
        ]
        for violation in rule.check(resources, _config(rule, args.get_config())):
            report(violation.message, violation.urn or None)

    return StackValidationPolicy(name=rule.name, description=rule.description, validate=validate, **_options(rule))


def _options(rule: Rule) -> dict[str, Any]:
    return {
        "enforcement_level": EnforcementLevel.ADVISORY if rule.advisory else EnforcementLevel.MANDATORY,
        "config_schema": PolicyConfigSchema(properties=dict(rule.config_schema)) if rule.config_schema else None,
    }


PolicyPack(
    name="mlplatform-guardrails",
    policies=[_resource_policy(rule) if rule.scope == "resource" else _stack_policy(rule) for rule in RULES],
)
