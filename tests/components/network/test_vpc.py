"""Network through the synth: subnets, NAT per environment, tags, endpoint, flow logs, BYO."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.network.vpc import Network, NetworkArgs, subnet_cidrs
from mlstack.synth import ResourceGraph, synth_config
from stacks.config import load_config_file
from tests.conftest import SynthEdited

SUBNET = "aws:ec2/subnet:Subnet"
NAT = "aws:ec2/natGateway:NatGateway"


def _subnets(graph: ResourceGraph, tier: str) -> list[dict]:
    return [
        r.inputs
        for r in graph.by_type(SUBNET)
        if r.inputs["tags"].get("mlstack.io/subnet-tier") == tier
    ]


def test_dev_has_one_nat_and_prod_one_per_zone(dev_graph, prod_graph) -> None:
    assert len(dev_graph.by_type(NAT)) == 1
    assert len(prod_graph.by_type(NAT)) == 3


def test_prod_private_route_tables_each_use_their_own_zone_nat(prod_graph) -> None:
    tables = [r for r in prod_graph.by_type("aws:ec2/routeTable:RouteTable") if "private" in r.name]
    nat_ids = {t.inputs["routes"][0]["natGatewayId"] for t in tables}
    assert nat_ids == {"network-nat-a-id", "network-nat-b-id", "network-nat-c-id"}


def test_subnets_span_the_configured_zones(prod_graph) -> None:
    zones = sorted(s["availabilityZone"] for s in _subnets(prod_graph, "private"))
    assert zones == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert len(_subnets(prod_graph, "public")) == 3


def test_subnet_tags_for_load_balancer_controller_and_karpenter(dev_graph) -> None:
    for subnet in _subnets(dev_graph, "public"):
        assert subnet["tags"]["kubernetes.io/role/elb"] == "1"
        assert "karpenter.sh/discovery" not in subnet["tags"]
        assert subnet["mapPublicIpOnLaunch"] is False
    for subnet in _subnets(dev_graph, "private"):
        assert subnet["tags"]["kubernetes.io/role/internal-elb"] == "1"
        assert subnet["tags"]["karpenter.sh/discovery"] == "mlstack-dev"
        assert subnet["tags"]["kubernetes.io/cluster/mlstack-dev"] == "shared"


def test_s3_gateway_endpoint_serves_every_private_route_table(prod_graph) -> None:
    endpoint = prod_graph.one("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert endpoint.inputs["serviceName"] == "com.amazonaws.us-east-1.s3"
    assert endpoint.inputs["vpcEndpointType"] == "Gateway"
    assert len(endpoint.inputs["routeTableIds"]) == 3


def test_default_security_group_is_locked_down(dev_graph) -> None:
    group = dev_graph.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert "ingress" not in group.inputs or group.inputs["ingress"] == []
    assert "egress" not in group.inputs or group.inputs["egress"] == []


def test_flow_logs_write_to_their_own_group_with_a_scoped_role(dev_graph) -> None:
    flow_log = dev_graph.one("aws:ec2/flowLog:FlowLog")
    group = dev_graph.one("aws:cloudwatch/logGroup:LogGroup", "network-flow-logs")
    assert group.inputs["retentionInDays"] == 14
    assert flow_log.inputs["trafficType"] == "REJECT"
    assert flow_log.inputs["logDestination"].endswith(group.inputs["name"])
    policy = json.loads(
        dev_graph.one("aws:iam/rolePolicy:RolePolicy", "network-flow-logs-policy").inputs["policy"]
    )
    resources = policy["Statement"][0]["Resource"]
    assert all(r.startswith(flow_log.inputs["logDestination"]) for r in resources)


def test_flow_logs_can_be_turned_off(synth_edited: SynthEdited) -> None:
    graph = synth_edited("dev", {"network.flowLogs.enabled": False})
    assert graph.by_type("aws:ec2/flowLog:FlowLog") == []


def test_every_network_resource_is_parented_and_prefixed(dev_graph) -> None:
    component = dev_graph.one("mlstack:network:Network")
    children = dev_graph.children(component.urn)
    assert len(children) == 21
    assert all(c.name.startswith("network-") for c in children)


def test_subnet_cidrs_do_not_overlap() -> None:
    import ipaddress

    private, public = subnet_cidrs("10.0.0.0/16", 3)
    networks = [ipaddress.ip_network(c) for c in private + public]
    for i, a in enumerate(networks):
        for b in networks[i + 1 :]:
            assert not a.overlaps(b)
    assert private[0] == "10.0.0.0/19"


def test_existing_vpc_mode_creates_nothing(synth_edited: SynthEdited) -> None:
    graph = synth_edited(
        "dev",
        {
            "network.mode": "existing",
            "network.vpcId": "vpc-0a1b2c3d",
            "network.privateSubnetIds": ["subnet-0000000a", "subnet-0000000b"],
            "network.publicSubnetIds": ["subnet-0000000c", "subnet-0000000d"],
        },
    )
    component = graph.one("mlstack:network:Network")
    assert graph.children(component.urn) == []
    cluster = graph.one("aws:eks/cluster:Cluster")
    assert cluster.inputs["vpcConfig"]["subnetIds"] == ["subnet-0000000a", "subnet-0000000b"]


def test_existing_vpc_accepts_outputs_for_ids() -> None:
    cfg = load_config_file("dev")

    def program(_cfg, _stack) -> None:
        network = Network(
            "byo",
            NetworkArgs(
                cluster_name="c",
                region="us-west-2",
                existing_vpc_id=pulumi.Output.from_input("vpc-out"),
                existing_private_subnet_ids=pulumi.Output.from_input(["subnet-a", "subnet-b"]),
            ),
        )
        pulumi.export("private", network.private_subnet_ids)
        pulumi.export("vpc", network.vpc_id)

    graph = synth_config(cfg, "dev", program)
    assert graph.outputs == {"private": ["subnet-a", "subnet-b"], "vpc": "vpc-out"}


def test_bad_args_list_every_problem() -> None:
    args = NetworkArgs(
        cluster_name="c", region="us-west-2", cidr="10.0.0.0/24", availability_zones=["a"]
    )
    assert len(args.problems()) == 2
    with pytest.raises(ValueError, match=r"availability_zones(?s:.)*cidr"):
        Network("bad", args)
