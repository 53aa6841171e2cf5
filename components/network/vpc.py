"""``Network``: the VPC the cluster runs in — created, or brought along (BYO).

Create mode builds one public and one private subnet per availability zone,
an internet gateway, NAT gateways (one shared, or one per AZ), private route
tables, an S3 gateway endpoint, the subnet tags the AWS Load Balancer
Controller and Karpenter discover subnets by, a locked-down default security
group, and (optionally) VPC flow logs to CloudWatch Logs.

Existing mode creates nothing and exposes the given ids (plain values or Outputs).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_aws as aws

from components.iam import actions, documents
from components.iam.scope import RoleScope, scoped_role
from components.network.cidrs import outside_rfc1918
from components.validation import require_valid

TYPE_TOKEN = "mlstack:network:Network"


@dataclass(frozen=True)
class FlowLogSettings:
    """VPC flow logs. Default: on, rejected traffic only, 30 days retention."""

    enabled: bool = True
    retention_days: int = 30
    traffic_type: Literal["ALL", "ACCEPT", "REJECT"] = "REJECT"


@dataclass(frozen=True)
class NetworkArgs:
    """Inputs of :class:`Network`.

    ``cluster_name`` drives the discovery tags; ``region`` names the S3 endpoint
    service. In create mode give ``cidr`` and
    ``availability_zones``; in existing mode give ``existing_vpc_id`` and subnet ids.
    """

    cluster_name: str
    region: str
    cidr: str = "10.0.0.0/16"
    availability_zones: Sequence[str] = ()
    nat_gateways: Literal["single", "perAz"] = "single"
    flow_logs: FlowLogSettings = field(default_factory=FlowLogSettings)
    existing_vpc_id: pulumi.Input[str] | None = None
    existing_public_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    existing_private_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    role_scope: RoleScope | None = None
    """IAM path and permissions boundary of the roles created here (None: plain roles)."""
    retain_on_delete: bool = False
    """Keep the VPC and its subnets on destroy (prod: the retained cluster's ENIs live in
    the private subnets, so a destroy could not delete them anyway)."""

    @property
    def creates_vpc(self) -> bool:
        return self.existing_vpc_id is None

    def problems(self) -> list[str]:
        """Everything wrong with these args, as 'field: value: allowed' lines."""
        found: list[str] = []
        if self.creates_vpc:
            if len(self.availability_zones) < 2:
                found.append(
                    f"availability_zones: {list(self.availability_zones)!r}: need at least 2"
                )
            if len(set(self.availability_zones)) != len(self.availability_zones):
                found.append(f"availability_zones: {list(self.availability_zones)!r}: duplicates")
            try:
                net = ipaddress.ip_network(self.cidr)
                if net.prefixlen > 20:
                    found.append(f"cidr: {self.cidr!r}: prefix must be /20 or larger")
            except ValueError:
                found.append(f"cidr: {self.cidr!r}: not an IPv4 network")
            else:
                outside = outside_rfc1918(self.cidr)
                if outside:
                    found.append(f"cidr: {self.cidr!r}: {outside}")
        elif self.existing_private_subnet_ids is None:
            found.append("existing_private_subnet_ids: None: required with existing_vpc_id")
        return found


def subnet_cidrs(cidr: str, zone_count: int) -> tuple[list[str], list[str]]:
    """Carve ``cidr`` into (private, public) subnet CIDRs, one of each per zone.

    The VPC is split in eight; private subnets take one eighth each (large: pods
    get VPC IPs), and the last eighth is split in eight again for public subnets
    (small: load balancers and NAT gateways only). Supports up to 7 zones.
    """
    net = ipaddress.ip_network(cidr)
    eighths = list(net.subnets(prefixlen_diff=3))
    if zone_count > len(eighths) - 1:
        raise ValueError(f"{cidr} fits at most {len(eighths) - 1} zones, got {zone_count}")
    public_blocks = list(eighths[-1].subnets(prefixlen_diff=3))
    private = [str(b) for b in eighths[:zone_count]]
    public = [str(b) for b in public_blocks[:zone_count]]
    return private, public


class Network(pulumi.ComponentResource):
    """The VPC and subnets; see the module docstring for what create mode builds."""

    vpc_id: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]
    private_route_table_ids: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        require_valid("Network", name, args.problems())
        self._name = name
        self._args = args
        if args.creates_vpc:
            self._create()
        else:
            self._adopt()
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "publicSubnetIds": self.public_subnet_ids,
                "privateSubnetIds": self.private_subnet_ids,
            }
        )

    # ------------------------------------------------------------------ existing VPC

    def _adopt(self) -> None:
        args = self._args
        assert args.existing_vpc_id is not None
        self.vpc_id = pulumi.Output.from_input(args.existing_vpc_id)
        self.public_subnet_ids = pulumi.Output.from_input(
            args.existing_public_subnet_ids or []
        ).apply(lambda ids: [str(i) for i in ids])
        self.private_subnet_ids = pulumi.Output.from_input(
            args.existing_private_subnet_ids or []
        ).apply(lambda ids: [str(i) for i in ids])
        self.private_route_table_ids = pulumi.Output.from_input([])

    # ------------------------------------------------------------------ new VPC

    def _create(self) -> None:
        name, args = self._name, self._args
        child = pulumi.ResourceOptions(parent=self)
        zones = list(args.availability_zones)
        private_cidrs, public_cidrs = subnet_cidrs(args.cidr, len(zones))
        shared_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}
        kept = pulumi.ResourceOptions(parent=self, retain_on_delete=args.retain_on_delete)

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            aws.ec2.VpcArgs(
                cidr_block=args.cidr,
                enable_dns_hostnames=True,
                enable_dns_support=True,
                tags={"Name": f"{name}-vpc"},
            ),
            opts=kept,
        )
        # No rules at all: nothing may use the default group by accident.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            aws.ec2.DefaultSecurityGroupArgs(vpc_id=vpc.id, tags={"Name": f"{name}-default"}),
            opts=child,
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw",
            aws.ec2.InternetGatewayArgs(vpc_id=vpc.id, tags={"Name": f"{name}-igw"}),
            opts=child,
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            aws.ec2.RouteTableArgs(
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
                tags={"Name": f"{name}-public"},
            ),
            opts=child,
        )

        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        for zone, public_cidr, private_cidr in zip(zones, public_cidrs, private_cidrs, strict=True):
            suffix = zone[-1]
            public = aws.ec2.Subnet(
                f"{name}-public-{suffix}",
                aws.ec2.SubnetArgs(
                    vpc_id=vpc.id,
                    availability_zone=zone,
                    cidr_block=public_cidr,
                    map_public_ip_on_launch=False,
                    tags={
                        "Name": f"{name}-public-{zone}",
                        "kubernetes.io/role/elb": "1",
                        "mlstack.io/subnet-tier": "public",
                        **shared_tag,
                    },
                ),
                opts=kept,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{suffix}-rta",
                aws.ec2.RouteTableAssociationArgs(subnet_id=public.id, route_table_id=public_rt.id),
                opts=child,
            )
            private = aws.ec2.Subnet(
                f"{name}-private-{suffix}",
                aws.ec2.SubnetArgs(
                    vpc_id=vpc.id,
                    availability_zone=zone,
                    cidr_block=private_cidr,
                    tags={
                        "Name": f"{name}-private-{zone}",
                        "kubernetes.io/role/internal-elb": "1",
                        "karpenter.sh/discovery": args.cluster_name,
                        "mlstack.io/subnet-tier": "private",
                        **shared_tag,
                    },
                ),
                opts=kept,
            )
            public_subnets.append(public)
            private_subnets.append(private)

        nat_count = len(zones) if args.nat_gateways == "perAz" else 1
        nats: list[aws.ec2.NatGateway] = []
        for index in range(nat_count):
            suffix = zones[index][-1]
            eip = aws.ec2.Eip(
                f"{name}-nat-{suffix}-eip",
                aws.ec2.EipArgs(domain="vpc", tags={"Name": f"{name}-nat-{zones[index]}"}),
                opts=child,
            )
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{suffix}",
                    aws.ec2.NatGatewayArgs(
                        allocation_id=eip.id,
                        subnet_id=public_subnets[index].id,
                        tags={"Name": f"{name}-nat-{zones[index]}"},
                    ),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
            )

        private_rts: list[aws.ec2.RouteTable] = []
        for index, (zone, subnet) in enumerate(zip(zones, private_subnets, strict=True)):
            suffix = zone[-1]
            nat = nats[index if args.nat_gateways == "perAz" else 0]
            route_table = aws.ec2.RouteTable(
                f"{name}-private-{suffix}-rt",
                aws.ec2.RouteTableArgs(
                    vpc_id=vpc.id,
                    routes=[
                        aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)
                    ],
                    tags={"Name": f"{name}-private-{zone}"},
                ),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{suffix}-rta",
                aws.ec2.RouteTableAssociationArgs(
                    subnet_id=subnet.id, route_table_id=route_table.id
                ),
                opts=child,
            )
            private_rts.append(route_table)

        # Model downloads from S3 stay on the AWS network and skip NAT charges.
        aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            aws.ec2.VpcEndpointArgs(
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{args.region}.s3",
                vpc_endpoint_type="Gateway",
                route_table_ids=[rt.id for rt in private_rts],
                tags={"Name": f"{name}-s3"},
            ),
            opts=child,
        )

        if args.flow_logs.enabled:
            self._flow_logs(vpc)

        self.vpc_id = vpc.id
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets]).apply(list)
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets]).apply(list)
        self.private_route_table_ids = pulumi.Output.all(*[rt.id for rt in private_rts]).apply(list)

    def _flow_logs(self, vpc: aws.ec2.Vpc) -> None:
        name, settings = self._name, self._args.flow_logs
        child = pulumi.ResourceOptions(parent=self)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            aws.cloudwatch.LogGroupArgs(
                # The cluster name carries the stack: two stacks in one region never share it.
                name=f"/mlstack/{self._args.cluster_name}/vpc-flow-logs",
                retention_in_days=settings.retention_days,
            ),
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        role = scoped_role(
            f"{name}-flow-logs-role",
            assume_role_policy=documents.to_json(
                documents.service_trust("vpc-flow-logs.amazonaws.com")
            ),
            description="VPC flow logs delivery to its own log group",
            scope=self._args.role_scope,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-policy",
            aws.iam.RolePolicyArgs(
                role=role.id,
                policy=log_group.arn.apply(
                    lambda arn: documents.to_json(
                        documents.document(
                            documents.allow(actions.FLOW_LOGS_DELIVERY, [arn, f"{arn}:*"])
                        )
                    )
                ),
            ),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            aws.ec2.FlowLogArgs(
                vpc_id=vpc.id,
                traffic_type=settings.traffic_type,
                log_destination_type="cloud-watch-logs",
                log_destination=log_group.arn,
                iam_role_arn=role.arn,
                max_aggregation_interval=600,
            ),
            opts=child,
        )
