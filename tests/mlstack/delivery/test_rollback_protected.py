"""Rollback refusals cover every protected type the plans use (issue 27 item 9).

``check_rollback`` marks a replacement with the one replacement table
(:mod:`policy.replacement`); a type or property missing there let a protected
replacement through, and the engine then stopped mid-update on the protected resource
("unable to replace resource ... as it is currently marked for protection") with the
steps before it already applied.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from mlstack.delivery.rollback_safety import check_rollback
from mlstack.synth import ResourceGraph
from policy.replacement import REPLACEMENT_TABLE

CHANGED = "changed-by-a-rollback"


def _plan(graph: ResourceGraph) -> dict[str, Any]:
    return json.loads(json.dumps(graph.to_json()))


def _set(inputs: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    target = inputs
    for part in parents:
        nxt = target.get(part)
        if isinstance(nxt, list) and nxt and isinstance(nxt[0], dict):
            nxt = nxt[0]
        elif not isinstance(nxt, dict):
            nxt = target[part] = {}
        target = nxt
    target[last] = value


def _with(base: dict[str, Any], urn: str, dotted: str, value: Any) -> dict[str, Any]:
    head = copy.deepcopy(base)
    resource = next(r for r in head["resources"] if r["urn"] == urn)
    _set(resource.setdefault("inputs", {}), dotted, value)
    return head


def _refused(base: dict[str, Any], head: dict[str, Any], urn: str) -> bool:
    return ("protected", urn) in {(f.kind, f.urn) for f in check_rollback(base, head)}


def _one(plan: dict[str, Any], type_token: str, name: str) -> dict[str, Any]:
    return next(r for r in plan["resources"] if r["type"] == type_token and r["name"] == name)


@pytest.mark.parametrize(
    ("type_token", "name", "path", "value"),
    [
        ("aws:sns/topic:Topic", "monitoring-topic", "name", "mlstack-prod-alerts-v0"),
        (
            "aws:ecr/repository:Repository",
            "model-loader-repository",
            "encryptionConfigurations.encryptionType",
            "AES256",
        ),
        ("aws:eks/cluster:Cluster", "cluster-eks", "encryptionConfig", None),
        ("aws:kms/key:Key", "cluster-secrets-key", "keyUsage", "SIGN_VERIFY"),
        ("aws:kms/key:Key", "artifacts-key", "multiRegion", True),
        ("aws:s3/bucket:Bucket", "artifacts-bucket", "objectLockEnabled", True),
        ("aws:cloudwatch/logGroup:LogGroup", "cluster-control-plane-logs", "logGroupClass", "IA"),
    ],
)
def test_a_rollback_that_replaces_a_protected_prod_resource_is_refused(
    prod_graph: ResourceGraph, type_token: str, name: str, path: str, value: Any
) -> None:
    base = _plan(prod_graph)
    resource = _one(base, type_token, name)
    assert resource["protect"], "the prod plan protects it"
    head = _with(base, resource["urn"], path, value)
    assert _refused(base, head, resource["urn"])


def test_the_cluster_losing_its_secrets_encryption_is_refused(prod_graph: ResourceGraph) -> None:
    """A target without ``encryptionConfig``: the provider replaces the cluster
    (terraform-provider-aws ``internal/service/eks/cluster.go``, CustomizeDiff
    ``ForceNewIfChange("encryption_config")`` when the block is removed)."""
    base = _plan(prod_graph)
    cluster = _one(base, "aws:eks/cluster:Cluster", "cluster-eks")
    assert cluster["inputs"]["encryptionConfig"]
    head = copy.deepcopy(base)
    del _one(head, "aws:eks/cluster:Cluster", "cluster-eks")["inputs"]["encryptionConfig"]
    assert _refused(base, head, cluster["urn"])


def _protected(graph: ResourceGraph) -> list[tuple[str, str, str]]:
    return sorted(
        (n.type, n.urn, prop)
        for n in graph.resources
        if n.protect
        for prop in REPLACEMENT_TABLE[n.type].force_new
    )


def test_every_replacing_property_of_every_protected_resource_is_refused(
    dev_graph: ResourceGraph, prod_graph: ResourceGraph
) -> None:
    """One refusal per protected type and replacing property, derived from both plans:
    a protected type the table does not know fails here (KeyError), a property the
    refusal does not see fails the assertion."""
    cases = {"dev": _protected(dev_graph), "prod": _protected(prod_graph)}
    types = {t for found in cases.values() for t, _, _ in found}
    assert {
        "aws:eks/cluster:Cluster",
        "aws:ecr/repository:Repository",
        "aws:kms/key:Key",
        "aws:s3/bucket:Bucket",
        "aws:sns/topic:Topic",
        "aws:cloudwatch/logGroup:LogGroup",
    } <= types
    for stack, found in cases.items():
        base = _plan(dev_graph if stack == "dev" else prod_graph)
        missed = [
            (urn, prop)
            for _, urn, prop in found
            if not _refused(base, _with(base, urn, prop, CHANGED), urn)
        ]
        assert missed == [], stack


def test_an_unprotected_alias_rename_is_a_replacement_but_not_refused(
    prod_graph: ResourceGraph,
) -> None:
    """KMS aliases are not protected (deleteBeforeReplace; the key they name is): the
    diff shows the replacement, the rollback may run it."""
    from mlstack.review.diff import diff_graphs

    base = _plan(prod_graph)
    alias = _one(base, "aws:kms/alias:Alias", "cluster-secrets-key-alias")
    head = _with(base, alias["urn"], "name", "alias/renamed")
    assert not _refused(base, head, alias["urn"])
    change = next(c for c in diff_graphs(base, head).changes if c.urn == alias["urn"])
    assert change.action == "replace"
