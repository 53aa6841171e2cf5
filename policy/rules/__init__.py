"""The mlstack policy rules: plain functions over a :class:`policy.core.Stack`, one module per area.

Each rule yields ``(urn, message)`` for every violation. Rules are keyed by
resource type, so a rule about buckets or load balancers starts applying the
moment a component declares one; until then it reports ``n/a``. Prod-only rules
are ``n/a`` on dev stacks. Rules read camelCase properties, the way both the
offline synth and the Pulumi engine present them.

This module is the registry: ``RULES`` is the single list both the CrossGuard
pack (``policy/pack.py``) and ``mlstack policy`` run. An area module defines its
rules and lists them in its own ``RULES``; add a new area to ``AREAS`` here.
Shared type tokens and helpers are in :mod:`policy.rules.common`.
"""

from __future__ import annotations

from policy.core import Rule
from policy.rules import delivery, iam, kubernetes, network, operations, storage

AREAS: dict[str, list[Rule]] = {
    "storage": storage.RULES,
    "iam": iam.RULES,
    "network": network.RULES,
    "kubernetes": kubernetes.RULES,
    "delivery": delivery.RULES,
    "operations": operations.RULES,
}
"""Area name -> its rules, in report order."""

RULES: list[Rule] = [rule for rules in AREAS.values() for rule in rules]

RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}
if len(RULES_BY_ID) != len(RULES):
    raise RuntimeError("policy rule ids must be unique across areas")
