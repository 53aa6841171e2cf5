"""Karpenter custom resources against the release's CRD schemas: rendered objects pass;
typos and bad enums do not."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from components.versions import CHARTS
from mlstack.custom_resources import SchemaStore
from mlstack.render_checks import check_kubernetes, manifest_of
from mlstack.synth import ResourceGraph

NODE_POOL_KIND = ("karpenter.sh/v1", "NodePool")
NODE_CLASS_KIND = ("karpenter.k8s.aws/v1", "EC2NodeClass")

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"


@pytest.mark.parametrize("kind", [NODE_POOL_KIND, NODE_CLASS_KIND])
def test_schemas_come_from_the_pinned_karpenter_release(
    crd_schemas: SchemaStore, kind: tuple[str, str]
) -> None:
    assert CHARTS["karpenter"].version == CHARTS["karpenter-crd"].version
    schema = crd_schemas.get(kind)
    assert schema is not None
    assert CHARTS["karpenter-crd"].version in schema.source


def test_rendered_objects_are_valid(any_graph: ResourceGraph, crd_schemas: SchemaStore) -> None:
    checked = 0
    for type_token, key in ((NODE_POOL, NODE_POOL_KIND), (NODE_CLASS, NODE_CLASS_KIND)):
        for node in any_graph.by_type(type_token):
            assert crd_schemas.validator(key)(manifest_of(node)) == []
            checked += 1
    assert checked >= 2


def test_misspelt_and_invalid_fields_are_caught(
    dev_graph: ResourceGraph, crd_schemas: SchemaStore
) -> None:
    validate = crd_schemas.validator(NODE_POOL_KIND)
    manifest = manifest_of(dev_graph.one(NODE_POOL))
    typo = copy.deepcopy(manifest)
    typo["spec"]["template"]["spec"]["requirement"] = typo["spec"]["template"]["spec"].pop(
        "requirements"
    )
    problems = validate(typo)
    assert any("'requirement' was unexpected" in p for p in problems)
    assert any("'requirements' is a required property" in p for p in problems)
    bad_policy = copy.deepcopy(manifest)
    bad_policy["spec"]["disruption"]["consolidationPolicy"] = "Always"
    assert any("spec.disruption.consolidationPolicy" in p for p in validate(bad_policy))
    bad_limit = copy.deepcopy(manifest)
    bad_limit["spec"]["limits"]["nvidia.com/gpu"] = "eight"
    assert validate(bad_limit)


def test_nodeclass_typos_are_caught(dev_graph: ResourceGraph, crd_schemas: SchemaStore) -> None:
    validate = crd_schemas.validator(NODE_CLASS_KIND)
    manifest = manifest_of(dev_graph.one(NODE_CLASS))
    manifest["spec"]["blockDeviceMappings"][0]["ebs"]["volumeSise"] = "100Gi"
    manifest["spec"]["instanceStorePolicy"] = "RAID5"
    problems = validate(manifest)
    assert any("volumeSise" in p for p in problems)
    assert any("RAID5" in p for p in problems)


def test_render_check_reports_a_broken_nodepool(
    dev_graph: ResourceGraph, crd_schemas: SchemaStore
) -> None:
    node = dev_graph.one(NODE_POOL)
    inputs = copy.deepcopy(node.inputs)
    inputs["spec"]["template"]["spec"]["taints"][0]["effect"] = "NoScheduleX"
    broken = dataclasses.replace(node, inputs=inputs)
    graph = ResourceGraph("dev", "dev", "us-west-2", [broken])
    findings = list(check_kubernetes(graph, "1.33", crd_schemas))
    assert len(findings) == 1 and "NoScheduleX" in findings[0].message
