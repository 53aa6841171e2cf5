"""What a rollback must not do, found from the two offline plans before anything changes.

``mlstack rollback`` (``--dry-run`` too) compares the plan of the commit deployed now
(*base*) with the plan of the target (*head*) and refuses when the target would:

- run an EKS cluster at an older Kubernetes version than the deployed one (EKS
  upgrades one minor version at a time and never downgrades: the update fails);
- delete or replace a ``protect``-ed resource (the engine refuses it too, but only
  when it reaches that step, after other changes were already applied);
- delete or replace a ``retainOnDelete`` resource and create one of the same type
  under the same physical name: the retained original stays in the account, so
  the create fails with "already exists";
- take a listener certificate still in use off its listener, or move a listener-rule
  priority from one rule to another (:mod:`mlstack.review.traffic_hazards`).

Resources are matched by URN, as the engine does. A physical name is the input
that names the resource in the cloud (:data:`NAME_INPUTS`); auto-named resources
(no such input) get a fresh random suffix and cannot collide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlstack.review import traffic_hazards
from mlstack.review.replacements import forces_replacement, replacing_changes

CLUSTER_TYPE = "aws:eks/cluster:Cluster"

NAME_INPUTS: tuple[str, ...] = (
    "bucket",
    "clusterName",
    "nodeGroupName",
    "name",
    "metadata.name",
)
"""Inputs that carry a physical name, in order of precedence (``clusterName`` +
``nodeGroupName`` for node groups, ``metadata.namespace`` joins Kubernetes names)."""


@dataclass(frozen=True)
class Finding:
    """One reason the rollback must not run."""

    kind: str
    urn: str
    message: str

    def render(self) -> str:
        return f"{self.kind}: {self.message}"


def _get(inputs: Mapping[str, Any], dotted: str) -> Any:
    value: Any = inputs
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def physical_name(resource: Mapping[str, Any]) -> str | None:
    """The cloud name of a plan resource, or None when Pulumi auto-names it."""
    inputs = resource.get("inputs") or {}
    parts = [str(_get(inputs, key)) for key in NAME_INPUTS if isinstance(_get(inputs, key), str)]
    if not parts:
        return None
    namespace = _get(inputs, "metadata.namespace")
    if isinstance(namespace, str):
        parts.insert(0, namespace)
    return "/".join(parts)


def _version(text: Any) -> tuple[int, ...] | None:
    try:
        return tuple(int(p) for p in str(text).split("."))
    except ValueError:
        return None


def _resources(plan: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(r["urn"]): r for r in plan.get("resources", [])}


def _replaced(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    from mlstack.review.diff import diff_values

    old, new = before.get("inputs") or {}, after.get("inputs") or {}
    if replacing_changes(str(after["type"]), old, new):
        return True
    return any(forces_replacement(str(after["type"]), c.path) for c in diff_values(old, new))


def check_rollback(base: Mapping[str, Any], head: Mapping[str, Any]) -> list[Finding]:
    """Every reason (see module docstring) not to go from plan ``base`` to plan ``head``."""
    old, new = _resources(base), _resources(head)
    findings: list[Finding] = []
    for urn, before in old.items():
        after = new.get(urn)
        if before["type"] == CLUSTER_TYPE and after is not None:
            was = _version((before.get("inputs") or {}).get("version"))
            will = _version((after.get("inputs") or {}).get("version"))
            if was and will and will < was:
                findings.append(
                    Finding(
                        "cluster-downgrade",
                        urn,
                        f"cluster {before['name']} runs Kubernetes {'.'.join(map(str, was))}; "
                        f"the target pins {'.'.join(map(str, will))} and EKS cannot downgrade "
                        "(roll back to a commit with the same or a newer cluster version)",
                    )
                )
        gone = after is None
        replaced = after is not None and _replaced(before, after)
        if not (gone or replaced):
            continue
        verb = "delete" if gone else "replace"
        if before.get("protect"):
            findings.append(
                Finding(
                    "protected",
                    urn,
                    f"the target would {verb} protected {before['type']} {before['name']}",
                )
            )
        if before.get("retainOnDelete"):
            name = physical_name(before)
            if name is None:
                continue
            same_again = replaced and after is not None and physical_name(after) == name
            collides = same_again or (
                any(
                    r["type"] == before["type"] and physical_name(r) == name
                    for u, r in new.items()
                    if u not in old
                )
            )
            if collides:
                findings.append(
                    Finding(
                        "retained-name-collision",
                        urn,
                        f"the target would {verb} retained {before['type']} {before['name']} "
                        f"and create another under the same name {name!r}: the retained one "
                        "stays in the account, so the create fails with 'already exists'",
                    )
                )
    findings += [
        Finding(h.kind, h.urn, h.message) for h in traffic_hazards.check_traffic(base, head)
    ]
    return findings
