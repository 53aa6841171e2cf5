"""Preflight: the CI runner reaches the cluster's API endpoint (issue 27, items 3 and 4).

Two facts make every Kubernetes call of a deploy, rollback or drift job time out late:

* ``prerequisites.runner-ingress``: a runner inside the VPC reaches the private endpoint,
  whose ENIs carry the EKS cluster security group; that group must allow the runner's
  declared source (``mlstack:delivery.runner`` securityGroupId / prefixListId /
  sourceCidrs) on 443 (``ec2:DescribeSecurityGroupRules``). Before the first ``pulumi up``
  there is no cluster yet and the stack creates the rule: skipped.
* ``prerequisites.runner-reach``: on the runner itself (``GITHUB_ACTIONS=true``), a TCP
  connection to the endpoint's host on 443 opens within a few seconds.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from mlstack.aws import error_code
from mlstack.preflight.report import Check, fail, ok, skipped

GROUP = "prerequisites"
INGRESS_ID = "prerequisites.runner-ingress"
REACH_ID = "prerequisites.runner-reach"
CONNECT_TIMEOUT_S = 5.0
HTTPS = 443
RUNNER_DOCS = 'docs/operations.md, section "CI runners"'


def _covers_443(rule: dict[str, Any]) -> bool:
    if rule.get("IpProtocol") == "-1":
        return True
    return rule.get("IpProtocol") in ("tcp", "6") and int(rule.get("FromPort", -1)) <= HTTPS <= int(
        rule.get("ToPort", -1)
    )


def _allows(rule: dict[str, Any], source: str) -> bool:
    """Whether one ingress rule admits ``source`` (sg-, pl- or a CIDR) on 443."""
    if rule.get("IsEgress") or not _covers_443(rule):
        return False
    if source.startswith("sg-"):
        return (rule.get("ReferencedGroupInfo") or {}).get("GroupId") == source
    if source.startswith("pl-"):
        return rule.get("PrefixListId") == source
    wanted = ipaddress.ip_network(source)
    for key in ("CidrIpv4", "CidrIpv6"):
        if rule.get(key):
            allowed = ipaddress.ip_network(rule[key])
            if allowed.version == wanted.version and wanted.subnet_of(allowed):  # type: ignore[arg-type]
                return True
    return False


def missing_sources(ec2: Any, group_id: str, sources: Sequence[str]) -> list[str]:
    """The sources the security group ``group_id`` does not allow on 443 (read-only)."""
    rules: list[dict[str, Any]] = []
    paginator = ec2.get_paginator("describe_security_group_rules")
    for page in paginator.paginate(Filters=[{"Name": "group-id", "Values": [group_id]}]):
        rules += page.get("SecurityGroupRules", [])
    return [s for s in sources if not any(_allows(r, s) for r in rules)]


def tcp_reach(host: str, port: int = HTTPS, timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """None when a TCP connection to ``host:port`` opens within ``timeout_s``; else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout_s:g} s (filtered: security group?)"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


def on_runner() -> bool:
    """Whether preflight runs in a GitHub Actions job (the runner the deploy uses)."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


def stack_runner_group(ec2: Any, cluster_name: str, cluster: dict[str, Any]) -> str | None:
    """The id of the stack's CI runner security group (tag ``Name=<cluster>-ci-runner``)
    in the cluster's VPC, or None."""
    vpc_id = (cluster.get("resourcesVpcConfig") or {}).get("vpcId")
    filters = [{"Name": "tag:Name", "Values": [f"{cluster_name}-ci-runner"]}]
    if vpc_id:
        filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    groups = ec2.describe_security_groups(Filters=filters).get("SecurityGroups") or []
    return str(groups[0]["GroupId"]) if groups else None


def runner_checks(
    eks: Any,
    ec2: Any,
    cluster_name: str,
    sources: Sequence[str],
    *,
    network: str,
    port: int = HTTPS,
) -> list[Check]:
    """The runner-ingress and runner-reach checks for one stack (``port``: the endpoint's)."""
    try:
        cluster = eks.describe_cluster(name=cluster_name)["cluster"]
    except Exception as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        reason = f"cluster {cluster_name} does not exist yet: pulumi up creates it and the rule"
        return [skipped(GROUP, INGRESS_ID, reason), skipped(GROUP, REACH_ID, reason)]
    checks: list[Check] = []
    group_id = (cluster.get("resourcesVpcConfig") or {}).get("clusterSecurityGroupId")
    if network != "vpc":
        checks.append(skipped(GROUP, INGRESS_ID, "a hosted runner uses the public endpoint"))
    elif (runner_group := stack_runner_group(ec2, cluster_name, cluster)) is None:
        checks.append(
            fail(
                GROUP,
                INGRESS_ID,
                f"no security group {cluster_name}-ci-runner in the cluster's VPC: the stack's "
                "runners have no group the cluster security group allows",
                f"pulumi up creates it (from an address in publicAccessCidrs; {RUNNER_DOCS})",
            )
        )
    elif not group_id:
        checks.append(
            fail(
                GROUP,
                INGRESS_ID,
                f"DescribeCluster({cluster_name}) names no clusterSecurityGroupId",
                "check the cluster in the EKS console (its security group is created by EKS)",
            )
        )
    else:
        sources = [runner_group, *sources]
        missing = missing_sources(ec2, group_id, sources)
        if missing:
            checks.append(
                fail(
                    GROUP,
                    INGRESS_ID,
                    f"the cluster security group {group_id} does not allow {missing} on 443: "
                    "the runner's Kubernetes calls time out",
                    "pulumi up adds the rule (mlstack:delivery.runner); until then run it "
                    f"from a host the group allows ({RUNNER_DOCS})",
                )
            )
        else:
            checks.append(ok(GROUP, INGRESS_ID, f"{group_id} allows {list(sources)} on 443"))
    if not on_runner():
        checks.append(skipped(GROUP, REACH_ID, "not on the CI runner (GITHUB_ACTIONS unset)"))
        return checks
    host = urlsplit(str(cluster.get("endpoint") or "")).hostname or ""
    problem = tcp_reach(host, port) if host else "DescribeCluster returned no endpoint"
    if problem is None:
        checks.append(ok(GROUP, REACH_ID, f"this runner reaches {host}:{port}"))
    else:
        checks.append(
            fail(
                GROUP,
                REACH_ID,
                f"this runner cannot reach the API endpoint: {problem}",
                "run the job on the stack's runner (mlstack:delivery.runner) and allow its "
                f"source in the cluster security group or publicAccessCidrs ({RUNNER_DOCS})",
            )
        )
    return checks
