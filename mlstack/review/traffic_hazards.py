"""Load-balancer changes one ``pulumi up`` cannot apply safely, found from two offline plans.

``mlstack diff`` / ``mlstack review`` (every PR) and ``mlstack rollback`` (before it deploys)
compare the plan deployed now (*base*) with the next one (*head*) and refuse:

- **listener-certificate-in-use**: a ``ListenerCertificate`` deleted or replaced while
  *head* still declares the same certificate on the same listener (under another name).
  The provider's delete calls ``RemoveListenerCertificates`` for that ARN, and the create of
  an attached one is a no-op ``AddListenerCertificates`` (hashicorp/terraform-provider-aws
  internal/service/elbv2/listener_certificate.go, ``resourceListenerCertificateDelete`` /
  ``resourceListenerCertificateCreate``; both arguments ``ForceNew``): the certificate
  leaves the listener although still in use, and its hosts get the default certificate.
- **rule-priority-moved**: a listener-rule priority held by one rule resource in *base* and
  by another in *head* (a renamed model with an explicit priority, a slot reused in the
  same commit). ELB priorities are unique per listener: the new rule's ``CreateRule`` (or
  ``ModifyRule``) fails with ``PriorityInUse`` while the old one holds it, and Pulumi
  deletes removed resources last. Do it in two updates: free the priority, then use it.

Resources are matched as the engine matches them: by URN, then by the new resource's
aliases (pulumi/pulumi pkg/resource/deploy/step_generator.go, ``getOldResource``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CERTIFICATE = "aws:lb/listenerCertificate:ListenerCertificate"
RULE = "aws:lb/listenerRule:ListenerRule"


@dataclass(frozen=True)
class Hazard:
    """One change the update must not make."""

    kind: str
    urn: str
    message: str

    def render(self) -> str:
        return f"{self.kind}: {self.message}"


def _resources(plan: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(r["urn"]): r for r in plan.get("resources", [])}


def matches(base: Mapping[str, Any], head: Mapping[str, Any]) -> dict[str, str]:
    """head URN -> base URN of the same resource: the URN itself, else the first alias
    present in base that no head resource holds itself."""
    old, new = _resources(base), _resources(head)
    found: dict[str, str] = {}
    claimed: set[str] = set()
    for urn, resource in new.items():
        if urn in old:
            found[urn] = urn
            continue
        for alias in resource.get("aliases") or ():
            if alias in old and alias not in new and alias not in claimed:
                found[urn] = alias
                claimed.add(alias)
                break
    return found


def _certificate(resource: Mapping[str, Any]) -> tuple[Any, Any]:
    inputs = resource.get("inputs") or {}
    return inputs.get("listenerArn"), inputs.get("certificateArn")


def _priority(resource: Mapping[str, Any]) -> tuple[Any, int] | None:
    inputs = resource.get("inputs") or {}
    priority = inputs.get("priority")
    if not isinstance(priority, int | float):
        return None
    return inputs.get("listenerArn"), int(priority)


def check_traffic(base: Mapping[str, Any], head: Mapping[str, Any]) -> list[Hazard]:
    """Every hazard (module docstring) of going from plan ``base`` to plan ``head``."""
    old, new = _resources(base), _resources(head)
    matched = matches(base, head)
    successor = {b: h for h, b in matched.items()}
    hazards: list[Hazard] = []

    declared = {_certificate(r): urn for urn, r in new.items() if r["type"] == CERTIFICATE}
    for urn, before in old.items():
        if before["type"] != CERTIFICATE:
            continue
        pair = _certificate(before)
        after = new.get(successor.get(urn, ""))
        kept = after is not None and _certificate(after) == pair
        if kept or pair not in declared:
            continue
        verb = "delete" if after is None else "replace"
        hazards.append(
            Hazard(
                "listener-certificate-in-use",
                urn,
                f"the update would {verb} {before['name']} (certificate {pair[1]}) while "
                f"{new[declared[pair]]['name']} still declares it on the same listener: "
                "the delete calls RemoveListenerCertificates for that ARN and takes it off "
                "the listener; change the certificates in an update that renames none "
                "(first deploy this commit's code with the previous certificate list)",
            )
        )

    holders = {_priority(r): urn for urn, r in old.items() if r["type"] == RULE}
    for urn, after in new.items():
        if after["type"] != RULE:
            continue
        key = _priority(after)
        holder = holders.get(key) if key is not None else None
        if holder is None or matched.get(urn) == holder:
            continue
        assert key is not None
        hazards.append(
            Hazard(
                "rule-priority-moved",
                urn,
                f"priority {key[1]} moves from {old[holder]['name']} to {after['name']} in "
                "one update: ELB priorities are unique per listener, so CreateRule fails "
                "with PriorityInUse while the old rule holds it (Pulumi deletes removed "
                "resources last); do it in two updates: first remove or move the old rule "
                "(deploy), then give the priority to the new one",
            )
        )
    return hazards
