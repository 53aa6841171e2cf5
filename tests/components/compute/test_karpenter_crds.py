"""Karpenter CRD validators: the rendered objects pass; typos and bad enums do not."""

from __future__ import annotations

import copy
import dataclasses

from components.compute.karpenter_crds import crd_validators, karpenter_version
from components.versions import CHARTS
from mlstack.render_checks import CRD_VALIDATORS, check_kubernetes, manifest_of
from mlstack.synth import ResourceGraph

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"


def test_schemas_come_from_the_pinned_karpenter_release() -> None:
    assert karpenter_version() == CHARTS["karpenter"].version == CHARTS["karpenter-crd"].version


def test_validators_are_registered_for_both_kinds() -> None:
    assert set(crd_validators()) == {
        ("karpenter.sh/v1", "NodePool"),
        ("karpenter.k8s.aws/v1", "EC2NodeClass"),
    }
    assert ("karpenter.sh/v1", "NodePool") in CRD_VALIDATORS


def test_rendered_objects_are_valid(any_graph: ResourceGraph) -> None:
    validators = crd_validators()
    for type_token, key in (
        (NODE_POOL, ("karpenter.sh/v1", "NodePool")),
        (NODE_CLASS, ("karpenter.k8s.aws/v1", "EC2NodeClass")),
    ):
        for node in any_graph.by_type(type_token):
            assert validators[key](manifest_of(node)) == []


def test_misspelt_and_invalid_fields_are_caught(dev_graph: ResourceGraph) -> None:
    validate = crd_validators()[("karpenter.sh/v1", "NodePool")]
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


def test_nodeclass_typos_are_caught(dev_graph: ResourceGraph) -> None:
    validate = crd_validators()[("karpenter.k8s.aws/v1", "EC2NodeClass")]
    manifest = manifest_of(dev_graph.one(NODE_CLASS))
    manifest["spec"]["blockDeviceMappings"][0]["ebs"]["volumeSise"] = "100Gi"
    manifest["spec"]["instanceStorePolicy"] = "RAID5"
    problems = validate(manifest)
    assert any("volumeSise" in p for p in problems)
    assert any("RAID5" in p for p in problems)


def test_render_check_reports_a_broken_nodepool(dev_graph: ResourceGraph) -> None:
    node = dev_graph.one(NODE_POOL)
    inputs = copy.deepcopy(node.inputs)
    inputs["spec"]["template"]["spec"]["taints"][0]["effect"] = "NoScheduleX"
    broken = dataclasses.replace(node, inputs=inputs)
    graph = ResourceGraph("dev", "dev", "us-west-2", [broken])
    findings = list(check_kubernetes(graph, "1.33"))
    assert len(findings) == 1 and "NoScheduleX" in findings[0].message
