"""Hand-made plan JSON documents for diff tests."""

from __future__ import annotations

import copy
from typing import Any

STACK = "dev"


def urn(type_token: str, name: str, parent_type: str | None = None) -> str:
    qualified = f"{parent_type}${type_token}" if parent_type else type_token
    return f"urn:pulumi:{STACK}::mlstack::{qualified}::{name}"


COMPONENT = "mlstack:cluster:EksCluster"
COMPONENT_URN = urn(COMPONENT, "cluster")


def res(
    type_token: str,
    name: str,
    inputs: dict[str, Any] | None = None,
    *,
    in_component: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """One plan resource, a child of the ``cluster`` component by default."""
    return {
        "urn": urn(type_token, name, COMPONENT if in_component else None),
        "type": type_token,
        "name": name,
        "parent": COMPONENT_URN if in_component else None,
        "custom": True,
        "provider": None,
        "dependencies": [],
        "protect": options.get("protect", False),
        "retainOnDelete": options.get("retainOnDelete", False),
        "ignoreChanges": options.get("ignoreChanges", []),
        "inputs": inputs or {},
    }


def component() -> dict[str, Any]:
    item = res(COMPONENT, "cluster", in_component=False)
    item["custom"] = False
    return item


def plan(*resources: dict[str, Any], region: str = "us-west-2") -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "project": "mlstack",
        "stack": STACK,
        "environment": "dev",
        "region": region,
        "resources": sorted([component(), *copy.deepcopy(list(resources))], key=lambda r: r["urn"]),
        "outputs": {},
        "warnings": [],
    }
