"""Plan JSON (``mlstack.plan`` contract) <-> :class:`~mlstack.synth.ResourceGraph`, and the
small lookups diff, cost and policy share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlstack.synth import ResourceGraph, ResourceNode
from policy.core import Resource, Stack

STACK_COMPONENT = "(stack)"


def node_from_json(raw: Mapping[str, Any]) -> ResourceNode:
    return ResourceNode(
        urn=str(raw["urn"]),
        type=str(raw["type"]),
        name=str(raw["name"]),
        parent=raw.get("parent"),
        custom=bool(raw.get("custom", True)),
        provider=raw.get("provider"),
        dependencies=tuple(raw.get("dependencies") or ()),
        protect=bool(raw.get("protect", False)),
        retain_on_delete=bool(raw.get("retainOnDelete", False)),
        ignore_changes=tuple(raw.get("ignoreChanges") or ()),
        inputs=dict(raw.get("inputs") or {}),
        delete_before_replace=bool(raw.get("deleteBeforeReplace", False)),
        aliases=tuple(raw.get("aliases") or ()),
    )


def graph_from_plan(plan: Mapping[str, Any]) -> ResourceGraph:
    """A plan document back as a graph (for cost and policy on a plan read from disk)."""
    return ResourceGraph(
        stack=str(plan.get("stack", "")),
        environment=str(plan.get("environment", "")),
        region=str(plan.get("region", "")),
        resources=[node_from_json(r) for r in plan.get("resources", [])],
        outputs=dict(plan.get("outputs") or {}),
        warnings=list(plan.get("warnings") or []),
    )


def component_names(resources: list[Mapping[str, Any]]) -> dict[str, str]:
    """URN -> name of its outermost ``mlstack:`` component (``(stack)`` for top level)."""
    parents = {str(r["urn"]): r.get("parent") for r in resources}
    types = {str(r["urn"]): str(r["type"]) for r in resources}
    names = {str(r["urn"]): str(r["name"]) for r in resources}
    out: dict[str, str] = {}
    for urn in parents:
        outer: str | None = urn if types[urn].startswith("mlstack:") else None
        current = parents.get(urn)
        seen = {urn}
        while current and current in parents and current not in seen:
            seen.add(current)
            if types[current].startswith("mlstack:"):
                outer = current
            current = parents.get(current)
        out[urn] = names[outer] if outer else STACK_COMPONENT
    return out


def policy_stack(graph: ResourceGraph) -> Stack:
    """The graph as the policy rules' :class:`policy.core.Stack` (environment from config)."""
    resources = [
        Resource(
            urn=n.urn,
            type=n.type,
            name=n.name,
            props=n.inputs,
            parent=n.parent,
            provider=n.provider,
            dependencies=n.dependencies,
            protect=n.protect,
            custom=n.custom,
            retain_on_delete=n.retain_on_delete,
            delete_before_replace=n.delete_before_replace,
        )
        for n in graph.resources
    ]
    return Stack(resources, graph.environment or None)
