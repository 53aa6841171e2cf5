"""``GpuNodePool``: one pool of GPU nodes, by Karpenter or as an EKS managed node group.

Both provisioners render the same node contract from the same args:

* taints (default ``nvidia.com/gpu=true:NoSchedule``) and labels
  ``mlstack.io/gpu-pool=<pool>``, ``mlstack.io/accelerator=nvidia``,
  ``mlstack.io/ami-family=<family>`` and, when every allowed instance type carries the
  same GPU, ``mlstack.io/gpu-model=<model>``;
* :meth:`GpuNodePool.scheduling` returns the exact tolerations and node selector a
  workload needs to land on the pool, derived from those same values, so a workload
  built from it cannot miss the pool.

``karpenter``: an ``EC2NodeClass`` (pinned AMI alias, subnets and security groups found
by the ``karpenter.sh/discovery`` tag, IMDSv2 with one hop, encrypted gp3 root volume,
instance-store RAID0) and a ``NodePool`` (exact instance types, capacity types,
architecture, GPU and node limits, disruption settings).

``managed``: an IAM node role, a launch template (IMDSv2, encrypted gp3, RAID0 user
data), an EKS managed node group with the NVIDIA AMI type at a pinned release, and the
cluster-autoscaler node-template tags (labels, taints, ``nvidia.com/gpu``) on its Auto
Scaling group so scale-from-zero works. The desired size is left to the autoscaler.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.compute import gpu_instances
from components.iam.node_role import node_role
from components.iam.scope import RoleScope
from components.validation import require_valid

TYPE_TOKEN = "mlstack:compute:GpuNodePool"

POOL_LABEL = "mlstack.io/gpu-pool"
ACCELERATOR_LABEL = "mlstack.io/accelerator"
GPU_MODEL_LABEL = "mlstack.io/gpu-model"
AMI_FAMILY_LABEL = "mlstack.io/ami-family"
GPU_RESOURCE = "nvidia.com/gpu"
DISCOVERY_TAG = "karpenter.sh/discovery"
CA_TAG_PREFIX = "k8s.io/cluster-autoscaler"

Provisioner = Literal["karpenter", "managed"]
TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
_EKS_EFFECT = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}
_EKS_EFFECT["NoExecute"] = "NO_EXECUTE"
_EKS_CAPACITY = {"on-demand": "ON_DEMAND", "spot": "SPOT"}


@dataclass(frozen=True)
class Taint:
    """A node taint. ``value`` may be empty."""

    key: str
    value: str = ""
    effect: TaintEffect = "NoSchedule"


DEFAULT_GPU_TAINT = Taint("nvidia.com/gpu", "true", "NoSchedule")


@dataclass(frozen=True)
class DisruptionBudget:
    """Karpenter budget: at most ``nodes`` ('1' or '10%') disrupted at once."""

    nodes: str
    schedule: str | None = None
    duration: str | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scheduling:
    """What a workload needs to run on one pool; built from the pool's own taints/labels."""

    tolerations: tuple[k8s.core.v1.TolerationArgs, ...]
    node_selector: dict[str, str]
    gpus_per_node: int
    """GPUs of the pool's largest allowed instance type."""


@dataclass(frozen=True)
class GpuNodePoolArgs:
    """Inputs of :class:`GpuNodePool`. Defaults: karpenter, on-demand, AL2023 x86_64,
    200 GiB gp3 at 3000 IOPS / 125 MiB/s, instance-store RAID0, the nvidia.com/gpu taint,
    WhenEmpty consolidation after 10m, 720h expiry, one node disrupted at a time.

    ``cluster_name`` (plain: it is part of tag keys) feeds the discovery and autoscaler
    tags and the node group; ``depends_on`` orders the pool after the cluster. Karpenter pools need
    ``node_role_name`` (the role Karpenter's instance profiles use); managed pools need
    ``subnet_ids`` (they create their own node role).
    """

    pool_name: str
    cluster_name: str
    instance_types: Sequence[str]
    ami_release: str
    kubernetes_version: str = "1.33"
    partition: str = "aws"
    provisioner: Provisioner = "karpenter"
    capacity_types: Sequence[str] = ("on-demand",)
    capacity_reservation_ids: Sequence[str] = ()
    architecture: gpu_instances.Architecture = "x86_64"
    ami_family: Literal["al2023", "bottlerocket"] = "al2023"
    root_volume_size_gib: int = 200
    root_volume_iops: int = 3000
    root_volume_throughput_mibps: int = 125
    instance_store_raid0: bool = True
    reserved_ephemeral_gib: int = 0
    """Disk the kubelet keeps out of pods' allocatable ephemeral storage
    (``systemReserved``): the node-shared model cache, which lives on the kubelet's disk
    but belongs to no pod, so the scheduler never packs pods' scratch into its space."""
    min_nodes: int = 0
    max_nodes: int = 1
    max_gpus: int | None = None
    """GPU limit; None means ``max_nodes`` x GPUs of the largest allowed type."""
    taints: Sequence[Taint] = (DEFAULT_GPU_TAINT,)
    labels: Mapping[str, str] = field(default_factory=dict)
    consolidation_policy: Literal["WhenEmpty", "WhenEmptyOrUnderutilized"] = "WhenEmpty"
    consolidate_after: str = "10m"
    expire_after: str = "720h"
    budgets: Sequence[DisruptionBudget] = (DisruptionBudget(nodes="1"),)
    update_max_unavailable: int = 1
    auto_repair: bool = True
    """Replace nodes whose health conditions stay bad (managed pools: ``nodeRepairConfig``,
    one node at a time; Karpenter pools: the controller's NodeRepair feature gate, set on
    :class:`~components.compute.karpenter.KarpenterArgs`)."""
    node_role_name: pulumi.Input[str] | None = None
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    depends_on: Sequence[pulumi.Resource] = ()
    """What must exist first: the cluster and its add-ons, the Karpenter controller (CRDs)."""
    role_scope: RoleScope | None = None
    """IAM path and permissions boundary of the roles created here (None: plain roles)."""

    # ------------------------------------------------------------------ derived

    def facts(self) -> list[gpu_instances.GpuInstance]:
        known = gpu_instances.load_gpu_instances()
        return [known[t] for t in self.instance_types if t in known]

    def gpus_per_node(self) -> int:
        return max((f.gpu_count for f in self.facts()), default=0)

    def gpu_limit(self) -> int:
        return self.max_gpus if self.max_gpus is not None else self.max_nodes * self.gpus_per_node()

    def node_labels(self) -> dict[str, str]:
        """Every label the pool's nodes carry (mlstack's own plus ``labels``)."""
        models = {f.gpu_model for f in self.facts()}
        labels = {
            **self.labels,
            POOL_LABEL: self.pool_name,
            ACCELERATOR_LABEL: "nvidia",
            AMI_FAMILY_LABEL: self.ami_family,
        }
        if len(models) == 1:
            labels[GPU_MODEL_LABEL] = next(iter(models)).lower()
        return labels

    def problems(self) -> list[str]:
        """Everything wrong with these args, as 'field: value: allowed' lines."""
        found: list[str] = []
        known = gpu_instances.load_gpu_instances()
        if not self.instance_types:
            found.append("instance_types: (): give at least one GPU instance type")
        for itype in self.instance_types:
            fact = known.get(itype)
            if fact is None:
                found.append(f"instance_types: {itype!r}: not a GPU type in gpu_instances.json")
            elif fact.architecture != self.architecture:
                found.append(
                    f"instance_types: {itype!r}: {fact.architecture}, AMI is {self.architecture}"
                )
        if not 0 <= self.min_nodes <= self.max_nodes or self.max_nodes < 1:
            found.append(
                f"min_nodes/max_nodes: {self.min_nodes}/{self.max_nodes}: need 0 <= min <= max, "
                "max >= 1"
            )
        if self.provisioner == "karpenter" and self.min_nodes:
            found.append(f"min_nodes: {self.min_nodes}: karpenter pools need 0")
        if self.gpu_limit() < self.gpus_per_node():
            found.append(
                f"max_gpus: {self.max_gpus}: below the {self.gpus_per_node()} GPUs of the "
                "largest allowed instance"
            )
        if self.root_volume_size_gib < 100:
            found.append(f"root_volume_size_gib: {self.root_volume_size_gib}: at least 100")
        allowed = {"on-demand", "spot", "reserved"}
        if self.provisioner == "managed":
            allowed = {"on-demand", "spot"}
            if len(set(self.capacity_types)) != 1:
                found.append(
                    f"capacity_types: {list(self.capacity_types)}: managed takes exactly one"
                )
            if self.subnet_ids is None:
                found.append("subnet_ids: None: required for managed pools")
        elif self.node_role_name is None:
            found.append("node_role_name: None: required for karpenter pools")
        bad = sorted(set(self.capacity_types) - allowed)
        if bad or not self.capacity_types:
            found.append(f"capacity_types: {list(self.capacity_types)}: allowed {sorted(allowed)}")
        if "reserved" in self.capacity_types and not self.capacity_reservation_ids:
            found.append("capacity_reservation_ids: (): required with 'reserved'")
        if "latest" in self.ami_release or not self.ami_release:
            found.append(f"ami_release: {self.ami_release!r}: pin a release")
        return found


class GpuNodePool(pulumi.ComponentResource):
    """A GPU node pool; see the module docstring. Pass the AWS provider (managed) and the
    cluster's Kubernetes provider (karpenter) through ``opts.providers``."""

    pool_name: str
    node_group: aws.eks.NodeGroup | None
    node_class: k8s.apiextensions.CustomResource | None
    node_pool: k8s.apiextensions.CustomResource | None
    node_role_arn: pulumi.Output[str] | None
    node_role_name: pulumi.Output[str] | None
    """The managed pool's own node role (None for Karpenter pools: Karpenter's role)."""

    def __init__(
        self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # Check plain inputs before registering anything: one error listing every problem.
        require_valid("GpuNodePool", name, args.problems())
        super().__init__(TYPE_TOKEN, name, None, opts)
        self._name = name
        self._args = args
        self.pool_name = args.pool_name
        self.node_group = None
        self.node_class = None
        self.node_pool = None
        self.node_role_arn = None
        self.node_role_name = None
        if args.provisioner == "karpenter":
            self._karpenter()
        else:
            self._managed()
        self.register_outputs({"poolName": args.pool_name, "gpusPerNode": args.gpus_per_node()})

    # ------------------------------------------------------------------ contract

    @property
    def args(self) -> GpuNodePoolArgs:
        return self._args

    @property
    def taints(self) -> tuple[Taint, ...]:
        return tuple(self._args.taints)

    @property
    def labels(self) -> dict[str, str]:
        return self._args.node_labels()

    def scheduling(self) -> Scheduling:
        """Tolerations for every pool taint and a selector on the pool label."""
        return scheduling_for(self._args)

    # ------------------------------------------------------------------ karpenter

    def _karpenter(self) -> None:
        args = self._args
        self.node_class = k8s.apiextensions.CustomResource(
            f"{self._name}-nodeclass",
            api_version="karpenter.k8s.aws/v1",
            kind="EC2NodeClass",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.pool_name),
            spec=ec2_node_class_spec(args),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.node_pool = k8s.apiextensions.CustomResource(
            f"{self._name}-nodepool",
            api_version="karpenter.sh/v1",
            kind="NodePool",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.pool_name),
            spec=node_pool_spec(args),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*args.depends_on, self.node_class]
            ),
        )

    # ------------------------------------------------------------------ managed

    def _managed(self) -> None:
        args = self._args
        name = self._name
        child = pulumi.ResourceOptions(parent=self)
        nodes = node_role(
            f"{name}-node",
            description=f"GPU nodes of pool {args.pool_name}",
            partition=args.partition,
            parent=self,
            scope=args.role_scope,
        )
        role, attachments = nodes.role, list(nodes.attachments)
        self.node_role_arn = role.arn
        self.node_role_name = role.name
        template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            aws.ec2.LaunchTemplateArgs(
                description=f"GPU pool {args.pool_name}: IMDSv2, encrypted gp3",
                update_default_version=True,
                metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                    http_endpoint="enabled",
                    http_tokens="required",
                    http_put_response_hop_limit=1,
                ),
                block_device_mappings=[
                    aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                        device_name=root_device(args.ami_family),
                        ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                            volume_size=args.root_volume_size_gib,
                            volume_type="gp3",
                            iops=args.root_volume_iops,
                            throughput=args.root_volume_throughput_mibps,
                            encrypted="true",
                            delete_on_termination="true",
                        ),
                    )
                ],
                user_data=managed_user_data(args),
                tag_specifications=[
                    aws.ec2.LaunchTemplateTagSpecificationArgs(
                        resource_type="instance",
                        tags={"Name": f"gpu-{args.pool_name}", POOL_LABEL: args.pool_name},
                    )
                ],
            ),
            opts=child,
        )
        template_tags = autoscaler_node_template_tags(args)
        self.node_group = aws.eks.NodeGroup(
            f"{name}-nodes",
            aws.eks.NodeGroupArgs(
                cluster_name=args.cluster_name,
                node_group_name=f"gpu-{args.pool_name}",
                node_role_arn=role.arn,
                subnet_ids=args.subnet_ids,  # type: ignore[arg-type]
                capacity_type=_EKS_CAPACITY[args.capacity_types[0]],
                ami_type=eks_ami_type(args.ami_family, args.architecture),
                release_version=args.ami_release,
                instance_types=list(args.instance_types),
                scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                    min_size=args.min_nodes,
                    max_size=args.max_nodes,
                    desired_size=args.min_nodes,
                ),
                update_config=aws.eks.NodeGroupUpdateConfigArgs(
                    max_unavailable=args.update_max_unavailable
                ),
                node_repair_config=managed_repair_config(args),
                launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                    id=template.id, version=template.latest_version.apply(str)
                ),
                labels=args.node_labels(),
                taints=[
                    aws.eks.NodeGroupTaintArgs(
                        key=t.key, value=t.value or None, effect=_EKS_EFFECT[t.effect]
                    )
                    for t in args.taints
                ],
                tags=template_tags,
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*args.depends_on, *attachments],
                # cluster-autoscaler owns the live size after creation.
                ignore_changes=["scalingConfig.desiredSize"],
                # Fixed name gpu-<pool>: a replacing change (instance types, AMI type,
                # capacity type, subnets) must delete the old group first.
                delete_before_replace=True,
            ),
        )
        # EKS does not copy node group tags to the Auto Scaling group, and scale-from-zero
        # reads them there: tag the group itself, one resource per tag.
        asg_name = self.node_group.resources.apply(_first_asg_name)
        for key, value in sorted(template_tags.items()):
            aws.autoscaling.Tag(
                f"{name}-asg-tag-{_slug(key)}",
                aws.autoscaling.TagArgs(
                    autoscaling_group_name=asg_name,
                    tag=aws.autoscaling.TagTagArgs(key=key, value=value, propagate_at_launch=False),
                ),
                opts=child,
            )


def _slug(tag_key: str) -> str:
    """A resource-name part for an autoscaler tag key (stable when other tags change)."""
    short = tag_key.removeprefix(f"{CA_TAG_PREFIX}/").removeprefix("node-template/")
    return "".join(c if c.isalnum() else "-" for c in short).strip("-")


def _first_asg_name(resources: Any) -> str:
    for resource in resources or []:
        for group in resource.autoscaling_groups or []:
            if group.name:
                return group.name
    return ""


# --------------------------------------------------------------------------- pure builders


def scheduling_for(args: GpuNodePoolArgs) -> Scheduling:
    """The :class:`Scheduling` of a pool, from its args alone."""
    tolerations = tuple(toleration_for(t) for t in args.taints)
    return Scheduling(
        tolerations=tolerations,
        node_selector={POOL_LABEL: args.pool_name},
        gpus_per_node=args.gpus_per_node(),
    )


def toleration_for(taint: Taint) -> k8s.core.v1.TolerationArgs:
    """The exact toleration for one taint (Equal on the value; Exists when it is empty)."""
    if taint.value:
        return k8s.core.v1.TolerationArgs(
            key=taint.key, operator="Equal", value=taint.value, effect=taint.effect
        )
    return k8s.core.v1.TolerationArgs(key=taint.key, operator="Exists", effect=taint.effect)


def toleration_dict(taint: Taint) -> dict[str, str]:
    """The toleration as a plain mapping (Helm values)."""
    if taint.value:
        return {"key": taint.key, "operator": "Equal", "value": taint.value, "effect": taint.effect}
    return {"key": taint.key, "operator": "Exists", "effect": taint.effect}


def taint_dict(taint: Taint) -> dict[str, str]:
    out = {"key": taint.key, "effect": taint.effect}
    if taint.value:
        out["value"] = taint.value
    return out


def eks_ami_type(family: str, architecture: str) -> str:
    arch = "x86_64" if architecture == "x86_64" else "ARM_64"
    return f"{'AL2023' if family == 'al2023' else 'BOTTLEROCKET'}_{arch}_NVIDIA"


def root_device(family: str) -> str:
    """AL2023 boots and runs from /dev/xvda; Bottlerocket keeps images and logs on /dev/xvdb."""
    return "/dev/xvda" if family == "al2023" else "/dev/xvdb"


def ami_alias(args: GpuNodePoolArgs) -> str:
    return f"{args.ami_family}@{args.ami_release}"


SOCI_MIN_BOTTLEROCKET = (1, 44, 0)
"""Bottlerocket 1.44.0 added the SOCI snapshotter to its Kubernetes variants, with the
``parallel-pull-unpack`` pull mode (release notes; settings reference
``settings.container-runtime-plugins.soci-snapshotter``)."""

SOCI_PARALLEL_PULL_TOML = "\n".join(
    [
        "[settings.container-runtime]",
        'snapshotter = "soci"',
        "[settings.container-runtime-plugins.soci-snapshotter]",
        'pull-mode = "parallel-pull-unpack"',
        "",
    ]
)
"""Bottlerocket settings: images pulled in parallel chunks and unpacked concurrently."""


BOTTLEROCKET_SOCI_DIR = "/var/lib/soci-snapshotter"
"""Where Bottlerocket's SOCI snapshotter keeps layers (the images it removes when the
snapshotter changes: settings reference, ``settings.container-runtime.snapshotter``)."""


def parallel_image_pull(ami_family: str, ami_release: str) -> bool:
    """Whether the pool's nodes pull images with SOCI parallel pull: Bottlerocket from
    1.44.0. EKS AL2023 AMIs ship SOCI behind nodeadm's ``FastImagePull`` feature gate,
    which AWS labels experimental: not enabled, so AL2023 keeps containerd's default pull."""
    if ami_family != "bottlerocket":
        return False
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", ami_release)  # v1.46.0 or 1.46.0-0123abcd
    if match is None:
        return False
    return tuple(int(part) for part in match.groups()) >= SOCI_MIN_BOTTLEROCKET


def ec2_node_class_spec(args: GpuNodePoolArgs) -> dict[str, Any]:
    """The EC2NodeClass spec (karpenter.k8s.aws/v1)."""
    discovery = [{"tags": {DISCOVERY_TAG: args.cluster_name}}]
    volume = {
        "volumeSize": f"{args.root_volume_size_gib}Gi",
        "volumeType": "gp3",
        "iops": args.root_volume_iops,
        "throughput": args.root_volume_throughput_mibps,
        "encrypted": True,
        "deleteOnTermination": True,
    }
    mappings: list[dict[str, Any]] = []
    if args.ami_family == "bottlerocket":
        # Bottlerocket's OS volume; Karpenter's default size for it.
        mappings.append(
            {
                "deviceName": "/dev/xvda",
                "ebs": {"volumeSize": "4Gi", "volumeType": "gp3", "encrypted": True},
            }
        )
    mappings.append({"deviceName": root_device(args.ami_family), "ebs": volume})
    spec: dict[str, Any] = {
        "amiSelectorTerms": [{"alias": ami_alias(args)}],
        "role": args.node_role_name,
        "subnetSelectorTerms": discovery,
        "securityGroupSelectorTerms": discovery,
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": 1,
            "httpTokens": "required",
        },
        "blockDeviceMappings": mappings,
        "tags": {POOL_LABEL: args.pool_name},
    }
    if args.instance_store_raid0 and any(f.instance_store for f in args.facts()):
        spec["instanceStorePolicy"] = "RAID0"
    if args.reserved_ephemeral_gib:
        spec["kubelet"] = {
            "systemReserved": {"ephemeral-storage": f"{args.reserved_ephemeral_gib}Gi"}
        }
    if parallel_image_pull(args.ami_family, args.ami_release):
        spec["userData"] = SOCI_PARALLEL_PULL_TOML  # Karpenter merges it with its own TOML
    if "reserved" in args.capacity_types:
        spec["capacityReservationSelectorTerms"] = [
            {"id": rid} for rid in args.capacity_reservation_ids
        ]
    return spec


def node_pool_spec(args: GpuNodePoolArgs) -> dict[str, Any]:
    """The NodePool spec (karpenter.sh/v1)."""
    arch = gpu_instances.KUBERNETES_ARCH[args.architecture]
    budgets: list[dict[str, Any]] = []
    for budget in args.budgets:
        entry: dict[str, Any] = {"nodes": budget.nodes}
        if budget.schedule:
            entry["schedule"] = budget.schedule
        if budget.duration:
            entry["duration"] = budget.duration
        if budget.reasons:
            entry["reasons"] = list(budget.reasons)
        budgets.append(entry)
    return {
        "template": {
            "metadata": {"labels": args.node_labels()},
            "spec": {
                "nodeClassRef": {
                    "group": "karpenter.k8s.aws",
                    "kind": "EC2NodeClass",
                    "name": args.pool_name,
                },
                "requirements": [
                    {
                        "key": "node.kubernetes.io/instance-type",
                        "operator": "In",
                        "values": list(args.instance_types),
                    },
                    {
                        "key": "karpenter.sh/capacity-type",
                        "operator": "In",
                        "values": list(args.capacity_types),
                    },
                    {"key": "kubernetes.io/arch", "operator": "In", "values": [arch]},
                    {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                ],
                "taints": [taint_dict(t) for t in args.taints],
                "expireAfter": args.expire_after,
            },
        },
        "limits": {GPU_RESOURCE: str(args.gpu_limit()), "nodes": str(args.max_nodes)},
        "disruption": {
            "consolidationPolicy": args.consolidation_policy,
            "consolidateAfter": args.consolidate_after,
            "budgets": budgets,
        },
    }


REPAIR_MAX_PARALLEL_NODES = 1
"""Nodes of one managed pool repaired at once: one, so a repair never takes more GPU capacity
than the one-node disruption budget and the model PDBs are built for."""
REPAIR_MAX_UNHEALTHY_PERCENT = 20
"""Above this share of unhealthy nodes, repair stops (a fleet-wide fault is not a node's):
EKS's own default for node groups, written out so the plan shows it."""


KARPENTER_REPAIR_UNHEALTHY_SHARE = 0.2
"""Karpenter repairs while at most this share of a NodePool's nodes, rounded up, is
unhealthy (v1.14.1 ``pkg/controllers/node/health/controller.go``: 20%, ``roundUp``), and
it reads no disruption budget: with 6 nodes, 2 can be repaired at once."""


def concurrent_repairs(provisioner: str, enabled: bool, max_nodes: int) -> int:
    """Nodes of one pool auto repair may take at once: none when off; one on a managed
    node group; on Karpenter, 20% of the pool's nodes rounded up (its only limit)."""
    if not enabled:
        return 0
    if provisioner == "managed":
        return REPAIR_MAX_PARALLEL_NODES
    return math.ceil(KARPENTER_REPAIR_UNHEALTHY_SHARE * max_nodes)


def managed_repair_config(args: GpuNodePoolArgs) -> aws.eks.NodeGroupNodeRepairConfigArgs:
    """The node group's auto repair: on or off, one node at a time, stopping above 20%
    unhealthy (EKS then pages through the overdue-repair alert instead)."""
    if not args.auto_repair:
        return aws.eks.NodeGroupNodeRepairConfigArgs(enabled=False)
    return aws.eks.NodeGroupNodeRepairConfigArgs(
        enabled=True,
        max_parallel_nodes_repaired_count=REPAIR_MAX_PARALLEL_NODES,
        max_unhealthy_node_threshold_percentage=REPAIR_MAX_UNHEALTHY_PERCENT,
    )


def autoscaler_node_template_tags(args: GpuNodePoolArgs) -> dict[str, str]:
    """Tags cluster-autoscaler reads to build a node from an empty group: discovery,
    labels, taints and the GPU count of the largest allowed instance."""
    tags = {
        f"{CA_TAG_PREFIX}/enabled": "true",
        f"{CA_TAG_PREFIX}/{args.cluster_name}": "owned",
        f"{CA_TAG_PREFIX}/node-template/resources/{GPU_RESOURCE}": str(args.gpus_per_node()),
    }
    for key, value in args.node_labels().items():
        tags[f"{CA_TAG_PREFIX}/node-template/label/{key}"] = value
    for taint in args.taints:
        tags[f"{CA_TAG_PREFIX}/node-template/taint/{taint.key}"] = f"{taint.value}:{taint.effect}"
    return tags


_MIME_BOUNDARY = "MLSTACKBOUNDARY"


def managed_user_data(args: GpuNodePoolArgs) -> str | None:
    """Base64 user data: kubelet and containerd on an instance-store RAID0, and on
    Bottlerocket >= 1.44 SOCI parallel image pull.

    AL2023: a nodeadm ``NodeConfig`` part (EKS merges it with its own; nodeadm skips the
    RAID when the instance has no instance store). Bottlerocket: TOML settings, the SOCI
    snapshotter and bootstrap commands of ``apiclient ephemeral-storage``. None when
    neither applies.
    """
    raid0 = args.instance_store_raid0 and any(f.instance_store for f in args.facts())
    soci = parallel_image_pull(args.ami_family, args.ami_release)
    reserved = args.reserved_ephemeral_gib
    if not raid0 and not soci and not reserved:
        return None
    if args.ami_family == "al2023":
        spec = ["spec:"]
        if raid0:
            spec += ["  instance:", "    localStorage:", "      strategy: RAID0"]
        if reserved:
            spec += [
                "  kubelet:",
                "    config:",
                "      systemReserved:",
                f"        ephemeral-storage: {reserved}Gi",
            ]
        text = "\n".join(
            [
                "MIME-Version: 1.0",
                f'Content-Type: multipart/mixed; boundary="{_MIME_BOUNDARY}"',
                "",
                f"--{_MIME_BOUNDARY}",
                "Content-Type: application/node.eks.aws",
                "",
                "---",
                "apiVersion: node.eks.aws/v1alpha1",
                "kind: NodeConfig",
                *spec,
                "",
                f"--{_MIME_BOUNDARY}--",
                "",
            ]
        )
        return base64.b64encode(text.encode()).decode()
    reserve = (
        f'[settings.kubernetes.system-reserved]\n"ephemeral-storage" = "{reserved}Gi"\n'
        if reserved
        else ""
    )
    if not raid0:
        text = (SOCI_PARALLEL_PULL_TOML if soci else "") + reserve
    else:
        # With SOCI the layers are buffered and unpacked under its own directory: bound to
        # the RAID0 too, or the image lands on the EBS data volume (Bottlerocket's SOCI
        # data dir; Karpenter's RAID0 binds the same one for its pools).
        dirs = ["/var/lib/containerd", "/var/lib/kubelet", "/var/log/pods"]
        dirs += [BOTTLEROCKET_SOCI_DIR] if soci else []
        bind = ", ".join(f'"{d}"' for d in dirs)
        text = (
            ("" if not soci else SOCI_PARALLEL_PULL_TOML)
            + reserve
            + "\n".join(
                [
                    '[settings.bootstrap-commands."000-mount-instance-storage"]',
                    'commands = [["apiclient", "ephemeral-storage", "init"], ["apiclient", '
                    f'"ephemeral-storage", "bind", "--dirs", {bind}]]',
                    "essential = true",
                    'mode = "always"',
                    "",
                ]
            )
        )
    return base64.b64encode(text.encode()).decode()
