"""Which properties force a replacement, for the resource types that can carry a fixed name.

Plain data for ``lifecycle-fixed-name-replace``. pulumi-aws v7 bridges the Terraform AWS
provider: a property marked ``ForceNew`` in the Terraform resource schema
(``hashicorp/terraform-provider-aws``, ``internal/service/<service>/<resource>.go``)
replaces the resource when it changes. The pinned Python SDK carries no schema (only
``pulumi-plugin.json``), but its docstrings repeat the Terraform documentation's
"Changing this ... forces/will force a new resource" notes:
``tests/policy/test_replacement.py`` reads every such note of the pinned SDK for these
types and holds this table to be a superset of them. Entries beyond the docstrings are
the Terraform schema's ``ForceNew`` flags.

Kubernetes objects are not listed: pulumi-kubernetes replaces an object whose
``metadata.name`` is set delete-first by itself (its provider's Diff marks a named
object's replacement delete-before-replace; pulumi/pulumi-kubernetes tests
``delete-before-replace``), so a fixed name never collides there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Replacement:
    """A type's fixed-name properties and the properties whose change replaces it."""

    name_props: tuple[str, ...]
    """Set -> the physical name is fixed (Pulumi cannot auto-name the replacement)."""
    force_new: tuple[str, ...]
    sdk_module: str
    """``pulumi_aws`` module and class whose docstrings the test reads."""


REPLACEMENT_TABLE: dict[str, Replacement] = {
    "aws:eks/cluster:Cluster": Replacement(
        ("name",),
        (
            "name",
            "roleArn",
            "bootstrapSelfManagedAddons",
            "accessConfig.bootstrapClusterCreatorAdminPermissions",
            "encryptionConfig",
            "kubernetesNetworkConfig.ipFamily",
            "kubernetesNetworkConfig.serviceIpv4Cidr",
            "outpostConfig",
        ),
        "eks.Cluster",
    ),
    "aws:eks/nodeGroup:NodeGroup": Replacement(
        ("nodeGroupName",),
        (
            "nodeGroupName",
            "nodeGroupNamePrefix",
            "clusterName",
            "amiType",
            "capacityType",
            "diskSize",
            "instanceTypes",
            "nodeRoleArn",
            "remoteAccess",
            "subnetIds",
        ),
        "eks.NodeGroup",
    ),
    "aws:sns/topic:Topic": Replacement(("name",), ("name", "namePrefix", "fifoTopic"), "sns.Topic"),
    "aws:cloudwatch/logGroup:LogGroup": Replacement(
        ("name",), ("name", "namePrefix", "logGroupClass"), "cloudwatch.LogGroup"
    ),
    "aws:kms/alias:Alias": Replacement(("name",), ("name", "namePrefix"), "kms.Alias"),
    "aws:sqs/queue:Queue": Replacement(("name",), ("name", "namePrefix", "fifoQueue"), "sqs.Queue"),
    "aws:iam/role:Role": Replacement(("name",), ("name", "namePrefix", "path"), "iam.Role"),
    "aws:iam/policy:Policy": Replacement(
        ("name",), ("name", "namePrefix", "path", "description"), "iam.Policy"
    ),
    "aws:ec2/launchTemplate:LaunchTemplate": Replacement(
        ("name",), ("name", "namePrefix"), "ec2.LaunchTemplate"
    ),
    "aws:cloudwatch/eventRule:EventRule": Replacement(
        ("name",), ("name", "namePrefix", "eventBusName"), "cloudwatch.EventRule"
    ),
    "aws:s3/bucket:Bucket": Replacement(
        ("bucket",), ("bucket", "bucketPrefix", "objectLockEnabled"), "s3.Bucket"
    ),
    "aws:ecr/repository:Repository": Replacement(("name",), ("name",), "ecr.Repository"),
}
"""Type token -> fixed-name and replacing properties (sources: module docstring)."""
