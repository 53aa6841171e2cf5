"""EksCluster through the synth: encryption, logging, auth, add-ons, system nodes, BYO."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.cluster.eks import EksClusterArgs, kubeconfig
from components.versions import EKS_ADDONS
from mlstack.synth import REDACTED
from tests.conftest import SynthEdited, graph_for

CLUSTER = "aws:eks/cluster:Cluster"


def test_secrets_are_envelope_encrypted_with_a_rotating_key(any_graph) -> None:
    cluster = any_graph.one(CLUSTER)
    key = any_graph.one("aws:kms/key:Key", "cluster-secrets-key")
    assert key.inputs["enableKeyRotation"] is True
    encryption = cluster.inputs["encryptionConfig"]
    assert encryption["resources"] == ["secrets"]
    assert encryption["provider"]["keyArn"].endswith("key-cluster-secrets-key")


def test_control_plane_logs_go_to_a_retained_group(prod_graph) -> None:
    cluster = prod_graph.one(CLUSTER)
    assert set(cluster.inputs["enabledClusterLogTypes"]) >= {"api", "audit", "authenticator"}
    group = prod_graph.one("aws:cloudwatch/logGroup:LogGroup", "cluster-control-plane-logs")
    assert group.inputs["name"] == "/aws/eks/mlstack-prod/cluster"
    assert group.inputs["retentionInDays"] == 365
    assert group.urn in cluster.dependencies


def test_api_authentication_without_creator_admin(any_graph) -> None:
    access = any_graph.one(CLUSTER).inputs["accessConfig"]
    assert access == {
        "authenticationMode": "API",
        "bootstrapClusterCreatorAdminPermissions": False,
    }


def test_admin_roles_get_access_entries_with_cluster_admin(prod_graph) -> None:
    entries = [
        e
        for e in prod_graph.by_type("aws:eks/accessEntry:AccessEntry")
        if e.name.startswith("cluster-")
    ]
    assert sorted(e.inputs["principalArn"] for e in entries) == [
        "arn:aws:iam::123456789012:role/ml-platform-admin",
        "arn:aws:iam::123456789012:role/ml-platform-breakglass",
    ]
    policies = [
        p
        for p in prod_graph.by_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
        if p.name.startswith("cluster-")
    ]
    assert {p.inputs["policyArn"].rsplit("/", 1)[1] for p in policies} == {
        "AmazonEKSClusterAdminPolicy"
    }


def test_endpoint_access_follows_config(prod_graph) -> None:
    vpc = prod_graph.one(CLUSTER).inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["publicAccessCidrs"] == ["203.0.113.0/24"]


def test_core_addons_are_pinned_to_the_versions_module(any_graph) -> None:
    pins = EKS_ADDONS["1.35"]
    versions = {
        a.inputs["addonName"]: a.inputs["addonVersion"]
        for a in any_graph.by_type("aws:eks/addon:Addon")
    }
    assert versions == {
        "vpc-cni": pins.vpc_cni,
        "coredns": pins.coredns,
        "kube-proxy": pins.kube_proxy,
        "aws-ebs-csi-driver": pins.aws_ebs_csi_driver,
        "eks-pod-identity-agent": pins.eks_pod_identity_agent,
        "eks-node-monitoring-agent": pins.eks_node_monitoring_agent,
    }


def test_addon_version_override_from_config(synth_edited: SynthEdited) -> None:
    graph = synth_edited("dev", {"cluster.addonVersions.coredns": "v9.9.9-eksbuild.1"})
    coredns = graph.one("aws:eks/addon:Addon", "cluster-addon-coredns")
    assert coredns.inputs["addonVersion"] == "v9.9.9-eksbuild.1"


def test_coredns_and_ebs_csi_wait_for_the_system_nodes(dev_graph) -> None:
    nodes = dev_graph.one("aws:eks/nodeGroup:NodeGroup")
    for addon in ("cluster-addon-coredns", "cluster-addon-ebs-csi"):
        assert nodes.urn in dev_graph.one("aws:eks/addon:Addon", addon).dependencies


def test_cni_role_trusts_only_the_aws_node_service_account(dev_graph) -> None:
    role = dev_graph.one("aws:iam/role:Role", "cluster-vpc-cni-role")
    statement = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    conditions = statement["Condition"]["StringEquals"]
    subs = [v for k, v in conditions.items() if k.endswith(":sub")]
    assert subs == ["system:serviceaccount:kube-system:aws-node"]


def test_system_nodes_require_imdsv2_and_encrypted_gp3(any_graph) -> None:
    template = any_graph.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1
    ebs = template["blockDeviceMappings"][0]["ebs"]
    assert ebs["volumeType"] == "gp3"
    assert ebs["encrypted"] == "true"


def test_system_node_group_is_on_demand_and_its_size_follows_config_without_an_autoscaler(
    prod_graph,
) -> None:
    """Issue 12 item 9: no cluster-autoscaler runs (Karpenter pools only), so nothing else
    owns desiredSize and a config change of it must reach EKS."""
    group = prod_graph.one("aws:eks/nodeGroup:NodeGroup")
    assert group.inputs["capacityType"] == "ON_DEMAND"
    assert group.inputs["instanceTypes"] == ["m6i.xlarge", "m6a.xlarge"]
    assert group.inputs["scalingConfig"] == {"desiredSize": 3, "maxSize": 6, "minSize": 3}
    assert not prod_graph.by_type("kubernetes:helm.sh/v3:Release") or all(
        "cluster-autoscaler" not in str(r.inputs.get("chart"))
        for r in prod_graph.by_type("kubernetes:helm.sh/v3:Release")
    )
    assert group.ignore_changes == ()


def test_system_node_group_leaves_desired_size_to_cluster_autoscaler_when_it_runs() -> None:
    from mlstack.synth import synth_config
    from stacks.config import parse_config
    from tests.conftest import raw_stack_config

    raw = raw_stack_config("dev")
    pool = raw["gpuPools"][0]
    pool.pop("disruption", None)
    pool.update(provisioner="managed", capacityTypes=["on-demand"])
    pool["ami"]["release"] = "1.35.0-20260714"
    graph = synth_config(parse_config(raw, "Pulumi.dev.yaml"), "dev")
    charts = [str(r.inputs.get("chart")) for r in graph.by_type("kubernetes:helm.sh/v3:Release")]
    assert "cluster-autoscaler" in charts
    system = graph.one("aws:eks/nodeGroup:NodeGroup", "cluster-system-nodes")
    assert system.ignore_changes == ("scalingConfig.desiredSize",)


def test_stateful_resources_protected_in_prod_only(dev_graph, prod_graph) -> None:
    for graph, expected in ((dev_graph, False), (prod_graph, True)):
        for node in (graph.one(CLUSTER), graph.one("aws:kms/key:Key", "cluster-secrets-key")):
            assert node.protect is expected
            assert node.retain_on_delete is expected


def test_kubeconfig_is_secret_and_uses_exec_auth(any_graph) -> None:
    provider = any_graph.one("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == REDACTED
    assert any_graph.outputs["kubeconfig"] == REDACTED
    text = kubeconfig("c", "https://x", "Q0E=", "us-west-2")
    user = json.loads(text)["users"][0]["user"]
    assert "token" not in user
    assert user["exec"]["args"][2:6] == ["eks", "get-token", "--cluster-name", "c"]


def test_existing_cluster_mode_creates_no_cluster_but_a_provider(
    synth_edited: SynthEdited,
) -> None:
    graph = synth_edited("dev", {"cluster.mode": "existing", "cluster.name": "shared-gpu"})
    assert graph.by_type(CLUSTER) == []
    component = graph.one("mlstack:cluster:EksCluster")
    assert [c.type for c in graph.children(component.urn)] == ["pulumi:providers:kubernetes"]
    assert graph.outputs["oidcProviderArn"].endswith("/id/SHAREDGPU")


def test_bad_cluster_args_list_every_problem() -> None:
    args = EksClusterArgs(cluster_name="c", region="us-west-2", version="1.10")
    problems = args.problems()
    assert any(p.startswith("version:") for p in problems)
    assert any(p.startswith("subnet_ids/vpc_id:") for p in problems)
    with pytest.raises(KeyError):
        args.addon_pins()


def test_kubernetes_provider_waits_for_the_admin_access_associations(prod_graph) -> None:
    provider = prod_graph.one("pulumi:providers:kubernetes")
    associations = [
        a.urn
        for a in prod_graph.by_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
        if a.name.startswith("cluster-admin-")
    ]
    assert len(associations) == 2
    assert set(associations) <= set(provider.dependencies)


def test_system_nodes_follow_the_cluster_version(dev_graph) -> None:
    group = dev_graph.one("aws:eks/nodeGroup:NodeGroup", "cluster-system-nodes")
    assert group.inputs["version"] == "1.35"


def test_vpc_cni_waits_for_its_irsa_policy(dev_graph) -> None:
    attachment = dev_graph.one(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "cluster-vpc-cni-policy"
    )
    addon = dev_graph.one("aws:eks/addon:Addon", "cluster-addon-vpc-cni")
    assert attachment.urn in addon.dependencies


def test_pod_identity_roles_trust_only_their_own_service_account(any_graph) -> None:
    """Every Pod Identity trust pins cluster, namespace and service account by session tags."""
    trusts = []
    for role in any_graph.by_type("aws:iam/role:Role"):
        document = json.loads(role.inputs["assumeRolePolicy"])
        for statement in document["Statement"]:
            if statement.get("Principal", {}).get("Service") == "pods.eks.amazonaws.com":
                trusts.append((role.name, statement["Condition"]["StringEquals"]))
    assert len(trusts) >= 3
    for role_name, condition in trusts:
        assert set(condition) == {
            "aws:RequestTag/eks-cluster-name",
            "aws:RequestTag/kubernetes-namespace",
            "aws:RequestTag/kubernetes-service-account",
        }, role_name
        assert condition["aws:RequestTag/eks-cluster-name"] == f"mlstack-{any_graph.stack}"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_stack_allows_its_own_ci_runner_group_on_443_in_the_eks_cluster_security_group(
    stack: str,
) -> None:
    """Issue 27 item 4: the private endpoint's ENIs carry the EKS-created cluster security
    group, which admits only itself. The stack creates its runners' group in its own VPC
    (a group made before the VPC could not be referenced: a security group references
    groups of its VPC or a peered one), allows it on 443, and the Kubernetes provider waits
    for (and on destroy outlives) the rule. Same shape in dev and prod (parity)."""
    graph = graph_for(stack)
    group = graph.one("aws:ec2/securityGroup:SecurityGroup", "cluster-ci-runner")
    vpc = graph.one("aws:ec2/vpc:Vpc")
    assert vpc.urn in group.dependencies
    rule = graph.one(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "cluster-api-ci-runner"
    )
    assert rule.inputs["securityGroupId"] == "sg-cluster"  # vpc_config.cluster_security_group_id
    assert group.urn in rule.dependencies
    assert (rule.inputs["ipProtocol"], rule.inputs["fromPort"], rule.inputs["toPort"]) == (
        "tcp",
        443,
        443,
    )
    assert rule.urn in graph.one("pulumi:providers:kubernetes").dependencies
    egress = graph.one(
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "cluster-ci-runner-https-out"
    )
    assert (egress.inputs["fromPort"], egress.inputs["toPort"]) == (443, 443)


def test_a_group_made_before_the_stacks_vpc_is_refused_as_a_runner_source() -> None:
    """Review finding: prod shipped ``securityGroupId: sg-...`` for a VPC the first
    ``pulumi up`` creates; the rule referencing it could never be created."""
    from stacks.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        synth_config_edits("prod", {"delivery.runner.securityGroupId": "sg-0a1b2c3d4e5f60718"})
    assert any(
        p.path == "mlstack:delivery.runner.securityGroupId" and "creates its VPC" in p.message
        for p in caught.value.problems
    )


def test_a_hosted_runner_gets_no_extra_cluster_security_group_rule(dev_graph) -> None:
    rules = dev_graph.by_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert not [r for r in rules if r.name.startswith("cluster-api-client-")]


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ("pl-0a1b2c3d4e5f60718", "prefix_list_id"),
        ("10.30.8.0/24", "cidr_ipv4"),
        ("fd00:30::/64", "cidr_ipv6"),
        ("sg-0a1b2c3d", "referenced_security_group_id"),
    ],
)
def test_each_runner_source_kind_fills_exactly_its_ingress_field(source: str, field: str) -> None:
    from components.cluster.eks import api_ingress_args

    args = api_ingress_args("sg-cluster", source)
    fields = ("prefix_list_id", "cidr_ipv4", "cidr_ipv6", "referenced_security_group_id")
    assert {f: getattr(args, f) for f in fields if getattr(args, f) is not None} == {field: source}


def test_a_bad_runner_source_is_refused() -> None:
    problems = EksClusterArgs(
        cluster_name="c",
        region="us-east-1",
        vpc_id="vpc-1",
        subnet_ids=["s"],
        api_client_sources=("10.0.0.1/8", "sg-xyz"),
    ).problems()
    assert problems == [
        "api_client_sources: ['10.0.0.1/8', 'sg-xyz']: allowed sg-..., pl-... or a CIDR"
    ]


def synth_config_edits(stack: str, edits: dict[str, Any]) -> Any:
    """Parse the stack file with ``edits`` (raises ConfigError)."""
    from stacks.config import parse_config
    from tests.conftest import raw_stack_config, set_path

    raw = raw_stack_config(stack)
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    return parse_config(raw, f"Pulumi.{stack}.yaml")
