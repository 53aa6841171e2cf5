"""Adapt :data:`policy.rules.RULES` to CrossGuard stack policies (no ``PolicyPack`` here).

Each rule becomes one ``StackValidationPolicy`` whose ``validate`` converts the
engine's ``StackValidationArgs`` into a :class:`policy.core.Stack` and reports
every finding. Values the engine does not know yet during a preview raise
pulumi_policy's ``UnknownValueError``, which is passed on so the engine reports
"can't run during preview" rather than a verdict; any other exception in a rule
is reported as a violation naming the error (a crash never passes).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from policy.core import Resource, Rule, Stack, run_rule
from policy.rules import RULES

PACK_NAME = "mlstack"
ENVIRONMENT_CONFIG_KEY = "environment"
"""Optional pack config (``{"all": {"environment": "prod"}}``) overriding the tag-derived one."""


CONFIG_SCHEMA = PolicyConfigSchema(
    properties={ENVIRONMENT_CONFIG_KEY: {"type": "string", "enum": ["dev", "prod"]}}
)


def _resource(policy_resource: PolicyResource) -> Resource:
    opts = policy_resource.opts
    return Resource(
        urn=policy_resource.urn,
        type=policy_resource.resource_type,
        name=policy_resource.name,
        props=policy_resource.props,
        parent=policy_resource.parent.urn if policy_resource.parent else None,
        provider=policy_resource.provider.urn if policy_resource.provider else None,
        dependencies=tuple(d.urn for d in policy_resource.dependencies),
        protect=bool(getattr(opts, "protect", False)),
        # CrossGuard's options carry no retainOnDelete: only `protect` marks a kept resource.
        delete_before_replace=bool(getattr(opts, "delete_before_replace", False)),
    )


def to_stack(resources: Iterable[PolicyResource], environment: str | None = None) -> Stack:
    """The engine's resources as a rule :class:`Stack` (providers added when only referenced)."""
    views = [_resource(r) for r in resources]
    urns = {v.urn for v in views}
    for resource in resources:
        provider = resource.provider
        if provider is not None and provider.urn not in urns:
            urns.add(provider.urn)
            views.append(
                Resource(
                    urn=provider.urn,
                    type=provider.resource_type,
                    name=provider.name,
                    props=provider.props,
                )
            )
    return Stack(views, environment)


def _environment(args: StackValidationArgs) -> str | None:
    try:
        value = args.get_config().get(ENVIRONMENT_CONFIG_KEY)
    except Exception:
        return None
    return str(value) if value else None


def validate_with(rule: Rule) -> Any:
    """The ``validate`` callback of ``rule``'s stack policy."""

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        stack = to_stack(args.resources, _environment(args))
        reason = rule.applies_to(stack)
        if reason is not None:
            args.not_applicable(reason)
            return
        try:
            findings = list(rule.check(stack))
        except UnknownValueError:
            raise
        except Exception:
            result = run_rule(rule, stack)  # same error text as `mlstack policy`
            report_violation(f"rule error (not a pass): {result.detail}", None)
            return
        for urn, message in findings:
            report_violation(message, urn)

    return validate


def stack_policies(rules: Iterable[Rule] = RULES) -> list[StackValidationPolicy]:
    """One CrossGuard stack policy per rule, with its id, severity and enforcement level."""
    return [
        StackValidationPolicy(
            name=rule.id,
            description=rule.description,
            validate=validate_with(rule),
            enforcement_level=EnforcementLevel(rule.enforcement),
            severity=Severity(rule.severity),
            remediation_steps=rule.remediation or None,
            config_schema=CONFIG_SCHEMA,
        )
        for rule in rules
    ]
