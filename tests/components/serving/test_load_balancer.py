"""LoadBalancer: controller IAM (TargetGroupBinding only), Helm values, the shared ALB,
its listeners and security groups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.serving import runtimes
from components.serving.identity import WorkloadIdentity
from components.serving.load_balancer import (
    CLUSTER_TAG,
    CONTROLLER_STATEMENTS,
    NOT_GRANTED,
    LoadBalancerArgs,
    account_of,
    controller_policy,
)
from components.validation import ComponentArgsError
from components.versions import AWS_LOAD_BALANCER_CONTROLLER_CHART
from mlstack.custom_resources import SchemaStore
from mlstack.render_checks import policy_problems
from mlstack.synth import ResourceGraph, SynthError
from tests.components.serving.conftest import (
    ACCOUNT,
    CERT,
    CLUSTER,
    NODE_SG,
    REGION,
    VPC,
    VPC_CIDR,
    ServiceSpec,
    synth_serving,
)

RELEASE = "kubernetes:helm.sh/v3:Release"
ALB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
UPSTREAM_POLICY = "iam/aws-load-balancer-controller-v3.5.0-iam_policy.json"


def policy() -> dict[str, Any]:
    return controller_policy("aws", REGION, ACCOUNT, CLUSTER)


def statements() -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy()["Statement"]}


def test_policy_is_valid_and_uses_only_known_actions() -> None:
    assert policy_problems(policy()) == []


def test_controller_keeps_only_what_target_group_bindings_need() -> None:
    every = {a for st in policy()["Statement"] for a in st["Action"]}
    assert every == {
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeVpcs",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetHealth",
        "elasticloadbalancing:DeregisterTargets",
        "elasticloadbalancing:RegisterTargets",
    }
    # Each kept statement says why it is there.
    assert [k.sid for k in CONTROLLER_STATEMENTS] == [s["Sid"] for s in policy()["Statement"]]
    assert all(len(k.reason) > 40 for k in CONTROLLER_STATEMENTS)


def test_registration_is_pinned_to_this_region_account_and_cluster() -> None:
    register = statements()["RegisterPodTargets"]
    assert register["Resource"] == [
        f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/*/*"
    ]
    assert register["Condition"] == {"StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG}": CLUSTER}}
    describe = statements()["DescribeForTargetGroupBinding"]
    assert describe["Resource"] == ["*"]
    assert all(a.split(":")[1].startswith("Describe") for a in describe["Action"])


def test_every_upstream_action_is_kept_or_listed_as_a_deliberate_difference(
    upstream: Path,
) -> None:
    reference = json.loads((upstream / UPSTREAM_POLICY).read_text(encoding="utf-8"))
    upstream_actions = {
        a
        for statement in reference["Statement"]
        for a in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
    }
    kept = {a for st in policy()["Statement"] for a in st["Action"]}
    assert kept <= upstream_actions
    assert upstream_actions - kept == set(NOT_GRANTED)
    assert not kept & set(NOT_GRANTED)
    assert all(reason.startswith("not granted") for reason in NOT_GRANTED.values())


def test_account_is_read_from_an_arn() -> None:
    assert account_of(f"arn:aws:iam::{ACCOUNT}:oidc-provider/x") == ACCOUNT
    with pytest.raises(ValueError, match="no account id"):
        account_of("not-an-arn")


@pytest.fixture(scope="module")
def graph() -> ResourceGraph:
    return synth_serving([ServiceSpec()])


def release(graph: ResourceGraph) -> dict[str, Any]:
    return graph.one(RELEASE, "load-balancer-release").inputs


def test_controller_chart_is_pinned_and_configured_for_this_cluster(graph: ResourceGraph) -> None:
    r = release(graph)
    assert r["chart"] == "aws-load-balancer-controller"
    assert r["version"] == AWS_LOAD_BALANCER_CONTROLLER_CHART.version
    assert r["repositoryOpts"]["repo"] == "https://aws.github.io/eks-charts"
    values = r["values"]
    assert (values["clusterName"], values["region"], values["vpcId"]) == (CLUSTER, REGION, VPC)
    assert values["nodeSelector"] == {"mlstack.io/node-role": "system"}
    assert (values["enableWaf"], values["enableWafv2"], values["enableShield"]) == (False,) * 3
    assert values["createIngressClassResource"] is False
    assert values["enableServiceMutatorWebhook"] is False
    assert values["podDisruptionBudget"] == {"maxUnavailable": 1}


def test_controller_role_trusts_only_its_service_account(graph: ResourceGraph) -> None:
    role = graph.one("aws:iam/role:Role", "load-balancer-role")
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Condition"]["StringEquals"] == {
        "aws:RequestTag/eks-cluster-name": CLUSTER,
        "aws:RequestTag/kubernetes-namespace": "kube-system",
        "aws:RequestTag/kubernetes-service-account": "aws-load-balancer-controller",
    }
    inline = graph.one("aws:iam/rolePolicy:RolePolicy", "load-balancer-controller-policy")
    assert json.loads(inline.inputs["policy"]) == policy()


def test_describe_instances_is_not_granted_because_the_controller_never_calls_it_here(
    mixed_graph: ResourceGraph,
) -> None:
    """The two call sites of ``ec2:DescribeInstances`` in the controller v3.5.0 (read in
    kubernetes-sigs/aws-load-balancer-controller at tag v3.5.0):

    * ``pkg/aws/cloud.go`` ``getVpcID``: returns ``cfg.VpcID`` when ``--aws-vpc-id`` is set
      (the chart's ``vpcId`` value); only ``inferVPCID`` (IMDS, then DescribeInstances of
      ``$NODENAME``) calls it;
    * ``pkg/networking/node_info_provider.go`` ``FetchNodeInstances``, reached from the pod
      and node ENI resolvers, which ``pkg/networking/networking_manager.go``
      ``ReconcileForPodEndpoints`` / ``ReconcileForNodePortEndpoints`` run only when
      ``tgb.Spec.Networking != nil``.

    The same two conditions, evaluated on the plan: vpcId set, no binding with networking,
    every binding an ``ip`` target; so the policy grants no DescribeInstances."""
    values = mixed_graph.one(RELEASE, "load-balancer-release").inputs["values"]
    assert values["vpcId"], "without vpcId the controller infers its VPC: DescribeInstances"
    bindings = mixed_graph.by_type("kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding")
    assert bindings
    for node in bindings:
        assert "networking" not in node.inputs["spec"], node.name
        assert node.inputs["spec"]["targetType"] == "ip", node.name
    every = {a for st in policy()["Statement"] for a in st["Action"]}
    assert "ec2:DescribeInstances" not in every
    assert "pkg/aws/cloud.go" in NOT_GRANTED["ec2:DescribeInstances"]


def test_pod_readiness_gate_webhook_fails_closed_for_inference_pods_only(
    graph: ResourceGraph,
) -> None:
    """The chart (aws/eks-charts v0.0.242, aws-load-balancer-controller 3.5.0,
    ``templates/webhook.yaml``) renders ``mpod.elbv2.k8s.aws`` with
    ``failurePolicy: {{ .Values.podMutatorWebhookConfig.failurePolicy }}`` (default
    ``Ignore``: a controller outage lets pods start without their readiness gate, so a
    rolling update may remove old targets before new ones are healthy) and appends
    ``.Values.objectSelector.matchLabels`` to its objectSelector. With ``Fail`` the
    selector limits who an outage blocks: model pods (component ``inference``) in
    namespaces labelled ``elbv2.k8s.aws/pod-readiness-gate-inject: enabled``."""
    values = release(graph)["values"]
    assert values["podMutatorWebhookConfig"] == {"failurePolicy": "Fail"}
    assert values["objectSelector"] == {
        "matchLabels": {runtimes.COMPONENT_LABEL: runtimes.COMPONENT_VALUE}
    }


def test_no_ingress_class_or_ingress_objects(graph: ResourceGraph) -> None:
    for kind in (
        "kubernetes:networking.k8s.io/v1:Ingress",
        "kubernetes:networking.k8s.io/v1:IngressClass",
        "kubernetes:elbv2.k8s.aws/v1beta1:IngressClassParams",
    ):
        assert not graph.by_type(kind), kind


def test_shared_alb_is_hardened_and_pulumi_owned(graph: ResourceGraph) -> None:
    alb = graph.one(ALB, "load-balancer-alb").inputs
    assert alb["loadBalancerType"] == "application"
    assert alb["internal"] is True
    assert alb["dropInvalidHeaderFields"] is True
    assert alb["desyncMitigationMode"] == "defensive"
    assert alb["idleTimeout"] == 600
    assert alb["enableDeletionProtection"] is False
    assert "accessLogs" not in alb
    https = graph.one(LISTENER, "load-balancer-https").inputs
    assert (https["port"], https["protocol"], https["certificateArn"]) == (443, "HTTPS", CERT)
    assert https["sslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert https["defaultActions"][0]["fixedResponse"]["statusCode"] == "404"
    http = graph.one(LISTENER, "load-balancer-http").inputs
    (redirect,) = http["defaultActions"]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"] == {"port": "443", "protocol": "HTTPS", "statusCode": "HTTP_301"}


def test_alb_security_group_opens_listeners_to_sources_and_pods_only_to_the_alb(
    graph: ResourceGraph,
) -> None:
    ingress = {n.name: n.inputs for n in graph.by_type(INGRESS_RULE)}
    assert ingress["load-balancer-alb-sg-in-443-0"]["cidrIpv4"] == VPC_CIDR  # internal default
    assert ingress["load-balancer-alb-sg-in-80-0"]["fromPort"] == 80
    pods = ingress["load-balancer-alb-sg-pods-in-8000"]
    assert pods["securityGroupId"] == NODE_SG
    assert (pods["fromPort"], pods["toPort"]) == (8000, 8000)
    assert "cidrIpv4" not in pods and pods["referencedSecurityGroupId"]
    (egress,) = [
        n.inputs for n in graph.by_type(EGRESS_RULE) if n.name.startswith("load-balancer-alb")
    ]
    assert egress["referencedSecurityGroupId"] == NODE_SG
    assert (egress["fromPort"], egress["toPort"]) == (8000, 8000)


def test_bindings_pass_the_crd_schema(mixed_graph: ResourceGraph, crd_schemas: SchemaStore) -> None:
    validate = crd_schemas.validator(("elbv2.k8s.aws/v1beta1", "TargetGroupBinding"))
    for node in mixed_graph.by_type("kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding"):
        manifest = {k: node.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")}
        assert validate(manifest) == [], node.name
        manifest["spec"]["targetType"] = "pod"
        assert validate(manifest)


def test_internet_facing_with_logs_and_protection() -> None:
    graph = synth_serving(
        [ServiceSpec()],
        lb_overrides={
            "scheme": "internet-facing",
            "access_logs_bucket": "alb-logs",
            "access_logs_prefix": "prod",
            "inbound_cidrs": ("203.0.113.0/24",),
            "deletion_protection": True,
            "extra_certificate_arns": (CERT.replace("1111", "9999"),),
        },
    )
    alb = graph.one(ALB, "load-balancer-alb").inputs
    assert alb["internal"] is False
    assert alb["enableDeletionProtection"] is True
    assert alb["accessLogs"] == {"bucket": "alb-logs", "prefix": "prod", "enabled": True}
    sources = {n.inputs["cidrIpv4"] for n in graph.by_type(INGRESS_RULE) if "cidrIpv4" in n.inputs}
    assert sources == {"203.0.113.0/24"}
    (extra,) = graph.by_type("aws:lb/listenerCertificate:ListenerCertificate")
    assert extra.inputs["certificateArn"] == CERT.replace("1111", "9999")


def test_internet_facing_without_cidrs_and_alb_without_certificate_are_rejected() -> None:
    with pytest.raises(SynthError) as info:
        synth_serving(
            [ServiceSpec()], lb_overrides={"certificate_arn": None, "scheme": "internet-facing"}
        )
    cause = info.value.__cause__
    assert isinstance(cause, ComponentArgsError)
    assert cause.problems == [
        "certificate_arn: None: the ALB's HTTPS listener needs an ACM ARN",
        "inbound_cidrs: (): an internet-facing scheme needs explicit CIDRs",
    ]


def test_args_problems_list_everything() -> None:
    args = LoadBalancerArgs(
        cluster_name=CLUSTER,
        region=REGION,
        vpc_id=VPC,
        vpc_cidr=VPC_CIDR,
        subnet_ids=[],
        target_security_group_id=NODE_SG,
        identity=WorkloadIdentity("irsa", CLUSTER, "arn", "https://x"),
        ssl_policy="ELBSecurityPolicy-2016-08",
        idle_timeout_seconds=5000,
        replicas=0,
        desync_mitigation_mode="monitor",
    )
    assert len(args.problems()) == 4
    assert any("ELBSecurityPolicy-2016-08" in p for p in args.problems())


def test_irsa_mode_annotates_the_controllers_service_account() -> None:
    graph = synth_serving([ServiceSpec()], identity_mode="irsa")
    values = release(graph)["values"]
    annotation = values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert annotation.endswith("load-balancer-role")
    role = graph.one("aws:iam/role:Role", "load-balancer-role")
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    (sub,) = [v for k, v in statement["Condition"]["StringEquals"].items() if k.endswith(":sub")]
    assert sub == "system:serviceaccount:kube-system:aws-load-balancer-controller"
    assert not graph.by_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")


def test_controller_release_installs_its_charts_crds_before_any_target_group_binding(
    graph: ResourceGraph,
) -> None:
    """Issue 27 item 12: the CRDs come from the pinned chart's crds/ (Helm installs them
    first, on install), not from a manifest fetched from GitHub; every binding waits."""
    release = graph.one("kubernetes:helm.sh/v3:Release", "load-balancer-release")
    assert release.inputs.get("skipCrds") in (None, False)
    assert graph.by_type("kubernetes:yaml/v2:ConfigFile") == []
    bindings = graph.by_type("kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding")
    assert bindings
    index = {r.urn: r for r in graph.resources}
    for binding in bindings:
        seen: set[str] = set()
        todo = list(binding.dependencies)
        while todo:
            urn = todo.pop()
            if urn not in seen and urn in index:
                seen.add(urn)
                todo += index[urn].dependencies
        assert release.urn in seen, binding.urn


def test_model_nlbs_share_one_security_group_open_only_on_their_ports(
    graph: ResourceGraph,
) -> None:
    group = graph.one(SG, "load-balancer-nlb-sg")
    ingress = [n.inputs for n in graph.by_type(INGRESS_RULE) if n.name.startswith(group.name)]
    from_clients = sorted(r["fromPort"] for r in ingress if "cidrIpv4" in r)
    to_pods = sorted(r["fromPort"] for r in ingress if r.get("securityGroupId") == NODE_SG)
    assert from_clients == [8000, 8001]
    assert to_pods == [8000, 8001]
