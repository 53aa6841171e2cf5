"""``LoadBalancer``: the AWS Load Balancer Controller and how services are exposed.

The component installs the controller (pinned Helm chart, on the system nodes, its
own IAM role through Pod Identity or IRSA) and one ALB *IngressGroup*: an
``IngressClassParams`` + ``IngressClass`` pair that fixes, for every Ingress of the
class, the group (so all services share one ALB), the scheme, target type ``ip``,
the TLS certificate and policy, the HTTP->HTTPS redirect, the idle timeout and the
access logs. Only Ingresses in the serving namespace may join the group.

The controller's IAM policy follows its documented policy, tightened: every ARN is
pinned to this region and account, every tag condition requires the tag to name
*this* cluster (not just to exist), security groups can only be created in this VPC
and their rules changed only in this VPC, and the WAF / Shield / Cognito / IAM
server-certificate permissions are left out because those features are disabled.

Per-service exposure (the Ingress of an ``alb`` service, the Service of an ``nlb``
one) is built by :func:`alb_ingress` and :func:`nlb_service`, which the
InferenceService calls so those objects live under the service's component.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.cluster.eks import SYSTEM_NODE_LABEL
from components.iam import actions, documents
from components.serving.identity import WorkloadIdentity, workload_role
from components.serving.rollout import RoutePlan
from components.validation import require_valid
from components.versions import AWS_LOAD_BALANCER_CONTROLLER_CHART

TYPE_TOKEN = "mlstack:serving:LoadBalancer"
CLUSTER_TAG = "elbv2.k8s.aws/cluster"
INGRESS_STACK_TAG = "ingress.k8s.aws/stack"
INGRESS_RESOURCE_TAG = "ingress.k8s.aws/resource"
LOAD_BALANCER_RESOURCE_ID = "LoadBalancer"
CONTROLLER_NAMESPACE = "kube-system"
CONTROLLER_SERVICE_ACCOUNT = "aws-load-balancer-controller"
ALB_CONTROLLER = "ingress.k8s.aws/alb"
NLB_CLASS = "service.k8s.aws/nlb"
INGRESS_ANNOTATION = "alb.ingress.kubernetes.io/"
SERVICE_ANNOTATION = "service.beta.kubernetes.io/"
Scheme = Literal["internal", "internet-facing"]


# --------------------------------------------------------------------------- IAM policy


def controller_policy(
    partition: str, region: str, account_id: str, cluster_name: str, vpc_id: str
) -> documents.PolicyDocument:
    """The controller's IAM policy, scoped to one region, account, cluster and VPC."""
    arn = f"arn:{partition}"
    elb = f"{arn}:elasticloadbalancing:{region}:{account_id}"
    ec2 = f"{arn}:ec2:{region}:{account_id}"
    security_groups = f"{ec2}:security-group/*"
    vpc = f"{ec2}:vpc/{vpc_id}"
    balancers = [f"{elb}:loadbalancer/app/*/*", f"{elb}:loadbalancer/net/*/*"]
    target_groups = [f"{elb}:targetgroup/*/*"]
    listeners = [
        f"{elb}:listener/app/*/*/*",
        f"{elb}:listener/net/*/*/*",
        f"{elb}:listener-rule/app/*/*/*",
        f"{elb}:listener-rule/net/*/*/*",
    ]
    ours = {"StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG}": cluster_name}}
    tagged_for_us = {f"aws:RequestTag/{CLUSTER_TAG}": cluster_name}
    keeps_cluster_tag = {f"aws:RequestTag/{CLUSTER_TAG}": "true"}

    def stmt(
        sid: str, action_list: Sequence[str], resources: Sequence[str], **condition: Any
    ) -> dict[str, Any]:
        statement = documents.allow(action_list, resources, sid=sid)
        if condition:
            statement["Condition"] = condition
        return statement

    return documents.document(
        stmt(
            "ElbServiceLinkedRole",
            actions.LBC_SERVICE_LINKED_ROLE,
            [
                f"{arn}:iam::{account_id}:role/aws-service-role/"
                "elasticloadbalancing.amazonaws.com/AWSServiceRoleForElasticLoadBalancing"
            ],
            StringEquals={"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"},
        ),
        stmt("Describe", actions.LBC_DESCRIBE, ["*"]),
        stmt("CreateSecurityGroupInVpc", actions.LBC_SG_CREATE, [vpc]),
        stmt(
            "CreateTaggedSecurityGroup",
            actions.LBC_SG_CREATE,
            [security_groups],
            StringEquals=tagged_for_us,
        ),
        stmt(
            "TagSecurityGroupOnCreate",
            actions.LBC_SG_TAG_ON_CREATE,
            [security_groups],
            StringEquals={"ec2:CreateAction": "CreateSecurityGroup", **tagged_for_us},
        ),
        stmt(
            "TagOwnSecurityGroups",
            actions.LBC_SG_TAGS,
            [security_groups],
            StringEquals=ours["StringEquals"],
            Null=keeps_cluster_tag,
        ),
        stmt(
            "SecurityGroupRulesInVpc",
            actions.LBC_SG_RULES,
            [security_groups],
            StringEquals={"ec2:Vpc": vpc},
        ),
        stmt("DeleteOwnSecurityGroups", actions.LBC_SG_DELETE, [security_groups], **ours),
        stmt(
            "CreateTaggedLoadBalancers",
            actions.LBC_LB_CREATE,
            [*balancers, *target_groups],
            StringEquals=tagged_for_us,
        ),
        stmt(
            "TagLoadBalancersOnCreate",
            actions.LBC_LB_TAG_ON_CREATE,
            [*balancers, *target_groups],
            StringEquals={
                "elasticloadbalancing:CreateAction": ["CreateLoadBalancer", "CreateTargetGroup"],
                **tagged_for_us,
            },
        ),
        stmt(
            "TagOwnLoadBalancers",
            actions.LBC_LB_TAGS,
            [*balancers, *target_groups],
            StringEquals=ours["StringEquals"],
            Null=keeps_cluster_tag,
        ),
        stmt("TagListeners", actions.LBC_LB_TAGS, listeners),
        stmt("ModifyOwnLoadBalancers", actions.LBC_LB_MODIFY, [*balancers, *target_groups], **ours),
        stmt("ModifyOwnListenerAttributes", actions.LBC_LISTENER_ATTRIBUTES, listeners[:2], **ours),
        stmt("Listeners", actions.LBC_LISTENERS, [*balancers, *listeners, *target_groups]),
        stmt("Targets", actions.LBC_TARGETS, target_groups, **ours),
    )


def account_of(arn: str) -> str:
    """The account id field of an ARN (``arn:partition:service:region:account:...``)."""
    parts = arn.split(":")
    if len(parts) < 6 or not parts[4].isdigit():
        raise ValueError(f"{arn!r} has no account id")
    return parts[4]


# --------------------------------------------------------------------------- lookups
#
# The controller tags what it creates for an Ingress (pkg/deploy/tracking in its source):
# every resource gets ``elbv2.k8s.aws/cluster: <cluster>`` and ``ingress.k8s.aws/stack:
# <group>`` (the IngressGroup name of an explicit group); ``ingress.k8s.aws/resource`` is
# ``LoadBalancer`` on the load balancer and ``<namespace>/<ingress>-<service>:<port>`` on
# a target group, ``<port>`` being the backend's port as the Ingress (or its forward
# action) names it. Together they match exactly one resource.


def alb_lookup_tags(cluster_name: str, group_name: str) -> dict[str, str]:
    """Tags that identify the shared ALB of an IngressGroup."""
    return {
        CLUSTER_TAG: cluster_name,
        INGRESS_STACK_TAG: group_name,
        INGRESS_RESOURCE_TAG: LOAD_BALANCER_RESOURCE_ID,
    }


def target_group_lookup_tags(
    cluster_name: str, group_name: str, *, namespace: str, ingress: str, service: str, port: str
) -> dict[str, str]:
    """Tags that identify the target group of one Ingress backend (Service + port)."""
    return {
        CLUSTER_TAG: cluster_name,
        INGRESS_STACK_TAG: group_name,
        INGRESS_RESOURCE_TAG: f"{namespace}/{ingress}-{service}:{port}",
    }


@dataclass(frozen=True)
class AlbTargetGroupSuffixes:
    """ARN suffixes of one target group and its load balancer (CloudWatch dimensions)."""

    target_group: pulumi.Output[str]
    load_balancer: pulumi.Output[str]


# --------------------------------------------------------------------------- component


@dataclass(frozen=True)
class AlbSettings:
    """What a service needs to join the shared ALB (or to get an NLB)."""

    ingress_class_name: str
    https: bool
    scheme: Scheme
    inbound_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadBalancerArgs:
    """Inputs of :class:`LoadBalancer`.

    ``cluster_name`` / ``region`` / ``vpc_id`` go to the controller (it cannot read them
    from IMDS: the nodes' hop limit of 1 keeps pods away from it). ``group_name`` names
    the shared ALB's IngressGroup; only Ingresses in ``serving_namespace`` may join.
    Defaults: internal ALB, HTTPS with HTTP->HTTPS redirect, TLS 1.3 policy, 600 s idle
    timeout, no access logs, 2 controller replicas.
    """

    cluster_name: str
    region: str
    vpc_id: pulumi.Input[str]
    identity: WorkloadIdentity
    serving_namespace: str
    partition: str = "aws"
    group_name: str = "mlstack"
    ingress_class_name: str = "mlstack-alb"
    scheme: Scheme = "internal"
    https: bool = True
    certificate_arn: str | None = None
    ssl_policy: str = "ELBSecurityPolicy-TLS13-1-2-2021-06"
    idle_timeout_seconds: int = 600
    inbound_cidrs: tuple[str, ...] = ()
    deletion_protection: bool = False
    access_logs_bucket: str | None = None
    access_logs_prefix: str = "alb"
    replicas: int = 2
    chart_version: str = AWS_LOAD_BALANCER_CONTROLLER_CHART.version
    node_selector: Mapping[str, str] = field(default_factory=lambda: dict([SYSTEM_NODE_LABEL]))
    tags: Mapping[str, str] = field(default_factory=dict)
    wait_for: Sequence[pulumi.Resource] = ()
    """Resources to wait for first (the system node group: the controller needs nodes)."""

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.https and not self.certificate_arn:
            found.append("certificate_arn: None: HTTPS needs an ACM certificate ARN")
        if not 1 <= self.idle_timeout_seconds <= 4000:
            found.append(f"idle_timeout_seconds: {self.idle_timeout_seconds}: allowed 1..4000")
        if not 1 <= self.replicas <= 5:
            found.append(f"replicas: {self.replicas}: allowed 1..5")
        if len(self.group_name) > 63:
            found.append(f"group_name: {self.group_name!r}: at most 63 characters")
        return found

    def load_balancer_attributes(self) -> list[dict[str, str]]:
        attributes = {
            "idle_timeout.timeout_seconds": str(self.idle_timeout_seconds),
            "routing.http.drop_invalid_header_fields.enabled": "true",
            "deletion_protection.enabled": str(self.deletion_protection).lower(),
        }
        if self.access_logs_bucket:
            attributes |= {
                "access_logs.s3.enabled": "true",
                "access_logs.s3.bucket": self.access_logs_bucket,
                "access_logs.s3.prefix": self.access_logs_prefix,
            }
        return [{"key": k, "value": v} for k, v in attributes.items()]

    def class_params_spec(self) -> dict[str, Any]:
        """The IngressClassParams spec every Ingress of the class inherits."""
        spec: dict[str, Any] = {
            "group": {"name": self.group_name},
            "scheme": self.scheme,
            "targetType": "ip",
            "ipAddressType": "ipv4",
            "loadBalancerAttributes": self.load_balancer_attributes(),
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": self.serving_namespace}
            },
        }
        if self.https and self.certificate_arn:
            spec |= {
                "certificateArn": [self.certificate_arn],
                "sslPolicy": self.ssl_policy,
                "sslRedirectPort": "443",
            }
        if self.inbound_cidrs:
            spec["inboundCIDRs"] = list(self.inbound_cidrs)
        return spec


class LoadBalancer(pulumi.ComponentResource):
    """The AWS Load Balancer Controller and the shared ALB's IngressClass."""

    role: aws.iam.Role
    release: k8s.helm.v3.Release
    ingress_class: k8s.networking.v1.IngressClass
    alb: AlbSettings
    cluster_name: str
    group_name: str
    """The IngressGroup every ALB-exposed service joins (one shared ALB)."""

    def __init__(
        self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        require_valid("LoadBalancer", name, args.problems())
        super().__init__(TYPE_TOKEN, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        identity = workload_role(
            name,
            args.identity,
            namespace=CONTROLLER_NAMESPACE,
            service_account=CONTROLLER_SERVICE_ACCOUNT,
            description=f"AWS Load Balancer Controller of {args.cluster_name}",
            parent=self,
        )
        self.role = identity.role
        policy = pulumi.Output.all(args.identity.oidc_provider_arn, args.vpc_id).apply(
            lambda v: documents.to_json(
                controller_policy(
                    args.partition, args.region, account_of(str(v[0])), args.cluster_name, str(v[1])
                )
            )
        )
        role_policy = aws.iam.RolePolicy(
            f"{name}-controller-policy",
            aws.iam.RolePolicyArgs(role=self.role.name, policy=policy),
            opts=child,
        )
        waits: list[pulumi.Resource] = [role_policy, *args.wait_for]
        if identity.association is not None:
            waits.append(identity.association)

        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            k8s.helm.v3.ReleaseArgs(
                name="aws-load-balancer-controller",
                chart=AWS_LOAD_BALANCER_CONTROLLER_CHART.chart,
                version=args.chart_version,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(
                    repo=AWS_LOAD_BALANCER_CONTROLLER_CHART.repository
                ),
                namespace=CONTROLLER_NAMESPACE,
                values=self._values(args, identity.service_account_annotations),
                cleanup_on_fail=True,
                max_history=10,
                timeout=600,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=waits),
        )
        params_name = args.ingress_class_name
        params = k8s.apiextensions.CustomResource(
            f"{name}-class-params",
            api_version="elbv2.k8s.aws/v1beta1",
            kind="IngressClassParams",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=params_name),
            spec=args.class_params_spec(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
        )
        self.ingress_class = k8s.networking.v1.IngressClass(
            f"{name}-class",
            k8s.networking.v1.IngressClassInitArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(name=args.ingress_class_name),
                spec=k8s.networking.v1.IngressClassSpecArgs(
                    controller=ALB_CONTROLLER,
                    parameters=k8s.networking.v1.IngressClassParametersReferenceArgs(
                        api_group="elbv2.k8s.aws", kind="IngressClassParams", name=params_name
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[params]),
        )
        self.cluster_name = args.cluster_name
        self.group_name = args.group_name
        self._alb_suffix: pulumi.Output[str] | None = None
        self.alb = AlbSettings(
            ingress_class_name=args.ingress_class_name,
            https=args.https,
            scheme=args.scheme,
            inbound_cidrs=tuple(args.inbound_cidrs),
        )
        self.register_outputs({"roleArn": self.role.arn, "ingressClass": args.ingress_class_name})

    def lookup_target_group(
        self, *, namespace: str, ingress: str, service: str, port: str
    ) -> AlbTargetGroupSuffixes:
        """Look up (invokes, through this component's AWS provider) the target group the
        controller created for one Ingress backend, and the shared ALB. Only valid once the
        controller has reconciled that Ingress: before, the lookup fails the preview."""
        invoke = pulumi.InvokeOutputOptions(parent=self)
        if self._alb_suffix is None:
            alb = aws.lb.get_load_balancer_output(
                tags=alb_lookup_tags(self.cluster_name, self.group_name), opts=invoke
            )
            self._alb_suffix = alb.arn_suffix
        group = aws.lb.get_target_group_output(
            tags=target_group_lookup_tags(
                self.cluster_name,
                self.group_name,
                namespace=namespace,
                ingress=ingress,
                service=service,
                port=port,
            ),
            opts=invoke,
        )
        return AlbTargetGroupSuffixes(group.arn_suffix, self._alb_suffix)

    @staticmethod
    def _values(
        args: LoadBalancerArgs, sa_annotations: Mapping[str, pulumi.Input[str]]
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            "clusterName": args.cluster_name,
            "region": args.region,
            "vpcId": args.vpc_id,
            "replicaCount": args.replicas,
            "serviceAccount": {
                "create": True,
                "name": CONTROLLER_SERVICE_ACCOUNT,
                "annotations": dict(sa_annotations),
            },
            "nodeSelector": dict(args.node_selector),
            "resources": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"memory": "512Mi"},
            },
            "enableShield": False,
            "enableWaf": False,
            "enableWafv2": False,
            "createIngressClassResource": False,
            "ingressClassParams": {"create": False},
            "enableServiceMutatorWebhook": False,
            "defaultTargetType": "ip",
            "defaultSSLPolicy": args.ssl_policy,
            "defaultTags": dict(args.tags),
        }
        if args.replicas > 1:
            values["podDisruptionBudget"] = {"maxUnavailable": 1}
        return values


# --------------------------------------------------------------------------- per service


def alb_annotations(
    alb: AlbSettings,
    routes: RoutePlan,
    *,
    port_name: str,
    health_check_path: str,
    drain_seconds: int,
    preview_header: str,
) -> dict[str, str]:
    """The per-Ingress annotations of one service on the shared ALB."""
    listen = [{"HTTP": 80}, {"HTTPS": 443}] if alb.https else [{"HTTP": 80}]
    a = INGRESS_ANNOTATION
    annotations = {
        f"{a}listen-ports": json.dumps(listen, separators=(",", ":")),
        f"{a}healthcheck-path": health_check_path,
        f"{a}healthcheck-port": "traffic-port",
        f"{a}healthcheck-interval-seconds": "10",
        f"{a}success-codes": "200",
        f"{a}target-group-attributes": f"deregistration_delay.timeout_seconds={drain_seconds}",
    }
    if len(routes.main) > 1:
        annotations[f"{a}actions.{WEIGHTED_ACTION}"] = json.dumps(
            {
                "type": "forward",
                "forwardConfig": {
                    "targetGroups": [
                        {"serviceName": b.service, "servicePort": port_name, "weight": b.weight}
                        for b in routes.main
                    ],
                    "targetGroupStickinessConfig": {"enabled": False},
                },
            },
            separators=(",", ":"),
        )
    if routes.preview is not None:
        annotations[f"{a}actions.{PREVIEW_ACTION}"] = json.dumps(
            {
                "type": "forward",
                "forwardConfig": {
                    "targetGroups": [
                        {"serviceName": routes.preview, "servicePort": port_name, "weight": 100}
                    ]
                },
            },
            separators=(",", ":"),
        )
        annotations[f"{a}conditions.{PREVIEW_ACTION}"] = json.dumps(
            [
                {
                    "field": "http-header",
                    "httpHeaderConfig": {"httpHeaderName": preview_header, "values": ["true"]},
                }
            ],
            separators=(",", ":"),
        )
    return annotations


WEIGHTED_ACTION = "weighted"
PREVIEW_ACTION = "preview"
USE_ANNOTATION = "use-annotation"


def alb_rules(
    routes: RoutePlan, *, host: str | None, path: str, port_name: str
) -> list[k8s.networking.v1.IngressRuleArgs]:
    """Ingress rules: the preview route (if any) first, then the main route."""

    def rule(backend_name: str, port: str) -> k8s.networking.v1.IngressRuleArgs:
        return k8s.networking.v1.IngressRuleArgs(
            host=host,
            http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                paths=[
                    k8s.networking.v1.HTTPIngressPathArgs(
                        path=path,
                        path_type="Prefix",
                        backend=k8s.networking.v1.IngressBackendArgs(
                            service=k8s.networking.v1.IngressServiceBackendArgs(
                                name=backend_name,
                                port=k8s.networking.v1.ServiceBackendPortArgs(name=port),
                            )
                        ),
                    )
                ]
            ),
        )

    rules = []
    if routes.preview is not None:
        rules.append(rule(PREVIEW_ACTION, USE_ANNOTATION))
    (first, *others) = routes.main
    if others:
        rules.append(rule(WEIGHTED_ACTION, USE_ANNOTATION))
    else:
        rules.append(rule(first.service, port_name))
    return rules


def nlb_annotations(
    alb: AlbSettings, *, health_check_path: str, health_check_port: int, drain_seconds: int
) -> dict[str, str]:
    """Annotations of a per-service NLB (TCP listeners, ip targets, HTTP health check)."""
    s = SERVICE_ANNOTATION
    return {
        f"{s}aws-load-balancer-nlb-target-type": "ip",
        f"{s}aws-load-balancer-scheme": alb.scheme,
        f"{s}aws-load-balancer-healthcheck-protocol": "http",
        f"{s}aws-load-balancer-healthcheck-path": health_check_path,
        f"{s}aws-load-balancer-healthcheck-port": str(health_check_port),
        f"{s}aws-load-balancer-attributes": "load_balancing.cross_zone.enabled=true",
        f"{s}aws-load-balancer-target-group-attributes": (
            f"deregistration_delay.timeout_seconds={drain_seconds}"
        ),
    }
