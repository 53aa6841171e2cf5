"""The one replacement table: which property changes replace a resource, per type token.

Read by ``lifecycle-fixed-name-replace`` (:mod:`policy.rules.lifecycle`), by ``mlstack
diff`` and by the rollback refusals (:mod:`mlstack.delivery.rollback_safety`, through
:mod:`mlstack.review.replacements`). Plain data, no imports from the project: every
custom resource type the dev and prod plans use has an entry
(``tests/policy/test_replacement.py`` fails on a type without one).

Sources, per entry (``source``):

- AWS: pulumi-aws 7.51 bridges the Terraform AWS provider v6; a property marked
  ``ForceNew`` (SDKv2) or ``RequiresReplace`` (framework) in the resource's schema
  (``hashicorp/terraform-provider-aws`` ``internal/service/<service>/<file>.go``)
  replaces the resource when it changes. Every regional AWS resource also takes v6's
  per-resource ``region``, which recreates it elsewhere (IAM is global: none). The
  pinned Python SDK carries no schema; the test holds each entry's properties to exist
  on the SDK's ``*Args`` class and the table to be a superset of the SDK docstrings'
  "forces a new resource" notes.
- Kubernetes: pulumi-kubernetes 4.34 replaces an object when ``metadata.name`` or
  ``metadata.namespace`` changes, plus the per-kind fields of ``forceNew`` in
  ``provider/pkg/provider/diff.go`` (``forceNewProperties``); ConfigMap and Secret
  contents count because the provider's ``enableConfigMapMutable`` /
  ``enableSecretMutable`` are off. A Helm release replaces on ``name``/``namespace``
  (``provider/pkg/provider/helm_release.go``, ``Diff``). The provider replaces a named
  object delete-first by itself (``provider.go``, ``Diff``: ``deleteBeforeReplace``),
  so Kubernetes entries carry no ``name_props``.

Paths are camelCase input paths as in the plan JSON; a change at or below a listed path
replaces (``instanceTypes[0]`` and ``launchTemplate.id`` match ``instanceTypes`` /
``launchTemplate.id``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Replacement:
    """A type's replacing properties, where they come from, and its physical name."""

    force_new: tuple[str, ...]
    """Properties whose change replaces the resource (delete + create)."""
    sdk_class: str
    """``pulumi_aws.<module>.<Class>`` / ``pulumi_kubernetes...`` the test checks against."""
    source: str
    """Upstream file (and function) the ``force_new`` list is read from."""
    name_props: tuple[str, ...] = ()
    """Set -> the physical name is fixed (Pulumi cannot auto-name the replacement)."""
    scope_props: tuple[str, ...] = ()
    removal_only: tuple[str, ...] = ()
    """Listed properties that replace only when the old inputs have them and the new do
    not (Terraform ``ForceNewIfChange`` on removal); adding one updates in place."""
    """Where the name lives (cluster, repository prefix): a change moves the resource,
    so its replacement cannot collide with the original."""

    def collision_props(self) -> tuple[str, ...]:
        """Replacing properties that keep the same name: a create-first replacement
        caused by one of these collides with the original."""
        naming = {*self.name_props, *self.scope_props}
        naming |= {f"{p}Prefix" for p in self.name_props} | {"namePrefix", "region"}
        return tuple(p for p in self.force_new if p not in naming)


_TF = "hashicorp/terraform-provider-aws internal/service/"
_K8S_DIFF = "pulumi/pulumi-kubernetes provider/pkg/provider/diff.go forceNew"
_K8S_IDENTITY = ("metadata.name", "metadata.namespace")


def _aws(
    sdk: str,
    source: str,
    *force_new: str,
    name: tuple[str, ...] = (),
    scope: tuple[str, ...] = (),
    removal_only: tuple[str, ...] = (),
) -> Replacement:
    regional = () if sdk.startswith("iam.") else ("region",)  # IAM is global: no region
    return Replacement(
        (*force_new, *regional), f"pulumi_aws.{sdk}", _TF + source, name, scope, removal_only
    )


def _k8s(sdk: str, *extra: str, source: str = _K8S_DIFF) -> Replacement:
    return Replacement((*_K8S_IDENTITY, *extra), f"pulumi_kubernetes.{sdk}", source)


_CUSTOM_RESOURCE = "apiextensions.CustomResource"
_LABEL_SELECTOR = (
    "spec.selector",
    "spec.selector.matchExpressions",
    "spec.selector.matchLabels",
)

REPLACEMENT_TABLE: dict[str, Replacement] = {
    # ---------------------------------------------------------------- CloudWatch, events
    "aws:cloudwatch/dashboard:Dashboard": _aws(
        "cloudwatch.Dashboard", "cloudwatch/dashboard.go", "dashboardName", name=("dashboardName",)
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": _aws(
        "cloudwatch.MetricAlarm", "cloudwatch/metric_alarm.go", "name", name=("name",)
    ),
    "aws:cloudwatch/logGroup:LogGroup": _aws(
        "cloudwatch.LogGroup",
        "logs/group.go",
        "name",
        "namePrefix",
        "logGroupClass",
        name=("name",),
    ),
    "aws:cloudwatch/eventRule:EventRule": _aws(
        "cloudwatch.EventRule",
        "events/rule.go",
        "name",
        "namePrefix",
        "eventBusName",
        name=("name",),
    ),
    "aws:cloudwatch/eventTarget:EventTarget": _aws(
        "cloudwatch.EventTarget", "events/target.go", "rule", "eventBusName", "targetId"
    ),
    # ---------------------------------------------------------------- EC2 / VPC
    "aws:ec2/vpc:Vpc": _aws(
        "ec2.Vpc", "ec2/vpc_.go", "cidrBlock", "ipv4IpamPoolId", "ipv4NetmaskLength"
    ),
    "aws:ec2/subnet:Subnet": _aws(
        "ec2.Subnet",
        "ec2/vpc_subnet.go",
        "availabilityZone",
        "availabilityZoneId",
        "cidrBlock",
        "outpostArn",
        "vpcId",
    ),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": _aws(
        "ec2.DefaultSecurityGroup", "ec2/vpc_default_security_group.go", "vpcId"
    ),
    "aws:ec2/eip:Eip": _aws(
        "ec2.Eip",
        "ec2/ec2_eip.go",
        "address",
        "customerOwnedIpv4Pool",
        "domain",
        "ipamPoolId",
        "networkBorderGroup",
        "publicIpv4Pool",
    ),
    "aws:ec2/flowLog:FlowLog": _aws(
        "ec2.FlowLog",
        "ec2/vpc_flow_log.go",
        "deliverCrossAccountRole",
        "destinationOptions",
        "eniId",
        "iamRoleArn",
        "logDestination",
        "logDestinationType",
        "logFormat",
        "maxAggregationInterval",
        "subnetId",
        "trafficType",
        "transitGatewayAttachmentId",
        "transitGatewayId",
        "vpcId",
    ),
    "aws:ec2/internetGateway:InternetGateway": _aws(
        "ec2.InternetGateway", "ec2/vpc_internet_gateway.go"
    ),
    "aws:ec2/natGateway:NatGateway": _aws(
        "ec2.NatGateway",
        "ec2/vpc_nat_gateway.go",
        "allocationId",
        "connectivityType",
        "privateIp",
        "subnetId",
    ),
    "aws:ec2/routeTable:RouteTable": _aws("ec2.RouteTable", "ec2/vpc_route_table.go", "vpcId"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _aws(
        "ec2.RouteTableAssociation", "ec2/vpc_route_table_association.go", "subnetId", "gatewayId"
    ),
    "aws:ec2/securityGroup:SecurityGroup": _aws(
        "ec2.SecurityGroup",
        "ec2/vpc_security_group.go",
        "name",
        "namePrefix",
        "vpcId",
        "description",
        name=("name",),
    ),
    "aws:ec2/tag:Tag": _aws("ec2.Tag", "ec2/tag.go", "resourceId", "key"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": _aws(
        "ec2.VpcEndpoint",
        "ec2/vpc_endpoint.go (privateDnsEnabled: for non-Interface endpoints)",
        "serviceName",
        "vpcEndpointType",
        "vpcId",
        "privateDnsEnabled",
    ),
    "aws:ec2/launchTemplate:LaunchTemplate": _aws(
        "ec2.LaunchTemplate", "ec2/ec2_launch_template.go", "name", "namePrefix", name=("name",)
    ),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _aws(
        "vpc.SecurityGroupIngressRule", "ec2/vpc_security_group_ingress_rule.go", "securityGroupId"
    ),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": _aws(
        "vpc.SecurityGroupEgressRule", "ec2/vpc_security_group_egress_rule.go", "securityGroupId"
    ),
    # ---------------------------------------------------------------- ECR
    "aws:ecr/repository:Repository": _aws(
        "ecr.Repository",
        "ecr/repository.go (resourceRepository schema)",
        "name",
        "encryptionConfigurations",
        name=("name",),
    ),
    "aws:ecr/pullThroughCacheRule:PullThroughCacheRule": _aws(
        "ecr.PullThroughCacheRule",
        "ecr/pull_through_cache_rule.go",
        "ecrRepositoryPrefix",
        "upstreamRegistryUrl",
        "upstreamRepositoryPrefix",
        name=("ecrRepositoryPrefix",),
    ),
    "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate": _aws(
        "ecr.RepositoryCreationTemplate",
        "ecr/repository_creation_template.go",
        "prefix",
        name=("prefix",),
    ),
    # ---------------------------------------------------------------- EKS
    "aws:eks/cluster:Cluster": _aws(
        "eks.Cluster",
        "eks/cluster.go (resourceCluster schema; CustomizeDiff ForceNewIfChange on "
        "encryption_config: removing it replaces, and EKS cannot change its key in place)",
        "name",
        "roleArn",
        "bootstrapSelfManagedAddons",
        "accessConfig.bootstrapClusterCreatorAdminPermissions",
        "encryptionConfig",
        "kubernetesNetworkConfig.ipFamily",
        "kubernetesNetworkConfig.serviceIpv4Cidr",
        "outpostConfig",
        "remoteNetworkConfig",
        name=("name",),
        removal_only=("encryptionConfig",),
    ),
    "aws:eks/nodeGroup:NodeGroup": _aws(
        "eks.NodeGroup",
        "eks/node_group.go",
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
        name=("nodeGroupName",),
        scope=("clusterName",),
    ),
    "aws:eks/addon:Addon": _aws(
        "eks.Addon",
        "eks/addon.go",
        "addonName",
        "clusterName",
        name=("addonName",),
        scope=("clusterName",),
    ),
    "aws:eks/accessEntry:AccessEntry": _aws(
        "eks.AccessEntry", "eks/access_entry.go", "clusterName", "principalArn", "type"
    ),
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": _aws(
        "eks.AccessPolicyAssociation",
        "eks/access_policy_association.go",
        "accessScope",
        "clusterName",
        "policyArn",
        "principalArn",
    ),
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": _aws(
        "eks.PodIdentityAssociation",
        "eks/pod_identity_association.go",
        "clusterName",
        "namespace",
        "serviceAccount",
    ),
    # ---------------------------------------------------------------- IAM, KMS
    "aws:iam/role:Role": _aws(
        "iam.Role", "iam/role.go", "name", "namePrefix", "path", name=("name",)
    ),
    "aws:iam/policy:Policy": _aws(
        "iam.Policy",
        "iam/policy.go",
        "name",
        "namePrefix",
        "path",
        "description",
        name=("name",),
    ),
    "aws:iam/rolePolicy:RolePolicy": _aws(
        "iam.RolePolicy", "iam/role_policy.go", "name", "namePrefix", "role"
    ),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _aws(
        "iam.RolePolicyAttachment", "iam/role_policy_attachment.go", "role", "policyArn"
    ),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": _aws(
        "iam.OpenIdConnectProvider", "iam/openid_connect_provider.go", "url"
    ),
    "aws:kms/key:Key": _aws(
        "kms.Key",
        "kms/key.go (resourceKey schema)",
        "customKeyStoreId",
        "customerMasterKeySpec",
        "keyUsage",
        "multiRegion",
        "xksKeyId",
    ),
    "aws:kms/alias:Alias": _aws("kms.Alias", "kms/alias.go", "name", "namePrefix", name=("name",)),
    "aws:kms/keyPolicy:KeyPolicy": _aws("kms.KeyPolicy", "kms/key_policy.go", "keyId"),
    # ---------------------------------------------------------------- ELBv2
    "aws:lb/loadBalancer:LoadBalancer": _aws(
        "lb.LoadBalancer",
        "elbv2/load_balancer.go",
        "name",
        "namePrefix",
        "internal",
        "loadBalancerType",
        "customerOwnedIpv4Pool",
        name=("name",),
    ),
    "aws:lb/targetGroup:TargetGroup": _aws(
        "lb.TargetGroup",
        "elbv2/target_group.go",
        "name",
        "namePrefix",
        "port",
        "protocol",
        "protocolVersion",
        "targetType",
        "vpcId",
        "ipAddressType",
        name=("name",),
    ),
    # priority and actions update in place (SetRulePriorities / ModifyRule)
    "aws:lb/listener:Listener": _aws("lb.Listener", "elbv2/listener.go", "loadBalancerArn"),
    "aws:lb/listenerRule:ListenerRule": _aws(
        "lb.ListenerRule", "elbv2/listener_rule.go", "listenerArn"
    ),
    "aws:lb/listenerCertificate:ListenerCertificate": _aws(
        "lb.ListenerCertificate", "elbv2/listener_certificate.go", "listenerArn", "certificateArn"
    ),
    # ---------------------------------------------------------------- S3
    "aws:s3/bucket:Bucket": _aws(
        "s3.Bucket",
        "s3/bucket.go",
        "bucket",
        "bucketPrefix",
        "objectLockEnabled",
        name=("bucket",),
    ),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _aws(
        "s3.BucketLifecycleConfiguration",
        "s3/bucket_lifecycle_configuration.go",
        "bucket",
        "expectedBucketOwner",
    ),
    "aws:s3/bucketLogging:BucketLogging": _aws(
        "s3.BucketLogging", "s3/bucket_logging.go", "bucket", "expectedBucketOwner"
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": _aws(
        "s3.BucketOwnershipControls", "s3/bucket_ownership_controls.go", "bucket"
    ),
    "aws:s3/bucketPolicy:BucketPolicy": _aws("s3.BucketPolicy", "s3/bucket_policy.go", "bucket"),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": _aws(
        "s3.BucketPublicAccessBlock", "s3/bucket_public_access_block.go", "bucket"
    ),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        _aws(
            "s3.BucketServerSideEncryptionConfiguration",
            "s3/bucket_server_side_encryption_configuration.go",
            "bucket",
            "expectedBucketOwner",
        )
    ),
    "aws:s3/bucketVersioning:BucketVersioning": _aws(
        "s3.BucketVersioning", "s3/bucket_versioning.go", "bucket", "expectedBucketOwner"
    ),
    # ---------------------------------------------------------------- SNS, SQS
    "aws:sns/topic:Topic": _aws(
        "sns.Topic",
        "sns/topic.go (topicSchema)",
        "name",
        "namePrefix",
        "fifoTopic",
        name=("name",),
    ),
    "aws:sns/topicPolicy:TopicPolicy": _aws("sns.TopicPolicy", "sns/topic_policy.go", "arn"),
    "aws:sns/topicSubscription:TopicSubscription": _aws(
        "sns.TopicSubscription",
        "sns/topic_subscription.go",
        "confirmationTimeoutInMinutes",
        "endpoint",
        "endpointAutoConfirms",
        "protocol",
        "topic",
    ),
    "aws:sqs/queue:Queue": _aws(
        "sqs.Queue", "sqs/queue.go", "name", "namePrefix", "fifoQueue", name=("name",)
    ),
    "aws:sqs/queuePolicy:QueuePolicy": _aws("sqs.QueuePolicy", "sqs/queue_policy.go", "queueUrl"),
    # ---------------------------------------------------------------- Kubernetes
    "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy": _k8s(
        "admissionregistration.v1.ValidatingAdmissionPolicy"
    ),
    "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding": _k8s(
        "admissionregistration.v1.ValidatingAdmissionPolicyBinding"
    ),
    "kubernetes:apps/v1:Deployment": _k8s("apps.v1.Deployment", *_LABEL_SELECTOR),
    "kubernetes:apps/v1:StatefulSet": _k8s(
        "apps.v1.StatefulSet",
        *_LABEL_SELECTOR,
        "spec.podManagementPolicy",
        "spec.revisionHistoryLimit",
        "spec.serviceName",
        "spec.volumeClaimTemplates",
    ),
    "kubernetes:core/v1:ConfigMap": _k8s("core.v1.ConfigMap", "binaryData", "data"),
    "kubernetes:core/v1:Namespace": _k8s("core.v1.Namespace"),
    "kubernetes:core/v1:PersistentVolume": _k8s(
        "core.v1.PersistentVolume",
        *(
            f"spec.{source}"
            for source in (
                "awsElasticBlockStore",
                "azureDisk",
                "azureFile",
                "cephfs",
                "cinder",
                "csi",
                "fc",
                "flexVolume",
                "flocker",
                "gcePersistentDisk",
                "glusterfs",
                "hostPath",
                "iscsi",
                "local",
                "nfs",
                "photonPersistentDisk",
                "portworxVolume",
                "quobyte",
                "rbd",
                "scaleIO",
                "storageos",
                "vsphereVolume",
            )
        ),
    ),
    "kubernetes:core/v1:PersistentVolumeClaim": _k8s(
        "core.v1.PersistentVolumeClaim",
        "spec.accessModes",
        "spec.storageClassName",
        "spec.volumeName",
        *_LABEL_SELECTOR,
    ),
    "kubernetes:core/v1:Secret": _k8s("core.v1.Secret", "type", "stringData", "data"),
    "kubernetes:core/v1:Service": _k8s("core.v1.Service", "spec.clusterIP"),
    "kubernetes:core/v1:ServiceAccount": _k8s("core.v1.ServiceAccount"),
    "kubernetes:policy/v1:PodDisruptionBudget": _k8s("policy.v1.PodDisruptionBudget"),
    "kubernetes:storage.k8s.io/v1:StorageClass": _k8s(
        "storage.v1.StorageClass", "parameters", "provisioner"
    ),
    # ---------------------------------------------------------------- random
    "random:index/randomPassword:RandomPassword": Replacement(
        (
            "keepers",
            "length",
            "lower",
            "minLower",
            "minNumeric",
            "minSpecial",
            "minUpper",
            "numeric",
            "overrideSpecial",
            "special",
            "upper",
        ),
        "pulumi_random.RandomPassword",
        "hashicorp/terraform-provider-random internal/provider/resource_password.go "
        "(every argument has RequiresReplace)",
    ),
    "kubernetes:helm.sh/v3:Release": Replacement(
        ("name", "namespace"),
        "pulumi_kubernetes.helm.v3.Release",
        "pulumi/pulumi-kubernetes provider/pkg/provider/helm_release.go Diff (forceNewFields)",
    ),
    # Custom resources: the provider's identity rule; the LB Controller's webhook refuses
    # changes of a binding's target group and type, and mlstack replaces the binding for
    # them (components.serving.load_balancer.TGB_IMMUTABLE, replace_on_changes).
    "kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding": _k8s(
        _CUSTOM_RESOURCE, "spec.targetGroupARN", "spec.targetType"
    ),
    "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass": _k8s(_CUSTOM_RESOURCE),
    "kubernetes:karpenter.sh/v1:NodePool": _k8s(_CUSTOM_RESOURCE),
    "kubernetes:keda.sh/v1alpha1:ScaledObject": _k8s(_CUSTOM_RESOURCE),
    "kubernetes:monitoring.coreos.com/v1:PrometheusRule": _k8s(_CUSTOM_RESOURCE),
    "kubernetes:monitoring.coreos.com/v1:ServiceMonitor": _k8s(_CUSTOM_RESOURCE),
}
"""Type token -> replacing properties (sources: module docstring and each ``source``)."""

FIXED_NAME_TYPES: tuple[str, ...] = tuple(t for t, e in REPLACEMENT_TABLE.items() if e.name_props)
"""Types whose physical name an input can fix (``lifecycle-fixed-name-replace``)."""

_INDEX = re.compile(r"\[[^\]]*\]")


def normalized(path: str) -> str:
    """``instanceTypes[0]`` -> ``instanceTypes``; JSON-in-string suffixes dropped."""
    return _INDEX.sub("", path.split("{json}", 1)[0])


def forces_replacement(type_token: str, path: str) -> bool:
    """Whether changing ``path`` of a ``type_token`` resource replaces it."""
    entry = REPLACEMENT_TABLE.get(type_token)
    if entry is None:
        return False
    plain = normalized(path)
    return any(plain == prefix or plain.startswith(prefix + ".") for prefix in entry.force_new)


def _values_at(value: Any, parts: list[str]) -> list[Any]:
    """Every value at ``parts`` below ``value``, descending into each list element."""
    if not parts:
        return [value]
    if isinstance(value, list):
        return [found for item in value for found in _values_at(item, parts)]
    if isinstance(value, Mapping) and parts[0] in value:
        return _values_at(value[parts[0]], parts[1:])
    return []


def replacing_changes(
    type_token: str, old_inputs: Mapping[str, Any], new_inputs: Mapping[str, Any]
) -> tuple[str, ...]:
    """The listed properties whose value differs between two input sets.

    Compares the value at each listed path, so a replacing property inside a block that
    one side adds or removes whole (``kubernetesNetworkConfig``) counts too; a change
    path alone names only the block."""
    entry = REPLACEMENT_TABLE.get(type_token)
    if entry is None:
        return ()
    found: list[str] = []
    for prop in entry.force_new:
        old, new = _values_at(old_inputs, prop.split(".")), _values_at(new_inputs, prop.split("."))
        if old == new or (prop in entry.removal_only and not old):
            continue
        found.append(prop)
    return tuple(found)
