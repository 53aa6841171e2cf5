"""Network rules.

Multi-AZ in prod, the public API endpoint, flow logs, public IPs, open ingress, the
default security group, TLS listeners.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from components.network.cidrs import too_open
from policy.core import (
    Finding,
    Resource,
    Rule,
    Stack,
    as_list,
    get_path,
    is_unknown,
    truthy,
)
from policy.rules.common import (
    DEFAULT_SG,
    EKS_CLUSTER,
    FLOW_LOG,
    NODE_GROUP,
    SECURITY_GROUP,
    SECURITY_GROUP_RULE,
    SG_INGRESS_RULE,
    SUBNET,
    VPC,
    define,
)

_OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})


_WEB_PORTS = frozenset({80, 443})


def prod_multi_az(stack: Stack) -> Iterator[Finding]:
    subnets = stack.of_type(SUBNET)
    zones = {s.props.get("availabilityZone") for s in subnets} - {None}
    if subnets and len(zones) < 2:
        yield None, f"subnets span {len(zones)} availability zone(s), prod needs 2+"
    for resource in stack.of_type(EKS_CLUSTER, NODE_GROUP):
        ids = (
            get_path(resource.props, "vpcConfig", "subnetIds")
            if resource.type == EKS_CLUSTER
            else resource.props.get("subnetIds")
        )
        if is_unknown(ids):
            continue
        if len(as_list(ids)) < 2:
            yield resource.urn, f"{resource.name}: {len(as_list(ids))} subnet(s), prod needs 2+ AZs"


def eks_public_endpoint_restricted(stack: Stack) -> Iterator[Finding]:
    for cluster in stack.of_type(EKS_CLUSTER):
        vpc = cluster.props.get("vpcConfig") or {}
        public = get_path(vpc, "endpointPublicAccess", default=True)
        if not truthy(public) and public is not None:
            continue
        cidrs = [str(c) for c in as_list(get_path(vpc, "publicAccessCidrs"))]
        try:
            opened = too_open(cidrs) if cidrs else "no publicAccessCidrs (EKS opens 0.0.0.0/0)"
        except ValueError as exc:
            opened = f"unparsable publicAccessCidrs ({exc})"
        if opened:
            yield (
                cluster.urn,
                f"cluster {cluster.name}: public API endpoint open to the internet: {opened}",
            )


def vpc_flow_logs(stack: Stack) -> Iterator[Finding]:
    for vpc in stack.of_type(VPC):
        if not stack.dependents(vpc, FLOW_LOG):
            yield vpc.urn, f"VPC {vpc.name}: no flow log"


def subnets_no_public_ip(stack: Stack) -> Iterator[Finding]:
    for subnet in stack.of_type(SUBNET):
        if truthy(subnet.props.get("mapPublicIpOnLaunch")):
            yield subnet.urn, f"subnet {subnet.name}: assigns public IPs on launch"


def _ports(rule: Mapping[str, Any]) -> set[int] | None:
    low, high = rule.get("fromPort"), rule.get("toPort")
    if low is None or high is None or is_unknown(low) or is_unknown(high):
        return None
    low, high = int(low), int(high)
    if low < 0 or high - low > 1024:
        return None  # all ports / a wide range
    return set(range(low, high + 1))


def _open_to_world(cidrs: Iterable[Any]) -> bool:
    """Judged on the union: ``[0.0.0.0/1, 128.0.0.0/1]`` is as open as ``0.0.0.0/0``."""
    texts = [str(c) for c in cidrs]
    if _OPEN_CIDRS & set(texts):
        return True
    return too_open(_parsable(texts)) is not None


def _parsable(texts: list[str]) -> list[str]:
    """The entries that parse as networks (an unknown or bad one hides no other's reach)."""
    import ipaddress

    found: list[str] = []
    for text in texts:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        found.append(text)
    return found


def no_open_ingress(stack: Stack) -> Iterator[Finding]:
    def check(resource: Resource, rule: Mapping[str, Any], cidrs: list[Any]) -> Finding | None:
        if not _open_to_world(cidrs):
            return None
        ports = _ports(rule)
        if ports is not None and ports <= _WEB_PORTS:
            return None
        shown = f"{rule.get('fromPort')}-{rule.get('toPort')}"
        return resource.urn, f"{resource.name}: ingress from the internet on ports {shown}"

    for group in stack.of_type(SECURITY_GROUP):
        for rule in as_list(group.props.get("ingress")):
            if isinstance(rule, Mapping):
                cidrs = as_list(rule.get("cidrBlocks")) + as_list(rule.get("ipv6CidrBlocks"))
                finding = check(group, rule, cidrs)
                if finding:
                    yield finding
    for rule_resource in stack.of_type(SECURITY_GROUP_RULE):
        if rule_resource.props.get("type") == "ingress":
            props = rule_resource.props
            cidrs = as_list(props.get("cidrBlocks")) + as_list(props.get("ipv6CidrBlocks"))
            finding = check(rule_resource, props, cidrs)
            if finding:
                yield finding
    for rule_resource in stack.of_type(SG_INGRESS_RULE):
        props = rule_resource.props
        cidrs = [props.get("cidrIpv4"), props.get("cidrIpv6")]
        finding = check(rule_resource, props, [c for c in cidrs if c])
        if finding:
            yield finding


def default_sg_closed(stack: Stack) -> Iterator[Finding]:
    for group in stack.of_type(DEFAULT_SG):
        if as_list(group.props.get("ingress")) or as_list(group.props.get("egress")):
            yield group.urn, f"default security group {group.name} has rules"


RULES: list[Rule] = [
    define(
        "prod-multi-az",
        "Prod subnets, the cluster and node groups span at least two availability zones.",
        severity="high",
        enforcement="mandatory",
        types=(SUBNET, EKS_CLUSTER, NODE_GROUP),
        check=prod_multi_az,
        prod_only=True,
    ),
    define(
        "eks-public-endpoint-restricted",
        "A prod cluster's public API endpoint is restricted to known CIDRs.",
        severity="high",
        enforcement="mandatory",
        types=(EKS_CLUSTER,),
        check=eks_public_endpoint_restricted,
        prod_only=True,
    ),
    define(
        "vpc-flow-logs",
        "Every VPC records flow logs.",
        severity="medium",
        enforcement="mandatory",
        types=(VPC,),
        check=vpc_flow_logs,
    ),
    define(
        "subnets-no-public-ip",
        "Subnets do not hand out public IPs on launch.",
        severity="medium",
        enforcement="mandatory",
        types=(SUBNET,),
        check=subnets_no_public_ip,
    ),
    define(
        "no-open-ingress",
        "Security groups allow internet ingress only on 80/443.",
        severity="high",
        enforcement="mandatory",
        types=(SECURITY_GROUP, SECURITY_GROUP_RULE, SG_INGRESS_RULE),
        check=no_open_ingress,
    ),
    define(
        "default-sg-closed",
        "The VPC's default security group has no rules.",
        severity="medium",
        enforcement="advisory",
        types=(DEFAULT_SG,),
        check=default_sg_closed,
    ),
]
