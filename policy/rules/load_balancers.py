"""Policy rules of the load-balancer area (all mandatory).

* ``lb-tls-policy``: HTTPS and TLS listeners use a TLS 1.2+ ELB security policy.
* ``lb-http-redirect-only``: a plain-HTTP listener only redirects to HTTPS (its default
  actions are redirects and no listener rule that can match a request hangs off it; a
  model's warm rule, whose only condition is a source-ip no connection has, may).
* ``lb-prod-internet-facing-hardened``: in prod, an internet-facing load balancer has
  deletion protection and access logs.
* ``lb-target-groups-alarmed``: every target group has at least one CloudWatch alarm.
* ``lb-alb-quotas``: the rules, target groups and extra certificates the plan attaches to
  each ALB stay within AWS's default per-ALB quotas (``components.serving.alb_quotas``;
  ``mlstack preflight`` checks the account's applied values).

Plain functions over a :class:`policy.core.Stack`, like every other area's rules;
registered in :data:`policy.rules.AREAS` as ``load_balancers``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from components.serving import alb_quotas
from components.serving.rollout import WARM_SOURCE_CIDR
from components.serving.tls_policies import TLS12_POLICIES
from policy.core import Finding, Rule, Stack, as_list, get_path, is_unknown, truthy

LOAD_BALANCER = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
LISTENER = ("aws:lb/listener:Listener", "aws:alb/listener:Listener")
LISTENER_RULE = ("aws:lb/listenerRule:ListenerRule", "aws:alb/listenerRule:ListenerRule")
TARGET_GROUP = ("aws:lb/targetGroup:TargetGroup", "aws:alb/targetGroup:TargetGroup")
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def lb_tls_policy(stack: Stack) -> Iterator[Finding]:
    for listener in stack.of_type(*LISTENER):
        protocol = listener.props.get("protocol")
        if protocol not in ("HTTPS", "TLS"):
            continue
        policy = listener.props.get("sslPolicy")
        if is_unknown(policy):
            continue
        if policy not in TLS12_POLICIES:
            yield (
                listener.urn,
                f"{protocol} listener {listener.name}: security policy {policy!r} allows "
                "TLS older than 1.2",
            )


def _redirects_to_https(action: Any) -> bool:
    return get_path(action, "type") == "redirect" and get_path(action, "redirect", "protocol") in (
        "HTTPS",
        "#{protocol}",
    )


def lb_http_redirect_only(stack: Stack) -> Iterator[Finding]:
    http = [r for r in stack.of_type(*LISTENER) if r.props.get("protocol") == "HTTP"]
    for listener in http:
        actions = as_list(listener.props.get("defaultActions"))
        if not actions or not all(_redirects_to_https(a) for a in actions):
            yield listener.urn, f"listener {listener.name}: plain HTTP that does not redirect"
        for rule in stack.dependents(listener, *LISTENER_RULE):
            if _matches_nothing(rule.props):
                continue
            yield (
                rule.urn,
                f"listener rule {rule.name}: routes plain HTTP on {listener.name} "
                "(HTTP listeners may only redirect to HTTPS)",
            )


def _matches_nothing(props: Mapping[str, Any]) -> bool:
    """A rule whose only condition is a source-ip of :data:`WARM_SOURCE_CIDR` (no TCP
    connection comes from it): it routes no request, it only gets its target groups
    health-checked (a model's warm rule)."""
    conditions = as_list(props.get("conditions"))
    return len(conditions) == 1 and get_path(conditions[0], "sourceIp", "values") == [
        WARM_SOURCE_CIDR
    ]


def lb_prod_internet_facing_hardened(stack: Stack) -> Iterator[Finding]:
    for balancer in stack.of_type(*LOAD_BALANCER):
        internal = balancer.props.get("internal")
        if is_unknown(internal) or truthy(internal):
            continue
        if not truthy(balancer.props.get("enableDeletionProtection")):
            yield balancer.urn, f"load balancer {balancer.name}: no deletion protection"
        logs = balancer.props.get("accessLogs")
        if not (truthy(get_path(logs, "enabled")) and get_path(logs, "bucket")):
            yield balancer.urn, f"load balancer {balancer.name}: no access logs"


def _alarmed_suffixes(stack: Stack) -> set[str]:
    found: set[str] = set()
    for alarm in stack.of_type(METRIC_ALARM):
        queries = as_list(alarm.props.get("metricQueries"))
        dims = [alarm.props.get("dimensions")]
        dims += [get_path(q, "metric", "dimensions") for q in queries]
        found |= {str(d["TargetGroup"]) for d in dims if isinstance(d, dict) and "TargetGroup" in d}
    return found


def lb_target_groups_alarmed(stack: Stack) -> Iterator[Finding]:
    suffixes = _alarmed_suffixes(stack)
    for group in stack.of_type(*TARGET_GROUP):
        if stack.dependents(group, METRIC_ALARM):
            continue
        suffix = group.props.get("arnSuffix")
        if suffix and not is_unknown(suffix) and str(suffix) in suffixes:
            continue
        yield group.urn, f"target group {group.name}: no CloudWatch alarm watches it"


def lb_alb_quotas(stack: Stack) -> Iterator[Finding]:
    nodes = [
        alb_quotas.PlanNode(r.urn, r.type, r.name, tuple(r.dependencies), r.props)
        for r in stack.resources
    ]
    by_name = {r.name: r for r in stack.of_type(*LOAD_BALANCER)}
    for name, usage in alb_quotas.alb_usage(nodes).items():
        for quota in alb_quotas.QUOTAS:
            used = usage[quota.key]
            if used > quota.default:
                how = (
                    f"request an increase of {quota.code} and check it with mlstack preflight"
                    if quota.code
                    else "not adjustable: split the models over a second ALB"
                )
                yield (
                    by_name[name].urn,
                    f"ALB {name}: the plan attaches {used} {quota.key} (quota "
                    f"{quota.name!r}, default {quota.default}); {how}",
                )


RULES: list[Rule] = [
    Rule(
        "lb-tls-policy",
        "HTTPS and TLS listeners use a TLS 1.2+ ELB security policy.",
        "high",
        "mandatory",
        LISTENER,
        lb_tls_policy,
        False,
        "Set sslPolicy to one of components.serving.tls_policies.TLS12_POLICIES.",
    ),
    Rule(
        "lb-http-redirect-only",
        "Plain-HTTP listeners only redirect to HTTPS; no listener rule routes plain HTTP.",
        "high",
        "mandatory",
        LISTENER,
        lb_http_redirect_only,
        False,
        "Give HTTP listeners one redirect action (protocol HTTPS, port 443) and no rules.",
    ),
    Rule(
        "lb-prod-internet-facing-hardened",
        "Prod internet-facing load balancers have deletion protection and access logs.",
        "high",
        "mandatory",
        LOAD_BALANCER,
        lb_prod_internet_facing_hardened,
        True,
        "enableDeletionProtection=True and accessLogs {enabled, bucket} (the stack's log bucket).",
    ),
    Rule(
        "lb-target-groups-alarmed",
        "Every target group has at least one CloudWatch alarm.",
        "medium",
        "mandatory",
        TARGET_GROUP,
        lb_target_groups_alarmed,
        False,
        "Pass the target group to the monitoring layer (serving_layer.alarm_target_groups).",
    ),
    Rule(
        "lb-alb-quotas",
        "Each ALB's rules (100), target groups (100) and extra certificates (25) stay within "
        "AWS's default per-ALB quotas.",
        "high",
        "mandatory",
        LOAD_BALANCER,
        lb_alb_quotas,
        False,
        "Fewer models on the shared ALB (blue/green takes two rules), shared certificates, "
        "or a raised quota (Rules and Certificates are adjustable; mlstack preflight reads "
        "the account's values).",
    ),
]
"""The load-balancer area's rules (``policy.rules.AREAS["load_balancers"]``)."""
