"""The mlstack policy rules: plain functions over a :class:`policy.core.Stack`.

Each rule yields ``(urn, message)`` for every violation. Rules are keyed by
resource type, so a rule about buckets or load balancers starts applying the
moment a component declares one; until then it reports ``n/a``. Prod-only rules
are ``n/a`` on dev stacks. Rules read camelCase properties, the way both the
offline synth and the Pulumi engine present them.

``RULES`` is the single list both the CrossGuard pack (``policy/__main__.py``)
and ``mlstack policy`` run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from policy.core import (
    AWS_PROVIDER,
    Finding,
    Resource,
    Rule,
    Stack,
    as_list,
    get_path,
    is_sequence,
    is_unknown,
    iter_statements,
    parse_json,
    provider_tags,
    truthy,
)
from policy.load_balancers import RULES as LOAD_BALANCER_RULES

# --------------------------------------------------------------------------- type tokens

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

STATEFUL_TYPES = (
    KMS_KEY,
    EKS_CLUSTER,
    *BUCKETS,
    EBS_VOLUME,
    "aws:dynamodb/table:Table",
    "aws:efs/fileSystem:FileSystem",
    "aws:rds/instance:Instance",
    "aws:rds/cluster:Cluster",
    "aws:ecr/repository:Repository",
    "aws:secretsmanager/secret:Secret",
)
"""Resources whose loss loses data or identity; protected in prod."""

REQUIRED_TAGS = ("project", "stack", "environment", "owner")

DATA_SERVICES = frozenset(
    {
        "s3",
        "s3-object-lambda",
        "kms",
        "dynamodb",
        "secretsmanager",
        "ssm",
        "sqs",
        "sns",
        "elasticfilesystem",
        "glacier",
        "ecr",
    }
)
"""Services whose actions read or write data; wildcards on them are never scoped enough."""

UNSCOPABLE_ACTIONS = frozenset(
    {
        "s3:listallmybuckets",
        "kms:listaliases",
        "kms:listkeys",
        "dynamodb:listtables",
        "secretsmanager:listsecrets",
        "sqs:listqueues",
        "sns:listtopics",
        "ecr:getauthorizationtoken",
        "ssm:describeparameters",
    }
)
"""Data-service actions that only accept ``Resource: "*"`` (lower case)."""

_GPU_FAMILY = re.compile(r"^(g\d+[a-z]*|gr\d+|p\d+[a-z]*|inf\d+|trn\d+|dl\d+[a-z]*)$")
_OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})
_WEB_PORTS = frozenset({80, 443})


# --------------------------------------------------------------------------- helpers


def is_gpu_instance_type(instance_type: str) -> bool:
    """Whether an EC2 instance type is accelerated (GPU, Inferentia, Trainium)."""
    return bool(_GPU_FAMILY.match(instance_type.split(".", 1)[0]))


def _linked(stack: Stack, target: Resource, types: tuple[str, ...], key: str) -> list[Resource]:
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


def _metadata(resource: Resource) -> Mapping[str, Any]:
    meta = resource.props.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _namespace(resource: Resource) -> str:
    return str(_metadata(resource).get("namespace") or "default")


def _pod_spec(resource: Resource) -> Mapping[str, Any] | None:
    props = resource.props
    if resource.type == POD:
        spec = props.get("spec")
    elif resource.type == CRON_JOB:
        spec = get_path(props, "spec", "jobTemplate", "spec", "template", "spec")
    else:
        spec = get_path(props, "spec", "template", "spec")
    return spec if isinstance(spec, Mapping) else None


def _pod_labels(resource: Resource) -> Mapping[str, Any]:
    labels = get_path(resource.props, "spec", "template", "metadata", "labels")
    return labels if isinstance(labels, Mapping) else {}


def _containers(resource: Resource) -> Iterator[Mapping[str, Any]]:
    spec = _pod_spec(resource)
    if spec is None:
        return
    for key in ("initContainers", "containers"):
        for container in as_list(spec.get(key)):
            if isinstance(container, Mapping):
                yield container


def _label(resource: Resource, container: Mapping[str, Any]) -> str:
    return f"{resource.type.rsplit(':', 1)[-1]} {resource.name} container {container.get('name')!r}"


def _actions(statement: Mapping[str, Any]) -> list[str]:
    return [str(a) for a in as_list(statement.get("Action"))]


def _resources(statement: Mapping[str, Any]) -> list[str]:
    return [str(r) for r in as_list(statement.get("Resource"))]


def _service(action: str) -> str:
    return action.split(":", 1)[0].lower() if ":" in action else ""


def _policy_documents(resource: Resource) -> Iterator[tuple[str, Any]]:
    """(label, document) for every identity policy a resource carries."""
    if resource.type == IAM_ROLE:
        for index, inline in enumerate(as_list(resource.props.get("inlinePolicies"))):
            if isinstance(inline, Mapping) and inline.get("policy"):
                yield f"inline policy {inline.get('name') or index}", inline["policy"]
    elif resource.props.get("policy"):
        yield "policy", resource.props["policy"]


def _requirement_values(requirements: Iterable[Any], key: str) -> list[str] | None:
    for requirement in requirements:
        if (
            isinstance(requirement, Mapping)
            and requirement.get("key") == key
            and requirement.get("operator") == "In"
        ):
            return [str(v) for v in as_list(requirement.get("values"))]
    return None


def _gpu_requirement(key: Any, operator: Any, values: list[str]) -> bool:
    """Whether one NodePool requirement restricts nodes to accelerated instances."""
    if key in ("karpenter.k8s.aws/instance-gpu-count", "karpenter.k8s.aws/instance-gpu-name"):
        return operator in ("Exists", "In", "Gt")
    if operator != "In" or not values:
        return False
    if key == "node.kubernetes.io/instance-type":
        return all(is_gpu_instance_type(v) for v in values)
    if key == "karpenter.k8s.aws/instance-family":
        return all(_GPU_FAMILY.match(v) for v in values)
    if key == "karpenter.k8s.aws/instance-category":
        return set(values) <= {"g", "p", "inf", "trn"}
    return False


def node_pool_is_gpu(pool: Resource) -> bool:
    """A Karpenter NodePool whose requirements only allow accelerated instances."""
    requirements = as_list(get_path(pool.props, "spec", "template", "spec", "requirements"))
    return any(
        _gpu_requirement(
            r.get("key"), r.get("operator"), [str(v) for v in as_list(r.get("values"))]
        )
        for r in requirements
        if isinstance(r, Mapping)
    )


def node_group_is_gpu(group: Resource) -> bool:
    ami = str(group.props.get("amiType") or "")
    types = [str(t) for t in as_list(group.props.get("instanceTypes"))]
    return "NVIDIA" in ami or "NEURON" in ami or any(is_gpu_instance_type(t) for t in types)


# --------------------------------------------------------------------------- encryption


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


def kms_key_rotation(stack: Stack) -> Iterator[Finding]:
    for key in stack.of_type(KMS_KEY):
        spec = key.props.get("customerMasterKeySpec") or key.props.get("keySpec")
        if spec not in (None, "SYMMETRIC_DEFAULT"):
            continue  # AWS rotates only symmetric keys automatically
        if not truthy(key.props.get("enableKeyRotation")):
            yield key.urn, f"KMS key {key.name}: automatic rotation is off"


def ebs_encrypted(stack: Stack) -> Iterator[Finding]:
    for template in stack.of_type(LAUNCH_TEMPLATE):
        for mapping in as_list(template.props.get("blockDeviceMappings")):
            ebs = get_path(mapping, "ebs")
            if isinstance(ebs, Mapping) and not truthy(ebs.get("encrypted")):
                yield (
                    template.urn,
                    f"launch template {template.name}: volume {get_path(mapping, 'deviceName')} "
                    "is not encrypted",
                )
    for volume in stack.of_type(EBS_VOLUME):
        if not truthy(volume.props.get("encrypted")):
            yield volume.urn, f"EBS volume {volume.name} is not encrypted"
    for instance in stack.of_type(EC2_INSTANCE):
        root = instance.props.get("rootBlockDevice")
        if not (isinstance(root, Mapping) and truthy(root.get("encrypted"))):
            yield instance.urn, f"instance {instance.name}: root volume is not encrypted"
    for node_class in stack.of_type(EC2_NODE_CLASS):
        for mapping in as_list(get_path(node_class.props, "spec", "blockDeviceMappings")):
            ebs = get_path(mapping, "ebs")
            if isinstance(ebs, Mapping) and not truthy(ebs.get("encrypted")):
                yield (
                    node_class.urn,
                    f"EC2NodeClass {node_class.name}: volume {get_path(mapping, 'deviceName')} "
                    "is not encrypted",
                )
    for storage_class in stack.of_type(STORAGE_CLASS):
        if storage_class.props.get("provisioner") != "ebs.csi.aws.com":
            continue
        if not truthy(get_path(storage_class.props, "parameters", "encrypted")):
            yield storage_class.urn, f"StorageClass {storage_class.name}: encrypted is not 'true'"


def s3_bucket_encryption(stack: Stack) -> Iterator[Finding]:
    allowed = {"aws:kms", "aws:kms:dsse", "AES256"}
    for bucket in stack.of_type(*BUCKETS):
        algorithms: list[Any] = []
        inline = bucket.props.get("serverSideEncryptionConfiguration")
        for rule in as_list(get_path(inline, "rule")) + as_list(get_path(inline, "rules")):
            algorithms.append(get_path(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm"))
        for config in _linked(stack, bucket, BUCKET_SSE, "bucket"):
            for rule in as_list(config.props.get("rules")):
                algorithms.append(
                    get_path(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
                )
        if not any(a in allowed for a in algorithms):
            yield bucket.urn, f"bucket {bucket.name}: no default server-side encryption"


def messaging_encrypted(stack: Stack) -> Iterator[Finding]:
    for topic in stack.of_type(SNS_TOPIC):
        if not topic.props.get("kmsMasterKeyId"):
            yield topic.urn, f"SNS topic {topic.name}: no kmsMasterKeyId"
    for queue in stack.of_type(SQS_QUEUE):
        sse = queue.props.get("sqsManagedSseEnabled")
        if not queue.props.get("kmsMasterKeyId") and sse is not None and not truthy(sse):
            yield queue.urn, f"SQS queue {queue.name}: server-side encryption disabled"


# --------------------------------------------------------------------------- S3 access


def s3_public_access_blocked(stack: Stack) -> Iterator[Finding]:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for bucket in stack.of_type(*BUCKETS):
        blocks = _linked(stack, bucket, BUCKET_PAB, "bucket")
        if not blocks:
            yield bucket.urn, f"bucket {bucket.name}: no public access block"
            continue
        missing = [f for f in flags if not any(truthy(b.props.get(f)) for b in blocks)]
        if missing:
            yield bucket.urn, f"bucket {bucket.name}: public access block leaves {missing} off"


def _denies_insecure_transport(statement: Mapping[str, Any]) -> bool:
    if statement.get("Effect") != "Deny":
        return False
    principal = statement.get("Principal")
    if principal != "*" and get_path(principal, "AWS") not in ("*", ["*"]):
        return False
    actions = [a.lower() for a in _actions(statement)]
    if not ({"s3:*", "*"} & set(actions)):
        return False
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping):
        return False
    for operator, values in condition.items():
        if not str(operator).startswith("Bool") or not isinstance(values, Mapping):
            continue
        for key, value in values.items():
            if (
                str(key).lower() == "aws:securetransport"
                and str(as_list(value)[0] if as_list(value) else "").lower() == "false"
            ):
                return True
    return False


def s3_tls_only(stack: Stack) -> Iterator[Finding]:
    for bucket in stack.of_type(*BUCKETS):
        policies = _linked(stack, bucket, BUCKET_POLICY, "bucket")
        if not any(
            _denies_insecure_transport(s)
            for p in policies
            for s in iter_statements(p.props.get("policy"))
        ):
            yield bucket.urn, f"bucket {bucket.name}: no policy denying aws:SecureTransport=false"


def s3_versioning(stack: Stack) -> Iterator[Finding]:
    for bucket in stack.of_type(*BUCKETS):
        enabled = truthy(get_path(bucket.props, "versioning", "enabled")) or any(
            get_path(v.props, "versioningConfiguration", "status") == "Enabled"
            for v in _linked(stack, bucket, BUCKET_VERSIONING, "bucket")
        )
        if not enabled:
            yield bucket.urn, f"bucket {bucket.name}: versioning is not enabled"


# --------------------------------------------------------------------------- instances


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


# --------------------------------------------------------------------------- IAM


def iam_no_wildcard_data_actions(stack: Stack) -> Iterator[Finding]:
    types = (IAM_ROLE, IAM_ROLE_POLICY, IAM_POLICY, IAM_USER_POLICY, IAM_GROUP_POLICY)
    for resource in stack.of_type(*types):
        for label, document in _policy_documents(resource):
            for statement in iter_statements(document):
                if statement.get("Effect") != "Allow":
                    continue
                actions = _actions(statement)
                resources = _resources(statement)
                for action in actions:
                    service = _service(action)
                    if action == "*":
                        yield resource.urn, f"{resource.name} {label}: allows every action (*)"
                    elif service in DATA_SERVICES and "*" in action.split(":", 1)[1]:
                        yield resource.urn, f"{resource.name} {label}: wildcard action {action}"
                    elif (
                        service in DATA_SERVICES
                        and "*" in resources
                        and action.lower() not in UNSCOPABLE_ACTIONS
                    ):
                        yield (
                            resource.urn,
                            f"{resource.name} {label}: {action} on Resource '*' (scope it)",
                        )


_SA_SUBJECT = re.compile(r"^system:serviceaccount:[a-z0-9-]+:[a-z0-9.-]+$")


def _web_identity_problems(statement: Mapping[str, Any]) -> list[str]:
    condition = statement.get("Condition")
    equals = get_path(condition, "StringEquals")
    if isinstance(condition, Mapping):
        for operator, values in condition.items():
            pattern = operator.startswith("StringLike") and isinstance(values, Mapping)
            if pattern and any(str(k).endswith(":sub") for k in values):
                return ["trusts service accounts by pattern (StringLike on :sub)"]
    if not isinstance(equals, Mapping):
        return ["no StringEquals condition on the OIDC :sub and :aud"]
    problems: list[str] = []
    subjects = [v for k, v in equals.items() if str(k).endswith(":sub")]
    values = [str(s) for sub in subjects for s in as_list(sub)]
    if len(values) != 1:
        problems.append(f"trusts {len(values)} service accounts, need exactly one")
    elif not _SA_SUBJECT.match(values[0]):
        problems.append(f"subject {values[0]!r} is not one service account")
    audiences = [v for k, v in equals.items() if str(k).endswith(":aud")]
    if not audiences or any(a != "sts.amazonaws.com" for sub in audiences for a in as_list(sub)):
        problems.append("audience is not pinned to sts.amazonaws.com")
    return problems


def _trusts_service_accounts(statement: Mapping[str, Any]) -> bool:
    """A web-identity trust of a cluster's OIDC provider (IRSA), not e.g. GitHub's."""
    if "sts:AssumeRoleWithWebIdentity" not in _actions(statement):
        return False
    federated = [str(f) for f in as_list(get_path(statement, "Principal", "Federated"))]
    text = json.dumps(statement.get("Condition"), default=str)
    return any("oidc.eks" in f for f in federated) or "system:serviceaccount:" in text


def _trusts_pod_identity(role: Resource) -> bool:
    for statement in iter_statements(role.props.get("assumeRolePolicy")):
        if "pods.eks.amazonaws.com" in as_list(get_path(statement, "Principal", "Service")):
            return True
    return False


def service_roles_single_service_account(stack: Stack) -> Iterator[Finding]:
    for role in stack.of_type(IAM_ROLE):
        for statement in iter_statements(role.props.get("assumeRolePolicy")):
            if not _trusts_service_accounts(statement):
                continue
            for problem in _web_identity_problems(statement):
                yield role.urn, f"IRSA role {role.name}: {problem}"
        if not _trusts_pod_identity(role):
            continue
        physical = str(role.props.get("name") or role.name)
        bound: set[tuple[str, str]] = set()
        for association in stack.dependents(role, POD_IDENTITY_ASSOCIATION):
            bound.add(
                (
                    str(association.props.get("namespace")),
                    str(association.props.get("serviceAccount")),
                )
            )
        for addon in stack.of_type(EKS_ADDON):
            for entry in as_list(addon.props.get("podIdentityAssociations")):
                arn = str(get_path(entry, "roleArn") or "")
                if arn.endswith(f"role/{physical}"):
                    addon_name = str(addon.props.get("addonName"))
                    bound.add((f"addon:{addon_name}", str(get_path(entry, "serviceAccount"))))
        if len(bound) > 1:
            yield (
                role.urn,
                f"Pod Identity role {role.name} is bound to {len(bound)} service accounts: "
                f"{sorted(bound)}",
            )


GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
_GITHUB_SUBJECT = re.compile(r"^repo:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+:[^*?]+$")


def _trusts_github(statement: Mapping[str, Any]) -> bool:
    federated = [str(f) for f in as_list(get_path(statement, "Principal", "Federated"))]
    return any(f.endswith(f"oidc-provider/{GITHUB_OIDC_HOST}") for f in federated)


def ci_oidc_subject_pinned(stack: Stack) -> Iterator[Finding]:
    for role in stack.of_type(IAM_ROLE):
        for statement in iter_statements(role.props.get("assumeRolePolicy")):
            if not _trusts_github(statement):
                continue
            condition = statement.get("Condition")
            equals = get_path(condition, "StringEquals")
            if isinstance(condition, Mapping) and any(
                str(op).startswith("StringLike") for op in condition
            ):
                yield role.urn, f"GitHub role {role.name}: trusts subjects by pattern (StringLike)"
            if not isinstance(equals, Mapping):
                yield role.urn, f"GitHub role {role.name}: no StringEquals on :sub and :aud"
                continue
            subjects = [str(s) for s in as_list(equals.get(f"{GITHUB_OIDC_HOST}:sub", []))]
            if not subjects:
                yield role.urn, f"GitHub role {role.name}: :sub is not pinned"
            for subject in subjects:
                if not _GITHUB_SUBJECT.match(subject):
                    yield (
                        role.urn,
                        f"GitHub role {role.name}: subject {subject!r} is not one exact "
                        "repo:<owner>/<name>:<context>",
                    )
            if as_list(equals.get(f"{GITHUB_OIDC_HOST}:aud")) != ["sts.amazonaws.com"]:
                yield role.urn, f"GitHub role {role.name}: audience is not sts.amazonaws.com"


# --------------------------------------------------------------------------- workloads


def containers_have_limits(stack: Stack) -> Iterator[Finding]:
    for workload in stack.of_type(*WORKLOADS):
        for container in _containers(workload):
            requests = get_path(container, "resources", "requests") or {}
            limits = get_path(container, "resources", "limits") or {}
            missing = [f"requests.{k}" for k in ("cpu", "memory") if k not in requests]
            missing += [] if "memory" in limits else ["limits.memory"]
            if missing:
                yield workload.urn, f"{_label(workload, container)}: missing {', '.join(missing)}"


def containers_not_privileged(stack: Stack) -> Iterator[Finding]:
    for workload in stack.of_type(*WORKLOADS):
        for container in _containers(workload):
            context = container.get("securityContext") or {}
            if truthy(get_path(context, "privileged")):
                yield workload.urn, f"{_label(workload, container)}: runs privileged"
            if truthy(get_path(context, "allowPrivilegeEscalation")):
                yield workload.urn, f"{_label(workload, container)}: allows privilege escalation"


def _image_problem(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag (means :latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return "uses :latest"
    return None


def _helm_latest_tags(values: Any, path: str = "") -> Iterator[str]:
    if isinstance(values, Mapping):
        for key, value in values.items():
            where = f"{path}.{key}" if path else str(key)
            tag_latest = key == "tag" and str(value) == "latest"
            bad_image = key == "image" and isinstance(value, str) and _image_problem(value)
            if tag_latest or bad_image:
                yield where
            else:
                yield from _helm_latest_tags(value, where)
    elif is_sequence(values):
        for index, value in enumerate(values):
            yield from _helm_latest_tags(value, f"{path}[{index}]")


def no_latest_images_in_prod(stack: Stack) -> Iterator[Finding]:
    for workload in stack.of_type(*WORKLOADS):
        for container in _containers(workload):
            image = str(container.get("image") or "")
            problem = _image_problem(image) if image else "has no image"
            if problem:
                yield workload.urn, f"{_label(workload, container)}: image {image!r} {problem}"
    for release in stack.of_type(HELM_RELEASE):
        for where in _helm_latest_tags(parse_json(release.props.get("values"))):
            yield release.urn, f"Helm release {release.name}: values.{where} is latest/untagged"


def _selector_matches(selector: Any, labels: Mapping[str, Any]) -> bool:
    match = get_path(selector, "matchLabels")
    if not isinstance(match, Mapping) or not match:
        return False
    return all(labels.get(k) == v for k, v in match.items())


def prod_pdbs(stack: Stack) -> Iterator[Finding]:
    budgets = stack.of_type(PDB)
    for workload in stack.of_type(*REPLICATED):
        labels = _pod_labels(workload)
        covered = any(
            _namespace(pdb) == _namespace(workload)
            and _selector_matches(get_path(pdb.props, "spec", "selector"), labels)
            for pdb in budgets
        )
        if not covered:
            yield workload.urn, f"{workload.name}: no PodDisruptionBudget selects its pods"


def _scaler_minimum(stack: Stack, workload: Resource) -> int | None:
    name = _metadata(workload).get("name") or workload.name
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


# --------------------------------------------------------------------------- availability


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


def prod_stateful_protected(stack: Stack) -> Iterator[Finding]:
    for resource in stack.of_type(*STATEFUL_TYPES):
        if not resource.protect:
            yield resource.urn, f"{resource.type.rsplit(':', 1)[-1]} {resource.name} not protected"


def eks_public_endpoint_restricted(stack: Stack) -> Iterator[Finding]:
    for cluster in stack.of_type(EKS_CLUSTER):
        vpc = cluster.props.get("vpcConfig") or {}
        public = get_path(vpc, "endpointPublicAccess", default=True)
        if not truthy(public) and public is not None:
            continue
        cidrs = as_list(get_path(vpc, "publicAccessCidrs"))
        if not cidrs or _OPEN_CIDRS & {str(c) for c in cidrs}:
            yield cluster.urn, f"cluster {cluster.name}: public API endpoint open to the internet"


# --------------------------------------------------------------------------- network


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
    return bool(_OPEN_CIDRS & {str(c) for c in cidrs})


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


# --------------------------------------------------------------------------- tags, logging


def required_tags(stack: Stack) -> Iterator[Finding]:
    good: set[str] = set()
    for provider in stack.of_type(AWS_PROVIDER):
        tags = provider_tags(provider)
        missing = [t for t in REQUIRED_TAGS if not tags.get(t)]
        if missing:
            yield provider.urn, f"AWS provider {provider.name}: default tags miss {missing}"
        else:
            good.add(provider.urn)
    for resource in stack.resources:
        if not resource.custom or not resource.type.startswith("aws:"):
            continue
        if resource.provider not in good:
            yield (
                resource.urn,
                f"{resource.name}: not created through an AWS provider carrying the "
                f"required default tags {list(REQUIRED_TAGS)}",
            )


def eks_control_plane_logging(stack: Stack) -> Iterator[Finding]:
    needed = ("api", "audit", "authenticator")
    for cluster in stack.of_type(EKS_CLUSTER):
        enabled = {str(t) for t in as_list(cluster.props.get("enabledClusterLogTypes"))}
        missing = [t for t in needed if t not in enabled]
        if missing:
            yield cluster.urn, f"cluster {cluster.name}: control-plane logs {missing} are off"


def log_retention_set(stack: Stack) -> Iterator[Finding]:
    for group in stack.of_type(LOG_GROUP):
        days = group.props.get("retentionInDays")
        if not days or days == 0:
            yield group.urn, f"log group {group.name}: kept forever (no retentionInDays)"


def alarms_have_actions(stack: Stack) -> Iterator[Finding]:
    for alarm in stack.of_type(METRIC_ALARM):
        enabled = alarm.props.get("actionsEnabled")
        if (enabled is not None and not truthy(enabled)) or not as_list(
            alarm.props.get("alarmActions")
        ):
            yield alarm.urn, f"alarm {alarm.name}: notifies no one (no alarmActions)"


def helm_charts_pinned(stack: Stack) -> Iterator[Finding]:
    for release in stack.of_type(HELM_RELEASE):
        version = str(release.props.get("version") or "")
        if not version or any(ch in version for ch in "*^~<>x| ") or version == "latest":
            yield release.urn, f"Helm release {release.name}: chart version {version!r} not pinned"


# --------------------------------------------------------------------------- the list


def _rule(
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


RULES: list[Rule] = [
    _rule(
        "eks-secrets-encrypted",
        "EKS clusters envelope-encrypt Kubernetes Secrets with a KMS key.",
        severity="high",
        enforcement="mandatory",
        types=(EKS_CLUSTER,),
        check=eks_secrets_encrypted,
        remediation="Set encryptionConfig {resources: [secrets], provider.keyArn}.",
    ),
    _rule(
        "kms-key-rotation",
        "Symmetric KMS keys rotate automatically.",
        severity="medium",
        enforcement="mandatory",
        types=(KMS_KEY,),
        check=kms_key_rotation,
        remediation="enable_key_rotation=True.",
    ),
    _rule(
        "ebs-encrypted",
        "Node disks, EBS volumes and EBS storage classes are encrypted at rest.",
        severity="high",
        enforcement="mandatory",
        types=(LAUNCH_TEMPLATE, EBS_VOLUME, EC2_INSTANCE, EC2_NODE_CLASS, STORAGE_CLASS),
        check=ebs_encrypted,
    ),
    _rule(
        "s3-bucket-encryption",
        "Buckets have default server-side encryption (SSE-KMS or SSE-S3).",
        severity="high",
        enforcement="mandatory",
        types=BUCKETS,
        check=s3_bucket_encryption,
    ),
    _rule(
        "messaging-encrypted",
        "SNS topics and SQS queues encrypt messages at rest.",
        severity="medium",
        enforcement="advisory",
        types=(SNS_TOPIC, SQS_QUEUE),
        check=messaging_encrypted,
    ),
    _rule(
        "s3-public-access-blocked",
        "Buckets have a public access block with all four settings on.",
        severity="critical",
        enforcement="mandatory",
        types=BUCKETS,
        check=s3_public_access_blocked,
    ),
    _rule(
        "s3-tls-only",
        "Bucket policies deny requests that do not use TLS (aws:SecureTransport=false).",
        severity="high",
        enforcement="mandatory",
        types=BUCKETS,
        check=s3_tls_only,
    ),
    _rule(
        "s3-versioning",
        "Buckets keep object versions (recover overwritten model artifacts).",
        severity="medium",
        enforcement="advisory",
        types=BUCKETS,
        check=s3_versioning,
    ),
    _rule(
        "imdsv2-required",
        "Instances and node templates require IMDSv2 session tokens.",
        severity="high",
        enforcement="mandatory",
        types=(LAUNCH_TEMPLATE, EC2_INSTANCE, EC2_NODE_CLASS),
        check=imdsv2_required,
    ),
    _rule(
        "imds-hop-limit-one",
        "IMDS hop limit 1: pods cannot borrow the node's role (they use IRSA/Pod Identity).",
        severity="medium",
        enforcement="advisory",
        types=(LAUNCH_TEMPLATE, EC2_INSTANCE, EC2_NODE_CLASS),
        check=imds_hop_limit_one,
    ),
    _rule(
        "node-groups-use-launch-template",
        "Managed node groups use a launch template (IMDS and disk settings under control).",
        severity="medium",
        enforcement="mandatory",
        types=(NODE_GROUP,),
        check=node_groups_use_launch_template,
    ),
    _rule(
        "gpu-nodes-tainted",
        "GPU node groups and NodePools carry a NoSchedule taint so only GPU work lands there.",
        severity="medium",
        enforcement="mandatory",
        types=(NODE_GROUP, NODE_POOL),
        check=gpu_nodes_tainted,
    ),
    _rule(
        "iam-no-wildcard-data-actions",
        "Identity policies allow no wildcard actions on data services and no data action on '*'.",
        severity="high",
        enforcement="mandatory",
        types=(IAM_ROLE, IAM_ROLE_POLICY, IAM_POLICY, IAM_USER_POLICY, IAM_GROUP_POLICY),
        check=iam_no_wildcard_data_actions,
    ),
    _rule(
        "service-role-single-service-account",
        "IRSA and Pod Identity roles are scoped to exactly one Kubernetes service account.",
        severity="high",
        enforcement="mandatory",
        types=(IAM_ROLE,),
        check=service_roles_single_service_account,
    ),
    _rule(
        "ci-oidc-subject-pinned",
        "GitHub Actions roles trust exact repo:<owner>/<name>:<context> subjects, STS audience.",
        severity="high",
        enforcement="mandatory",
        types=(IAM_ROLE,),
        check=ci_oidc_subject_pinned,
    ),
    _rule(
        "containers-have-limits",
        "Containers declare CPU and memory requests and a memory limit.",
        severity="medium",
        enforcement="mandatory",
        types=WORKLOADS,
        check=containers_have_limits,
    ),
    _rule(
        "containers-not-privileged",
        "Containers do not run privileged or allow privilege escalation.",
        severity="high",
        enforcement="mandatory",
        types=WORKLOADS,
        check=containers_not_privileged,
    ),
    _rule(
        "no-latest-images-in-prod",
        "Prod images are pinned to a tag other than latest, or a digest.",
        severity="high",
        enforcement="mandatory",
        types=(*WORKLOADS, HELM_RELEASE),
        check=no_latest_images_in_prod,
        prod_only=True,
    ),
    _rule(
        "prod-pdbs",
        "Prod Deployments and StatefulSets have a PodDisruptionBudget.",
        severity="medium",
        enforcement="mandatory",
        types=REPLICATED,
        check=prod_pdbs,
        prod_only=True,
    ),
    _rule(
        "prod-min-two-replicas",
        "Prod Deployments and StatefulSets run at least two replicas (or scale from two).",
        severity="medium",
        enforcement="mandatory",
        types=REPLICATED,
        check=prod_min_two_replicas,
        prod_only=True,
    ),
    _rule(
        "prod-multi-az",
        "Prod subnets, the cluster and node groups span at least two availability zones.",
        severity="high",
        enforcement="mandatory",
        types=(SUBNET, EKS_CLUSTER, NODE_GROUP),
        check=prod_multi_az,
        prod_only=True,
    ),
    _rule(
        "prod-stateful-protected",
        "Prod stateful resources (keys, buckets, cluster, volumes...) have protect set.",
        severity="high",
        enforcement="mandatory",
        types=STATEFUL_TYPES,
        check=prod_stateful_protected,
        prod_only=True,
    ),
    _rule(
        "eks-public-endpoint-restricted",
        "A prod cluster's public API endpoint is restricted to known CIDRs.",
        severity="high",
        enforcement="mandatory",
        types=(EKS_CLUSTER,),
        check=eks_public_endpoint_restricted,
        prod_only=True,
    ),
    _rule(
        "vpc-flow-logs",
        "Every VPC records flow logs.",
        severity="medium",
        enforcement="mandatory",
        types=(VPC,),
        check=vpc_flow_logs,
    ),
    _rule(
        "subnets-no-public-ip",
        "Subnets do not hand out public IPs on launch.",
        severity="medium",
        enforcement="mandatory",
        types=(SUBNET,),
        check=subnets_no_public_ip,
    ),
    _rule(
        "no-open-ingress",
        "Security groups allow internet ingress only on 80/443.",
        severity="high",
        enforcement="mandatory",
        types=(SECURITY_GROUP, SECURITY_GROUP_RULE, SG_INGRESS_RULE),
        check=no_open_ingress,
    ),
    _rule(
        "default-sg-closed",
        "The VPC's default security group has no rules.",
        severity="medium",
        enforcement="advisory",
        types=(DEFAULT_SG,),
        check=default_sg_closed,
    ),
    _rule(
        "required-tags",
        "AWS resources go through a provider whose default tags carry project, stack, "
        "environment and owner.",
        severity="medium",
        enforcement="mandatory",
        types=(),
        check=required_tags,
    ),
    _rule(
        "eks-control-plane-logging",
        "EKS control-plane api, audit and authenticator logs are on.",
        severity="medium",
        enforcement="mandatory",
        types=(EKS_CLUSTER,),
        check=eks_control_plane_logging,
    ),
    _rule(
        "log-retention-set",
        "Log groups have a retention period.",
        severity="low",
        enforcement="advisory",
        types=(LOG_GROUP,),
        check=log_retention_set,
    ),
    _rule(
        "alarms-have-actions",
        "Prod alarms notify someone.",
        severity="medium",
        enforcement="advisory",
        types=(METRIC_ALARM,),
        check=alarms_have_actions,
        prod_only=True,
    ),
    _rule(
        "helm-charts-pinned",
        "Helm releases pin an exact chart version.",
        severity="medium",
        enforcement="mandatory",
        types=(HELM_RELEASE,),
        check=helm_charts_pinned,
    ),
]

RULES += LOAD_BALANCER_RULES

RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}
assert len(RULES_BY_ID) == len(RULES), "rule ids must be unique"
