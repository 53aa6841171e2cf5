"""``LoadBalancer``: the stack's load balancers as Pulumi resources, and the AWS Load
Balancer Controller reduced to registering pod IPs.

Pulumi owns every AWS object of the data path (typed pulumi-aws v7 classes, through the
explicit AWS provider), so ``pulumi preview`` / ``mlstack diff`` show each change, a
rollback restores it and a destroy removes it:

* the shared ALB (scheme, subnets, its own security group, idle timeout, deletion
  protection, access logs to the stack's log bucket, ``drop_invalid_header_fields``,
  desync mitigation) with an HTTPS listener (TLS 1.2+ policy, the certificate plus one
  SNI certificate per host that names its own) whose default action answers 404, and an
  HTTP listener that only redirects to HTTPS;
* the ALB's security group: 443/80 in from ``inbound_cidrs`` (internal default: the VPC),
  out only to the pods' security group on the target ports; and on the pods' group an
  ingress rule per target port from the ALB's group only (no rule opened by a controller);
* per model (built by the functions below, which the ``InferenceService`` calls so the
  objects live under the model's component): one target group per track, the listener
  rules (:func:`alb_rules`), one ``TargetGroupBinding`` per target group, and for an
  ``nlb`` model its own NLB, security group and TCP/TLS listeners (:func:`nlb`).

The controller (pinned Helm chart, system nodes, its own role) only reconciles the
``TargetGroupBinding`` objects: it registers and deregisters pod IPs. Its IAM policy is
cut to exactly that (:data:`CONTROLLER_STATEMENTS`, each with its reason).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.cluster.eks import SYSTEM_NODE_LABEL
from components.iam import actions, documents
from components.serving import runtimes
from components.serving.identity import WorkloadIdentity, workload_role
from components.serving.rollout import WARM_SOURCE_CIDR, path_patterns, rule_priorities
from components.serving.tls_policies import TLS12_POLICIES
from components.validation import require_valid
from components.versions import (
    AWS_LOAD_BALANCER_CONTROLLER_CHART,
    AWS_LOAD_BALANCER_CONTROLLER_CRDS_SHA256,
)

TYPE_TOKEN = "mlstack:serving:LoadBalancer"
CLUSTER_TAG = "elbv2.k8s.aws/cluster"
"""Tag on every target group the controller may register targets in (its IAM condition)."""
CONTROLLER_NAMESPACE = "kube-system"
CONTROLLER_SERVICE_ACCOUNT = "aws-load-balancer-controller"
TGB_API_VERSION = "elbv2.k8s.aws/v1beta1"
TGB_KIND = "TargetGroupBinding"
TGB_IMMUTABLE = ("spec.targetGroupARN", "spec.targetType")
"""Fields the controller's validating webhook refuses to change on an existing binding."""
HTTPS_PORT = 443
HTTP_PORT = 80
INFERENCE_POD_LABEL = (runtimes.COMPONENT_LABEL, runtimes.COMPONENT_VALUE)
"""The label every model pod carries: the pod readiness-gate webhook's objectSelector."""
Scheme = Literal["internal", "internet-facing"]


# --------------------------------------------------------------------------- IAM policy


@dataclass(frozen=True)
class KeptStatement:
    """One statement of the controller's policy and why it is there."""

    sid: str
    actions: tuple[str, ...]
    reason: str


CONTROLLER_STATEMENTS: tuple[KeptStatement, ...] = (
    KeptStatement(
        "DescribeForTargetGroupBinding",
        actions.LBC_TGB_DESCRIBE,
        "The TargetGroupBinding reconciler and its webhooks read the target group (type, "
        "VPC, IP address type), the targets' health (to deregister, and for pod readiness "
        "gates), and the VPC / security groups (the controller's TargetGroupBinding-only "
        "subset, docs/deploy/installation.md, minus ec2:DescribeInstances: NOT_GRANTED). "
        "Describe calls "
        "support no resource-level scoping: Resource '*'.",
    ),
    KeptStatement(
        "RegisterPodTargets",
        actions.LBC_TARGETS,
        "Registering and deregistering pod IPs is the controller's whole job here. Limited "
        "to target groups of this region and account tagged elbv2.k8s.aws/cluster=<this "
        "cluster> (Pulumi tags every model target group so).",
    ),
)
"""The statements the controller keeps, from the upstream reference policy
(``iam/aws-load-balancer-controller-v3.5.0-iam_policy.json``) and the controller's
TargetGroupBinding-only subset."""

_PULUMI_OWNS = (
    "not granted: Pulumi owns the load balancers, listeners, rules, target groups, "
    "certificates on listeners and tags; the controller only reconciles TargetGroupBindings"
)
_NO_SG = (
    "not granted: Pulumi owns every security group and rule; no TargetGroupBinding sets "
    "spec.networking, so the controller never manages a rule"
)
_NO_INGRESS = (
    "not granted: read only by the Ingress/Service reconcilers (subnet, certificate, "
    "address, IPAM, Outposts discovery), which have nothing to reconcile: no Ingress, "
    "no Service of type LoadBalancer"
)
_OFF = "not granted: WAF, WAFv2, Shield and Cognito are off (controller flags), no IAM certs"
_NO_INSTANCES = (
    "not granted although in the controller's TargetGroupBinding-only subset: v3.5.0 calls "
    "DescribeInstances only in inferVPCID (pkg/aws/cloud.go, when --aws-vpc-id is unset and "
    "IMDS is out of reach: the chart's vpcId sets it) and in the node-ENI lookups "
    "(pkg/networking/node_info_provider.go FetchNodeInstances), which the networking manager "
    "runs only for a binding with spec.networking (pkg/networking/networking_manager.go "
    "ReconcileForPodEndpoints); ip targets, vpcID set, no binding sets networking"
)
_DRIFT = (
    "not granted although in the controller's TargetGroupBinding-only subset: health "
    "checks, deregistration delay and slow start are Pulumi inputs; a controller change "
    "would be drift that the next deploy reverts"
)

NOT_GRANTED: dict[str, str] = {
    **dict.fromkeys(
        (
            "elasticloadbalancing:AddListenerCertificates",
            "elasticloadbalancing:AddTags",
            "elasticloadbalancing:CreateListener",
            "elasticloadbalancing:CreateLoadBalancer",
            "elasticloadbalancing:CreateRule",
            "elasticloadbalancing:CreateTargetGroup",
            "elasticloadbalancing:DeleteListener",
            "elasticloadbalancing:DeleteLoadBalancer",
            "elasticloadbalancing:DeleteRule",
            "elasticloadbalancing:DeleteTargetGroup",
            "elasticloadbalancing:ModifyCapacityReservation",
            "elasticloadbalancing:ModifyIpPools",
            "elasticloadbalancing:ModifyListener",
            "elasticloadbalancing:ModifyListenerAttributes",
            "elasticloadbalancing:ModifyLoadBalancerAttributes",
            "elasticloadbalancing:ModifyRule",
            "elasticloadbalancing:RemoveListenerCertificates",
            "elasticloadbalancing:RemoveTags",
            "elasticloadbalancing:SetIpAddressType",
            "elasticloadbalancing:SetRulePriorities",
            "elasticloadbalancing:SetSecurityGroups",
            "elasticloadbalancing:SetSubnets",
            "iam:CreateServiceLinkedRole",
        ),
        _PULUMI_OWNS,
    ),
    **dict.fromkeys(
        (
            "ec2:AuthorizeSecurityGroupIngress",
            "ec2:CreateSecurityGroup",
            "ec2:CreateTags",
            "ec2:DeleteSecurityGroup",
            "ec2:DeleteTags",
            "ec2:RevokeSecurityGroupIngress",
            "ec2:GetSecurityGroupsForVpc",
        ),
        _NO_SG,
    ),
    **dict.fromkeys(
        (
            "acm:DescribeCertificate",
            "acm:ListCertificates",
            "ec2:DescribeAccountAttributes",
            "ec2:DescribeAddresses",
            "ec2:DescribeAvailabilityZones",
            "ec2:DescribeCoipPools",
            "ec2:DescribeInternetGateways",
            "ec2:DescribeIpamPools",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeRouteTables",
            "ec2:DescribeSubnets",
            "ec2:DescribeTags",
            "ec2:DescribeVpcPeeringConnections",
            "ec2:GetCoipPoolUsage",
            "elasticloadbalancing:DescribeCapacityReservation",
            "elasticloadbalancing:DescribeListenerAttributes",
            "elasticloadbalancing:DescribeListenerCertificates",
            "elasticloadbalancing:DescribeListeners",
            "elasticloadbalancing:DescribeLoadBalancerAttributes",
            "elasticloadbalancing:DescribeLoadBalancers",
            "elasticloadbalancing:DescribeRules",
            "elasticloadbalancing:DescribeSSLPolicies",
            "elasticloadbalancing:DescribeTags",
            "elasticloadbalancing:DescribeTargetGroupAttributes",
            "elasticloadbalancing:DescribeTrustStores",
        ),
        _NO_INGRESS,
    ),
    **dict.fromkeys(
        (
            "cognito-idp:DescribeUserPoolClient",
            "elasticloadbalancing:SetWebAcl",
            "iam:GetServerCertificate",
            "iam:ListServerCertificates",
            "shield:CreateProtection",
            "shield:DeleteProtection",
            "shield:DescribeProtection",
            "shield:GetSubscriptionState",
            "waf-regional:AssociateWebACL",
            "waf-regional:DisassociateWebACL",
            "waf-regional:GetWebACL",
            "waf-regional:GetWebACLForResource",
            "wafv2:AssociateWebACL",
            "wafv2:DisassociateWebACL",
            "wafv2:GetWebACL",
            "wafv2:GetWebACLForResource",
        ),
        _OFF,
    ),
    "ec2:DescribeInstances": _NO_INSTANCES,
    **dict.fromkeys(
        (
            "elasticloadbalancing:ModifyTargetGroup",
            "elasticloadbalancing:ModifyTargetGroupAttributes",
        ),
        _DRIFT,
    ),
}
"""Every action of the upstream reference policy
(``iam/aws-load-balancer-controller-v3.5.0-iam_policy.json``) the controller does not get,
with the reason: the deliberate differences, per action (the shape of
``components.iam.upstream.DIFFERENCES`` on the identity branch). What it keeps is granted
stricter than upstream: Register/DeregisterTargets pinned to this region and account and
to target groups tagged with this cluster (upstream: any target group anywhere)."""


def controller_policy(
    partition: str, region: str, account_id: str, cluster_name: str
) -> documents.PolicyDocument:
    """The controller's IAM policy: TargetGroupBinding reconciliation only."""
    elb = f"arn:{partition}:elasticloadbalancing:{region}:{account_id}"
    describe, targets = CONTROLLER_STATEMENTS
    register = documents.allow(targets.actions, [f"{elb}:targetgroup/*/*"], sid=targets.sid)
    register["Condition"] = {"StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG}": cluster_name}}
    return documents.document(
        documents.allow(describe.actions, ["*"], sid=describe.sid),
        register,
    )


def certificate_key(arn: str) -> str:
    """A listener certificate's name suffix: the first 12 hex digits of its ARN's sha256
    (stable, whatever else the listener holds)."""
    return hashlib.sha256(arn.encode()).hexdigest()[:12]


def account_of(arn: str) -> str:
    """The account id field of an ARN (``arn:partition:service:region:account:...``)."""
    parts = arn.split(":")
    if len(parts) < 6 or not parts[4].isdigit():
        raise ValueError(f"{arn!r} has no account id")
    return parts[4]


# --------------------------------------------------------------------------- component


@dataclass(frozen=True)
class Frontend:
    """What a model needs to route through the shared ALB or to get its own NLB."""

    vpc_id: pulumi.Input[str]
    scheme: Scheme
    subnet_ids: pulumi.Input[Sequence[str]]
    inbound_cidrs: tuple[str, ...]
    target_security_group_id: pulumi.Input[str]
    """The pods' security group (the nodes' cluster security group without SG-for-pods)."""
    controller: pulumi.Resource
    """The controller release: every TargetGroupBinding depends on it."""
    certificate_arn: str | None
    ssl_policy: str
    deletion_protection: bool
    access_logs_bucket: pulumi.Input[str] | None
    access_logs_prefix: str
    access_logs_ready: tuple[pulumi.Resource, ...]
    cluster_name: str
    https_listener: aws.lb.Listener | None = None
    alb: aws.lb.LoadBalancer | None = None
    http_listener: aws.lb.Listener | None = None
    """The ALB's HTTP (redirect) listener: it holds the models' warm rules."""
    nlb_security_group: aws.ec2.SecurityGroup | None = None
    """The one security group every model NLB uses (listener ports in, pods out)."""
    idle_timeout_seconds: int = 600
    """The shared ALB's idle timeout: an ALB model's server must keep idle connections
    open longer (``RuntimePreset.keeps_alive_longer_than``)."""


@dataclass(frozen=True)
class LoadBalancerArgs:
    """Inputs of :class:`LoadBalancer`.

    ``cluster_name`` / ``region`` / ``vpc_id`` go to the controller (it cannot read them
    from IMDS: the nodes' hop limit of 1 keeps pods away from it). ``alb_target_ports``:
    the container ports ALB models serve on; empty means no model uses the ALB, and no
    ALB is created. ``inbound_cidrs`` empty: the VPC (``vpc_cidr``) for an internal
    scheme. Defaults: internal, TLS 1.3/1.2 policy, 600 s idle timeout, defensive desync
    mitigation, no access logs, 2 controller replicas.
    """

    cluster_name: str
    region: str
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    subnet_ids: pulumi.Input[Sequence[str]]
    target_security_group_id: pulumi.Input[str]
    identity: WorkloadIdentity
    partition: str = "aws"
    scheme: Scheme = "internal"
    alb_target_ports: tuple[int, ...] = ()
    nlb_ports: tuple[int, ...] = ()
    """Ports the model NLBs listen on (= their pods' ports); empty: no NLB security group."""
    certificate_arn: str | None = None
    extra_certificate_arns: tuple[str, ...] = ()
    ssl_policy: str = "ELBSecurityPolicy-TLS13-1-2-2021-06"
    idle_timeout_seconds: int = 600
    desync_mitigation_mode: str = "defensive"
    inbound_cidrs: tuple[str, ...] = ()
    deletion_protection: bool = False
    access_logs_bucket: pulumi.Input[str] | None = None
    access_logs_prefix: str = "alb"
    access_logs_ready: Sequence[pulumi.Resource] = ()
    """The log bucket's policy: ELB checks it can write before it creates the LB."""
    replicas: int = 2
    chart_version: str = AWS_LOAD_BALANCER_CONTROLLER_CHART.version
    node_selector: Mapping[str, str] = field(default_factory=lambda: dict([SYSTEM_NODE_LABEL]))
    tags: Mapping[str, str] = field(default_factory=dict)
    wait_for: Sequence[pulumi.Resource] = ()
    """Resources to wait for first (the system node group: the controller needs nodes)."""

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.alb_target_ports and not self.certificate_arn:
            found.append("certificate_arn: None: the ALB's HTTPS listener needs an ACM ARN")
        if self.ssl_policy not in TLS12_POLICIES:
            found.append(f"ssl_policy: {self.ssl_policy!r}: allowed {', '.join(TLS12_POLICIES)}")
        if not 1 <= self.idle_timeout_seconds <= 4000:
            found.append(f"idle_timeout_seconds: {self.idle_timeout_seconds}: allowed 1..4000")
        if self.desync_mitigation_mode not in ("defensive", "strictest"):
            found.append(
                f"desync_mitigation_mode: {self.desync_mitigation_mode!r}: allowed "
                "defensive, strictest"
            )
        if not 1 <= self.replicas <= 5:
            found.append(f"replicas: {self.replicas}: allowed 1..5")
        if self.chart_version not in AWS_LOAD_BALANCER_CONTROLLER_CRDS_SHA256:
            found.append(
                f"chart_version: {self.chart_version!r}: allowed "
                f"{', '.join(sorted(AWS_LOAD_BALANCER_CONTROLLER_CRDS_SHA256))} (versions whose "
                "crds/ digests are recorded in AWS_LOAD_BALANCER_CONTROLLER_CRDS_SHA256)"
            )
        if self.scheme == "internet-facing" and not self.inbound_cidrs:
            found.append("inbound_cidrs: (): an internet-facing scheme needs explicit CIDRs")
        for key, ports in (
            ("alb_target_ports", self.alb_target_ports),
            ("nlb_ports", self.nlb_ports),
        ):
            if any(not 1 <= p <= 65535 for p in ports):
                found.append(f"{key}: {ports}: ports 1..65535")
        return found

    @property
    def sources(self) -> tuple[str, ...]:
        """Who may connect to the load balancers."""
        return tuple(self.inbound_cidrs) or (self.vpc_cidr,)


class LoadBalancer(pulumi.ComponentResource):
    """The AWS Load Balancer Controller (TargetGroupBinding only) and the shared ALB."""

    role: aws.iam.Role
    release: k8s.helm.v3.Release
    crds: k8s.helm.v3.Release
    """What installs the controller's CRDs: the release itself (custom resources depend on it)."""
    alb: aws.lb.LoadBalancer | None
    https_listener: aws.lb.Listener | None
    http_listener: aws.lb.Listener | None
    security_group: aws.ec2.SecurityGroup | None
    frontend: Frontend
    cluster_name: str

    def __init__(
        self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        require_valid("LoadBalancer", name, args.problems())
        super().__init__(TYPE_TOKEN, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.cluster_name = args.cluster_name

        identity = workload_role(
            name,
            args.identity,
            namespace=CONTROLLER_NAMESPACE,
            service_account=CONTROLLER_SERVICE_ACCOUNT,
            description=f"AWS Load Balancer Controller of {args.cluster_name} (target "
            "registration only)",
            parent=self,
        )
        self.role = identity.role
        policy = pulumi.Output.from_input(args.identity.oidc_provider_arn).apply(
            lambda arn: documents.to_json(
                controller_policy(
                    args.partition, args.region, account_of(str(arn)), args.cluster_name
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
                # The CRDs come from the pinned chart's crds/ (sha256 per file recorded in
                # AWS_LOAD_BALANCER_CONTROLLER_CRDS_SHA256): Helm creates them on install,
                # before any template, skips those already present, never upgrades them and
                # never deletes them on uninstall (docs/operations.md, "CRDs and chart bumps").
                skip_crds=False,
                cleanup_on_fail=True,
                max_history=10,
                timeout=600,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=waits),
        )
        self.crds = self.release

        self.alb = self.https_listener = self.http_listener = self.security_group = None
        if args.alb_target_ports:
            self._alb(name, args)
        self.nlb_security_group = None
        if args.nlb_ports:
            self.nlb_security_group = security_group(
                f"{name}-nlb-sg",
                vpc_id=args.vpc_id,
                description=f"Model NLBs of {args.cluster_name}: model ports in",
                listener_ports=args.nlb_ports,
                sources=args.sources,
                target_ports=args.nlb_ports,
                target_security_group_id=args.target_security_group_id,
                parent=self,
            )
        self.frontend = Frontend(
            vpc_id=args.vpc_id,
            scheme=args.scheme,
            subnet_ids=args.subnet_ids,
            inbound_cidrs=args.sources,
            target_security_group_id=args.target_security_group_id,
            controller=self.release,
            certificate_arn=args.certificate_arn,
            ssl_policy=args.ssl_policy,
            deletion_protection=args.deletion_protection,
            access_logs_bucket=args.access_logs_bucket,
            access_logs_prefix=args.access_logs_prefix,
            access_logs_ready=tuple(args.access_logs_ready),
            cluster_name=args.cluster_name,
            https_listener=self.https_listener,
            alb=self.alb,
            http_listener=self.http_listener,
            nlb_security_group=self.nlb_security_group,
            idle_timeout_seconds=args.idle_timeout_seconds,
        )
        outputs: dict[str, Any] = {"roleArn": self.role.arn}
        if self.alb is not None:
            outputs |= {"albArn": self.alb.arn, "albDnsName": self.alb.dns_name}
        self.register_outputs(outputs)

    def _alb(self, name: str, args: LoadBalancerArgs) -> None:
        child = pulumi.ResourceOptions(parent=self)
        group = security_group(
            f"{name}-alb-sg",
            vpc_id=args.vpc_id,
            description=f"Shared ALB of {args.cluster_name}: HTTPS (and the HTTP redirect) in",
            listener_ports=(HTTPS_PORT, HTTP_PORT),
            sources=args.sources,
            target_ports=args.alb_target_ports,
            target_security_group_id=args.target_security_group_id,
            parent=self,
        )
        self.security_group = group
        self.alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            aws.lb.LoadBalancerArgs(
                name_prefix="mls-",
                load_balancer_type="application",
                internal=args.scheme == "internal",
                ip_address_type="ipv4",
                subnets=args.subnet_ids,
                security_groups=[group.id],
                idle_timeout=args.idle_timeout_seconds,
                enable_deletion_protection=args.deletion_protection,
                drop_invalid_header_fields=True,
                desync_mitigation_mode=args.desync_mitigation_mode,
                enable_http2=True,
                access_logs=_access_logs(args.access_logs_bucket, args.access_logs_prefix),
                tags={"mlstack:role": "shared-alb", CLUSTER_TAG: args.cluster_name},
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.access_logs_ready)),
        )
        self.https_listener = aws.lb.Listener(
            f"{name}-https",
            aws.lb.ListenerArgs(
                load_balancer_arn=self.alb.arn,
                port=HTTPS_PORT,
                protocol="HTTPS",
                ssl_policy=args.ssl_policy,
                certificate_arn=args.certificate_arn,
                default_actions=[
                    aws.lb.ListenerDefaultActionArgs(
                        type="fixed-response",
                        fixed_response=aws.lb.ListenerDefaultActionFixedResponseArgs(
                            content_type="text/plain", status_code="404", message_body="no route"
                        ),
                    )
                ],
            ),
            opts=child,
        )
        self.http_listener = aws.lb.Listener(
            f"{name}-http",
            aws.lb.ListenerArgs(
                load_balancer_arn=self.alb.arn,
                port=HTTP_PORT,
                protocol="HTTP",
                default_actions=[
                    aws.lb.ListenerDefaultActionArgs(
                        type="redirect",
                        redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                            port=str(HTTPS_PORT), protocol="HTTPS", status_code="HTTP_301"
                        ),
                    )
                ],
            ),
            opts=child,
        )
        for index, arn in enumerate(sorted(set(args.extra_certificate_arns))):
            # Named by its ARN: adding or removing another model's certificate leaves this
            # one alone (by position, the shift replaced it, and the delete's
            # RemoveListenerCertificates took an ARN still in use off the listener). The
            # alias is the name it had by position: a first update with the same set of
            # certificates renames each in place; one that also changes the set is
            # refused by `mlstack diff` / review (listener-certificate-in-use).
            aws.lb.ListenerCertificate(
                f"{name}-https-certificate-{certificate_key(arn)}",
                aws.lb.ListenerCertificateArgs(
                    listener_arn=self.https_listener.arn, certificate_arn=arn
                ),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    aliases=[pulumi.Alias(name=f"{name}-https-certificate-{index}")],
                ),
            )

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
            "enableServiceMutatorWebhook": False,
            "defaultTargetType": "ip",
            "defaultTags": dict(args.tags),
            # The pod readiness-gate webhook fails closed (chart default: Ignore, which
            # admits a pod without its gate during a controller outage, so a rolling
            # update could remove old targets before the new ones are healthy). The
            # selector narrows whom an outage blocks to model pods in namespaces labelled
            # for gate injection (the serving namespace): docs/operations.md.
            "podMutatorWebhookConfig": {"failurePolicy": "Fail"},
            "objectSelector": {"matchLabels": dict([INFERENCE_POD_LABEL])},
        }
        if args.replicas > 1:
            values["podDisruptionBudget"] = {"maxUnavailable": 1}
        return values


# --------------------------------------------------------------------------- building blocks


def _access_logs(
    bucket: pulumi.Input[str] | None, prefix: str
) -> aws.lb.LoadBalancerAccessLogsArgs | None:
    if bucket is None:
        return None
    return aws.lb.LoadBalancerAccessLogsArgs(bucket=bucket, prefix=prefix, enabled=True)


def security_group(
    name: str,
    *,
    vpc_id: pulumi.Input[str],
    description: str,
    listener_ports: Sequence[int],
    sources: Sequence[str],
    target_ports: Sequence[int],
    target_security_group_id: pulumi.Input[str],
    parent: pulumi.Resource,
) -> aws.ec2.SecurityGroup:
    """A load balancer's security group: ``listener_ports`` in from ``sources``, out only
    to the pods' group on ``target_ports``; and on the pods' group, ingress on each target
    port from this group only."""
    child = pulumi.ResourceOptions(parent=parent)
    group = aws.ec2.SecurityGroup(
        name,
        aws.ec2.SecurityGroupArgs(vpc_id=vpc_id, description=description, tags={"Name": name}),
        opts=child,
    )
    for port in sorted(set(listener_ports)):
        for i, cidr in enumerate(sources):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-in-{port}-{i}",
                aws.vpc.SecurityGroupIngressRuleArgs(
                    security_group_id=group.id,
                    ip_protocol="tcp",
                    from_port=port,
                    to_port=port,
                    cidr_ipv4=cidr,
                    description=f"clients to listener {port}",
                ),
                opts=child,
            )
    for port in sorted(set(target_ports)):
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-out-{port}",
            aws.vpc.SecurityGroupEgressRuleArgs(
                security_group_id=group.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                referenced_security_group_id=target_security_group_id,
                description=f"to pods on {port} (traffic and health checks)",
            ),
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-pods-in-{port}",
            aws.vpc.SecurityGroupIngressRuleArgs(
                security_group_id=target_security_group_id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                referenced_security_group_id=group.id,
                description=f"from {name} only, to pod port {port}",
            ),
            opts=child,
        )
    return group


@dataclass(frozen=True)
class TargetSpec:
    """How one target group reaches the pods of one track on one port."""

    port: int
    protocol: Literal["HTTP", "TCP"]
    health_check_path: str
    health_check_port: int | None = None
    """None: the traffic port."""
    drain_seconds: int = 60
    slow_start_seconds: int = 0


def target_group(
    name: str,
    spec: TargetSpec,
    *,
    frontend: Frontend,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
) -> aws.lb.TargetGroup:
    """One ``ip`` target group; tagged for the controller's registration permission."""
    return aws.lb.TargetGroup(
        name,
        aws.lb.TargetGroupArgs(
            name_prefix="mls-",
            target_type="ip",
            ip_address_type="ipv4",
            vpc_id=frontend.vpc_id,
            port=spec.port,
            protocol=spec.protocol,
            protocol_version="HTTP1" if spec.protocol == "HTTP" else None,
            deregistration_delay=spec.drain_seconds,
            slow_start=spec.slow_start_seconds or None,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True,
                protocol="HTTP",
                path=spec.health_check_path,
                port=str(spec.health_check_port) if spec.health_check_port else "traffic-port",
                matcher="200",
                interval=10,
                timeout=5,
                healthy_threshold=2,
                unhealthy_threshold=3,
            ),
            tags={**tags, CLUSTER_TAG: frontend.cluster_name},
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def target_group_binding_spec(
    *, service: str, port: str, target_group_arn: str, vpc_id: str
) -> dict[str, Any]:
    """The TargetGroupBinding spec (plain data): bind one Service port to a target group.
    No ``networking``: Pulumi owns the security group rules."""
    return {
        "serviceRef": {"name": service, "port": port},
        "targetGroupARN": target_group_arn,
        "targetType": "ip",
        "ipAddressType": "ipv4",
        "vpcID": vpc_id,
    }


def target_group_binding(
    name: str,
    *,
    namespace: str,
    binding_name: str,
    service: pulumi.Resource,
    service_name: str,
    port: str,
    group: aws.lb.TargetGroup,
    frontend: Frontend,
    labels: Mapping[str, str],
    parent: pulumi.Resource,
) -> k8s.apiextensions.CustomResource:
    """The TargetGroupBinding of one target group. It depends on the controller (whose
    webhooks admit it and whose finalizer deregisters the targets: destroyed first) and on
    the target group and Service (destroyed after it). The controller's webhook refuses
    any change of ``spec.targetGroupARN`` / ``spec.targetType`` ("TargetGroupBinding
    update may not change these fields"), so a replaced target group replaces the
    binding, deleting the old one first (its name is fixed)."""
    spec = pulumi.Output.all(group.arn, frontend.vpc_id).apply(
        lambda v: target_group_binding_spec(
            service=service_name, port=port, target_group_arn=str(v[0]), vpc_id=str(v[1])
        )
    )
    return k8s.apiextensions.CustomResource(
        name,
        api_version=TGB_API_VERSION,
        kind=TGB_KIND,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=binding_name, namespace=namespace, labels=dict(labels)
        ),
        spec=spec,
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[frontend.controller, group, service],
            replace_on_changes=list(TGB_IMMUTABLE),
            delete_before_replace=True,
        ),
    )


@dataclass(frozen=True)
class WeightedTarget:
    """One target group of a forward action and its weight. ``ready``: what must be done
    before the group may take traffic (its track's Deployment, which pulumi-kubernetes
    creates or updates only once the rollout is available, and its TargetGroupBinding);
    a rule forwarding a non-zero weight to the group depends on them."""

    group: aws.lb.TargetGroup
    weight: int
    ready: tuple[pulumi.Resource, ...] = ()


def _ready(targets: Sequence[WeightedTarget]) -> list[pulumi.Resource]:
    """What a rule forwarding to ``targets`` waits for: every ``ready`` of a non-zero
    weight, each once, in order."""
    found: list[pulumi.Resource] = []
    for target in targets:
        if target.weight > 0:
            found += [r for r in target.ready if r not in found]
    return found


def _forward(targets: Sequence[WeightedTarget]) -> aws.lb.ListenerRuleActionArgs:
    """Always the ``forward`` block with a list (one or two groups): a weight change or a
    color switch is then a change of values inside it, an in-place ModifyRule."""
    return aws.lb.ListenerRuleActionArgs(
        type="forward",
        forward=aws.lb.ListenerRuleActionForwardArgs(
            target_groups=[
                aws.lb.ListenerRuleActionForwardTargetGroupArgs(arn=t.group.arn, weight=t.weight)
                for t in targets
            ],
            stickiness=aws.lb.ListenerRuleActionForwardStickinessArgs(enabled=False, duration=1),
        ),
    )


def _conditions(
    host: str | None,
    path: str,
    header: tuple[str, str] | None = None,
    source_cidrs: Sequence[str] = (),
) -> list[aws.lb.ListenerRuleConditionArgs]:
    conditions = []
    if host is not None:
        conditions.append(
            aws.lb.ListenerRuleConditionArgs(
                host_header=aws.lb.ListenerRuleConditionHostHeaderArgs(values=[host])
            )
        )
    if host is None or path != "/":
        conditions.append(
            aws.lb.ListenerRuleConditionArgs(
                path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=path_patterns(path))
            )
        )
    if header is not None:
        conditions.append(
            aws.lb.ListenerRuleConditionArgs(
                http_header=aws.lb.ListenerRuleConditionHttpHeaderArgs(
                    http_header_name=header[0], values=[header[1]]
                )
            )
        )
    if source_cidrs:
        conditions.append(
            aws.lb.ListenerRuleConditionArgs(
                source_ip=aws.lb.ListenerRuleConditionSourceIpArgs(values=list(source_cidrs))
            )
        )
    return conditions


def alb_rules(
    name: str,
    *,
    listener: aws.lb.Listener,
    slot: int,
    host: str | None,
    path: str,
    main: Sequence[WeightedTarget],
    preview: WeightedTarget | None,
    preview_header: str,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    preview_source_cidrs: Sequence[str] = (),
    warm_listener: aws.lb.Listener | None = None,
    warm_groups: Sequence[aws.lb.TargetGroup] = (),
) -> tuple[aws.lb.ListenerRule, aws.lb.ListenerRule | None]:
    """The model's listener rules: ``{name}-rule`` (main: weighted forward) and, for
    blue/green, ``{name}-preview-rule`` (same host/path plus the header, to the idle
    color, only from ``preview_source_cidrs``: a source-ip condition, which the
    ``X-Forwarded-For`` header cannot satisfy), one priority before it.

    Each rule depends on the ``ready`` resources of every group it forwards a non-zero
    weight to, so it routes to a track only once its Deployment is available and its
    binding exists. A new track's pods pass their readiness gate only when their target
    is ``healthy``, and ELB health-checks only groups some listener rule names; so
    ``{name}-warm-rule`` on ``warm_listener`` (the HTTP listener, at the main priority)
    names ``warm_groups`` (every group of the model, in track order: a color switch
    leaves it unchanged) from the start, depends on nothing but the groups, and matches
    no request (:data:`WARM_SOURCE_CIDR`)."""
    if preview is not None and not preview_source_cidrs:
        raise ValueError(
            f"{name}: a preview rule needs preview_source_cidrs (else the un-promoted color "
            "is reachable by anyone who reaches the ALB)"
        )
    preview_priority, main_priority = rule_priorities(slot)
    if warm_listener is not None and warm_groups:
        aws.lb.ListenerRule(
            f"{name}-warm-rule",
            aws.lb.ListenerRuleArgs(
                listener_arn=warm_listener.arn,
                priority=main_priority,
                actions=[_forward([WeightedTarget(g, 1) for g in warm_groups])],
                conditions=[
                    aws.lb.ListenerRuleConditionArgs(
                        source_ip=aws.lb.ListenerRuleConditionSourceIpArgs(
                            values=[WARM_SOURCE_CIDR]
                        )
                    )
                ],
                tags={**tags, "mlstack:role": "health-check-only"},
            ),
            opts=pulumi.ResourceOptions(parent=parent),
        )
    main_rule = aws.lb.ListenerRule(
        f"{name}-rule",
        aws.lb.ListenerRuleArgs(
            listener_arn=listener.arn,
            priority=main_priority,
            actions=[_forward(main)],
            conditions=_conditions(host, path),
            tags=dict(tags),
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=_ready(main)),
    )
    preview_rule = None
    if preview is not None:
        preview_rule = aws.lb.ListenerRule(
            f"{name}-preview-rule",
            aws.lb.ListenerRuleArgs(
                listener_arn=listener.arn,
                priority=preview_priority,
                actions=[_forward([preview])],
                conditions=_conditions(host, path, (preview_header, "true"), preview_source_cidrs),
                tags=dict(tags),
            ),
            opts=pulumi.ResourceOptions(parent=parent, depends_on=_ready([preview])),
        )
    return main_rule, preview_rule


@dataclass(frozen=True)
class NlbPort:
    """One NLB listener: the Service port name and number, TLS or TCP."""

    name: str
    port: int


def nlb(
    name: str,
    *,
    frontend: Frontend,
    ports: Sequence[NlbPort],
    active: Mapping[str, aws.lb.TargetGroup],
    certificate_arn: str | None,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
) -> tuple[aws.lb.LoadBalancer, list[aws.lb.Listener]]:
    """A model's own NLB: the frontend's NLB security group (listener ports in from the
    frontend's sources, out to the pods; one per stack, so a model adds no rules),
    cross-zone, deletion protection and access logs as the ALB; one listener per port
    (TLS with the certificate when one is set, else TCP) forwarding to
    ``active[port name]``."""
    child = pulumi.ResourceOptions(parent=parent)
    group = frontend.nlb_security_group
    assert group is not None, "LoadBalancerArgs.nlb_ports must list the NLB ports"
    balancer = aws.lb.LoadBalancer(
        name,
        aws.lb.LoadBalancerArgs(
            name_prefix="mln-",
            load_balancer_type="network",
            internal=frontend.scheme == "internal",
            ip_address_type="ipv4",
            subnets=frontend.subnet_ids,
            security_groups=[group.id],
            enable_cross_zone_load_balancing=True,
            enable_deletion_protection=frontend.deletion_protection,
            access_logs=_access_logs(frontend.access_logs_bucket, frontend.access_logs_prefix),
            tags={**tags, CLUSTER_TAG: frontend.cluster_name},
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(frontend.access_logs_ready)),
    )
    listeners = []
    for port in ports:
        tls = certificate_arn is not None
        listeners.append(
            aws.lb.Listener(
                f"{name}-{port.name}",
                aws.lb.ListenerArgs(
                    load_balancer_arn=balancer.arn,
                    port=port.port,
                    protocol="TLS" if tls else "TCP",
                    ssl_policy=frontend.ssl_policy if tls else None,
                    certificate_arn=certificate_arn,
                    alpn_policy="HTTP2Preferred" if tls and port.name == "grpc" else None,
                    default_actions=[
                        aws.lb.ListenerDefaultActionArgs(
                            type="forward", target_group_arn=active[port.name].arn
                        )
                    ],
                ),
                opts=child,
            )
        )
    return balancer, listeners
