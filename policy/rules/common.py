"""What every area of rules shares: resource type tokens, property helpers, ``rule()``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from policy.core import Resource, Rule, Stack, as_list, get_path, is_unknown

EKS_CLUSTER = "aws:eks/cluster:Cluster"


NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


POD_IDENTITY_ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"


EKS_ADDON = "aws:eks/addon:Addon"


KMS_KEY = "aws:kms/key:Key"


LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


EC2_INSTANCE = "aws:ec2/instance:Instance"


EBS_VOLUME = "aws:ebs/volume:Volume"


VPC = "aws:ec2/vpc:Vpc"


SUBNET = "aws:ec2/subnet:Subnet"


FLOW_LOG = "aws:ec2/flowLog:FlowLog"


SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"


SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"


SG_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"


LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


IAM_ROLE = "aws:iam/role:Role"


IAM_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


IAM_POLICY = "aws:iam/policy:Policy"


IAM_USER_POLICY = "aws:iam/userPolicy:UserPolicy"


IAM_GROUP_POLICY = "aws:iam/groupPolicy:GroupPolicy"


SNS_TOPIC = "aws:sns/topic:Topic"


SQS_QUEUE = "aws:sqs/queue:Queue"


LB_LISTENER = ("aws:lb/listener:Listener", "aws:alb/listener:Listener")


BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")


BUCKET_SSE = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)


BUCKET_PAB = ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",)


BUCKET_POLICY = ("aws:s3/bucketPolicy:BucketPolicy",)


BUCKET_VERSIONING = (
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketVersioningV2:BucketVersioningV2",
)


DEPLOYMENT = "kubernetes:apps/v1:Deployment"


STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"


DAEMON_SET = "kubernetes:apps/v1:DaemonSet"


JOB = "kubernetes:batch/v1:Job"


CRON_JOB = "kubernetes:batch/v1:CronJob"


POD = "kubernetes:core/v1:Pod"


WORKLOADS = (DEPLOYMENT, STATEFUL_SET, DAEMON_SET, JOB, CRON_JOB, POD)


REPLICATED = (DEPLOYMENT, STATEFUL_SET)


PDB = "kubernetes:policy/v1:PodDisruptionBudget"


HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"


STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"


INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"


HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"


EC2_NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"


GPU_FAMILY = re.compile(r"^(g\d+[a-z]*|gr\d+|p\d+[a-z]*|inf\d+|trn\d+|dl\d+[a-z]*)$")


def is_gpu_instance_type(instance_type: str) -> bool:
    """Whether an EC2 instance type is accelerated (GPU, Inferentia, Trainium)."""
    return bool(GPU_FAMILY.match(instance_type.split(".", 1)[0]))


def linked(stack: Stack, target: Resource, types: tuple[str, ...], key: str) -> list[Resource]:
    """Resources of ``types`` attached to ``target``: by dependency, or by ``key`` value."""
    names = {
        v
        for v in (target.props.get("bucket"), target.props.get("id"), target.props.get("name"))
        if isinstance(v, str) and not is_unknown(v)
    }
    return [
        r
        for r in stack.of_type(*types)
        if target.urn in r.dependencies or (r.props.get(key) in names)
    ]


def metadata_of(resource: Resource) -> Mapping[str, Any]:
    meta = resource.props.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def namespace_of(resource: Resource) -> str:
    return str(metadata_of(resource).get("namespace") or "default")


def pod_spec_of(resource: Resource) -> Mapping[str, Any] | None:
    props = resource.props
    if resource.type == POD:
        spec = props.get("spec")
    elif resource.type == CRON_JOB:
        spec = get_path(props, "spec", "jobTemplate", "spec", "template", "spec")
    else:
        spec = get_path(props, "spec", "template", "spec")
    return spec if isinstance(spec, Mapping) else None


def pod_labels_of(resource: Resource) -> Mapping[str, Any]:
    labels = get_path(resource.props, "spec", "template", "metadata", "labels")
    return labels if isinstance(labels, Mapping) else {}


def containers_of(resource: Resource) -> Iterator[Mapping[str, Any]]:
    spec = pod_spec_of(resource)
    if spec is None:
        return
    for key in ("initContainers", "containers"):
        for container in as_list(spec.get(key)):
            if isinstance(container, Mapping):
                yield container


def container_label(resource: Resource, container: Mapping[str, Any]) -> str:
    return f"{resource.type.rsplit(':', 1)[-1]} {resource.name} container {container.get('name')!r}"


def actions_of(statement: Mapping[str, Any]) -> list[str]:
    return [str(a) for a in as_list(statement.get("Action"))]


def resources_of(statement: Mapping[str, Any]) -> list[str]:
    return [str(r) for r in as_list(statement.get("Resource"))]


def service_of(action: str) -> str:
    return action.split(":", 1)[0].lower() if ":" in action else ""


def policy_documents(resource: Resource) -> Iterator[tuple[str, Any]]:
    """(label, document) for every identity policy a resource carries."""
    if resource.type == IAM_ROLE:
        for index, inline in enumerate(as_list(resource.props.get("inlinePolicies"))):
            if isinstance(inline, Mapping) and inline.get("policy"):
                yield f"inline policy {inline.get('name') or index}", inline["policy"]
    elif resource.props.get("policy"):
        yield "policy", resource.props["policy"]


def requirement_values(requirements: Iterable[Any], key: str) -> list[str] | None:
    for requirement in requirements:
        if (
            isinstance(requirement, Mapping)
            and requirement.get("key") == key
            and requirement.get("operator") == "In"
        ):
            return [str(v) for v in as_list(requirement.get("values"))]
    return None


def gpu_requirement(key: Any, operator: Any, values: list[str]) -> bool:
    """Whether one NodePool requirement restricts nodes to accelerated instances."""
    if key in ("karpenter.k8s.aws/instance-gpu-count", "karpenter.k8s.aws/instance-gpu-name"):
        return operator in ("Exists", "In", "Gt")
    if operator != "In" or not values:
        return False
    if key == "node.kubernetes.io/instance-type":
        return all(is_gpu_instance_type(v) for v in values)
    if key == "karpenter.k8s.aws/instance-family":
        return all(GPU_FAMILY.match(v) for v in values)
    if key == "karpenter.k8s.aws/instance-category":
        return set(values) <= {"g", "p", "inf", "trn"}
    return False


def node_pool_is_gpu(pool: Resource) -> bool:
    """A Karpenter NodePool whose requirements only allow accelerated instances."""
    requirements = as_list(get_path(pool.props, "spec", "template", "spec", "requirements"))
    return any(
        gpu_requirement(r.get("key"), r.get("operator"), [str(v) for v in as_list(r.get("values"))])
        for r in requirements
        if isinstance(r, Mapping)
    )


def node_group_is_gpu(group: Resource) -> bool:
    ami = str(group.props.get("amiType") or "")
    types = [str(t) for t in as_list(group.props.get("instanceTypes"))]
    return "NVIDIA" in ami or "NEURON" in ami or any(is_gpu_instance_type(t) for t in types)


def define(
    rule_id: str,
    description: str,
    *,
    severity: Any,
    enforcement: Any,
    types: tuple[str, ...],
    check: Any,
    prod_only: bool = False,
    remediation: str = "",
) -> Rule:
    return Rule(rule_id, description, severity, enforcement, types, check, prod_only, remediation)
