"""``EksCluster``: the EKS control plane, its identity plumbing and the system nodes.

Create mode builds: a KMS key (rotating) for envelope encryption of Secrets, the
control-plane log group and IAM role, the cluster in API authentication mode,
access entries for admin roles, the IAM OIDC provider (IRSA), the managed add-ons
(vpc-cni, kube-proxy, Pod Identity agent, coredns, aws-ebs-csi-driver) at pinned
versions, and a system managed node group (on-demand CPU, IMDSv2 required with a
hop limit of 1, encrypted gp3 root disk) for controllers.

Existing mode looks the cluster and its OIDC provider up by name and creates nothing.

Both modes expose a ``pulumi_kubernetes.Provider`` built from the cluster's
outputs with exec authentication (``aws eks get-token``), so no static token
ever lands in state; ``connect(updater_access)`` creates it once the access of every
identity that runs updates exists (the CI deploy role's is created outside).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.iam import actions, documents
from components.iam.node_role import node_role
from components.iam.scope import RoleScope, scoped_role
from components.validation import require_valid
from components.versions import EKS_ADDONS, AddonPins

TYPE_TOKEN = "mlstack:cluster:EksCluster"
CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
SYSTEM_NODE_LABEL = ("mlstack.io/node-role", "system")
"""Label on system nodes; controllers use it as their node selector."""


NODE_MONITORING_AGENT_CONFIGURATION = json.dumps(
    {"dcgmAgent": {"tolerations": [{"operator": "Exists"}]}}, sort_keys=True
)
"""The node monitoring agent's add-on configuration. Its node agent tolerates every taint by
default; its DCGM host engine (the GPU health source behind ``AcceleratedHardwareReady``)
tolerates none (chart values ``dcgmAgent.tolerations: []``), so without this it never runs
on tainted GPU nodes and no GPU fault reaches node auto repair. No IAM: the agent only
patches node status and writes events through the Kubernetes API."""


@dataclass(frozen=True)
class SystemNodeGroupArgs:
    """The controllers' node group. Defaults: 2-4 m6i.large, AL2023, 50 GiB gp3."""

    instance_types: Sequence[str] = ("m6i.large",)
    ami_type: str = "AL2023_x86_64_STANDARD"
    min_size: int = 2
    max_size: int = 4
    desired_size: int = 2
    disk_size_gib: int = 50
    autoscaled: bool = False
    """True when cluster-autoscaler runs (it discovers every managed node group of the
    cluster by the tags EKS puts on their Auto Scaling groups) and so owns the live size:
    only then are changes of ``desired_size`` ignored after creation."""


@dataclass(frozen=True)
class EksClusterArgs:
    """Inputs of :class:`EksCluster`.

    ``existing=True`` looks up ``cluster_name`` instead of creating it; every other
    field but ``region`` and ``partition`` is then ignored.
    """

    cluster_name: str
    region: str
    version: str = "1.33"
    partition: str = "aws"
    existing: bool = False
    vpc_id: pulumi.Input[str] | None = None
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    endpoint_public_access: bool = True
    endpoint_private_access: bool = True
    public_access_cidrs: Sequence[str] = ("0.0.0.0/0",)
    admin_role_arns: Sequence[str] = ()
    log_types: Sequence[str] = ("api", "audit", "authenticator")
    log_retention_days: int = 90
    addon_overrides: dict[str, str] = field(default_factory=dict)
    system_node_group: SystemNodeGroupArgs = field(default_factory=SystemNodeGroupArgs)
    secrets_key_deletion_days: int = 30
    protect: bool = False
    role_scope: RoleScope | None = None
    """IAM path and permissions boundary of the roles created here (None: plain roles)."""
    api_client_sources: Sequence[str] = ()
    """Who calls the API from inside the VPC (the CI runner): security group ids (``sg-``),
    prefix list ids (``pl-``) or CIDRs, each allowed on 443 by the EKS cluster security
    group, which the private endpoint's ENIs carry and which admits only itself."""

    def addon_pins(self) -> AddonPins:
        """The pinned add-on versions for ``version``, with ``addon_overrides`` applied."""
        base = EKS_ADDONS[self.version]
        return AddonPins(**{**base.__dict__, **self.addon_overrides})

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.existing:
            return found
        if self.version not in EKS_ADDONS:
            found.append(f"version: {self.version!r}: allowed {sorted(EKS_ADDONS)}")
        unknown = set(self.addon_overrides) - set(AddonPins.__dataclass_fields__)
        if unknown:
            found.append(
                f"addon_overrides: {sorted(unknown)}: allowed "
                f"{sorted(AddonPins.__dataclass_fields__)}"
            )
        if self.subnet_ids is None or self.vpc_id is None:
            found.append("subnet_ids/vpc_id: None: required to create a cluster")
        ng = self.system_node_group
        if not ng.min_size <= ng.desired_size <= ng.max_size:
            found.append(
                f"system_node_group: min/desired/max {ng.min_size}/{ng.desired_size}/"
                f"{ng.max_size}: need min <= desired <= max"
            )
        if not (self.endpoint_public_access or self.endpoint_private_access):
            found.append("endpoint access: both off: enable public or private access")
        bad = [s for s in self.api_client_sources if _api_source_kind(s) is None]
        if bad:
            found.append(f"api_client_sources: {bad}: allowed sg-..., pl-... or a CIDR")
        return found


def _api_source_kind(source: str) -> str | None:
    """``security_group``, ``prefix_list``, ``ipv4``/``ipv6`` (a CIDR), or None."""
    import ipaddress

    if re.fullmatch(r"sg-[0-9a-f]{8,17}", source):
        return "security_group"
    if re.fullmatch(r"pl-[0-9a-f]{8,17}", source):
        return "prefix_list"
    try:
        return f"ipv{ipaddress.ip_network(source, strict=True).version}"
    except ValueError:
        return None


def api_ingress_args(
    security_group_id: pulumi.Input[str],
    source: str | pulumi.Output[str],
    description: str = "Kubernetes API from the CI runner (mlstack:delivery.runner)",
) -> aws.vpc.SecurityGroupIngressRuleArgs:
    """HTTPS (443/tcp) into ``security_group_id`` from one API client source: a declared
    ``sg-``/``pl-``/CIDR string, or the id of a group the stack creates (an Output)."""
    kind = _api_source_kind(source) if isinstance(source, str) else "security_group"
    return aws.vpc.SecurityGroupIngressRuleArgs(
        security_group_id=security_group_id,
        ip_protocol="tcp",
        from_port=443,
        to_port=443,
        description=description,
        referenced_security_group_id=source if kind == "security_group" else None,
        prefix_list_id=source if kind == "prefix_list" else None,
        cidr_ipv4=source if kind == "ipv4" else None,
        cidr_ipv6=source if kind == "ipv6" else None,
    )


def kubeconfig(name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with ``aws eks get-token`` (no static token)."""
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "users": [
            {
                "name": name,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": [
                            "--region",
                            region,
                            "eks",
                            "get-token",
                            "--cluster-name",
                            name,
                            "--output",
                            "json",
                        ],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
    }
    return json.dumps(config, sort_keys=True)


class EksCluster(pulumi.ComponentResource):
    """An EKS cluster (created or looked up) and a Kubernetes provider for it."""

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    certificate_authority: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    system_node_group: aws.eks.NodeGroup | None
    workload_ready: list[pulumi.Resource]
    """What a controller's pods need until their finalizers are done: the system nodes and
    the add-ons pods run on (CoreDNS, VPC CNI, kube-proxy, Pod Identity agent). Depend on
    these: the controller is created after and destroyed before them."""
    storage_driver: list[pulumi.Resource]
    """The EBS CSI driver add-on and its grant: whatever owns PersistentVolumeClaims
    depends on it, so the volumes are released before the driver goes."""
    """The system node group (None in existing mode): depend on it to wait for nodes."""

    def __init__(
        self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        require_valid("EksCluster", name, args.problems())
        self._name = name
        self._args = args
        self.system_node_group = None
        self.workload_ready = []
        self.storage_driver = []
        self._access: list[pulumi.Resource] = []
        if args.existing:
            self._look_up()
        else:
            self._create()
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(self.cluster_name, self.endpoint, self.certificate_authority).apply(
                lambda v: kubeconfig(v[0], v[1], v[2], args.region)
            )
        )
        # The CI runner inside the VPC reaches the private endpoint only through the EKS
        # cluster security group; the provider waits for (and outlives) these rules.
        self.ci_runner_security_group_id: pulumi.Output[str] | None = None
        if args.vpc_id is not None and not args.existing:
            self._ci_runner_group(args.vpc_id)
        for index, source in enumerate(args.api_client_sources):
            self._access.append(
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-api-client-{index}",
                    api_ingress_args(self.cluster_security_group_id, source),
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
        self._k8s_provider: k8s.Provider | None = None
        self.register_outputs(
            {
                "clusterName": self.cluster_name,
                "endpoint": self.endpoint,
                "oidcProviderArn": self.oidc_provider_arn,
            }
        )

    def _ci_runner_group(self, vpc_id: pulumi.Input[str]) -> None:
        """The security group the stack's self-hosted CI runners are launched with: created
        in the stack's own VPC (a group made before the VPC could never be in it, and the
        cluster security group can only reference groups of its VPC or a peered one),
        allowed on 443 into the cluster security group, HTTPS out. Every stack has it, so
        dev and prod keep one shape; a hosted runner simply never uses it."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        group = aws.ec2.SecurityGroup(
            f"{name}-ci-runner",
            aws.ec2.SecurityGroupArgs(
                vpc_id=vpc_id,
                description=f"CI runners of {self._args.cluster_name}: the API endpoint on 443",
                tags={"Name": f"{self._args.cluster_name}-ci-runner"},
            ),
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-ci-runner-https-out",
            aws.vpc.SecurityGroupEgressRuleArgs(
                security_group_id=group.id,
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                cidr_ipv4="0.0.0.0/0",
                description="HTTPS: GitHub, AWS APIs, package registries, the API endpoint",
            ),
            opts=child,
        )
        self._access.append(
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-api-ci-runner",
                api_ingress_args(
                    self.cluster_security_group_id,
                    group.id,
                    "Kubernetes API from the stack's CI runners (ci-runner group)",
                ),
                opts=child,
            )
        )
        self.ci_runner_security_group_id = group.id

    def connect(self, updater_access: Sequence[pulumi.Resource] = ()) -> k8s.Provider:
        """Create the Kubernetes provider every object of the stack uses, once.

        With bootstrapClusterCreatorAdminPermissions off, whoever runs an update reaches the
        API only through an access entry and its policy association: the admins' (created
        here) and those in ``updater_access`` (the CI deploy role's, created outside). The
        provider depends on all of them, so every Kubernetes object is created after and
        deleted (or replaced) before the access of the identity that runs the update."""
        if self._k8s_provider is not None:
            raise RuntimeError(f"EksCluster {self._name}: connect() was already called")
        self._k8s_provider = k8s.Provider(
            f"{self._name}-k8s",
            k8s.ProviderArgs(kubeconfig=self.kubeconfig, enable_server_side_apply=True),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self._access, *updater_access]),
        )
        return self._k8s_provider

    @property
    def provider(self) -> k8s.Provider:
        """The Kubernetes provider (created by :meth:`connect`)."""
        if self._k8s_provider is None:
            raise RuntimeError(
                f"EksCluster {self._name}: call connect(updater_access) before using its "
                "provider (it must depend on the access of every identity that runs updates)"
            )
        return self._k8s_provider

    def _policy_arn(self, managed: str) -> str:
        return f"arn:{self._args.partition}:iam::aws:policy/{managed}"

    # ------------------------------------------------------------------ existing cluster

    def _look_up(self) -> None:
        args = self._args
        invoke = pulumi.InvokeOutputOptions(parent=self)
        found = aws.eks.get_cluster_output(name=args.cluster_name, opts=invoke)
        self.cluster_name = found.name
        self.endpoint = found.endpoint
        self.certificate_authority = found.certificate_authorities.apply(lambda c: c[0].data)
        self.oidc_issuer_url = found.identities.apply(lambda i: i[0].oidcs[0].issuer)
        self.cluster_security_group_id = found.vpc_config.cluster_security_group_id
        provider = aws.iam.get_open_id_connect_provider_output(
            url=self.oidc_issuer_url, opts=invoke
        )
        self.oidc_provider_arn = provider.arn

    # ------------------------------------------------------------------ new cluster

    def _create(self) -> None:
        name, args = self._name, self._args
        child = pulumi.ResourceOptions(parent=self)
        stateful = pulumi.ResourceOptions(
            parent=self, protect=args.protect, retain_on_delete=args.protect
        )
        # What a retained cluster depends on is retained with it (not protected: it holds
        # no state, and a retained-but-deleted role would leave the cluster unusable).
        kept = pulumi.ResourceOptions(parent=self, retain_on_delete=args.protect)
        # Fixed physical names: a replacing change deletes the old resource first, or the
        # create fails with "already exists".
        fixed_name = pulumi.ResourceOptions(parent=self, delete_before_replace=True)

        secrets_key = aws.kms.Key(
            f"{name}-secrets-key",
            aws.kms.KeyArgs(
                description=f"EKS secrets envelope encryption for {args.cluster_name}",
                enable_key_rotation=True,
                deletion_window_in_days=args.secrets_key_deletion_days,
            ),
            opts=stateful,
        )
        aws.kms.Alias(
            f"{name}-secrets-key-alias",
            aws.kms.AliasArgs(
                name=f"alias/{args.cluster_name}-eks-secrets", target_key_id=secrets_key.key_id
            ),
            opts=fixed_name,
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            aws.cloudwatch.LogGroupArgs(
                name=f"/aws/eks/{args.cluster_name}/cluster",
                retention_in_days=args.log_retention_days,
            ),
            # EKS writes to exactly this name; kept with the cluster it logs, and protected:
            # a retained fixed name cannot be replaced (the create meets the kept original),
            # so the engine must refuse the replacement up front
            # (lifecycle-fixed-name-replace).
            opts=pulumi.ResourceOptions.merge(stateful, fixed_name),
        )
        role = scoped_role(
            f"{name}-cluster-role",
            assume_role_policy=documents.to_json(documents.service_trust("eks.amazonaws.com")),
            description=f"EKS control plane of {args.cluster_name}",
            scope=args.role_scope,
            # Retained with the cluster it runs (lifecycle-retained-dependencies).
            opts=kept,
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-cluster-policy",
            aws.iam.RolePolicyAttachmentArgs(
                role=role.name, policy_arn=self._policy_arn(actions.EKS_CLUSTER_POLICY)
            ),
            opts=kept,
        )

        cluster = aws.eks.Cluster(
            f"{name}-eks",
            aws.eks.ClusterArgs(
                name=args.cluster_name,
                version=args.version,
                role_arn=role.arn,
                vpc_config=aws.eks.ClusterVpcConfigArgs(
                    subnet_ids=args.subnet_ids,  # type: ignore[arg-type]
                    endpoint_public_access=args.endpoint_public_access,
                    endpoint_private_access=args.endpoint_private_access,
                    public_access_cidrs=list(args.public_access_cidrs)
                    if args.endpoint_public_access
                    else None,
                ),
                access_config=aws.eks.ClusterAccessConfigArgs(
                    authentication_mode="API",
                    bootstrap_cluster_creator_admin_permissions=False,
                ),
                encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                    provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=secrets_key.arn),
                    resources=["secrets"],
                ),
                enabled_cluster_log_types=list(args.log_types),
                bootstrap_self_managed_addons=False,
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.protect,
                retain_on_delete=args.protect,
                delete_before_replace=True,
                depends_on=[log_group, attachment],
            ),
        )
        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.certificate_authority = cluster.certificate_authority.apply(lambda ca: ca.data or "")
        self.oidc_issuer_url = cluster.identities.apply(
            lambda ids: (ids[0].oidcs or [])[0].issuer or ""
        )
        self.cluster_security_group_id = cluster.vpc_config.apply(
            lambda vpc: vpc.cluster_security_group_id or ""
        )

        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            aws.iam.OpenIdConnectProviderArgs(
                url=self.oidc_issuer_url, client_id_lists=["sts.amazonaws.com"]
            ),
            opts=child,
        )
        self.oidc_provider_arn = oidc.arn

        for index, admin_arn in enumerate(args.admin_role_arns):
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{index}",
                aws.eks.AccessEntryArgs(
                    cluster_name=cluster.name, principal_arn=admin_arn, type="STANDARD"
                ),
                opts=child,
            )
            association = aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{index}-policy",
                aws.eks.AccessPolicyAssociationArgs(
                    cluster_name=cluster.name,
                    principal_arn=entry.principal_arn,
                    policy_arn=(
                        f"arn:{args.partition}:eks::aws:cluster-access-policy/"
                        f"{CLUSTER_ADMIN_POLICY}"
                    ),
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                ),
                opts=child,
            )
            self._access.append(association)

        pins = args.addon_pins()
        early_addons = self._node_prerequisite_addons(cluster, oidc, pins)
        node_group = self._system_node_group(cluster, early_addons)
        self.system_node_group = node_group
        coredns = self._node_dependent_addons(cluster, node_group, early_addons, pins)
        self.workload_ready = [node_group, coredns, *early_addons]

    def _addon(
        self,
        role: str,
        cluster: aws.eks.Cluster,
        addon_name: str,
        version: str,
        depends_on: Sequence[pulumi.Resource] = (),
        **extra: Any,
    ) -> aws.eks.Addon:
        return aws.eks.Addon(
            f"{self._name}-addon-{role}",
            aws.eks.AddonArgs(
                cluster_name=cluster.name,
                addon_name=addon_name,
                addon_version=version,
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                **extra,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
        )

    def _node_prerequisite_addons(
        self, cluster: aws.eks.Cluster, oidc: aws.iam.OpenIdConnectProvider, pins: AddonPins
    ) -> list[aws.eks.Addon]:
        """Add-ons nodes need to become Ready: CNI (via IRSA), kube-proxy, Pod Identity."""
        name = self._name
        child = pulumi.ResourceOptions(parent=self)
        cni_role = scoped_role(
            f"{name}-vpc-cni-role",
            assume_role_policy=pulumi.Output.all(oidc.arn, oidc.url).apply(
                lambda v: documents.to_json(
                    documents.irsa_trust(v[0], v[1], "kube-system", "aws-node")
                )
            ),
            description="vpc-cni (aws-node) through IRSA",
            scope=self._args.role_scope,
            opts=child,
        )
        cni_policy = aws.iam.RolePolicyAttachment(
            f"{name}-vpc-cni-policy",
            aws.iam.RolePolicyAttachmentArgs(
                role=cni_role.name, policy_arn=self._policy_arn(actions.EKS_CNI_POLICY)
            ),
            opts=child,
        )
        return [
            self._addon(
                "vpc-cni",
                cluster,
                "vpc-cni",
                pins.vpc_cni,
                depends_on=[cni_policy],
                service_account_role_arn=cni_role.arn,
            ),
            self._addon("kube-proxy", cluster, "kube-proxy", pins.kube_proxy),
            self._addon(
                "pod-identity-agent", cluster, "eks-pod-identity-agent", pins.eks_pod_identity_agent
            ),
        ]

    def _system_node_group(
        self, cluster: aws.eks.Cluster, addons: Sequence[aws.eks.Addon]
    ) -> aws.eks.NodeGroup:
        name, args = self._name, self._args
        ng = args.system_node_group
        child = pulumi.ResourceOptions(parent=self)
        nodes = node_role(
            f"{name}-system-node",
            description=f"System nodes of {args.cluster_name}",
            partition=args.partition,
            parent=self,
            scope=args.role_scope,
        )
        node_role_resource, attachments = nodes.role, list(nodes.attachments)
        template = aws.ec2.LaunchTemplate(
            f"{name}-system-lt",
            aws.ec2.LaunchTemplateArgs(
                description=f"System nodes of {args.cluster_name}: IMDSv2, encrypted gp3",
                update_default_version=True,
                metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                    http_endpoint="enabled",
                    http_tokens="required",
                    # 1 hop: pods cannot reach the node's credentials; they use IRSA/Pod Identity.
                    http_put_response_hop_limit=1,
                ),
                block_device_mappings=[
                    aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                        device_name="/dev/xvda",
                        ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                            volume_size=ng.disk_size_gib,
                            volume_type="gp3",
                            encrypted="true",
                            delete_on_termination="true",
                        ),
                    )
                ],
                tag_specifications=[
                    aws.ec2.LaunchTemplateTagSpecificationArgs(
                        resource_type="instance",
                        tags={"Name": f"{args.cluster_name}-system"},
                    )
                ],
            ),
            opts=child,
        )
        label_key, label_value = SYSTEM_NODE_LABEL
        return aws.eks.NodeGroup(
            f"{name}-system-nodes",
            aws.eks.NodeGroupArgs(
                cluster_name=cluster.name,
                # Follow the control plane: bumping cluster.version rolls the system nodes.
                version=cluster.version,
                node_role_arn=node_role_resource.arn,
                subnet_ids=args.subnet_ids,  # type: ignore[arg-type]
                capacity_type="ON_DEMAND",
                ami_type=ng.ami_type,
                instance_types=list(ng.instance_types),
                scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                    min_size=ng.min_size, max_size=ng.max_size, desired_size=ng.desired_size
                ),
                update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
                launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                    id=template.id, version=template.latest_version.apply(str)
                ),
                labels={label_key: label_value},
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*attachments, *addons],
                # Only an autoscaler that owns the live size makes desiredSize drift on
                # purpose; otherwise a config change of the size must reach EKS.
                ignore_changes=["scalingConfig.desiredSize"] if ng.autoscaled else [],
            ),
        )

    def _node_dependent_addons(
        self,
        cluster: aws.eks.Cluster,
        nodes: aws.eks.NodeGroup,
        early_addons: Sequence[aws.eks.Addon],
        pins: AddonPins,
    ) -> aws.eks.Addon:
        """Add-ons that run as Deployments and so need nodes: coredns, EBS CSI driver.
        Returns coredns."""
        name = self._name
        child = pulumi.ResourceOptions(parent=self)
        coredns = self._addon("coredns", cluster, "coredns", pins.coredns, depends_on=[nodes])
        csi_role = scoped_role(
            f"{name}-ebs-csi-role",
            assume_role_policy=documents.to_json(
                documents.pod_identity_trust(
                    self._args.cluster_name, "kube-system", EBS_CSI_SERVICE_ACCOUNT
                )
            ),
            description="aws-ebs-csi-driver controller through Pod Identity",
            scope=self._args.role_scope,
            opts=child,
        )
        csi_policy = aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi-policy",
            aws.iam.RolePolicyAttachmentArgs(
                role=csi_role.name, policy_arn=self._policy_arn(actions.EBS_CSI_DRIVER_POLICY)
            ),
            opts=child,
        )
        ebs_csi = self._addon(
            "ebs-csi",
            cluster,
            "aws-ebs-csi-driver",
            pins.aws_ebs_csi_driver,
            # Its controller deletes volumes until the last PVC is gone: it needs DNS, Pod
            # Identity credentials and its policy until then.
            depends_on=[nodes, coredns, *early_addons, csi_policy],
            pod_identity_associations=[
                aws.eks.AddonPodIdentityAssociationArgs(
                    role_arn=csi_role.arn, service_account=EBS_CSI_SERVICE_ACCOUNT
                )
            ],
        )
        self.storage_driver = [ebs_csi, csi_policy]
        self.node_monitoring_agent = self._addon(
            "node-monitoring-agent",
            cluster,
            "eks-node-monitoring-agent",
            pins.eks_node_monitoring_agent,
            depends_on=[nodes, *early_addons],
            configuration_values=NODE_MONITORING_AGENT_CONFIGURATION,
        )
        return coredns
