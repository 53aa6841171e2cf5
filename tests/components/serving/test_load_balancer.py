"""LoadBalancer: controller IAM scope, Helm values, the shared ALB's IngressClassParams."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.iam import actions
from components.serving.identity import WorkloadIdentity
from components.serving.load_balancer import (
    CLUSTER_TAG,
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
    NAMESPACE,
    REGION,
    ServiceSpec,
    synth_serving,
)

VPC = "vpc-0123456789abcdef0"
RELEASE = "kubernetes:helm.sh/v3:Release"
PARAMS = "kubernetes:elbv2.k8s.aws/v1beta1:IngressClassParams"


def policy() -> dict[str, Any]:
    return controller_policy("aws", REGION, ACCOUNT, CLUSTER, VPC)


def statements() -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy()["Statement"]}


def test_policy_is_valid_and_uses_only_known_actions() -> None:
    assert policy_problems(policy()) == []


def test_every_resource_arn_is_pinned_to_region_and_account() -> None:
    for sid, statement in statements().items():
        for resource in statement["Resource"]:
            if resource == "*":
                assert sid == "Describe", f"{sid} is not scoped"
                assert all(
                    a.split(":")[1].startswith(("Describe", "Get", "List"))
                    for a in statement["Action"]
                )
                continue
            parts = resource.split(":")
            if parts[2] == "iam":
                assert parts[4] == ACCOUNT
            else:
                assert (parts[3], parts[4]) == (REGION, ACCOUNT), f"{sid}: {resource}"


def test_mutations_of_existing_resources_require_this_clusters_tag() -> None:
    s = statements()
    for sid in (
        "TagOwnSecurityGroups",
        "DeleteOwnSecurityGroups",
        "TagOwnLoadBalancers",
        "ModifyOwnLoadBalancers",
        "Targets",
    ):
        assert s[sid]["Condition"]["StringEquals"][f"aws:ResourceTag/{CLUSTER_TAG}"] == CLUSTER
    for sid in (
        "CreateTaggedSecurityGroup",
        "CreateTaggedLoadBalancers",
        "TagSecurityGroupOnCreate",
        "TagLoadBalancersOnCreate",
    ):
        assert s[sid]["Condition"]["StringEquals"][f"aws:RequestTag/{CLUSTER_TAG}"] == CLUSTER


def test_security_groups_stay_in_this_vpc() -> None:
    s = statements()
    vpc_arn = f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/{VPC}"
    assert s["CreateSecurityGroupInVpc"]["Resource"] == [vpc_arn]
    assert s["SecurityGroupRulesInVpc"]["Condition"] == {"StringEquals": {"ec2:Vpc": vpc_arn}}


def test_disabled_features_get_no_permissions() -> None:
    every = {a for st in policy()["Statement"] for a in st["Action"]}
    for prefix in ("waf-regional:", "wafv2:", "shield:", "cognito-idp:"):
        assert not [a for a in every if a.startswith(prefix)]
    assert "iam:GetServerCertificate" not in every
    assert "elasticloadbalancing:SetWebAcl" not in every
    assert set(actions.LBC_TARGETS) <= every


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


def test_shared_alb_settings_live_in_the_ingress_class_params(graph: ResourceGraph) -> None:
    params = graph.one(PARAMS)
    spec = params.inputs["spec"]
    assert spec["group"] == {"name": f"{CLUSTER}-inference"}
    assert spec["scheme"] == "internal"
    assert spec["targetType"] == "ip"
    assert spec["certificateArn"] == [CERT]
    assert spec["sslRedirectPort"] == "443"
    attributes = {a["key"]: a["value"] for a in spec["loadBalancerAttributes"]}
    assert attributes["idle_timeout.timeout_seconds"] == "600"
    assert "access_logs.s3.enabled" not in attributes
    assert spec["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}
    ingress_class = graph.one("kubernetes:networking.k8s.io/v1:IngressClass")
    assert ingress_class.inputs["spec"]["controller"] == "ingress.k8s.aws/alb"
    assert ingress_class.inputs["spec"]["parameters"]["kind"] == "IngressClassParams"


def test_ingress_class_params_pass_the_crd_schema(
    graph: ResourceGraph, crd_schemas: SchemaStore
) -> None:
    manifest = {**graph.one(PARAMS).inputs, "metadata": {"name": "x"}}
    assert crd_schemas.validator(("elbv2.k8s.aws/v1beta1", "IngressClassParams"))(manifest) == []
    manifest["spec"]["scheme"] = "public"
    assert crd_schemas.validator(("elbv2.k8s.aws/v1beta1", "IngressClassParams"))(manifest)


def test_access_logs_internet_facing_and_http_only_options() -> None:
    graph = synth_serving(
        [ServiceSpec()],
        lb_overrides={
            "scheme": "internet-facing",
            "https": False,
            "certificate_arn": None,
            "access_logs_bucket": "alb-logs",
            "access_logs_prefix": "prod",
            "inbound_cidrs": ("203.0.113.0/24",),
            "deletion_protection": True,
        },
    )
    spec = graph.one(PARAMS).inputs["spec"]
    assert spec["scheme"] == "internet-facing"
    assert "certificateArn" not in spec and "sslRedirectPort" not in spec
    assert spec["inboundCIDRs"] == ["203.0.113.0/24"]
    attributes = {a["key"]: a["value"] for a in spec["loadBalancerAttributes"]}
    assert attributes["access_logs.s3.bucket"] == "alb-logs"
    assert attributes["access_logs.s3.prefix"] == "prod"
    assert attributes["deletion_protection.enabled"] == "true"
    ingress = next(
        n
        for n in graph.by_type("kubernetes:networking.k8s.io/v1:Ingress")
        if n.inputs["metadata"]["name"] == "llm"
    )
    listen = ingress.inputs["metadata"]["annotations"]["alb.ingress.kubernetes.io/listen-ports"]
    assert json.loads(listen) == [{"HTTP": 80}]


def test_https_without_a_certificate_is_rejected() -> None:
    with pytest.raises(SynthError) as info:
        synth_serving([ServiceSpec()], lb_overrides={"certificate_arn": None})
    cause = info.value.__cause__
    assert isinstance(cause, ComponentArgsError)
    assert cause.problems == ["certificate_arn: None: HTTPS needs an ACM certificate ARN"]


def test_args_problems_list_everything() -> None:
    args = LoadBalancerArgs(
        cluster_name=CLUSTER,
        region=REGION,
        vpc_id=VPC,
        identity=WorkloadIdentity("irsa", CLUSTER, "arn", "https://x"),
        serving_namespace=NAMESPACE,
        https=True,
        idle_timeout_seconds=5000,
        replicas=0,
        group_name="g" * 64,
    )
    assert len(args.problems()) == 4


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
