"""Small hand-made synth graphs for policy and cost tests."""

from __future__ import annotations

import json
from typing import Any

from mlstack.synth import ResourceGraph, ResourceNode

STACK = "test"
PROVIDER_URN = f"urn:pulumi:{STACK}::mlstack::pulumi:providers:aws::aws"
GOOD_TAGS = {"project": "mlstack", "stack": STACK, "environment": "prod", "owner": "team@x"}


def urn(type_token: str, name: str) -> str:
    return f"urn:pulumi:{STACK}::mlstack::{type_token}::{name}"


def node(
    type_token: str,
    name: str,
    inputs: dict[str, Any] | None = None,
    *,
    depends_on: tuple[ResourceNode, ...] = (),
    protect: bool = False,
    provider: str | None = PROVIDER_URN,
    custom: bool = True,
    parent: ResourceNode | None = None,
    retain_on_delete: bool | None = None,
    delete_before_replace: bool = False,
) -> ResourceNode:
    """A resource; AWS resources get the test AWS provider by default (Kubernetes ones
    only when ``provider`` names one explicitly). ``retain_on_delete`` follows
    ``protect`` unless given."""
    explicit = provider is not PROVIDER_URN
    return ResourceNode(
        urn=urn(type_token, name),
        type=type_token,
        name=name,
        parent=parent.urn if parent else None,
        custom=custom,
        provider=provider if type_token.startswith("aws:") or explicit else None,
        dependencies=tuple(d.urn for d in depends_on),
        protect=protect,
        retain_on_delete=protect if retain_on_delete is None else retain_on_delete,
        ignore_changes=(),
        inputs=inputs or {},
        delete_before_replace=delete_before_replace,
    )


def aws_provider(tags: dict[str, str] | None = None) -> ResourceNode:
    tags = GOOD_TAGS if tags is None else tags
    return ResourceNode(
        urn=PROVIDER_URN,
        type="pulumi:providers:aws",
        name="aws",
        parent=None,
        custom=True,
        provider=None,
        dependencies=(),
        protect=False,
        retain_on_delete=False,
        ignore_changes=(),
        inputs={"defaultTags": json.dumps({"tags": tags}), "region": "us-east-1"},
    )


def graph(
    *nodes: ResourceNode,
    environment: str = "prod",
    region: str = "us-east-1",
    provider: ResourceNode | None = None,
) -> ResourceGraph:
    """A graph holding ``nodes`` plus an AWS provider with good default tags."""
    base = provider or aws_provider({**GOOD_TAGS, "environment": environment})
    return ResourceGraph(
        stack=STACK,
        environment=environment,
        region=region,
        resources=sorted([base, *nodes], key=lambda n: n.urn),
    )
