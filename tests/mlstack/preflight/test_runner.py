"""Preflight's runner checks (issue 27 items 3 and 4): the EKS cluster security group allows
the runner's declared source on 443, and a TCP connection to the endpoint opens."""

from __future__ import annotations

import socket
from typing import Any

import boto3
import pytest

from components.cluster.eks import api_ingress_args
from mlstack.preflight import runner
from mlstack.preflight.report import Status

REGION = "us-east-1"


def test_tcp_reach_opens_a_loopback_listener() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert runner.tcp_reach("127.0.0.1", port, timeout_s=2) is None


def test_tcp_reach_names_a_closed_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens there any more: the kernel refuses at once.
    problem = runner.tcp_reach("127.0.0.1", port, timeout_s=2)
    assert problem is not None and f"127.0.0.1:{port}" in problem


def _ec2() -> Any:
    return boto3.client("ec2", region_name=REGION)


def _authorize_like_the_provider(ec2: Any, group_id: str, source: str) -> None:
    """What the aws_vpc_security_group_ingress_rule resource does on create, with the args
    the stack passes: hashicorp/terraform-provider-aws
    ``internal/service/ec2/vpc_security_group_ingress_rule.go``, ``Create`` calls
    ``AuthorizeSecurityGroupIngress`` with ``GroupId`` and one ``IpPermission`` from
    ``expandIPPermission`` (cidr_ipv4 -> IpRanges, prefix_list_id -> PrefixListIds,
    referenced_security_group_id -> UserIdGroupPairs; ``ConfigValidators``: exactly one)."""
    args = api_ingress_args(group_id, source)
    permission: dict[str, Any] = {
        "IpProtocol": args.ip_protocol,
        "FromPort": args.from_port,
        "ToPort": args.to_port,
    }
    if args.cidr_ipv4:
        permission["IpRanges"] = [{"CidrIp": args.cidr_ipv4, "Description": args.description}]
    if args.prefix_list_id:
        permission["PrefixListIds"] = [{"PrefixListId": args.prefix_list_id}]
    if args.referenced_security_group_id:
        permission["UserIdGroupPairs"] = [{"GroupId": args.referenced_security_group_id}]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[permission])


@pytest.mark.parametrize("kind", ["security_group", "prefix_list", "cidr"])
def test_the_ingress_check_sees_exactly_the_rule_the_stack_creates(
    preflight_env: str, kind: str
) -> None:
    ec2 = _ec2()
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    cluster_sg = ec2.create_security_group(GroupName="eks-cluster", Description="c", VpcId=vpc)
    runner_sg = ec2.create_security_group(GroupName="runner", Description="r", VpcId=vpc)
    prefix_list = ec2.create_managed_prefix_list(
        PrefixListName="runners", MaxEntries=4, AddressFamily="IPv4"
    )["PrefixList"]["PrefixListId"]
    source = {
        "security_group": runner_sg["GroupId"],
        "prefix_list": prefix_list,
        "cidr": "10.30.8.0/24",
    }[kind]
    group_id = cluster_sg["GroupId"]
    # EKS's default: only "all from itself" (and other traffic) - the runner is not allowed.
    ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]}],
    )
    assert runner.missing_sources(ec2, group_id, [source]) == [source]
    _authorize_like_the_provider(ec2, group_id, source)
    assert runner.missing_sources(ec2, group_id, [source]) == []
    # A narrower CIDR inside the allowed one passes; one outside does not.
    if kind == "cidr":
        assert runner.missing_sources(ec2, group_id, ["10.30.8.128/25", "10.31.0.0/24"]) == [
            "10.31.0.0/24"
        ]


def test_a_port_range_rule_without_443_does_not_count(preflight_env: str) -> None:
    ec2 = _ec2()
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    group_id = ec2.create_security_group(GroupName="c", Description="c", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 80,
                "ToPort": 80,
                "IpRanges": [{"CidrIp": "10.30.0.0/16"}],
            }
        ],
    )
    assert runner.missing_sources(ec2, group_id, ["10.30.8.0/24"]) == ["10.30.8.0/24"]


class _Eks:
    def __init__(self, cluster: dict[str, Any] | None) -> None:
        self.cluster = cluster

    def describe_cluster(self, name: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        if self.cluster is None:
            raise ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": name}},
                "DescribeCluster",
            )
        return {"cluster": self.cluster}


def test_before_the_first_deploy_both_checks_skip() -> None:
    checks = runner.runner_checks(_Eks(None), None, "mlstack-prod", ["sg-0a1b2c3d"], network="vpc")
    assert [c.status for c in checks] == [Status.skipped, Status.skipped]


def _stack_with_runner_group(allowed: bool) -> tuple[Any, dict[str, Any]]:
    """A moto VPC with the cluster security group and the stack's ``<cluster>-ci-runner``
    group, allowed on 443 as the stack's ``cluster-api-ci-runner`` rule does (or not)."""
    ec2 = _ec2()
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    cluster_sg = ec2.create_security_group(GroupName="eks-c", Description="c", VpcId=vpc)
    runner_sg = ec2.create_security_group(
        GroupName="runner",
        Description="r",
        VpcId=vpc,
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": "Name", "Value": "c-ci-runner"}]}
        ],
    )
    if allowed:
        _authorize_like_the_provider(ec2, cluster_sg["GroupId"], runner_sg["GroupId"])
    cluster = {
        "resourcesVpcConfig": {"clusterSecurityGroupId": cluster_sg["GroupId"], "vpcId": vpc},
        "endpoint": "",
    }
    return ec2, cluster


def test_a_vpc_runner_passes_through_the_stacks_own_runner_group(preflight_env: str) -> None:
    ec2, cluster = _stack_with_runner_group(allowed=True)
    [ingress, _] = runner.runner_checks(_Eks(cluster), ec2, "c", [], network="vpc")
    assert ingress.status == Status.ok, ingress.detail


def test_a_vpc_runner_fails_when_the_cluster_group_does_not_allow_the_runner_group(
    preflight_env: str,
) -> None:
    ec2, cluster = _stack_with_runner_group(allowed=False)
    [ingress, _] = runner.runner_checks(_Eks(cluster), ec2, "c", [], network="vpc")
    assert ingress.status == Status.fail and "does not allow" in ingress.detail


def test_a_vpc_runner_fails_when_the_stacks_runner_group_is_missing(preflight_env: str) -> None:
    ec2 = _ec2()
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    cluster = {"resourcesVpcConfig": {"clusterSecurityGroupId": "sg-0c1", "vpcId": vpc}}
    [ingress, _] = runner.runner_checks(_Eks(cluster), ec2, "c", [], network="vpc")
    assert ingress.status == Status.fail and "c-ci-runner" in ingress.detail


def test_on_the_runner_an_unreachable_endpoint_fails_and_a_reachable_one_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    cluster = {"endpoint": "https://127.0.0.1/"}
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        [_, reach] = runner.runner_checks(_Eks(cluster), None, "c", [], network="hosted", port=port)
        assert reach.status == Status.ok
    [_, reach] = runner.runner_checks(_Eks(cluster), None, "c", [], network="hosted", port=port)
    assert reach.status == Status.fail and "cannot reach the API endpoint" in reach.detail
