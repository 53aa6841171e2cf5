"""The composition: both stacks synthesize cleanly, share one shape, use one provider."""

from __future__ import annotations

import json

from mlstack.plan import plan_json
from mlstack.render_checks import check_graph
from mlstack.synth import ResourceGraph, synth
from stacks.composition import default_tags, partition_of


def _shape(graph: ResourceGraph) -> set[tuple[str, str]]:
    """Component tree: (type, name) of every component resource."""
    return {(r.type, r.name) for r in graph.resources if not r.custom}


def test_dev_and_prod_have_the_same_component_tree(dev_graph, prod_graph) -> None:
    assert _shape(dev_graph) == _shape(prod_graph)
    assert {r.type for r in dev_graph.resources} == {r.type for r in prod_graph.resources}


def test_both_stacks_pass_every_render_check(any_graph, stack_configs) -> None:
    version = stack_configs[any_graph.stack].cluster.version
    assert [f.render() for f in check_graph(any_graph, version)] == []


def test_every_aws_resource_uses_the_one_explicit_provider(any_graph) -> None:
    aws_provider = any_graph.one("pulumi:providers:aws")
    aws_resources = [r for r in any_graph.resources if r.custom and r.type.startswith("aws:")]
    assert aws_resources
    assert {r.provider for r in aws_resources} == {aws_provider.urn}
    k8s_provider = any_graph.one("pulumi:providers:kubernetes")
    k8s_objects = [r for r in any_graph.resources if r.type.startswith("kubernetes:")]
    assert all(r.provider == k8s_provider.urn for r in k8s_objects)


def test_provider_region_and_default_tags_come_from_config(prod_graph, stack_configs) -> None:
    provider = prod_graph.one("pulumi:providers:aws")
    assert provider.inputs["region"] == "us-east-1"
    tags = provider.inputs["defaultTags"]
    expected = default_tags(stack_configs["prod"], "prod")
    assert json.loads(tags) == {"tags": expected}
    assert expected["environment"] == "prod"
    assert expected["costCenter"] == "ml-serving"


def test_outputs_name_the_cluster_and_keep_the_kubeconfig_secret(dev_graph) -> None:
    assert dev_graph.outputs["clusterName"] == "mlstack-dev"
    assert dev_graph.outputs["vpcId"] == "network-vpc-id"
    assert dev_graph.outputs["kubeconfig"] == "[secret]"
    assert "clusterEndpoint" in dev_graph.outputs


def test_synth_is_byte_identical_across_runs(dev_graph) -> None:
    assert plan_json(synth("dev")) == plan_json(dev_graph)


def test_partitions() -> None:
    assert partition_of("us-east-1") == "aws"
    assert partition_of("cn-north-1") == "aws-cn"
    assert partition_of("us-gov-west-1") == "aws-us-gov"


def test_every_custom_resource_is_validated_strictly(any_graph, stack_configs, crd_schemas) -> None:
    from mlstack.render_checks import run_checks

    version = stack_configs[any_graph.stack].cluster.version
    report = run_checks(any_graph, version, crd_schemas, strict_crds=True)
    assert [f.render() for f in report.findings] == []
    assert report.unvalidated == []
    kinds = {
        (r.inputs.get("apiVersion"), r.inputs.get("kind"))
        for r in any_graph.resources
        if r.custom and r.type.startswith("kubernetes:")
    }
    covered = {k for k in kinds if crd_schemas.get(k) is not None}  # type: ignore[arg-type]
    assert {
        ("karpenter.sh/v1", "NodePool"),
        ("karpenter.k8s.aws/v1", "EC2NodeClass"),
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("elbv2.k8s.aws/v1beta1", "TargetGroupBinding"),
    } <= covered


def depending_on(graph: ResourceGraph, urn: str) -> set[str]:
    """What the engine deletes (or replaces) before ``urn``: pulumi/pulumi
    ``pkg/resource/graph/dependency_graph.go``, ``DependencyGraph.DependingOn`` with
    ``includeChildren`` (as the delete paths of ``pkg/resource/deploy/step_generator.go``
    call it): a resource depends on ``urn`` if any of its dependencies, its parent or its
    provider reference does, transitively. (``DependenciesOf``, which ``ScheduleDeletes``
    orders deletes by, counts the provider reference the same way.) The engine scans the
    snapshot in topological order; the synth's resources are sorted by URN, so this
    iterates to a fixed point instead."""
    found = {urn}
    changed = True
    while changed:
        changed = False
        for r in graph.resources:
            if r.urn in found:
                continue
            edges = [*r.dependencies, *([r.parent] if r.parent else [])]
            edges += [r.provider] if r.provider else []
            if any(e in found for e in edges):
                found.add(r.urn)
                changed = True
    return found - {urn}


def test_every_kubernetes_object_is_deleted_before_the_access_of_whoever_runs_the_update(
    any_graph: ResourceGraph,
) -> None:
    """Issue 27 item 5: a destroy or replacement run by CI (or an admin) removes that
    identity's cluster access only after every Kubernetes object is gone."""
    updaters = [
        a
        for a in any_graph.by_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
        if a.inputs["policyArn"].endswith("/AmazonEKSClusterAdminPolicy")
    ]
    assert "ci-deploy-eks-policy" in {a.name for a in updaters}
    k8s_objects = [r for r in any_graph.resources if r.type.startswith("kubernetes:")]
    assert len(k8s_objects) > 20
    for association in updaters:
        entry = next(u for u in association.dependencies if "accessEntry:AccessEntry" in u)
        for access in (association.urn, entry):
            first = depending_on(any_graph, access)
            outliving = sorted(r.name for r in k8s_objects if r.urn not in first)
            assert outliving == [], (association.name, outliving)
