"""Every policy rule: a passing and a failing hand-made graph, plus edge cases."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from components.iam import documents
from mlstack.review.plans import policy_stack
from mlstack.synth import ResourceGraph, ResourceNode
from policy import rules
from policy.core import Rule, run_rule
from policy.rules import common as c
from policy.rules import load_balancers as lbr
from tests.policy.graphs import aws_provider, graph, node

Nodes = Callable[[], list[ResourceNode]]


@dataclass(frozen=True)
class Case:
    passing: Nodes
    failing: Nodes
    message: str
    """A fragment every failing case's violation message contains."""


def _alb_with_certificates(count: int) -> list[ResourceNode]:
    """An ALB, its HTTPS listener and ``count`` extra (SNI) certificates on it."""
    alb = node("aws:lb/loadBalancer:LoadBalancer", "alb", {"loadBalancerType": "application"})
    listener = node("aws:lb/listener:Listener", "https", {"protocol": "HTTPS"}, depends_on=(alb,))
    certificates = [
        node(
            "aws:lb/listenerCertificate:ListenerCertificate",
            f"cert-{i}",
            {"certificateArn": f"arn:aws:acm:us-west-2:123456789012:certificate/{i}"},
            depends_on=(listener,),
        )
        for i in range(count)
    ]
    return [alb, listener, *certificates]


def _cluster(**inputs: object) -> ResourceNode:
    base: dict[str, object] = {
        "name": "c",
        "encryptionConfig": {"provider": {"keyArn": "arn:aws:kms:k"}, "resources": ["secrets"]},
        "enabledClusterLogTypes": ["api", "audit", "authenticator"],
        "vpcConfig": {"subnetIds": ["a", "b"], "publicAccessCidrs": ["203.0.113.0/24"]},
    }
    base.update(inputs)
    return node(c.EKS_CLUSTER, "cluster", base, protect=True)


def _launch_template(http_tokens: str = "required", hops: int = 1, encrypted: str = "true"):
    return node(
        c.LAUNCH_TEMPLATE,
        "lt",
        {
            "metadataOptions": {
                "httpEndpoint": "enabled",
                "httpTokens": http_tokens,
                "httpPutResponseHopLimit": hops,
            },
            "blockDeviceMappings": [
                {"deviceName": "/dev/xvda", "ebs": {"encrypted": encrypted, "volumeSize": 50}}
            ],
        },
    )


BUCKET = node(c.BUCKETS[0], "bucket", {"bucket": "models"}, protect=True)


def _bucket_with(type_token: str, inputs: dict[str, object]) -> list[ResourceNode]:
    return [
        BUCKET,
        node(type_token, f"bucket-{type_token.rsplit(':', 1)[-1]}", inputs, depends_on=(BUCKET,)),
    ]


def _pab(**flags: bool) -> list[ResourceNode]:
    values = {
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
        **flags,
    }
    return _bucket_with(c.BUCKET_PAB[0], {"bucket": "models", **values})


def _bucket_policy(effect: str) -> list[ResourceNode]:
    statement = {
        "Effect": effect,
        "Principal": "*",
        "Action": "s3:*",
        "Resource": ["arn:aws:s3:::models", "arn:aws:s3:::models/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    doc = {"Version": "2012-10-17", "Statement": [statement]}
    return _bucket_with(c.BUCKET_POLICY[0], {"bucket": "models", "policy": json.dumps(doc)})


def _role_policy(action: str, resource: str) -> list[ResourceNode]:
    doc = documents.document({"Effect": "Allow", "Action": [action], "Resource": [resource]})
    return [node(c.IAM_ROLE_POLICY, "policy", {"policy": documents.to_json(doc), "role": "x"})]


IRSA_GOOD = documents.irsa_trust(
    "arn:aws:iam::1:oidc-provider/oidc.eks/id/X", "https://oidc.eks/id/X", "ml", "server"
)
IRSA_PATTERN = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::1:oidc-provider/oidc.eks/id/X"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringLike": {"oidc.eks/id/X:sub": "system:serviceaccount:ml:*"}},
        }
    ],
}


def _github_trust(subjects: list[str], operator: str = "StringEquals") -> dict[str, object]:
    host = "token.actions.githubusercontent.com"
    return documents.document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": f"arn:aws:iam::1:oidc-provider/{host}"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {operator: {f"{host}:aud": "sts.amazonaws.com", f"{host}:sub": subjects}},
        }
    )


def test_github_roles_trusting_by_pattern_fail() -> None:
    trust = _github_trust(["repo:org/repo:*"], operator="StringLike")
    result = result_of("ci-oidc-subject-pinned", graph(*_role(trust)))
    assert result.status == "fail"
    messages = " ".join(v.message for v in result.violations)
    assert "by pattern" in messages
    assert "no StringEquals" in messages


def _role(trust: dict[str, object]) -> list[ResourceNode]:
    return [node(c.IAM_ROLE, "role", {"assumeRolePolicy": json.dumps(trust)})]


def _deployment(
    image: str = "registry/app:1.2.3",
    resources: dict[str, object] | None = None,
    replicas: int | None = 2,
    security: dict[str, object] | None = None,
    labels: dict[str, str] | None = None,
) -> ResourceNode:
    container: dict[str, object] = {
        "name": "server",
        "image": image,
        "resources": resources
        if resources is not None
        else {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
    }
    if security is not None:
        container["securityContext"] = security
    spec: dict[str, object] = {
        "selector": {"matchLabels": labels or {"app": "server"}},
        "template": {
            "metadata": {"labels": labels or {"app": "server"}},
            "spec": {"containers": [container]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return node(
        c.DEPLOYMENT,
        "server",
        {"metadata": {"name": "server", "namespace": "ml"}, "spec": spec},
    )


def _pdb(labels: dict[str, str]) -> ResourceNode:
    return node(
        c.PDB,
        "server-pdb",
        {
            "metadata": {"name": "server", "namespace": "ml"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}},
        },
    )


def _subnets(*zones: str) -> list[ResourceNode]:
    return [
        node(c.SUBNET, f"subnet-{i}", {"availabilityZone": z, "mapPublicIpOnLaunch": False})
        for i, z in enumerate(zones)
    ]


def _vpc_with_flow_log() -> list[ResourceNode]:
    vpc = node(c.VPC, "vpc", {"cidrBlock": "10.0.0.0/16"})
    return [vpc, node(c.FLOW_LOG, "flow", {"vpcId": "vpc-id"}, depends_on=(vpc,))]


def _sg(port: int) -> list[ResourceNode]:
    rule = {"protocol": "tcp", "fromPort": port, "toPort": port, "cidrBlocks": ["0.0.0.0/0"]}
    return [node(c.SECURITY_GROUP, "sg", {"ingress": [rule]})]


def _listener(action: str) -> list[ResourceNode]:
    default: dict[str, Any] = {"type": action}
    if action == "redirect":
        default["redirect"] = {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}
    return [
        node(
            c.LB_LISTENER[0],
            "listener",
            {"protocol": "HTTP", "port": 80, "defaultActions": [default]},
        )
    ]


def _https_listener(policy: str) -> list[ResourceNode]:
    return [
        node(
            c.LB_LISTENER[0],
            "https",
            {"protocol": "HTTPS", "port": 443, "sslPolicy": policy, "certificateArn": "arn:c"},
        )
    ]


def _balancer(*, internal: bool, protected: bool, logs: bool) -> ResourceNode:
    inputs: dict[str, Any] = {"internal": internal, "enableDeletionProtection": protected}
    if logs:
        inputs["accessLogs"] = {"bucket": "logs", "prefix": "alb", "enabled": True}
    return node(lbr.LOAD_BALANCER[0], "alb", inputs)


def _target_group(*, alarmed: bool) -> list[ResourceNode]:
    group = node(lbr.TARGET_GROUP[0], "tg", {"port": 8000, "protocol": "HTTP"})
    alarm = node(
        c.METRIC_ALARM,
        "alarm",
        {"alarmActions": ["arn:aws:sns:t"]},
        depends_on=(group,) if alarmed else (),
    )
    return [group, alarm]


def _gpu_group(taints: list[dict[str, str]]) -> list[ResourceNode]:
    return [
        node(
            c.NODE_GROUP,
            "gpu",
            {
                "amiType": "AL2023_x86_64_NVIDIA",
                "instanceTypes": ["g5.xlarge"],
                "taints": taints,
                "launchTemplate": {"id": "lt-1", "version": "1"},
                "subnetIds": ["a", "b"],
            },
        )
    ]


NO_SCHEDULE = [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]


def _gating_alarm(datapoints: int) -> ResourceNode:
    return node(
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "target-5xx",
        {
            "name": "mlstack-test-m-target-5xx",
            "namespace": "AWS/ApplicationELB",
            "period": 60,
            "evaluationPeriods": max(datapoints, 5),
            "datapointsToAlarm": datapoints,
            "tags": {"severity": "critical", "bake": "gate"},
        },
    )


CASES: dict[str, Case] = {
    "eks-secrets-encrypted": Case(
        lambda: [_cluster()], lambda: [_cluster(encryptionConfig=None)], "not envelope-encrypted"
    ),
    "kms-key-rotation": Case(
        lambda: [node(c.KMS_KEY, "k", {"enableKeyRotation": True}, protect=True)],
        lambda: [node(c.KMS_KEY, "k", {"enableKeyRotation": False}, protect=True)],
        "rotation is off",
    ),
    "ebs-encrypted": Case(
        lambda: [_launch_template()],
        lambda: [_launch_template(encrypted="false")],
        "/dev/xvda is not encrypted",
    ),
    "s3-bucket-encryption": Case(
        lambda: _bucket_with(
            c.BUCKET_SSE[0],
            {
                "bucket": "models",
                "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}],
            },
        ),
        lambda: [BUCKET],
        "no default server-side encryption",
    ),
    "messaging-encrypted": Case(
        lambda: [node(c.SNS_TOPIC, "alerts", {"kmsMasterKeyId": "alias/sns"})],
        lambda: [node(c.SNS_TOPIC, "alerts", {})],
        "no kmsMasterKeyId",
    ),
    "s3-public-access-blocked": Case(
        _pab, lambda: _pab(blockPublicPolicy=False), "['blockPublicPolicy'] off"
    ),
    "s3-tls-only": Case(
        lambda: _bucket_policy("Deny"), lambda: _bucket_policy("Allow"), "aws:SecureTransport"
    ),
    "s3-versioning": Case(
        lambda: _bucket_with(
            c.BUCKET_VERSIONING[0],
            {"bucket": "models", "versioningConfiguration": {"status": "Enabled"}},
        ),
        lambda: _bucket_with(
            c.BUCKET_VERSIONING[0],
            {"bucket": "models", "versioningConfiguration": {"status": "Suspended"}},
        ),
        "versioning is not enabled",
    ),
    "imdsv2-required": Case(
        lambda: [_launch_template()],
        lambda: [_launch_template(http_tokens="optional")],
        "IMDSv2 not required",
    ),
    "imds-hop-limit-one": Case(
        lambda: [_launch_template(hops=1)], lambda: [_launch_template(hops=2)], "hop limit 2"
    ),
    "node-groups-use-launch-template": Case(
        lambda: [node(c.NODE_GROUP, "ng", {"launchTemplate": {"id": "lt-1", "version": "1"}})],
        lambda: [node(c.NODE_GROUP, "ng", {"diskSize": 50})],
        "no launch template",
    ),
    "gpu-nodes-tainted": Case(
        lambda: _gpu_group(NO_SCHEDULE), lambda: _gpu_group([]), "no NoSchedule taint"
    ),
    "iam-no-wildcard-data-actions": Case(
        lambda: _role_policy("s3:GetObject", "arn:aws:s3:::models/*"),
        lambda: _role_policy("s3:*", "arn:aws:s3:::models/*"),
        "wildcard action s3:*",
    ),
    "service-role-single-service-account": Case(
        lambda: _role(IRSA_GOOD), lambda: _role(IRSA_PATTERN), "by pattern"
    ),
    "ci-oidc-subject-pinned": Case(
        lambda: _role(_github_trust(["repo:org/repo:pull_request"])),
        lambda: _role(_github_trust(["repo:org/*:pull_request"])),
        "is not one exact",
    ),
    "containers-have-limits": Case(
        lambda: [_deployment()],
        lambda: [_deployment(resources={})],
        "missing requests.cpu, requests.memory, limits.memory",
    ),
    "containers-not-privileged": Case(
        lambda: [_deployment(security={"privileged": False})],
        lambda: [_deployment(security={"privileged": True})],
        "runs privileged",
    ),
    "no-latest-images-in-prod": Case(
        lambda: [_deployment(image="registry/app:1.2.3")],
        lambda: [_deployment(image="registry/app:latest")],
        "uses :latest",
    ),
    "prod-pdbs": Case(
        lambda: [_deployment(), _pdb({"app": "server"})],
        lambda: [_deployment(), _pdb({"app": "other"})],
        "no PodDisruptionBudget",
    ),
    "prod-min-two-replicas": Case(
        lambda: [_deployment(replicas=2)],
        lambda: [_deployment(replicas=1)],
        "at least 1 replica(s)",
    ),
    "prod-multi-az": Case(
        lambda: _subnets("us-east-1a", "us-east-1b"),
        lambda: _subnets("us-east-1a", "us-east-1a"),
        "span 1 availability zone",
    ),
    "prod-stateful-protected": Case(
        lambda: [node(c.KMS_KEY, "k", {"enableKeyRotation": True}, protect=True)],
        lambda: [node(c.KMS_KEY, "k", {"enableKeyRotation": True}, protect=False)],
        "Key k not protected",
    ),
    "eks-public-endpoint-restricted": Case(
        lambda: [_cluster()],
        lambda: [_cluster(vpcConfig={"subnetIds": ["a", "b"], "publicAccessCidrs": ["0.0.0.0/0"]})],
        "open to the internet",
    ),
    "vpc-flow-logs": Case(
        _vpc_with_flow_log,
        lambda: [node(c.VPC, "vpc", {"cidrBlock": "10.0.0.0/16"})],
        "no flow log",
    ),
    "subnets-no-public-ip": Case(
        lambda: [node(c.SUBNET, "s", {"mapPublicIpOnLaunch": False})],
        lambda: [node(c.SUBNET, "s", {"mapPublicIpOnLaunch": True})],
        "assigns public IPs",
    ),
    "no-open-ingress": Case(lambda: _sg(443), lambda: _sg(22), "ports 22-22"),
    "default-sg-closed": Case(
        lambda: [node(c.DEFAULT_SG, "default", {"vpcId": "v"})],
        lambda: [node(c.DEFAULT_SG, "default", {"vpcId": "v", "ingress": [{"fromPort": 0}]})],
        "has rules",
    ),
    "lb-tls-policy": Case(
        lambda: _https_listener("ELBSecurityPolicy-TLS13-1-2-2021-06"),
        lambda: _https_listener("ELBSecurityPolicy-2016-08"),
        "allows TLS older than 1.2",
    ),
    "lb-http-redirect-only": Case(
        lambda: _listener("redirect"), lambda: _listener("forward"), "does not redirect"
    ),
    "lb-prod-internet-facing-hardened": Case(
        lambda: [_balancer(internal=False, protected=True, logs=True)],
        lambda: [_balancer(internal=False, protected=False, logs=True)],
        "no deletion protection",
    ),
    "lb-target-groups-alarmed": Case(
        lambda: _target_group(alarmed=True),
        lambda: _target_group(alarmed=False),
        "no CloudWatch alarm watches it",
    ),
    "lb-alb-quotas": Case(
        lambda: _alb_with_certificates(25),
        lambda: _alb_with_certificates(26),
        "26 certificates",
    ),
    "required-tags": Case(
        lambda: [node(c.VPC, "vpc", {})],
        lambda: [node(c.VPC, "vpc", {}, provider=None)],
        "not created through an AWS provider",
    ),
    "eks-control-plane-logging": Case(
        lambda: [_cluster()],
        lambda: [_cluster(enabledClusterLogTypes=["api"])],
        "['audit', 'authenticator'] are off",
    ),
    "log-retention-set": Case(
        lambda: [node(c.LOG_GROUP, "logs", {"retentionInDays": 30})],
        lambda: [node(c.LOG_GROUP, "logs", {})],
        "kept forever",
    ),
    "alarms-have-actions": Case(
        lambda: [node(c.METRIC_ALARM, "a", {"alarmActions": ["arn:aws:sns:t"]})],
        lambda: [node(c.METRIC_ALARM, "a", {"alarmActions": []})],
        "notifies no one",
    ),
    "helm-charts-pinned": Case(
        lambda: [node(c.HELM_RELEASE, "karpenter", {"chart": "karpenter", "version": "1.6.3"})],
        lambda: [node(c.HELM_RELEASE, "karpenter", {"chart": "karpenter", "version": "^1.6"})],
        "not pinned",
    ),
    # No stack file for the test stack: bakeMinutes is the schema default, 10.
    "bake-covers-alarm-time": Case(
        lambda: [_gating_alarm(datapoints=3)],  # 3 x 60 s + 120 s + 60 s: 6 min
        lambda: [_gating_alarm(datapoints=10)],  # 10 x 60 s + 120 s + 60 s: 13 min
        "allowed: at least 13 (720s + 60s, in whole minutes)",
    ),
}


def result_of(rule_id: str, g: ResourceGraph):
    return run_rule(rules.RULES_BY_ID[rule_id], policy_stack(g))


def test_every_rule_has_a_passing_and_a_failing_case() -> None:
    lifecycle = {rule.id for rule in rules.AREAS["lifecycle"]}  # cases: test_lifecycle.py
    assert set(CASES) == set(rules.RULES_BY_ID) - lifecycle


def test_the_pack_has_at_least_twenty_rules_with_id_severity_and_enforcement() -> None:
    assert len(rules.RULES) >= 20
    for rule in rules.RULES:
        assert rule.id and rule.description
        assert rule.severity in ("low", "medium", "high", "critical")
        assert rule.enforcement in ("mandatory", "advisory")


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_passes_on_its_passing_graph(rule_id: str) -> None:
    result = result_of(rule_id, graph(*CASES[rule_id].passing()))
    assert result.status == "pass", result.violations


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fails_on_its_failing_graph(rule_id: str) -> None:
    result = result_of(rule_id, graph(*CASES[rule_id].failing()))
    assert result.status == "fail"
    assert result.violations
    assert all(CASES[rule_id].message in v.message for v in result.violations), result.violations
    assert result.blocking == (rules.RULES_BY_ID[rule_id].enforcement == "mandatory")


# --------------------------------------------------------------------------- edge cases


def test_rules_about_absent_resource_types_are_not_applicable() -> None:
    result = result_of("s3-tls-only", graph(node(c.VPC, "vpc", {})))
    assert result.status == "n/a"
    assert "Bucket" in result.detail


def test_prod_only_rules_are_not_applicable_on_dev() -> None:
    failing = CASES["no-latest-images-in-prod"].failing()
    assert result_of("no-latest-images-in-prod", graph(*failing, environment="dev")).status == "n/a"
    assert (
        result_of("no-latest-images-in-prod", graph(*failing, environment="prod")).status == "fail"
    )


def test_a_crashing_rule_is_an_error_never_a_pass() -> None:
    def explode(_stack: object) -> list[tuple[str | None, str]]:
        raise RuntimeError("boom")

    rule = Rule("crashes", "always raises", "low", "advisory", (), explode)
    result = run_rule(rule, policy_stack(graph()))
    assert result.status == "error"
    assert "RuntimeError: boom" in result.detail
    assert result.blocking  # even an advisory rule blocks when it cannot run


def test_environment_comes_from_the_provider_tags_when_not_given() -> None:
    from policy.core import Stack

    stack = Stack([*policy_stack(graph(environment="dev")).resources])
    assert stack.environment == "dev"
    assert not stack.is_prod
    assert Stack([]).is_prod  # unknown environment is treated as prod (strict)


def test_untagged_images_fail_and_digests_pass_in_prod() -> None:
    assert result_of("no-latest-images-in-prod", graph(_deployment(image="app"))).status == "fail"
    digest = "registry/app@sha256:" + "a" * 64
    assert result_of("no-latest-images-in-prod", graph(_deployment(image=digest))).status == "pass"


def test_helm_values_with_latest_tags_fail_in_prod() -> None:
    release = node(
        c.HELM_RELEASE,
        "exporter",
        {"version": "1.0.0", "values": {"image": {"repository": "x", "tag": "latest"}}},
    )
    result = result_of("no-latest-images-in-prod", graph(release))
    assert result.status == "fail"
    assert "values.image.tag" in result.violations[0].message


def test_data_actions_on_every_resource_fail_but_unscopable_ones_pass() -> None:
    assert (
        result_of("iam-no-wildcard-data-actions", graph(*_role_policy("kms:Decrypt", "*"))).status
        == "fail"
    )
    assert (
        result_of(
            "iam-no-wildcard-data-actions", graph(*_role_policy("s3:ListAllMyBuckets", "*"))
        ).status
        == "pass"
    )
    assert (
        result_of("iam-no-wildcard-data-actions", graph(*_role_policy("*", "*"))).status == "fail"
    )
    assert (
        result_of(
            "iam-no-wildcard-data-actions", graph(*_role_policy("logs:PutLogEvents", "*"))
        ).status
        == "pass"
    )


def test_irsa_trust_for_two_service_accounts_fails() -> None:
    trust = json.loads(json.dumps(IRSA_GOOD))
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    key = next(k for k in condition if k.endswith(":sub"))
    condition[key] = ["system:serviceaccount:ml:a", "system:serviceaccount:ml:b"]
    result = result_of("service-role-single-service-account", graph(*_role(trust)))
    assert result.status == "fail"
    assert "2 service accounts" in result.violations[0].message


def test_github_oidc_roles_are_not_service_account_roles() -> None:
    github = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {
                    "Federated": "arn:aws:iam::1:oidc-provider/token.actions.githubusercontent.com"
                },
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                        "token.actions.githubusercontent.com:sub": [
                            "repo:org/repo:pull_request",
                            "repo:org/repo:ref:refs/heads/main",
                        ],
                    }
                },
            }
        ],
    }
    result = result_of("service-role-single-service-account", graph(*_role(github)))
    assert result.status == "pass"


def test_pod_identity_role_bound_to_two_service_accounts_fails() -> None:
    role = node(
        c.IAM_ROLE,
        "role",
        {"assumeRolePolicy": documents.to_json(documents.pod_identity_trust("c", "ml", "a"))},
    )
    one = node(
        c.POD_IDENTITY_ASSOCIATION,
        "a",
        {"namespace": "ml", "serviceAccount": "a"},
        depends_on=(role,),
    )
    two = node(
        c.POD_IDENTITY_ASSOCIATION,
        "b",
        {"namespace": "ml", "serviceAccount": "b"},
        depends_on=(role,),
    )
    assert result_of("service-role-single-service-account", graph(role, one)).status == "pass"
    result = result_of("service-role-single-service-account", graph(role, one, two))
    assert result.status == "fail"
    assert "bound to 2 service accounts" in result.violations[0].message


def test_autoscaled_deployment_uses_the_scaler_minimum() -> None:
    hpa = node(
        c.HPA,
        "hpa",
        {"spec": {"minReplicas": 2, "scaleTargetRef": {"kind": "Deployment", "name": "server"}}},
    )
    assert (
        result_of("prod-min-two-replicas", graph(_deployment(replicas=None), hpa)).status == "pass"
    )
    assert result_of("prod-min-two-replicas", graph(_deployment(replicas=None))).status == "fail"


def test_gpu_node_pools_need_a_taint() -> None:
    def pool(taints: list[dict[str, str]]) -> ResourceNode:
        spec = {
            "requirements": [
                {
                    "key": "node.kubernetes.io/instance-type",
                    "operator": "In",
                    "values": ["g6.xlarge"],
                }
            ],
            "taints": taints,
        }
        return node(c.NODE_POOL, "gpu", {"spec": {"template": {"spec": spec}}})

    taint = [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert result_of("gpu-nodes-tainted", graph(pool(taint))).status == "pass"
    assert result_of("gpu-nodes-tainted", graph(pool([]))).status == "fail"


def test_cpu_node_groups_need_no_taint() -> None:
    group = node(
        c.NODE_GROUP,
        "sys",
        {"amiType": "AL2023_x86_64_STANDARD", "instanceTypes": ["m6i.large"]},
    )
    assert result_of("gpu-nodes-tainted", graph(group)).status == "pass"


def test_storage_class_and_node_class_disks_must_be_encrypted() -> None:
    sc = node(
        c.STORAGE_CLASS,
        "gp3",
        {"provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3"}},
    )
    assert result_of("ebs-encrypted", graph(sc)).status == "fail"
    node_class = node(
        c.EC2_NODE_CLASS,
        "gpu",
        {
            "spec": {
                "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": True}}]
            }
        },
    )
    assert result_of("ebs-encrypted", graph(node_class)).status == "pass"


def test_missing_provider_tags_fail_the_provider_and_its_resources() -> None:
    incomplete = aws_provider({"project": "mlstack", "stack": "test", "environment": "prod"})
    result = result_of("required-tags", graph(node(c.VPC, "vpc", {}), provider=incomplete))
    assert result.status == "fail"
    messages = " ".join(v.message for v in result.violations)
    assert "['owner']" in messages
    assert "vpc: not created through" in messages


def test_asymmetric_kms_keys_need_no_rotation() -> None:
    key = node(c.KMS_KEY, "sign", {"keySpec": "RSA_2048", "enableKeyRotation": False}, protect=True)
    assert result_of("kms-key-rotation", graph(key)).status == "pass"


# --------------------------------------------------------------------------- real stacks


def test_real_stacks_pass_every_mandatory_rule(any_graph: ResourceGraph) -> None:
    results = [run_rule(rule, policy_stack(any_graph)) for rule in rules.RULES]
    blocking = [
        (res.rule.id, res.status, res.violations, res.detail) for res in results if res.blocking
    ]
    assert blocking == []
    assert sum(res.status == "pass" for res in results) >= 10


def test_every_rule_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "pr-review.md").read_text()
    missing = [rule.id for rule in rules.RULES if f"| {rule.id} |" not in doc]
    assert missing == []


@pytest.mark.parametrize(
    ("cidrs", "opened"),
    [
        (["0.0.0.0/0"], True),
        (["0.0.0.0/1", "128.0.0.0/1"], True),
        (["::/1", "8000::/1"], True),
        (["10.0.0.0/8", "11.0.0.0/8"], True),
        (["203.0.113.0/24"], False),
        (["203.0.113.0/24", "198.51.100.0/24"], False),
    ],
)
def test_public_endpoint_rule_judges_the_union_of_cidrs(cidrs: list[str], opened: bool) -> None:
    cluster = _cluster(vpcConfig={"subnetIds": ["a", "b"], "publicAccessCidrs": cidrs})
    result = result_of("eks-public-endpoint-restricted", graph(cluster))
    assert result.status == ("fail" if opened else "pass"), result.violations


def test_ingress_from_two_half_internets_is_open_to_the_world() -> None:
    from policy.rules import network

    assert network._open_to_world(["0.0.0.0/1", "128.0.0.0/1"])  # pyright: ignore[reportPrivateUsage]
    assert not network._open_to_world(["10.20.0.0/16"])  # pyright: ignore[reportPrivateUsage]


def test_an_http_listener_rule_routing_plain_http_fails() -> None:
    (listener,) = _listener("redirect")
    rule = node(lbr.LISTENER_RULE[0], "rule", {"priority": 10}, depends_on=(listener,))
    result = result_of("lb-http-redirect-only", graph(listener, rule))
    assert result.status == "fail"
    assert "routes plain HTTP" in result.violations[0].message


def test_an_http_listener_rule_that_matches_no_request_passes_but_only_that_one() -> None:
    """A model's warm rule (only a source-ip of the limited broadcast address) routes no
    request: allowed. The same rule with any further or other condition is not."""
    from components.serving.rollout import WARM_SOURCE_CIDR

    (listener,) = _listener("redirect")
    warm = {"priority": 10, "conditions": [{"sourceIp": {"values": [WARM_SOURCE_CIDR]}}]}
    rule = node(lbr.LISTENER_RULE[0], "warm", warm, depends_on=(listener,))
    assert result_of("lb-http-redirect-only", graph(listener, rule)).status == "pass"
    for conditions in (
        [{"sourceIp": {"values": [WARM_SOURCE_CIDR, "10.0.0.0/8"]}}],
        [{"sourceIp": {"values": ["10.0.0.0/8"]}}],
        [{"sourceIp": {"values": [WARM_SOURCE_CIDR]}}, {"pathPattern": {"values": ["/*"]}}],
    ):
        routed = node(
            lbr.LISTENER_RULE[0],
            "routed",
            {"priority": 10, "conditions": conditions},
            depends_on=(listener,),
        )
        assert result_of("lb-http-redirect-only", graph(listener, routed)).status == "fail"


def test_internal_balancers_and_dev_need_no_hardening() -> None:
    internal = _balancer(internal=True, protected=False, logs=False)
    assert result_of("lb-prod-internet-facing-hardened", graph(internal)).status == "pass"
    exposed = _balancer(internal=False, protected=True, logs=False)
    result = result_of("lb-prod-internet-facing-hardened", graph(exposed))
    assert [v.message for v in result.violations] == ["load balancer alb: no access logs"]
