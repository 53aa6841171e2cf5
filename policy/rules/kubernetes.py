"""The cluster, its nodes and workloads.

Secrets encryption, control-plane logs, IMDSv2 and hop limit, launch templates, GPU
taints, container limits and privileges, PDBs and replicas in prod.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

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
    EC2_INSTANCE,
    EC2_NODE_CLASS,
    EKS_CLUSTER,
    HPA,
    LAUNCH_TEMPLATE,
    NODE_GROUP,
    NODE_POOL,
    PDB,
    REPLICATED,
    SCALED_OBJECT,
    WORKLOADS,
    container_label,
    containers_of,
    define,
    metadata_of,
    namespace_of,
    node_group_is_gpu,
    node_pool_is_gpu,
    pod_labels_of,
)


def eks_secrets_encrypted(stack: Stack) -> Iterator[Finding]:
    for cluster in stack.of_type(EKS_CLUSTER):
        config = as_list(cluster.props.get("encryptionConfig"))
        entries = [c for c in config if isinstance(c, Mapping)]
        ok = any(
            "secrets" in as_list(c.get("resources")) and get_path(c, "provider", "keyArn")
            for c in entries
        )
        if not ok:
            yield (
                cluster.urn,
                f"cluster {cluster.name}: Secrets are not envelope-encrypted with KMS",
            )


def _metadata_options(resource: Resource) -> Any:
    if resource.type == EC2_NODE_CLASS:
        return get_path(resource.props, "spec", "metadataOptions")
    return resource.props.get("metadataOptions")


def imdsv2_required(stack: Stack) -> Iterator[Finding]:
    for resource in stack.of_type(LAUNCH_TEMPLATE, EC2_INSTANCE, EC2_NODE_CLASS):
        options = _metadata_options(resource)
        if resource.type == EC2_NODE_CLASS and options is None:
            continue  # Karpenter's default requires IMDSv2
        if get_path(options, "httpEndpoint") == "disabled":
            continue
        if get_path(options, "httpTokens") != "required":
            yield resource.urn, f"{resource.name}: IMDSv2 not required (httpTokens != required)"


def imds_hop_limit_one(stack: Stack) -> Iterator[Finding]:
    for resource in stack.of_type(LAUNCH_TEMPLATE, EC2_INSTANCE, EC2_NODE_CLASS):
        options = _metadata_options(resource)
        if resource.type == EC2_NODE_CLASS and options is None:
            continue  # Karpenter's default hop limit is 1
        if get_path(options, "httpEndpoint") == "disabled":
            continue
        limit = get_path(options, "httpPutResponseHopLimit")
        if limit is None or (not is_unknown(limit) and int(limit) > 1):
            yield resource.urn, f"{resource.name}: IMDS hop limit {limit} lets pods reach node role"


def node_groups_use_launch_template(stack: Stack) -> Iterator[Finding]:
    for group in stack.of_type(NODE_GROUP):
        template = group.props.get("launchTemplate")
        if not isinstance(template, Mapping) or not (template.get("id") or template.get("name")):
            yield group.urn, f"node group {group.name}: no launch template (IMDS/disk unmanaged)"


def gpu_nodes_tainted(stack: Stack) -> Iterator[Finding]:
    for group in stack.of_type(NODE_GROUP):
        if not node_group_is_gpu(group):
            continue
        taints = [t for t in as_list(group.props.get("taints")) if isinstance(t, Mapping)]
        if not any(t.get("effect") in ("NO_SCHEDULE", "NO_EXECUTE") for t in taints):
            yield group.urn, f"GPU node group {group.name}: no NoSchedule taint"
    for pool in stack.of_type(NODE_POOL):
        if not node_pool_is_gpu(pool):
            continue
        taints = as_list(get_path(pool.props, "spec", "template", "spec", "taints"))
        if not any(
            isinstance(t, Mapping) and t.get("effect") in ("NoSchedule", "NoExecute")
            for t in taints
        ):
            yield pool.urn, f"GPU NodePool {pool.name}: no NoSchedule taint"


def containers_have_limits(stack: Stack) -> Iterator[Finding]:
    for workload in stack.of_type(*WORKLOADS):
        for container in containers_of(workload):
            requests = get_path(container, "resources", "requests") or {}
            limits = get_path(container, "resources", "limits") or {}
            missing = [f"requests.{k}" for k in ("cpu", "memory") if k not in requests]
            missing += [] if "memory" in limits else ["limits.memory"]
            if missing:
                yield (
                    workload.urn,
                    f"{container_label(workload, container)}: missing {', '.join(missing)}",
                )


def containers_not_privileged(stack: Stack) -> Iterator[Finding]:
    for workload in stack.of_type(*WORKLOADS):
        for container in containers_of(workload):
            context = container.get("securityContext") or {}
            if truthy(get_path(context, "privileged")):
                yield workload.urn, f"{container_label(workload, container)}: runs privileged"
            if truthy(get_path(context, "allowPrivilegeEscalation")):
                yield (
                    workload.urn,
                    f"{container_label(workload, container)}: allows privilege escalation",
                )


def _selector_matches(selector: Any, labels: Mapping[str, Any]) -> bool:
    match = get_path(selector, "matchLabels")
    if not isinstance(match, Mapping) or not match:
        return False
    return all(labels.get(k) == v for k, v in match.items())


def prod_pdbs(stack: Stack) -> Iterator[Finding]:
    budgets = stack.of_type(PDB)
    for workload in stack.of_type(*REPLICATED):
        labels = pod_labels_of(workload)
        covered = any(
            namespace_of(pdb) == namespace_of(workload)
            and _selector_matches(get_path(pdb.props, "spec", "selector"), labels)
            for pdb in budgets
        )
        if not covered:
            yield workload.urn, f"{workload.name}: no PodDisruptionBudget selects its pods"


def _scaler_minimum(stack: Stack, workload: Resource) -> int | None:
    name = metadata_of(workload).get("name") or workload.name
    kind = workload.type.rsplit(":", 1)[-1]
    for hpa in stack.of_type(HPA):
        target = get_path(hpa.props, "spec", "scaleTargetRef")
        if get_path(target, "name") == name and get_path(target, "kind") == kind:
            return int(get_path(hpa.props, "spec", "minReplicas", default=1))
    for scaled in stack.of_type(SCALED_OBJECT):
        target = get_path(scaled.props, "spec", "scaleTargetRef")
        if get_path(target, "name") == name and get_path(target, "kind", default=kind) == kind:
            return int(get_path(scaled.props, "spec", "minReplicaCount", default=0))
    return None


def prod_min_two_replicas(stack: Stack) -> Iterator[Finding]:
    for workload in stack.of_type(*REPLICATED):
        minimum = _scaler_minimum(stack, workload)
        if minimum is None:
            minimum = int(get_path(workload.props, "spec", "replicas", default=1))
        if minimum < 2:
            yield workload.urn, f"{workload.name}: at least {minimum} replica(s), prod needs 2"


def eks_control_plane_logging(stack: Stack) -> Iterator[Finding]:
    needed = ("api", "audit", "authenticator")
    for cluster in stack.of_type(EKS_CLUSTER):
        enabled = {str(t) for t in as_list(cluster.props.get("enabledClusterLogTypes"))}
        missing = [t for t in needed if t not in enabled]
        if missing:
            yield cluster.urn, f"cluster {cluster.name}: control-plane logs {missing} are off"


RULES: list[Rule] = [
    define(
        "eks-secrets-encrypted",
        "EKS clusters envelope-encrypt Kubernetes Secrets with a KMS key.",
        severity="high",
        enforcement="mandatory",
        types=(EKS_CLUSTER,),
        check=eks_secrets_encrypted,
        remediation="Set encryptionConfig {resources: [secrets], provider.keyArn}.",
    ),
    define(
        "imdsv2-required",
        "Instances and node templates require IMDSv2 session tokens.",
        severity="high",
        enforcement="mandatory",
        types=(LAUNCH_TEMPLATE, EC2_INSTANCE, EC2_NODE_CLASS),
        check=imdsv2_required,
    ),
    define(
        "imds-hop-limit-one",
        "IMDS hop limit 1: pods cannot borrow the node's role (they use IRSA/Pod Identity).",
        severity="medium",
        enforcement="advisory",
        types=(LAUNCH_TEMPLATE, EC2_INSTANCE, EC2_NODE_CLASS),
        check=imds_hop_limit_one,
    ),
    define(
        "node-groups-use-launch-template",
        "Managed node groups use a launch template (IMDS and disk settings under control).",
        severity="medium",
        enforcement="mandatory",
        types=(NODE_GROUP,),
        check=node_groups_use_launch_template,
    ),
    define(
        "gpu-nodes-tainted",
        "GPU node groups and NodePools carry a NoSchedule taint so only GPU work lands there.",
        severity="medium",
        enforcement="mandatory",
        types=(NODE_GROUP, NODE_POOL),
        check=gpu_nodes_tainted,
    ),
    define(
        "containers-have-limits",
        "Containers declare CPU and memory requests and a memory limit.",
        severity="medium",
        enforcement="mandatory",
        types=WORKLOADS,
        check=containers_have_limits,
    ),
    define(
        "containers-not-privileged",
        "Containers do not run privileged or allow privilege escalation.",
        severity="high",
        enforcement="mandatory",
        types=WORKLOADS,
        check=containers_not_privileged,
    ),
    define(
        "prod-pdbs",
        "Prod Deployments and StatefulSets have a PodDisruptionBudget.",
        severity="medium",
        enforcement="mandatory",
        types=REPLICATED,
        check=prod_pdbs,
        prod_only=True,
    ),
    define(
        "prod-min-two-replicas",
        "Prod Deployments and StatefulSets run at least two replicas (or scale from two).",
        severity="medium",
        enforcement="mandatory",
        types=REPLICATED,
        check=prod_min_two_replicas,
        prod_only=True,
    ),
    define(
        "eks-control-plane-logging",
        "EKS control-plane api, audit and authenticator logs are on.",
        severity="medium",
        enforcement="mandatory",
        types=(EKS_CLUSTER,),
        check=eks_control_plane_logging,
    ),
]
