"""Properties whose change makes the provider replace the resource (delete + create).

Deliberately small: only what a reviewer of this stack most needs flagged, each
entry checked against its source. For the AWS resources the source is the
``ForceNew`` flag in the Terraform AWS provider schema that pulumi-aws bridges
(``hashicorp/terraform-provider-aws``, ``internal/service/<svc>/<resource>.go``);
for Kubernetes objects it is pulumi-kubernetes, which replaces an object whose
``metadata.name`` or ``metadata.namespace`` changes. Paths are camelCase input
paths as in the plan JSON; a change at or below a listed path is marked.
"""

from __future__ import annotations

import re

_K8S_IDENTITY = ("metadata.name", "metadata.namespace")

FORCES_REPLACEMENT: dict[str, tuple[str, ...]] = {
    # internal/service/eks/cluster.go
    "aws:eks/cluster:Cluster": (
        "name",
        "roleArn",
        "bootstrapSelfManagedAddons",
        "accessConfig.bootstrapClusterCreatorAdminPermissions",
        "kubernetesNetworkConfig.ipFamily",
        "kubernetesNetworkConfig.serviceIpv4Cidr",
    ),
    # internal/service/eks/node_group.go
    "aws:eks/nodeGroup:NodeGroup": (
        "amiType",
        "capacityType",
        "clusterName",
        "diskSize",
        "instanceTypes",
        "launchTemplate.id",
        "launchTemplate.name",
        "nodeGroupName",
        "nodeGroupNamePrefix",
        "nodeRoleArn",
        "remoteAccess",
        "subnetIds",
    ),
    # internal/service/ec2/vpc_.go, vpc_subnet.go
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("availabilityZone", "cidrBlock", "vpcId"),
    # internal/service/iam/role.go, internal/service/logs/group.go, internal/service/s3/bucket.go
    "aws:iam/role:Role": ("name", "namePrefix"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "namePrefix"),
    "aws:s3/bucket:Bucket": ("bucket", "bucketPrefix"),
    # internal/service/elbv2/load_balancer.go, target_group.go, listener.go,
    # listener_rule.go (priority and actions update in place: SetRulePriorities /
    # ModifyRule), listener_certificate.go; internal/service/ec2/vpc_security_group.go
    "aws:lb/loadBalancer:LoadBalancer": ("name", "namePrefix", "internal", "loadBalancerType"),
    "aws:lb/targetGroup:TargetGroup": (
        "name",
        "namePrefix",
        "port",
        "protocol",
        "protocolVersion",
        "targetType",
        "vpcId",
        "ipAddressType",
    ),
    "aws:lb/listener:Listener": ("loadBalancerArn",),
    "aws:lb/listenerRule:ListenerRule": ("listenerArn",),
    "aws:lb/listenerCertificate:ListenerCertificate": ("listenerArn", "certificateArn"),
    "aws:ec2/securityGroup:SecurityGroup": ("name", "namePrefix", "vpcId", "description"),
    # The controller's webhook refuses changes of these (mlstack replaces the binding:
    # components.serving.load_balancer.TGB_IMMUTABLE)
    "kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding": (
        *_K8S_IDENTITY,
        "spec.targetGroupARN",
        "spec.targetType",
    ),
    "kubernetes:apps/v1:Deployment": _K8S_IDENTITY,
    "kubernetes:apps/v1:StatefulSet": _K8S_IDENTITY,
    "kubernetes:core/v1:Service": _K8S_IDENTITY,
    "kubernetes:core/v1:ServiceAccount": _K8S_IDENTITY,
    "kubernetes:core/v1:Namespace": ("metadata.name",),
}

_INDEX = re.compile(r"\[[^\]]*\]")


def normalized(path: str) -> str:
    """``instanceTypes[0]`` -> ``instanceTypes``; JSON-in-string suffixes dropped."""
    return _INDEX.sub("", path.split("{json}", 1)[0])


def forces_replacement(type_token: str, path: str) -> bool:
    """Whether changing ``path`` of a ``type_token`` resource replaces it."""
    plain = normalized(path)
    for prefix in FORCES_REPLACEMENT.get(type_token, ()):
        if plain == prefix or plain.startswith(prefix + "."):
            return True
    return False
