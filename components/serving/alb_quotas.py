"""ALB quotas the plan can exceed, and what a plan uses of each, per ALB.

Numbers from the ELB guide, "Quotas for your Application Load Balancers" (quota codes from
its Service Quotas links): rules per ALB, excluding default rules, 100 (adjustable,
``L-7EED9B64``); target groups per ALB 100 (not adjustable, not in Service Quotas);
certificates per ALB, excluding default certificates, 25 (adjustable, ``L-9365A611``).

A target group counts against an ALB once a listener or rule of it forwards to it; a
listener's default action is not a rule; its default certificate is not counted. The
policy rule ``lb-alb-quotas`` checks the defaults at plan time, ``mlstack preflight``
the account's applied values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

LOAD_BALANCER = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
LISTENER = ("aws:lb/listener:Listener", "aws:alb/listener:Listener")
LISTENER_RULE = ("aws:lb/listenerRule:ListenerRule", "aws:alb/listenerRule:ListenerRule")
TARGET_GROUP = ("aws:lb/targetGroup:TargetGroup", "aws:alb/targetGroup:TargetGroup")
LISTENER_CERTIFICATE = (
    "aws:lb/listenerCertificate:ListenerCertificate",
    "aws:alb/listenerCertificate:ListenerCertificate",
)
SERVICE_CODE = "elasticloadbalancing"


@dataclass(frozen=True)
class AlbQuota:
    """One per-ALB quota: its Service Quotas name and code (None: not in Service Quotas,
    fixed) and AWS's default value."""

    key: str
    name: str
    code: str | None
    default: int


RULES = AlbQuota("rules", "Rules per Application Load Balancer", "L-7EED9B64", 100)
TARGET_GROUPS = AlbQuota("targetGroups", "Target Groups per Application Load Balancer", None, 100)
CERTIFICATES = AlbQuota(
    "certificates", "Certificates per Application Load Balancer", "L-9365A611", 25
)
QUOTAS: tuple[AlbQuota, ...] = (RULES, TARGET_GROUPS, CERTIFICATES)


@dataclass(frozen=True)
class PlanNode:
    """What counting needs of a planned resource (synth graph node or policy resource)."""

    urn: str
    type: str
    name: str
    dependencies: tuple[str, ...]
    inputs: Mapping[str, Any]


def alb_usage(nodes: Iterable[PlanNode]) -> dict[str, dict[str, int]]:
    """Per ALB (by resource name): how many rules, target groups and extra certificates
    the plan attaches to it (keys: :data:`QUOTAS`' ``key``)."""
    every = list(nodes)

    def of(types: tuple[str, ...]) -> list[PlanNode]:
        return [n for n in every if n.type in types]

    target_groups = {n.urn for n in of(TARGET_GROUP)}
    usage: dict[str, dict[str, int]] = {}
    for alb in of(LOAD_BALANCER):
        if alb.inputs.get("loadBalancerType", "application") != "application":
            continue
        listeners = [n for n in of(LISTENER) if alb.urn in n.dependencies]
        mine = {n.urn for n in listeners}
        rules = [n for n in of(LISTENER_RULE) if mine & set(n.dependencies)]
        certificates = [n for n in of(LISTENER_CERTIFICATE) if mine & set(n.dependencies)]
        forwarded = {u for n in (*listeners, *rules) for u in n.dependencies} & target_groups
        usage[alb.name] = {
            RULES.key: len(rules),
            TARGET_GROUPS.key: len(forwarded),
            CERTIFICATES.key: len(certificates),
        }
    return usage
