"""The lifecycle-* rules (policy/rules/lifecycle.py): each with a graph it passes and one it fails,
plus the real stacks (issue 14 item 2; the defects of issue 12 items 11 and 20)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from mlstack.review.plans import policy_stack
from mlstack.synth import ResourceGraph, ResourceNode
from policy.core import Resource, Stack, run_rule
from policy.rules import RULES_BY_ID
from policy.rules import lifecycle as lc
from tests.policy.graphs import graph, node

K8S_PROVIDER = "pulumi:providers:kubernetes"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
SERVICE = "kubernetes:core/v1:Service"
TGB = "kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
LB_COMPONENT = "mlstack:serving:LoadBalancer"


@dataclass
class World:
    """A small cluster: access entries, a k8s provider, system nodes, runtime add-ons and
    the LB Controller with its Pod Identity."""

    nodes: list[ResourceNode]
    provider: ResourceNode
    release: ResourceNode
    coredns: ResourceNode
    ci_access: ResourceNode


def world(*, controller_waits_for_all: bool) -> World:
    admin = node(lc.ACCESS_ENTRY, "admin", {"type": "STANDARD"})
    admin_policy = node(lc.ACCESS_POLICY_ASSOCIATION, "admin-policy", depends_on=(admin,))
    ci = node(lc.ACCESS_ENTRY, "ci-deploy-eks", {"type": "STANDARD"})
    ci_policy = node(lc.ACCESS_POLICY_ASSOCIATION, "ci-deploy-eks-policy", depends_on=(ci,))
    provider = node(K8S_PROVIDER, "k8s", depends_on=(admin, admin_policy), provider=None)
    system = node(lc.NODE_GROUP, "system", {"amiType": "AL2023_x86_64_STANDARD"})
    gpu = node(lc.NODE_GROUP, "gpu", {"amiType": "AL2023_x86_64_NVIDIA"})
    cni = node(lc.EKS_ADDON, "vpc-cni", {"addonName": "vpc-cni"})
    proxy = node(lc.EKS_ADDON, "kube-proxy", {"addonName": "kube-proxy"})
    agent = node(lc.EKS_ADDON, "pia", {"addonName": "eks-pod-identity-agent"})
    coredns = node(lc.EKS_ADDON, "coredns", {"addonName": "coredns"}, depends_on=(system,))
    component = node(LB_COMPONENT, "lb", custom=False, provider=None)
    role = node(lc.IAM_ROLE, "lb-role", parent=component)
    policy = node(
        "aws:iam/rolePolicy:RolePolicy", "lb-policy", depends_on=(role,), parent=component
    )
    association = node(lc.POD_IDENTITY_ASSOCIATION, "lb-pi", depends_on=(role,), parent=component)
    waits = [system, association, policy]
    if controller_waits_for_all:
        waits += [coredns, cni, proxy, agent, ci, ci_policy]
    release = node(
        lc.HELM_RELEASE,
        "lb-release",
        {"chart": "aws-load-balancer-controller", "skipCrds": False},
        depends_on=tuple(waits),
        parent=component,
        provider=provider.urn,
    )
    everything = [admin, admin_policy, ci, ci_policy, provider, system, gpu, cni, proxy, agent]
    everything += [coredns, component, role, policy, association, release]
    return World(everything, provider, release, coredns, ci_policy)


def stack_of(*nodes: ResourceNode, environment: str = "prod") -> Stack:
    return policy_stack(graph(*nodes, environment=environment))


def result(rule_id: str, *nodes: ResourceNode, environment: str = "prod"):
    return run_rule(RULES_BY_ID[rule_id], stack_of(*nodes, environment=environment))


def finalized(w: World, type_token: str, name: str, inputs: dict[str, Any] | None = None):
    return node(type_token, name, inputs, depends_on=(w.release,), provider=w.provider.urn)


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    passing: Callable[[], list[ResourceNode]]
    failing: Callable[[], list[ResourceNode]]
    message: str


def _destroy_order(ok: bool) -> list[ResourceNode]:
    w = world(controller_waits_for_all=ok)
    return [*w.nodes, finalized(w, INGRESS, "model-ingress")]


def _fixed_name(dbr: bool) -> list[ResourceNode]:
    return [
        node("aws:eks/cluster:Cluster", "eks", {"name": "mlstack-prod"}, delete_before_replace=dbr),
        node(lc.IAM_ROLE, "auto-named", {}),  # no fixed name: never a violation
    ]


def _retained(role_kept: bool) -> list[ResourceNode]:
    role = node(lc.IAM_ROLE, "cluster-role", retain_on_delete=role_kept)
    cluster = node("aws:eks/cluster:Cluster", "eks", depends_on=(role,), protect=True)
    return [role, cluster]


def _crd_order(depends: bool) -> list[ResourceNode]:
    crds = node(
        lc.HELM_RELEASE, "karpenter-crds", {"chart": "oci://public.ecr.aws/karpenter/karpenter-crd"}
    )
    pool = node(NODE_POOL, "pool", depends_on=(crds,) if depends else ())
    return [crds, pool]


LIFECYCLE_CASES: dict[str, Case] = {
    "lifecycle-destroy-order": Case(
        lambda: _destroy_order(True), lambda: _destroy_order(False), "a destroy may delete"
    ),
    "lifecycle-fixed-name-replace": Case(
        lambda: _fixed_name(True), lambda: _fixed_name(False), "set deleteBeforeReplace"
    ),
    "lifecycle-retained-dependencies": Case(
        lambda: _retained(True), lambda: _retained(False), "which a destroy deletes"
    ),
    "lifecycle-crd-order": Case(
        lambda: _crd_order(True), lambda: _crd_order(False), "which installs its CRD"
    ),
}
"""Graph cases; lifecycle-secrets-provider reads a stack file (own tests below)."""


@pytest.mark.parametrize("rule_id", sorted(LIFECYCLE_CASES))
def test_lifecycle_rule_passes_on_its_passing_graph(rule_id: str) -> None:
    outcome = result(rule_id, *LIFECYCLE_CASES[rule_id].passing())
    assert outcome.status == "pass", outcome.violations


@pytest.mark.parametrize("rule_id", sorted(LIFECYCLE_CASES))
def test_lifecycle_rule_fails_on_its_failing_graph(rule_id: str) -> None:
    outcome = result(rule_id, *LIFECYCLE_CASES[rule_id].failing())
    assert outcome.status == "fail"
    assert all(LIFECYCLE_CASES[rule_id].message in v.message for v in outcome.violations)
    assert outcome.blocking  # the whole family is mandatory


def test_every_lifecycle_rule_is_registered_and_mandatory() -> None:
    ids = {rule.id for rule in lc.LIFECYCLE_RULES}
    assert ids == {*LIFECYCLE_CASES, "lifecycle-secrets-provider"}
    assert all(RULES_BY_ID[i].enforcement == "mandatory" for i in ids)


# --------------------------------------------------------------------------- destroy order


def test_destroy_order_names_what_goes_first() -> None:
    outcome = result("lifecycle-destroy-order", *_destroy_order(False))
    message = outcome.violations[0].message
    assert "Addon coredns" in message and "AccessEntry ci-deploy-eks" in message
    assert "NodeGroup gpu" not in message  # GPU nodes do not run the controller


def test_a_target_group_binding_that_skips_its_controller_fails() -> None:
    w = world(controller_waits_for_all=True)
    binding = node(TGB, "model-tgb", provider=w.provider.urn)  # no depends_on the release
    outcome = result("lifecycle-destroy-order", *w.nodes, binding)
    assert outcome.status == "fail"
    assert "TargetGroupBinding model-tgb" in outcome.violations[0].message
    assert "HelmRelease" not in outcome.violations[0].message
    assert "Release lb-release" in outcome.violations[0].message


def test_the_controller_identity_counts_even_its_policy() -> None:
    w = world(controller_waits_for_all=True)
    extra = node(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "lb-extra",
        depends_on=(w.nodes[12],),  # lb-role
    )
    ingress = finalized(w, INGRESS, "model-ingress")
    outcome = result("lifecycle-destroy-order", *w.nodes, extra, ingress)
    assert outcome.status == "fail"
    assert "RolePolicyAttachment lb-extra" in outcome.violations[0].message


def test_a_finalized_object_without_its_controller_fails() -> None:
    pool = node(NODE_POOL, "pool")
    outcome = result("lifecycle-destroy-order", pool)
    assert outcome.status == "fail"
    assert "which the stack does not install" in outcome.violations[0].message


def test_pvcs_must_go_before_the_ebs_csi_driver_and_its_grant() -> None:
    role = node(lc.IAM_ROLE, "csi-role")
    grant = node(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "csi-policy", depends_on=(role,)
    )
    csi = node(lc.EKS_ADDON, "ebs-csi", {"addonName": "aws-ebs-csi-driver"}, depends_on=(role,))
    claim = node(PVC, "data", depends_on=(csi,))
    outcome = result("lifecycle-destroy-order", role, grant, csi, claim)
    assert outcome.status == "fail"
    assert "RolePolicyAttachment csi-policy" in outcome.violations[0].message
    fixed = node(
        lc.EKS_ADDON, "ebs-csi", {"addonName": "aws-ebs-csi-driver"}, depends_on=(role, grant)
    )
    assert result("lifecycle-destroy-order", role, grant, fixed, claim).status == "pass"


def test_a_claim_bound_to_a_premade_volume_needs_no_csi_driver() -> None:
    static = node(PVC, "cache", {"spec": {"storageClassName": "", "volumeName": "cache-pv"}})
    assert result("lifecycle-destroy-order", static).status == "n/a"
    for spec in ({"storageClassName": "gp3"}, {}):  # a named class, or the default one
        dynamic = node(PVC, "data", {"spec": spec})
        assert result("lifecycle-destroy-order", dynamic).status == "fail", spec


def test_cluster_ip_services_are_not_finalized_and_lb_services_are() -> None:
    w = world(controller_waits_for_all=False)
    plain = node(SERVICE, "svc", {"spec": {"type": "ClusterIP"}})
    assert result("lifecycle-destroy-order", *w.nodes, plain).status == "n/a"
    nlb = finalized(w, SERVICE, "nlb", {"spec": {"type": "LoadBalancer"}})
    assert result("lifecycle-destroy-order", *w.nodes, nlb).status == "fail"


def test_destroy_order_puts_the_ingress_before_coredns_and_the_controller() -> None:
    nodes = _destroy_order(True)
    order = lc.destroy_order(stack_of(*nodes))
    ingress = next(n.urn for n in nodes if n.name == "model-ingress")
    for name in ("coredns", "lb-release", "ci-deploy-eks-policy", "system"):
        other = next(n.urn for n in nodes if n.name == name)
        assert order.index(ingress) < order.index(other), name
    assert len(order) == len({*order})


def test_children_are_destroyed_before_their_parents_dependencies() -> None:
    waits = node(lc.EKS_ADDON, "coredns", {"addonName": "coredns"})
    parent = node(LB_COMPONENT, "lb", depends_on=(waits,), custom=False, provider=None)
    child = node(INGRESS, "ing", parent=parent)
    stack = stack_of(waits, parent, child)
    assert waits.urn in lc.deleted_after(stack, stack.get(child.urn))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- fixed names


def test_kubernetes_objects_with_names_are_left_to_their_provider() -> None:
    named = node(INGRESS, "ing", {"metadata": {"name": "fixed"}})
    assert result("lifecycle-fixed-name-replace", named).status == "n/a"


def test_an_unknown_name_is_still_a_fixed_name() -> None:
    topic = node("aws:sns/topic:Topic", "topic", {"name": "[unknown]"})
    assert result("lifecycle-fixed-name-replace", topic).status == "fail"


# --------------------------------------------------------------------------- retained


def test_retained_resources_may_depend_on_providers_and_components() -> None:
    component = node("mlstack:cluster:EksCluster", "cluster", custom=False, provider=None)
    cluster = node("aws:eks/cluster:Cluster", "eks", depends_on=(component,), protect=True)
    assert result("lifecycle-retained-dependencies", component, cluster).status == "pass"


def test_nothing_kept_is_not_applicable() -> None:
    assert result("lifecycle-retained-dependencies", node(lc.IAM_ROLE, "r")).status == "n/a"


# --------------------------------------------------------------------------- CRD order


def test_a_chart_installed_with_skip_crds_does_not_install_them() -> None:
    controller = node(
        lc.HELM_RELEASE,
        "lbc",
        {"chart": "aws-load-balancer-controller", "skipCrds": True},
    )
    binding = node(TGB, "tgb", depends_on=(controller,))
    outcome = result("lifecycle-crd-order", controller, binding)
    assert outcome.status == "fail"
    assert "nothing in the stack installs its CRD" in outcome.violations[0].message


def test_a_crd_resource_installs_its_group() -> None:
    crd = node(lc.CRD_TYPE, "tgb-crd", {"spec": {"group": "elbv2.k8s.aws"}})
    binding = node(TGB, "tgb", depends_on=(crd,))
    assert result("lifecycle-crd-order", crd, binding).status == "pass"


def test_built_in_kinds_need_no_crd() -> None:
    assert result("lifecycle-crd-order", node(INGRESS, "ing")).status == "n/a"


# --------------------------------------------------------------------------- secrets provider


def _file_stack(stack_file: dict[str, Any] | None) -> Stack:
    resources = [
        Resource(
            urn="urn:pulumi:nosuch::mlstack::aws:iam/role:Role::r", type="x", name="r", props={}
        )
    ]
    return Stack(resources, "dev", stack_file=stack_file, stack_file_path="Pulumi.x.yaml")


SECRETS = RULES_BY_ID["lifecycle-secrets-provider"]
SECURE = {"config": {"mlstack:monitoring": {"grafanaAdminPassword": {"secure": "v1:abc"}}}}


def test_secure_values_without_a_secrets_provider_fail() -> None:
    outcome = run_rule(SECRETS, _file_stack(SECURE))
    assert outcome.status == "fail" and outcome.blocking
    message = outcome.violations[0].message
    assert "Pulumi.x.yaml" in message
    assert "mlstack:monitoring.grafanaAdminPassword" in message
    assert "names no secretsprovider" in message
    assert 'pulumi stack init x --secrets-provider="awskms://' in message


def test_secure_values_with_provider_and_key_pass() -> None:
    complete = {**SECURE, "secretsprovider": "awskms://alias/x", "encryptedkey": "AQIC"}
    assert run_rule(SECRETS, _file_stack(complete)).status == "pass"


def test_secure_values_next_to_no_encryptedkey_fail_as_foreign_ciphertext() -> None:
    half = {**SECURE, "secretsprovider": "awskms://alias/x"}
    outcome = run_rule(SECRETS, _file_stack(half))
    assert outcome.status == "fail"
    assert "no encryptedkey" in outcome.violations[0].message
    assert "makes a new data key" in outcome.violations[0].message


def test_the_committed_shape_a_provider_and_no_ciphertext_passes() -> None:
    template = {"secretsprovider": "awskms://alias/x?region=us-west-2", "config": {}}
    assert run_rule(SECRETS, _file_stack(template)).status == "pass"


def test_an_encryptedkey_without_a_cloud_provider_fails() -> None:
    orphan = {"encryptedkey": "AQIC", "config": {"mlstack:region": "us-east-1"}}
    outcome = run_rule(SECRETS, _file_stack(orphan))
    assert outcome.status == "fail"
    assert outcome.violations[0].message.startswith("Pulumi.x.yaml: encryptedkey: ")


def test_a_stack_file_without_secrets_passes_and_no_file_is_not_applicable() -> None:
    assert (
        run_rule(SECRETS, _file_stack({"config": {"mlstack:region": "us-east-1"}})).status == "pass"
    )
    assert run_rule(SECRETS, _file_stack(None)).status == "n/a"


# --------------------------------------------------------------------------- real stacks

GRAPH_RULES = sorted(LIFECYCLE_CASES)


@pytest.mark.parametrize("rule_id", GRAPH_RULES)
def test_real_stacks_pass_the_lifecycle_graph_rules(any_graph: ResourceGraph, rule_id: str) -> None:
    outcome = run_rule(RULES_BY_ID[rule_id], policy_stack(any_graph))
    kept_nothing = rule_id == "lifecycle-retained-dependencies" and any_graph.stack == "dev"
    assert outcome.status == ("n/a" if kept_nothing else "pass"), outcome.violations


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_real_stack_files_name_their_secrets_provider(stack: str) -> None:
    import yaml

    from stacks.config import PROJECT_ROOT

    data = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
    stack_view = Stack([], stack, stack_file=data, stack_file_path=f"Pulumi.{stack}.yaml")
    assert run_rule(SECRETS, stack_view).status == "pass"


def test_the_rule_reads_the_real_stack_file_by_the_urns_stack(dev_graph: ResourceGraph) -> None:
    outcome = run_rule(SECRETS, policy_stack(dev_graph))
    assert outcome.status in ("pass", "fail")  # applicable: the file was found
    if outcome.status == "fail":
        assert "Pulumi.dev.yaml" in outcome.violations[0].message


def _by_name(g: ResourceGraph, name: str) -> ResourceNode:
    return next(n for n in g.resources if n.name == name)


def test_dev_objects_the_controllers_finalize_outlive_nothing_they_need(
    dev_graph: ResourceGraph,
) -> None:
    """Issue 12 item 20: coredns, the CI access entries and the EBS CSI grant were deleted
    first (no dependents) on the old code."""
    stack = policy_stack(dev_graph)
    pool = stack.get(_by_name(dev_graph, "gpu-inference-nodepool").urn)
    assert pool is not None
    after = lc.deleted_after(stack, pool)
    for name in (
        "cluster-addon-coredns",
        "ci-deploy-eks",
        "ci-deploy-eks-policy",
        "cluster-addon-pod-identity-agent",
        "karpenter-controller",
        "cluster-system-nodes",
    ):
        assert _by_name(dev_graph, name).urn in after, name
    csi = _by_name(dev_graph, "cluster-addon-ebs-csi")
    assert _by_name(dev_graph, "cluster-ebs-csi-policy").urn in csi.dependencies
    prometheus = next(
        n
        for n in dev_graph.resources
        if n.type == lc.HELM_RELEASE and "prometheus" in str(n.inputs.get("chart"))
    )
    assert csi.urn in lc.deleted_after(stack, stack.get(prometheus.urn))  # type: ignore[arg-type]


def test_fixed_names_replace_delete_first_on_the_real_stacks(any_graph: ResourceGraph) -> None:
    """Issue 12 item 11: cluster, node groups, topic, log groups, KMS aliases."""
    for name in (
        "cluster-eks",
        "cluster-control-plane-logs",
        "cluster-secrets-key-alias",
        "monitoring-topic",
        "monitoring-topic-key-alias",
        "artifacts-key-alias",
        "network-flow-logs",
    ):
        assert _by_name(any_graph, name).delete_before_replace, name


def test_flow_log_group_names_carry_the_stack(any_graph: ResourceGraph) -> None:
    group = _by_name(any_graph, "network-flow-logs")
    assert f"mlstack-{any_graph.stack}" in group.inputs["name"]


def test_prod_keeps_what_its_retained_cluster_depends_on(prod_graph: ResourceGraph) -> None:
    """Issue 12 item 20: the retained prod cluster's role was deleted on destroy."""
    cluster = _by_name(prod_graph, "cluster-eks")
    assert cluster.protect and cluster.retain_on_delete
    for urn in cluster.dependencies:
        dep = next(n for n in prod_graph.resources if n.urn == urn)
        if dep.custom and not dep.type.startswith("pulumi:providers:"):
            assert dep.retain_on_delete or dep.protect, dep.name


def test_the_plan_records_delete_before_replace(dev_graph: ResourceGraph) -> None:
    plan = dev_graph.to_json()
    cluster = next(r for r in plan["resources"] if r["name"] == "cluster-eks")
    assert cluster["deleteBeforeReplace"] is True


def test_the_review_report_shows_a_failing_lifecycle_rule_like_any_other() -> None:
    from mlstack.review.policy_check import check_policy, render_markdown

    report = check_policy(graph(*_destroy_order(False)))
    assert not report.ok
    text = render_markdown(report)
    assert "| ❌ fail | `lifecycle-destroy-order` | mandatory | high |" in text
    assert "a destroy may delete" in text


def test_other_roles_of_the_controllers_component_are_not_its_identity() -> None:
    """A grant on the role of the nodes Karpenter launches (an image-pull policy) is not
    something the controller needs to finish its finalizers."""
    w = world(controller_waits_for_all=True)
    component = next(n for n in w.nodes if n.name == "lb")
    node_role = node(lc.IAM_ROLE, "lb-node-role", parent=component)
    pull = node("aws:iam/rolePolicy:RolePolicy", "pull", depends_on=(node_role,))
    ingress = finalized(w, INGRESS, "model-ingress")
    assert result("lifecycle-destroy-order", *w.nodes, node_role, pull, ingress).status == "pass"


# --------------------------------------------------------------------------- updater access

CLUSTER_ADMIN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
VIEW = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminViewPolicy"


def _updater_world(*, provider_waits_for_ci: bool) -> tuple[list[ResourceNode], ResourceNode]:
    """Admins' and CI deploy's cluster-admin associations, a drift view association, a
    provider and a namespace that depends on nothing but its provider."""
    admin = node(lc.ACCESS_ENTRY, "admin", {"type": "STANDARD"})
    admin_policy = node(
        lc.ACCESS_POLICY_ASSOCIATION,
        "admin-policy",
        {"policyArn": CLUSTER_ADMIN},
        depends_on=(admin,),
    )
    ci = node(lc.ACCESS_ENTRY, "ci-deploy-eks", {"type": "STANDARD"})
    ci_policy = node(
        lc.ACCESS_POLICY_ASSOCIATION,
        "ci-deploy-eks-policy",
        {"policyArn": CLUSTER_ADMIN},
        depends_on=(ci,),
    )
    drift = node(lc.ACCESS_ENTRY, "ci-drift-eks", {"type": "STANDARD"})
    drift_policy = node(
        lc.ACCESS_POLICY_ASSOCIATION,
        "ci-drift-eks-policy",
        {"policyArn": VIEW},
        depends_on=(drift,),
    )
    waits = (admin_policy, ci, ci_policy) if provider_waits_for_ci else (admin_policy,)
    provider = node(K8S_PROVIDER, "k8s", depends_on=waits, provider=None)
    namespace = node("kubernetes:core/v1:Namespace", "serving", provider=provider.urn)
    nodes = [admin, admin_policy, ci, ci_policy, drift, drift_policy, provider, namespace]
    return nodes, namespace


def test_destroy_order_flags_a_kubernetes_object_that_outlives_the_ci_deploy_access() -> None:
    nodes, namespace = _updater_world(provider_waits_for_ci=False)
    outcome = result("lifecycle-destroy-order", *nodes)
    assert outcome.status == "fail"
    [violation] = outcome.violations
    assert violation.urn == namespace.urn
    assert "AccessPolicyAssociation ci-deploy-eks-policy" in violation.message
    assert "AccessEntry ci-deploy-eks" in violation.message
    assert "admin" not in violation.message  # the provider waits for the admins' access
    assert "ci-drift" not in violation.message  # a reader's access is not an updater's


def test_destroy_order_passes_when_the_provider_waits_for_the_ci_deploy_access() -> None:
    nodes, _ = _updater_world(provider_waits_for_ci=True)
    assert result("lifecycle-destroy-order", *nodes).status == "pass"


def _today(graph_: ResourceGraph) -> ResourceGraph:
    """``graph_`` as main built it: the Kubernetes provider did not wait for CI's access."""
    from dataclasses import replace

    resources = [
        replace(r, dependencies=tuple(d for d in r.dependencies if "ci-deploy-eks" not in d))
        if r.type == K8S_PROVIDER
        else r
        for r in graph_.resources
    ]
    return replace(graph_, resources=resources)


def test_destroy_order_flags_the_plan_whose_provider_skips_the_ci_deploy_access(
    any_graph: ResourceGraph,
) -> None:
    """Issue 27 item 5: on main the serving namespace, the model Deployments, Services,
    service accounts and PDBs, the cache admission policy and binding, the cache volume and
    claim (13 objects in dev) did not depend on ``ci-deploy-eks-policy``; the provider now
    does (and so every object does)."""
    outcome = run_rule(RULES_BY_ID["lifecycle-destroy-order"], policy_stack(_today(any_graph)))
    urns = [str(v.urn) for v in outcome.violations]
    flagged = {u.rsplit("::", 1)[-1] for u in urns}
    assert outcome.status == "fail"
    # (The model Deployments now reach the access through their TargetGroupBindings, which
    # wait for the load-balancer controller, so fewer objects are flagged than on main.)
    assert len(flagged) > 10
    kinds = {u.split("::")[-2].rsplit(":", 1)[-1] for u in urns}
    assert {"Namespace", "Service", "ServiceAccount", "PodDisruptionBudget"} <= kinds
    assert all("ci-deploy-eks-policy" in v.message for v in outcome.violations)
    provider = any_graph.one(K8S_PROVIDER)
    assert _by_name(any_graph, "ci-deploy-eks-policy").urn in provider.dependencies
    assert (
        run_rule(RULES_BY_ID["lifecycle-destroy-order"], policy_stack(any_graph)).status == "pass"
    )
