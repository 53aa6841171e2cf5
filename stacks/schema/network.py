"""``mlstack:network``: the VPC the cluster runs in, created or brought along."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import field_validator, model_validator

from components.network.cidrs import outside_rfc1918
from stacks.schema.base import ConfigModel, fixed, knob

_VPC_ID = re.compile(r"vpc-([0-9a-f]{8}|[0-9a-f]{17})")
_SUBNET_ID = re.compile(r"subnet-([0-9a-f]{8}|[0-9a-f]{17})")


class FlowLogsConfig(ConfigModel):
    """VPC flow logs to CloudWatch Logs."""

    enabled: bool = knob(True, description="Record VPC flow logs. Default on.")
    retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731] = knob(
        30, description="CloudWatch retention of the flow-log group, in days (a CloudWatch value)."
    )
    traffic_type: Literal["ALL", "ACCEPT", "REJECT"] = fixed(
        "REJECT",
        description="Which traffic to record. Default REJECT (cheap, catches blocked flows).",
    )


class NetworkConfig(ConfigModel):
    """Either ``mode: create`` (a new VPC) or ``mode: existing`` (bring your own)."""

    mode: Literal["create", "existing"] = fixed(
        "create", description="create: new VPC, subnets, NAT. existing: use vpcId + subnet ids."
    )
    cidr: str = knob("10.0.0.0/16", description="VPC IPv4 CIDR (create mode), /16 to /20.")
    availability_zones: list[str] = knob(
        default_factory=list,
        description="AZ names to span (create mode): 2 or more; prod needs at least 3.",
    )
    nat_gateways: Literal["single", "perAz"] = knob(
        "single", description="single: one NAT for all AZs (cheap). perAz: one per AZ (HA)."
    )
    flow_logs: FlowLogsConfig = fixed(
        default_factory=FlowLogsConfig, description="VPC flow logs settings."
    )
    vpc_id: str | None = knob(None, description="Existing VPC id (existing mode).")
    public_subnet_ids: list[str] = knob(
        default_factory=list, description="Existing public subnet ids (existing mode)."
    )
    private_subnet_ids: list[str] = knob(
        default_factory=list, description="Existing private subnet ids (existing mode)."
    )

    @field_validator("cidr")
    @classmethod
    def _cidr_is_private_network(cls, value: str) -> str:
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"not a network CIDR ({exc})") from None
        if not isinstance(net, ipaddress.IPv4Network) or not 16 <= net.prefixlen <= 20:
            raise ValueError("must be an IPv4 CIDR with a prefix from /16 to /20")
        outside = outside_rfc1918(value)
        if outside:
            raise ValueError(f"must be a private range: {outside}")
        return value

    @field_validator("availability_zones")
    @classmethod
    def _azs_unique_and_named(cls, value: list[str]) -> list[str]:
        for az in value:
            if not az[:-1] or not az[-1].isalpha() or not az[-2].isdigit():
                raise ValueError(f"{az!r} is not an availability zone name like 'us-west-2a'")
        if len(set(value)) != len(value):
            raise ValueError("availability zones must be unique")
        return value

    @field_validator("vpc_id")
    @classmethod
    def _vpc_id_shape(cls, value: str | None) -> str | None:
        if value is not None and not _VPC_ID.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a VPC id: 'vpc-' and 8 or 17 lowercase hex digits, "
                "e.g. vpc-0a1b2c3d4e5f67890"
            )
        return value

    @field_validator("public_subnet_ids", "private_subnet_ids")
    @classmethod
    def _subnet_id_shape(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not _SUBNET_ID.fullmatch(s)]
        if bad:
            raise ValueError(f"not subnet ids ('subnet-' and 8 or 17 lowercase hex digits): {bad}")
        repeated = sorted({s for s in value if value.count(s) > 1})
        if repeated:
            raise ValueError(f"subnet ids listed more than once: {repeated}")
        return value

    @model_validator(mode="after")
    def _mode_fields(self) -> NetworkConfig:
        if self.mode == "create" and len(self.availability_zones) < 2:
            raise ValueError("mode 'create' needs availabilityZones with at least 2 zones")
        if self.mode == "existing" and (not self.vpc_id or len(self.private_subnet_ids) < 2):
            raise ValueError("mode 'existing' needs vpcId and at least 2 privateSubnetIds")
        both = sorted(set(self.public_subnet_ids) & set(self.private_subnet_ids))
        if both:
            raise ValueError(
                f"subnets {both} are listed as public and as private: a subnet either routes "
                "to an internet gateway (public) or not; load balancers and nodes would mix"
            )
        if self.mode == "create" and (
            self.vpc_id or self.public_subnet_ids or self.private_subnet_ids
        ):
            raise ValueError(
                "vpcId and subnet ids are for mode 'existing'; mode 'create' makes its own"
            )
        return self
