"""Render checks catch what they claim to: each check fails on a bad input."""

from __future__ import annotations

import json
from typing import Any

from mlstack.render_checks import (
    check_aws_enums,
    check_iam,
    check_kubernetes,
    check_providers,
    check_unique_objects,
    policy_problems,
    unknown_actions,
)
from mlstack.synth import ResourceGraph, ResourceNode


def node(type_: str, inputs: dict[str, Any], provider: str | None = "urn:p", name: str = "n"):
    return ResourceNode(
        urn=f"urn:pulumi:t::mlstack::{type_}::{name}",
        type=type_,
        name=name,
        parent=None,
        custom=True,
        provider=provider,
        dependencies=(),
        protect=False,
        retain_on_delete=False,
        ignore_changes=(),
        inputs=inputs,
    )


def graph(*nodes: ResourceNode) -> ResourceGraph:
    return ResourceGraph(stack="t", environment="dev", region="us-west-2", resources=list(nodes))


def test_unknown_iam_actions_are_found_and_known_ones_pass() -> None:
    assert unknown_actions(["s3:GetObject", "kms:Decrypt", "s3:Get*"]) == []
    assert unknown_actions(["s3:GetObjekt", "s3:Fly*", "nosuch:Thing"]) == [
        "s3:GetObjekt",
        "s3:Fly*",
        "nosuch:Thing",
    ]


def test_policy_shape_problems() -> None:
    assert policy_problems("{not json") == [
        "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    ]
    problems = policy_problems({"Version": "2008-10-17", "Statement": [{"Effect": "Maybe"}]})
    assert "Version must be '2012-10-17', got '2008-10-17'" in problems
    assert "Statement[0].Effect must be Allow or Deny" in problems
    assert "Statement[0] has no Action" in problems


def test_check_iam_reads_role_trust_and_inline_policies() -> None:
    bad = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["s3:Teleport"], "Resource": "*"}],
        }
    )
    findings = list(check_iam(graph(node("aws:iam/rolePolicy:RolePolicy", {"policy": bad}))))
    assert [f.message for f in findings] == ["policy: Statement[0] unknown actions: s3:Teleport"]


def test_kubernetes_strict_schema_rejects_unknown_fields() -> None:
    good = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "default"},
        "data": {"a": "b"},
    }
    bad = {**good, "dta": {"a": "b"}}
    assert list(check_kubernetes(graph(node("kubernetes:core/v1:ConfigMap", good)), "1.33")) == []
    findings = list(check_kubernetes(graph(node("kubernetes:core/v1:ConfigMap", bad)), "1.33"))
    assert len(findings) == 1
    assert "dta" in findings[0].message


def test_custom_resources_without_a_schema_are_reported_not_passed() -> None:
    from mlstack.custom_resources import SchemaStore
    from mlstack.render_checks import Unvalidated

    cr = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    one = graph(node("kubernetes:apiextensions.k8s.io:CustomResource", cr))
    unvalidated: list[Unvalidated] = []
    assert list(check_kubernetes(one, "1.33", SchemaStore(None), unvalidated=unvalidated)) == []
    assert [u.gvk for u in unvalidated] == ["example.com/v1/Widget"]
    findings = list(check_kubernetes(one, "1.33", SchemaStore(None), strict_crds=True))
    assert findings and "not validated (no schema for example.com/v1/Widget)" in findings[0].message


def test_enum_check_flags_unknown_instance_and_capacity_types() -> None:
    group = node(
        "aws:eks/nodeGroup:NodeGroup",
        {"instanceTypes": ["g5.xlarge", "g5.mega"], "capacityType": "CHEAP"},
    )
    messages = [f.message for f in check_aws_enums(graph(group))]
    assert messages == ["unknown instance type 'g5.mega'", "unknown capacity type 'CHEAP'"]


def test_resources_on_a_default_provider_are_flagged() -> None:
    findings = list(check_providers(graph(node("aws:s3/bucket:Bucket", {}, provider=None))))
    assert len(findings) == 1


def _object(
    name: str, kind: str = "Deployment", api: str = "apps/v1", ns: str | None = "inference"
):
    metadata: dict[str, Any] = {"name": name}
    if ns is not None:
        metadata["namespace"] = ns
    return {"apiVersion": api, "kind": kind, "metadata": metadata}


def test_two_kubernetes_objects_with_one_identity_are_a_finding() -> None:
    first = node("kubernetes:apps/v1:Deployment", _object("llama"), name="a")
    second = node("kubernetes:apps/v1:Deployment", _object("llama"), name="b")
    findings = list(check_unique_objects(graph(first, second)))
    assert [f.urn for f in findings] == [second.urn]
    assert "Deployment.apps inference/llama is also declared by" in findings[0].message
    assert first.urn in findings[0].message


def test_same_name_in_another_kind_namespace_or_group_is_fine() -> None:
    nodes = [
        node("kubernetes:apps/v1:Deployment", _object("llama"), name="a"),
        node("kubernetes:core/v1:Service", _object("llama", "Service", "v1"), name="b"),
        node("kubernetes:apps/v1:Deployment", _object("llama", ns="other"), name="c"),
        node(
            "kubernetes:keda.sh/v1alpha1:ScaledObject",
            _object("llama", "ScaledObject", "keda.sh/v1alpha1"),
            name="d",
        ),
    ]
    assert list(check_unique_objects(graph(*nodes))) == []


def test_the_real_stacks_have_no_duplicate_objects(any_graph: ResourceGraph) -> None:
    assert list(check_unique_objects(any_graph)) == []


# --------------------------------------------------------------------------- custom resources


def _custom_resource() -> ResourceNode:
    return node(
        "kubernetes:example.com/v1:Widget",
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}},
    )


def test_a_custom_resource_without_schema_is_counted_never_passed_silently() -> None:
    from mlstack.custom_resources import SchemaStore
    from mlstack.render_checks import run_checks

    graph = ResourceGraph("t", "dev", "us-west-2", [_custom_resource()])
    report = run_checks(graph, "1.33", SchemaStore(None))
    assert report.findings == []
    assert [u.render() for u in report.unvalidated] == [
        "urn:pulumi:t::mlstack::kubernetes:example.com/v1:Widget::n: "
        "not validated (no schema for example.com/v1/Widget)"
    ]
    strict = run_checks(graph, "1.33", SchemaStore(None), strict_crds=True)
    assert [f.render() for f in strict.findings] == [
        "[crd-schema] urn:pulumi:t::mlstack::kubernetes:example.com/v1:Widget::n: "
        "not validated (no schema for example.com/v1/Widget)"
    ]


def test_a_builtin_kind_is_still_validated_by_kubernetes_validate_not_counted() -> None:
    from mlstack.custom_resources import SchemaStore
    from mlstack.render_checks import run_checks

    config_map = node(
        "kubernetes:core/v1:ConfigMap",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "dat": {}},
    )
    report = run_checks(
        ResourceGraph("t", "dev", "us-west-2", [config_map]), "1.33", SchemaStore(None)
    )
    assert report.unvalidated == []
    assert len(report.findings) == 1 and "dat" in report.findings[0].message
