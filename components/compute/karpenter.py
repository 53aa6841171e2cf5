"""``Karpenter``: the controller that launches nodes for Karpenter GPU pools.

Creates what Karpenter documents for an EKS install, scoped to one cluster:

* the node role (worker + ECR pull-only policies) and its EKS access entry (EC2_LINUX);
* the interruption queue (SQS, SSE, TLS-only, 5-minute retention) and the EventBridge
  rules feeding it: spot interruption, rebalance recommendation, instance state change,
  AWS Health scheduled changes, capacity-reservation interruption;
* the controller role, trusted through EKS Pod Identity, with the controller policy
  restricted to this cluster's tags, this region, this queue and this node role;
* the ``karpenter.sh/discovery`` tag on the cluster security group (EC2NodeClasses find
  subnets and security groups by it; the Network component tags the private subnets);
* the CRD chart, then the controller chart, at pinned versions, on the system nodes.

Pools depend on :attr:`Karpenter.ready` so their NodePools are applied after the CRDs
and the controller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.compute import helm
from components.compute.gpu_node_pool import DISCOVERY_TAG
from components.iam import actions, documents
from components.iam.node_role import node_role
from components.iam.pod_identity import ServiceAccountRoleNames, pod_identity_role
from components.iam.scope import RoleScope
from components.validation import require_valid
from components.versions import CHARTS, ChartPin

TYPE_TOKEN = "mlstack:compute:Karpenter"

INTERRUPTION_EVENTS: dict[str, tuple[str, str]] = {
    "scheduled-change": ("aws.health", "AWS Health Event"),
    "spot-interruption": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "instance-state-change": ("aws.ec2", "EC2 Instance State-change Notification"),
    "capacity-reservation-interruption": (
        "aws.ec2",
        "EC2 Capacity Reservation Instance Interruption Warning",
    ),
}
"""EventBridge rules Karpenter consumes: role -> (event source, detail-type)."""


@dataclass(frozen=True)
class KarpenterArgs:
    """Inputs of :class:`Karpenter`. Defaults: kube-system, service account ``karpenter``,
    2 replicas, charts from ``components.versions.CHARTS``, 300 s queue retention."""

    cluster_name: str
    region: str
    cluster_security_group_id: pulumi.Input[str]
    partition: str = "aws"
    namespace: str = "kube-system"
    service_account: str = "karpenter"
    replicas: int = 2
    node_selector: Mapping[str, str] = field(default_factory=dict)
    chart: ChartPin = field(default_factory=lambda: CHARTS["karpenter"])
    crd_chart: ChartPin = field(default_factory=lambda: CHARTS["karpenter-crd"])
    queue_retention_seconds: int = 300
    node_repair: bool = False
    """The NodeRepair feature gate (alpha in 1.14, chart default off): replace a node whose
    health condition stays bad (``AcceleratedHardwareReady=False`` for 10 minutes, others 30).
    One switch for every Karpenter pool; forceful (no drain, no PDB), and held back while more
    than 20% of a pool's nodes (rounded up) are unhealthy."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What must exist first (the system node group that runs the controller)."""
    role_scope: RoleScope | None = None
    """IAM path and permissions boundary of the roles created here (None: plain roles)."""

    def problems(self) -> list[str]:
        found: list[str] = []
        if not 1 <= self.replicas <= 5:
            found.append(f"replicas: {self.replicas}: allowed 1-5")
        if not 60 <= self.queue_retention_seconds <= 1209600:
            found.append(f"queue_retention_seconds: {self.queue_retention_seconds}: 60-1209600")
        if not self.cluster_name:
            found.append("cluster_name: '': required")
        return found


def controller_policy(
    cluster_name: str, region: str, partition: str, node_role_arn: str, queue_arn: str
) -> documents.PolicyDocument:
    """The controller's permissions: launch and delete only what carries this cluster's
    ownership tags, in this region; pass only the node role; read only this queue.

    Statement by statement the upstream v1.14 controller policy or stricter
    (``tests/components/compute/test_controller_iam_vs_upstream.py``; differences in
    ``components.iam.upstream.DIFFERENCES``). The account is the queue's."""
    account = queue_arn.split(":")[4]
    cluster_arn = f"arn:{partition}:eks:{region}:{account}:cluster/{cluster_name}"
    ec2 = f"arn:{partition}:ec2:{region}"
    owned = {f"aws:ResourceTag/kubernetes.io/cluster/{cluster_name}": "owned"}
    request_owned = {
        f"aws:RequestTag/kubernetes.io/cluster/{cluster_name}": "owned",
        "aws:RequestTag/eks:eks-cluster-name": cluster_name,
    }
    launched = [
        f"{ec2}:*:{kind}/*"
        for kind in (
            "fleet",
            "instance",
            "volume",
            "network-interface",
            "launch-template",
            "spot-instances-request",
        )
    ]
    profiles = f"arn:{partition}:iam::{account}:instance-profile/*"
    region_tag = "aws:RequestTag/topology.kubernetes.io/region"

    def statement(
        sid: str, action_list: Sequence[str], resources: Sequence[str], **condition: Any
    ) -> dict[str, Any]:
        out = documents.allow(action_list, resources, sid=sid)
        if condition:
            out["Condition"] = condition
        return out

    return documents.document(
        statement(
            "AllowScopedEC2InstanceAccessActions",
            actions.KARPENTER_LAUNCH,
            [
                f"{ec2}::image/*",
                f"{ec2}::snapshot/*",
                f"{ec2}:*:security-group/*",
                f"{ec2}:*:subnet/*",
                f"{ec2}:*:capacity-reservation/*",
                f"{ec2}:*:placement-group/*",
            ],
        ),
        statement(
            "AllowScopedEC2LaunchTemplateAccessActions",
            actions.KARPENTER_LAUNCH,
            [f"{ec2}:*:launch-template/*"],
            StringEquals=owned,
            StringLike={"aws:ResourceTag/karpenter.sh/nodepool": "*"},
        ),
        statement(
            "AllowScopedEC2InstanceActionsWithTags",
            actions.KARPENTER_LAUNCH_TAGGED,
            launched,
            StringEquals=request_owned,
            StringLike={"aws:RequestTag/karpenter.sh/nodepool": "*"},
        ),
        statement(
            "AllowScopedResourceCreationTagging",
            actions.KARPENTER_CREATE_TAGS,
            launched,
            StringEquals={
                **request_owned,
                "ec2:CreateAction": ["CreateFleet", "CreateLaunchTemplate", "RunInstances"],
            },
            StringLike={"aws:RequestTag/karpenter.sh/nodepool": "*"},
        ),
        statement(
            "AllowScopedResourceTagging",
            actions.KARPENTER_CREATE_TAGS,
            [f"{ec2}:*:instance/*"],
            StringEquals=owned,
            StringLike={"aws:ResourceTag/karpenter.sh/nodepool": "*"},
            StringEqualsIfExists={"aws:RequestTag/eks:eks-cluster-name": cluster_name},
            **{
                "ForAllValues:StringEquals": {
                    "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
                }
            },
        ),
        statement(
            "AllowScopedDeletion",
            actions.KARPENTER_DELETE,
            [f"{ec2}:*:instance/*", f"{ec2}:*:launch-template/*"],
            StringEquals=owned,
            StringLike={"aws:ResourceTag/karpenter.sh/nodepool": "*"},
        ),
        statement(
            "AllowRegionalReadActions",
            actions.KARPENTER_REGIONAL_READ,
            ["*"],
            StringEquals={"aws:RequestedRegion": region},
        ),
        statement(
            "AllowSSMReadActions",
            actions.KARPENTER_SSM_READ,
            [f"arn:{partition}:ssm:{region}::parameter/aws/service/*"],
        ),
        statement("AllowPricingReadActions", actions.KARPENTER_PRICING_READ, ["*"]),
        statement("AllowInterruptionQueueActions", actions.SQS_CONSUME, [queue_arn]),
        statement(
            "AllowPassingInstanceRole",
            actions.PASS_ROLE,
            [node_role_arn],
            StringEquals={"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]},
        ),
        statement(
            "AllowScopedInstanceProfileCreationActions",
            actions.KARPENTER_PROFILE_CREATE,
            [profiles],
            StringEquals={**request_owned, region_tag: region},
            StringLike={"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"},
        ),
        statement(
            "AllowScopedInstanceProfileTagActions",
            actions.KARPENTER_PROFILE_TAG,
            [profiles],
            StringEquals={
                **owned,
                "aws:ResourceTag/topology.kubernetes.io/region": region,
                **request_owned,
                region_tag: region,
            },
            StringLike={
                "aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*",
                "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*",
            },
        ),
        statement(
            "AllowScopedInstanceProfileActions",
            actions.KARPENTER_PROFILE_MANAGE,
            [profiles],
            StringEquals={**owned, "aws:ResourceTag/topology.kubernetes.io/region": region},
            StringLike={"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"},
        ),
        statement("AllowUnscopedInstanceProfileListAction", actions.KARPENTER_PROFILE_LIST, ["*"]),
        statement("AllowInstanceProfileReadActions", actions.KARPENTER_PROFILE_READ, [profiles]),
        statement("AllowAPIServerEndpointDiscovery", actions.EKS_DESCRIBE_CLUSTER, [cluster_arn]),
        statement(
            "AllowZonalShiftStatusReadOnly",
            actions.KARPENTER_ZONAL_SHIFT_READ,
            ["*"],
            StringEquals={"arc-zonal-shift:ResourceIdentifier": cluster_arn},
        ),
    )


def queue_policy(queue_arn: str) -> documents.PolicyDocument:
    """EventBridge (and SQS) may send to the queue; nobody may use it without TLS."""
    return documents.document(
        {
            "Sid": "AllowEventBridge",
            "Effect": "Allow",
            "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
            "Action": list(actions.SQS_SEND),
            "Resource": queue_arn,
        },
        {
            "Sid": "DenyHTTP",
            "Effect": "Deny",
            "Principal": "*",
            "Action": actions.SQS_ALL,
            "Resource": queue_arn,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    )


def event_pattern(source: str, detail_type: str) -> str:
    return json.dumps({"source": [source], "detail-type": [detail_type]}, sort_keys=True)


class Karpenter(pulumi.ComponentResource):
    """Karpenter's AWS plumbing and Helm releases; see the module docstring."""

    node_role_name: pulumi.Output[str]
    node_role_arn: pulumi.Output[str]
    queue_name: pulumi.Output[str]
    queue_arn: pulumi.Output[str]
    controller_role_arn: pulumi.Output[str]
    ready: list[pulumi.Resource]
    """Resources a NodePool must wait for: the CRD chart and the controller chart."""

    def __init__(
        self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # Check plain inputs before registering anything: one error listing every problem.
        require_valid("Karpenter", name, args.problems())
        super().__init__(TYPE_TOKEN, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        nodes = node_role(
            f"{name}-node",
            description=f"Nodes Karpenter launches in {args.cluster_name}",
            partition=args.partition,
            parent=self,
            scope=args.role_scope,
        )
        node_role_resource, node_policies = nodes.role, list(nodes.attachments)
        access = aws.eks.AccessEntry(
            f"{name}-node-access",
            aws.eks.AccessEntryArgs(
                cluster_name=args.cluster_name,
                principal_arn=node_role_resource.arn,
                type="EC2_LINUX",
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.node_role_name = node_role_resource.name
        self.node_role_arn = node_role_resource.arn

        queue = aws.sqs.Queue(
            f"{name}-interruption-queue",
            aws.sqs.QueueArgs(
                message_retention_seconds=args.queue_retention_seconds,
                sqs_managed_sse_enabled=True,
            ),
            opts=child,
        )
        aws.sqs.QueuePolicy(
            f"{name}-interruption-queue-policy",
            aws.sqs.QueuePolicyArgs(
                queue_url=queue.url,
                policy=queue.arn.apply(lambda arn: documents.to_json(queue_policy(arn))),
            ),
            opts=child,
        )
        for role, (source, detail_type) in INTERRUPTION_EVENTS.items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-{role}",
                aws.cloudwatch.EventRuleArgs(
                    description=f"Karpenter ({args.cluster_name}): {detail_type}",
                    event_pattern=event_pattern(source, detail_type),
                ),
                opts=child,
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{role}-target",
                aws.cloudwatch.EventTargetArgs(
                    rule=rule.name, arn=queue.arn, target_id="KarpenterInterruptionQueue"
                ),
                opts=child,
            )
        self.queue_name = queue.name
        self.queue_arn = queue.arn

        controller = pod_identity_role(
            ServiceAccountRoleNames(
                role=f"{name}-controller-role",
                policy=f"{name}-controller-policy",
                association=f"{name}-pod-identity",
            ),
            cluster_name=args.cluster_name,
            namespace=args.namespace,
            service_account=args.service_account,
            description=f"Karpenter controller of {args.cluster_name} (Pod Identity)",
            policy=pulumi.Output.all(node_role_resource.arn, queue.arn).apply(
                lambda v: documents.to_json(
                    controller_policy(args.cluster_name, args.region, args.partition, v[0], v[1])
                )
            ),
            parent=self,
            association_depends_on=args.depends_on,
            scope=args.role_scope,
        )
        identity, controller_policy_doc = controller.association, controller.policy
        self.controller_role_arn = controller.role.arn
        sg_tag = aws.ec2.Tag(
            f"{name}-cluster-sg-discovery",
            aws.ec2.TagArgs(
                resource_id=args.cluster_security_group_id,
                key=DISCOVERY_TAG,
                value=args.cluster_name,
            ),
            opts=child,
        )

        crds = helm.release(
            f"{name}-crds",
            args.crd_chart,
            release_name="karpenter-crd",
            namespace=args.namespace,
            values={},
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        controller = helm.release(
            f"{name}-controller",
            args.chart,
            release_name="karpenter",
            namespace=args.namespace,
            values=controller_values(args, queue.name),
            skip_crds=True,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[
                    *args.depends_on,
                    crds,
                    identity,
                    controller_policy_doc,
                    access,
                    sg_tag,
                    *node_policies,
                ],
            ),
        )
        self.ready = [crds, controller]
        self.register_outputs(
            {
                "nodeRoleArn": self.node_role_arn,
                "queueName": self.queue_name,
                "controllerRoleArn": self.controller_role_arn,
            }
        )


def controller_values(args: KarpenterArgs, queue_name: pulumi.Input[str]) -> dict[str, Any]:
    """Helm values of the controller chart."""
    return {
        "settings": {
            "clusterName": args.cluster_name,
            "interruptionQueue": queue_name,
            "featureGates": {"nodeRepair": args.node_repair},
        },
        "serviceAccount": {"name": args.service_account},
        "replicas": args.replicas,
        "nodeSelector": {"kubernetes.io/os": "linux", **args.node_selector},
        "controller": {
            # Nodes allow one IMDS hop, so pods cannot ask the metadata service for the
            # region; Karpenter would fail to start without it.
            "env": [{"name": "AWS_REGION", "value": args.region}],
            "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"memory": "1Gi"},
            },
        },
    }
