"""``ClusterAutoscaler``: scales the managed GPU node groups (installed only when one exists).

Auto-discovers the Auto Scaling groups tagged ``k8s.io/cluster-autoscaler/enabled`` and
``k8s.io/cluster-autoscaler/<cluster>`` (the managed :class:`GpuNodePool` tags its group
with these and the node-template tags scale-from-zero needs). Its Pod Identity role may
describe groups and instance types anywhere in the region but change the size of, or
terminate instances in, only the groups owned by this cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.compute import helm
from components.compute.gpu_node_pool import CA_TAG_PREFIX
from components.iam import actions, documents
from components.iam.pod_identity import ServiceAccountRoleNames, pod_identity_role
from components.iam.scope import RoleScope
from components.validation import require_valid
from components.versions import CHARTS, IMAGES, ChartPin

TYPE_TOKEN = "mlstack:compute:ClusterAutoscaler"


def image_for(kubernetes_version: str) -> str:
    """The pinned cluster-autoscaler image for a Kubernetes minor version."""
    return IMAGES[f"cluster-autoscaler/{kubernetes_version}"]


@dataclass(frozen=True)
class ClusterAutoscalerArgs:
    """Inputs of :class:`ClusterAutoscaler`. Defaults: kube-system, service account
    ``cluster-autoscaler``, least-waste expander, scale down after 10m unneeded."""

    cluster_name: str
    region: str
    kubernetes_version: str
    partition: str = "aws"
    namespace: str = "kube-system"
    service_account: str = "cluster-autoscaler"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    scale_down_unneeded_time: str = "10m"
    expander: str = "least-waste"
    chart: ChartPin = field(default_factory=lambda: CHARTS["cluster-autoscaler"])
    depends_on: Sequence[pulumi.Resource] = ()
    role_scope: RoleScope | None = None
    """IAM path and permissions boundary of the roles created here (None: plain roles)."""

    def problems(self) -> list[str]:
        found: list[str] = []
        key = f"cluster-autoscaler/{self.kubernetes_version}"
        if key not in IMAGES:
            pinned = sorted(
                k.split("/", 1)[1] for k in IMAGES if k.startswith("cluster-autoscaler/")
            )
            found.append(
                f"kubernetes_version: {self.kubernetes_version!r}: no pinned image; pinned {pinned}"
            )
        if self.expander not in ("least-waste", "most-pods", "random", "priority", "price"):
            found.append(f"expander: {self.expander!r}: not a cluster-autoscaler expander")
        return found


def autoscaler_policy(cluster_name: str, region: str, partition: str) -> documents.PolicyDocument:
    """Read anywhere in the region; scale and terminate only this cluster's groups."""
    read = documents.allow(actions.CLUSTER_AUTOSCALER_READ, ["*"], sid="Describe")
    scale = documents.allow(
        actions.CLUSTER_AUTOSCALER_SCALE,
        [f"arn:{partition}:autoscaling:{region}:*:autoScalingGroup:*:autoScalingGroupName/*"],
        sid="ScaleOwnedGroups",
    )
    scale["Condition"] = {
        "StringEquals": {f"aws:ResourceTag/{CA_TAG_PREFIX}/{cluster_name}": "owned"}
    }
    nodegroups = documents.allow(
        actions.EKS_DESCRIBE_NODEGROUP,
        [f"arn:{partition}:eks:{region}:*:nodegroup/{cluster_name}/*"],
        sid="DescribeManagedNodeGroups",
    )
    return documents.document(read, scale, nodegroups)


def autoscaler_values(args: ClusterAutoscalerArgs) -> dict[str, Any]:
    repository, tag = image_for(args.kubernetes_version).rsplit(":", 1)
    return {
        "cloudProvider": "aws",
        "awsRegion": args.region,
        "autoDiscovery": {"clusterName": args.cluster_name},
        "rbac": {"serviceAccount": {"name": args.service_account}},
        "image": {"repository": repository, "tag": tag},
        "nodeSelector": dict(args.node_selector),
        "extraArgs": {
            "balance-similar-node-groups": True,
            "expander": args.expander,
            "skip-nodes-with-system-pods": False,
            "scale-down-unneeded-time": args.scale_down_unneeded_time,
        },
    }


class ClusterAutoscaler(pulumi.ComponentResource):
    """cluster-autoscaler with a scoped Pod Identity role; see the module docstring."""

    role_arn: pulumi.Output[str]
    release: pulumi.Resource

    def __init__(
        self, name: str, args: ClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # Check plain inputs before registering anything: one error listing every problem.
        require_valid("ClusterAutoscaler", name, args.problems())
        super().__init__(TYPE_TOKEN, name, None, opts)
        access = pod_identity_role(
            ServiceAccountRoleNames(
                role=f"{name}-role", policy=f"{name}-policy", association=f"{name}-pod-identity"
            ),
            cluster_name=args.cluster_name,
            namespace=args.namespace,
            service_account=args.service_account,
            description=f"cluster-autoscaler of {args.cluster_name} (Pod Identity)",
            policy=documents.to_json(
                autoscaler_policy(args.cluster_name, args.region, args.partition)
            ),
            parent=self,
            association_depends_on=args.depends_on,
            scope=args.role_scope,
        )
        policy, identity = access.policy, access.association
        self.role_arn = access.role.arn
        self.release = helm.release(
            f"{name}-chart",
            args.chart,
            release_name="cluster-autoscaler",
            namespace=args.namespace,
            values=autoscaler_values(args),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*args.depends_on, policy, identity]
            ),
        )
        self.register_outputs({"roleArn": self.role_arn})
