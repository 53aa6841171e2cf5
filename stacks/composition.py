"""The one composition every stack deploys: ``build(cfg)``.

Dev and prod run this same function; they differ only in the values of their
``StackConfig``. Every AWS resource goes through one explicit AWS provider
(region from config, default tags on everything), and every Kubernetes object
through the cluster's provider, so nothing silently falls back to an ambient
default provider (``pulumi:disable-default-providers`` in ``Pulumi.yaml`` makes
that a hard error under the real engine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.cluster.eks import (
    SYSTEM_NODE_LABEL,
    EksCluster,
    EksClusterArgs,
    SystemNodeGroupArgs,
)
from components.compute.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.compute.gpu_node_pool import (
    POOL_LABEL,
    DisruptionBudget,
    GpuNodePool,
    GpuNodePoolArgs,
    Taint,
)
from components.compute.karpenter import Karpenter, KarpenterArgs
from components.compute.nvidia import GpuPoolNodes, NvidiaGpuAddons, NvidiaGpuAddonsArgs
from components.delivery.ci_identity import CiIdentity, CiIdentityArgs
from components.iam.scope import PermissionsBoundary, PermissionsBoundaryArgs, RoleScope, iam_path
from components.monitoring import (
    MONITORING_NAMESPACE,
    DcgmScrape,
    LoadBalancerRef,
    Monitoring,
    MonitoringArgs,
    ServiceTarget,
    Subscriber,
)
from components.monitoring.alert_rules import PoolRepair
from components.monitoring.operator_crds import (
    PrometheusOperatorCrds,
    PrometheusOperatorCrdsArgs,
)
from components.monitoring.prometheus_stack import prometheus_url
from components.monitoring.sizing import DEFAULT_ACTIVE_SERIES
from components.naming import dns_safe
from components.network.vpc import FlowLogSettings, Network, NetworkArgs
from components.storage.model_bucket import (
    AccessLogSettings,
    ModelArtifactBucket,
    ModelArtifactBucketArgs,
)
from stacks.config import StackConfig
from stacks.serving_layer import (
    Serving,
    alarm_target_groups,
    alarmed_load_balancers,
    build_serving,
    service_targets,
)

PROJECT = "mlstack"


def partition_of(region: str) -> str:
    """The ARN partition a region belongs to."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def default_tags(cfg: StackConfig, stack: str) -> dict[str, str]:
    """Tags on every AWS resource: project, stack, environment, owner, plus config tags."""
    return {
        **cfg.tags,
        "project": PROJECT,
        "stack": stack,
        "environment": cfg.environment,
        "owner": cfg.owner,
    }


def cluster_name(cfg: StackConfig, stack: str) -> str:
    return cfg.cluster.name or f"{PROJECT}-{stack}"


@dataclass(frozen=True)
class Platform:
    """What ``build`` created, for exports and for later composition steps."""

    aws_provider: aws.Provider
    network: Network
    cluster: EksCluster
    monitoring: Monitoring
    """Metrics, alerts, dashboards, alarms; ``monitoring.topic_arn`` is where alerts go."""
    artifacts: ModelArtifactBucket
    gpu_pools: dict[str, GpuNodePool] = field(default_factory=dict)
    """GPU node pools by pool name; ``pool.scheduling()`` places a workload on one."""
    karpenter: Karpenter | None = None
    cluster_autoscaler: ClusterAutoscaler | None = None
    nvidia: NvidiaGpuAddons | None = None
    ci_identity: CiIdentity | None = None
    """GitHub OIDC provider and the CI preview/deploy roles (None unless delivery.enabled)."""
    serving: Serving | None = None
    """KEDA, the AWS Load Balancer Controller and one InferenceService per model."""


def build(cfg: StackConfig, stack: str | None = None) -> Platform:
    """Declare every resource of one stack from its validated config."""
    stack = stack or pulumi.get_stack()
    name = cluster_name(cfg, stack)
    provider = aws.Provider(
        "aws",
        aws.ProviderArgs(
            region=cfg.region,
            default_tags=aws.ProviderDefaultTagsArgs(tags=default_tags(cfg, stack)),
        ),
    )
    aws_only = pulumi.ResourceOptions(providers={"aws": provider})
    # Every role below sits under the stack's IAM path with this boundary (components/iam).
    boundary = PermissionsBoundary(
        "iam-boundary",
        PermissionsBoundaryArgs(
            path=iam_path(PROJECT, stack),
            partition=partition_of(cfg.region),
            region=cfg.region,
            # Retained roles (the prod cluster's) keep their boundary (lifecycle rule).
            retain_on_delete=cfg.protect,
        ),
        opts=aws_only,
    )
    role_scope = boundary.scope

    net_cfg = cfg.network
    network = Network(
        "network",
        NetworkArgs(
            cluster_name=name,
            region=cfg.region,
            cidr=net_cfg.cidr,
            availability_zones=tuple(net_cfg.availability_zones),
            nat_gateways=net_cfg.nat_gateways,
            flow_logs=FlowLogSettings(
                enabled=net_cfg.flow_logs.enabled,
                retention_days=net_cfg.flow_logs.retention_days,
                traffic_type=net_cfg.flow_logs.traffic_type,
            ),
            existing_vpc_id=net_cfg.vpc_id if net_cfg.mode == "existing" else None,
            existing_public_subnet_ids=net_cfg.public_subnet_ids,
            existing_private_subnet_ids=net_cfg.private_subnet_ids,
            role_scope=role_scope,
            # A retained cluster keeps the subnets it runs in (lifecycle-retained-dependencies).
            retain_on_delete=cfg.protect,
        ),
        opts=aws_only,
    )

    cl = cfg.cluster
    ng = cl.system_node_group
    cluster = EksCluster(
        "cluster",
        EksClusterArgs(
            cluster_name=name,
            region=cfg.region,
            partition=partition_of(cfg.region),
            version=cl.version,
            existing=cl.mode == "existing",
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            endpoint_public_access=cl.endpoint_public_access,
            endpoint_private_access=cl.endpoint_private_access,
            public_access_cidrs=tuple(cl.public_access_cidrs),
            admin_role_arns=tuple(cl.admin_role_arns),
            log_types=tuple(cl.log_types),
            log_retention_days=cl.log_retention_days,
            addon_overrides=cl.addon_versions.model_dump(exclude_none=True),
            system_node_group=SystemNodeGroupArgs(
                instance_types=tuple(ng.instance_types),
                ami_type=ng.ami_type,
                min_size=ng.min_size,
                max_size=ng.max_size,
                desired_size=ng.desired_size,
                disk_size_gib=ng.disk_size_gib,
                # cluster-autoscaler (installed for managed GPU pools) discovers and sizes
                # every managed node group of the cluster, the system group included.
                autoscaled=any(p.provisioner == "managed" for p in cfg.gpu_pools),
            ),
            secrets_key_deletion_days=cl.secrets_key_deletion_days,
            protect=cfg.protect,
            role_scope=role_scope,
            api_client_sources=tuple(runner_api_sources(cfg)),
        ),
        opts=aws_only,
    )
    ci_identity = build_ci_identity(cfg, stack, cluster, role_scope, aws_only)
    # Every Kubernetes object goes through this provider: it waits for, and on destroy or
    # replacement goes before, the access of every identity that runs updates (admins, CI).
    cluster.connect(ci_identity.updater_access if ci_identity else [])
    # Every controller (and so every object it finalizes) waits for, and on destroy goes
    # before, the nodes, the pod runtime add-ons and every Kubernetes access entry.
    runtime = workload_prerequisites(cluster, ci_identity)
    gpu = build_gpu_pools(
        cfg, name, provider, network, cluster, role_scope=role_scope, runtime=runtime
    )
    artifacts = model_bucket(cfg, stack, opts=aws_only)
    # The Prometheus Operator CRDs before anything creates a ServiceMonitor/PrometheusRule
    # (KEDA's ServiceMonitors, the monitoring layer), upgraded with their chart.
    monitoring_crds = PrometheusOperatorCrds(
        "monitoring-crds",
        PrometheusOperatorCrdsArgs(depends_on=runtime),
        opts=pulumi.ResourceOptions(providers={"kubernetes": cluster.provider}),
    )
    # Serving before monitoring: the CloudWatch alarms reference the serving layer's
    # target groups and load balancers (Pulumi resources, known from the first deploy).
    prom_url = monitoring_prometheus_url()
    serving = build_serving(
        cfg,
        stack,
        cluster_name=name,
        partition=partition_of(cfg.region),
        cluster=cluster,
        vpc_id=network.vpc_id,
        vpc_cidr=cfg.network.cidr,
        public_subnet_ids=network.public_subnet_ids,
        private_subnet_ids=network.private_subnet_ids,
        target_security_group_id=cluster.cluster_security_group_id,
        gpu_pools=gpu.pools,
        artifacts=artifacts,
        tags=default_tags(cfg, stack),
        prometheus_url=prom_url,
        image_pullers=gpu_node_roles(gpu),
        wait_for=[*runtime, monitoring_crds.release],
        image_pushers=[ci_identity.deploy_role] if ci_identity else [],
        role_scope=role_scope,
        opts=pulumi.ResourceOptions(providers=[provider, cluster.provider]),
    )
    services = service_targets(cfg, alarm_target_groups(serving))
    monitoring = build_monitoring(
        cfg,
        name,
        provider,
        cluster,
        gpu,
        services=services,
        role_scope=role_scope,
        runtime=[*runtime, monitoring_crds.release],
        load_balancers=alarmed_load_balancers(serving),
    )
    assert monitoring.prometheus_url == prom_url, "monitoring namespace moved"
    return Platform(
        aws_provider=provider,
        network=network,
        cluster=cluster,
        monitoring=monitoring,
        artifacts=artifacts,
        gpu_pools=gpu.pools,
        karpenter=gpu.karpenter,
        cluster_autoscaler=gpu.cluster_autoscaler,
        nvidia=gpu.nvidia,
        ci_identity=ci_identity,
        serving=serving,
    )


def runner_api_sources(cfg: StackConfig) -> list[str]:
    """The CI runner's sources the cluster security group allows on 443 (network vpc)."""
    runner = cfg.delivery.runner
    if not cfg.delivery.enabled or runner.network != "vpc":
        return []
    return runner.api_sources()


def workload_prerequisites(
    cluster: EksCluster, ci_identity: CiIdentity | None
) -> list[pulumi.Resource]:
    """What every in-cluster controller depends on (lifecycle-destroy-order): the system
    nodes, CoreDNS, VPC CNI, kube-proxy, the Pod Identity agent and the CI roles' access
    entries (the Kubernetes provider itself already waits for the admin entries)."""
    return [*cluster.workload_ready, *(ci_identity.cluster_access if ci_identity else [])]


def build_ci_identity(
    cfg: StackConfig,
    stack: str,
    cluster: EksCluster,
    role_scope: RoleScope,
    opts: pulumi.ResourceOptions,
) -> CiIdentity | None:
    """Delivery: GitHub's OIDC provider and the CI preview and deploy roles."""
    delivery = cfg.delivery
    if not (delivery.enabled and delivery.github_repository):
        return None
    return CiIdentity(
        "ci",
        CiIdentityArgs(
            repository=delivery.github_repository,
            stack=stack,
            role_name_prefix=f"{PROJECT}-{stack}",
            role_scope=role_scope,
            default_branch=delivery.default_branch,
            environments=tuple(delivery.environments),
            project=PROJECT,
            partition=partition_of(cfg.region),
            existing_oidc_provider_arn=delivery.oidc_provider_arn,
            state_bucket=delivery.state_bucket,
            secrets_key_arn=delivery.secrets_key_arn,
            eks_cluster_name=cluster.cluster_name,
        ),
        opts=opts,
    )


def build_monitoring(
    cfg: StackConfig,
    prefix: str,
    provider: aws.Provider,
    cluster: EksCluster,
    gpu: GpuLayer,
    *,
    services: Sequence[ServiceTarget],
    role_scope: RoleScope | None = None,
    runtime: Sequence[pulumi.Resource] = (),
    load_balancers: Sequence[LoadBalancerRef] = (),
) -> Monitoring:
    """The monitoring layer. ``services``: one ServiceTarget per inference service (runtime
    metrics, SLO, ALB target group / load balancer suffixes) from the serving layer. The
    DCGM exporter is scraped where the GPU layer installs it."""
    mon = cfg.monitoring
    password = mon.grafana_admin_password
    label_key, label_value = SYSTEM_NODE_LABEL
    return Monitoring(
        "monitoring",
        MonitoringArgs(
            name_prefix=prefix,
            region=cfg.region,
            cluster_name=cluster.cluster_name,
            grafana_admin_password=(
                pulumi.Output.secret(password.get_secret_value()) if password else None
            ),
            services=tuple(services),
            load_balancers=tuple(load_balancers),
            subscribers=tuple(Subscriber(s.protocol, s.endpoint) for s in mon.subscribers),
            page_severities=tuple(mon.page_severities),
            retention=mon.retention,
            storage_gib=mon.storage_gib,
            replicas=mon.replicas,
            active_series=mon.active_series
            or DEFAULT_ACTIVE_SERIES["prod" if cfg.is_prod else "dev"],
            thresholds=mon.thresholds.to_thresholds(),
            alb_alarms=mon.alb_alarms.to_settings(),
            node_selector={label_key: label_value},
            gpu_pool_label=POOL_LABEL,
            gpu_pool_repairs=tuple(
                PoolRepair(
                    pool=p.name,
                    enabled=p.auto_repair.enabled,
                    provisioner=p.provisioner,
                    disabled_reason=p.auto_repair.disabled_reason,
                )
                for p in cfg.gpu_pools
            ),
            dcgm=DcgmScrape(namespace=gpu.nvidia.namespace) if gpu.nvidia else None,
            runbook_base_url=mon.runbook_base_url,
            chart_version=mon.chart_version,
            protect=cfg.protect,
            role_scope=role_scope,
        ),
        opts=pulumi.ResourceOptions(
            providers={
                "aws": provider,
                "kubernetes": cluster.provider,
                # Default providers are disabled: the generated Grafana password needs one.
                "random": random.Provider("random"),
            },
            # Prometheus and Alertmanager keep their data on EBS volumes: the monitoring
            # layer goes before the EBS CSI driver that deletes them.
            depends_on=[*runtime, *cluster.storage_driver],
        ),
    )


def monitoring_prometheus_url() -> str:
    """Where the monitoring layer's Prometheus answers (KEDA reads it); known before the
    layer is built."""
    return prometheus_url(MONITORING_NAMESPACE)


@dataclass(frozen=True)
class GpuLayer:
    pools: dict[str, GpuNodePool]
    karpenter: Karpenter | None
    cluster_autoscaler: ClusterAutoscaler | None
    nvidia: NvidiaGpuAddons | None


def build_gpu_pools(
    cfg: StackConfig,
    name: str,
    provider: aws.Provider,
    network: Network,
    cluster: EksCluster,
    *,
    role_scope: RoleScope | None = None,
    runtime: Sequence[pulumi.Resource] = (),
) -> GpuLayer:
    """GPU node pools and what they need: Karpenter (if a pool uses it), cluster-autoscaler
    (if a pool is a managed node group), the NVIDIA device plugin and DCGM exporter."""
    if not cfg.gpu_pools:
        return GpuLayer({}, None, None, None)
    both = pulumi.ResourceOptions(providers=[provider, cluster.provider])
    partition = partition_of(cfg.region)
    system = list(runtime)
    on_system: dict[str, str] = dict([SYSTEM_NODE_LABEL]) if cluster.system_node_group else {}
    provisioners = {p.provisioner for p in cfg.gpu_pools}

    karpenter = None
    if "karpenter" in provisioners:
        karpenter = Karpenter(
            "karpenter",
            KarpenterArgs(
                cluster_name=name,
                region=cfg.region,
                partition=partition,
                cluster_security_group_id=cluster.cluster_security_group_id,
                replicas=2 if cfg.cluster.system_node_group.min_size >= 2 else 1,
                # One gate for every Karpenter pool (the config rule keeps them equal).
                node_repair=any(
                    p.auto_repair.enabled for p in cfg.gpu_pools if p.provisioner == "karpenter"
                ),
                node_selector=on_system,
                depends_on=system,
                role_scope=role_scope,
            ),
            opts=both,
        )
    autoscaler = None
    if "managed" in provisioners:
        autoscaler = ClusterAutoscaler(
            "cluster-autoscaler",
            ClusterAutoscalerArgs(
                cluster_name=name,
                region=cfg.region,
                partition=partition,
                kubernetes_version=cfg.cluster.version,
                node_selector=on_system,
                depends_on=system,
                role_scope=role_scope,
            ),
            opts=both,
        )

    pools: dict[str, GpuNodePool] = {}
    for pool in cfg.gpu_pools:
        disruption = pool.disruption
        pools[pool.name] = GpuNodePool(
            f"gpu-{pool.name}",
            GpuNodePoolArgs(
                pool_name=pool.name,
                cluster_name=name,
                role_scope=role_scope,
                kubernetes_version=cfg.cluster.version,
                partition=partition,
                provisioner=pool.provisioner,
                instance_types=pool.allowed_instance_types(),
                capacity_types=tuple(pool.capacity_types),
                capacity_reservation_ids=tuple(pool.capacity_reservation_ids),
                architecture=pool.ami.architecture,
                ami_family=pool.ami.family,
                ami_release=pool.ami.release,
                root_volume_size_gib=pool.root_volume.size_gib,
                root_volume_iops=pool.root_volume.iops,
                root_volume_throughput_mibps=pool.root_volume.throughput_mibps,
                instance_store_raid0=pool.instance_store_raid0,
                # The node-shared model cache's disk is out of pods' allocatable.
                reserved_ephemeral_gib=pool.model_cache.size_gib
                if pool.model_cache.scope == "node"
                else 0,
                min_nodes=pool.min_nodes,
                max_nodes=pool.max_nodes,
                max_gpus=pool.max_gpus,
                taints=tuple(Taint(t.key, t.value, t.effect) for t in pool.taints),
                labels=dict(pool.labels),
                consolidation_policy=disruption.consolidation_policy,
                consolidate_after=disruption.consolidate_after,
                expire_after=disruption.expire_after,
                budgets=tuple(
                    DisruptionBudget(b.nodes, b.schedule, b.duration, tuple(b.reasons or ()))
                    for b in disruption.budgets
                ),
                update_max_unavailable=pool.update_max_unavailable,
                auto_repair=pool.auto_repair.enabled,
                node_role_name=karpenter.node_role_name if karpenter else None,
                subnet_ids=network.private_subnet_ids,
                depends_on=karpenter.ready
                if pool.provisioner == "karpenter" and karpenter
                else system,
            ),
            opts=both,
        )
    nvidia = NvidiaGpuAddons(
        "nvidia",
        NvidiaGpuAddonsArgs(
            pools=[GpuPoolNodes(p.pool_name, p.args.ami_family, p.taints) for p in pools.values()],
            depends_on=system,
        ),
        opts=both,
    )
    return GpuLayer(pools, karpenter, autoscaler, nvidia)


def gpu_node_roles(gpu: GpuLayer) -> list[pulumi.Output[str]]:
    """The node roles of every GPU pool (Karpenter's, each managed pool's own)."""
    roles = [gpu.karpenter.node_role_name] if gpu.karpenter else []
    roles += [p.node_role_name for p in gpu.pools.values() if p.node_role_name is not None]
    return roles


def model_bucket(
    cfg: StackConfig, stack: str, opts: pulumi.ResourceOptions | None = None
) -> ModelArtifactBucket:
    """The model-artifact bucket of one stack (``mlstack:artifacts``)."""
    art = cfg.artifacts
    logs = art.access_logging
    return ModelArtifactBucket(
        "artifacts",
        ModelArtifactBucketArgs(
            region=cfg.region,
            partition=partition_of(cfg.region),
            bucket_name=art.bucket_name,
            bucket_prefix=f"{PROJECT}-{dns_safe(stack)}-"[:27] + "models-",
            key_alias=f"{PROJECT}-{dns_safe(stack)}-models",
            noncurrent_version_expiration_days=art.noncurrent_version_expiration_days,
            abort_incomplete_multipart_upload_days=art.abort_incomplete_multipart_upload_days,
            key_deletion_window_days=art.key_deletion_window_days,
            access_logs=AccessLogSettings(
                enabled=logs.enabled,
                target_bucket=logs.target_bucket,
                target_prefix=logs.target_prefix,
                retention_days=logs.retention_days,
            ),
            force_destroy=art.force_destroy,
            protect=cfg.protect,
        ),
        opts=opts,
    )


def export_outputs(platform: Platform) -> None:
    """Stack outputs: cluster name and endpoint, VPC id, kubeconfig (secret), model bucket,
    inference endpoints."""
    pulumi.export("clusterName", platform.cluster.cluster_name)
    pulumi.export("clusterEndpoint", platform.cluster.endpoint)
    pulumi.export("oidcProviderArn", platform.cluster.oidc_provider_arn)
    pulumi.export("vpcId", platform.network.vpc_id)
    if platform.cluster.ci_runner_security_group_id is not None:
        # Launch the stack's self-hosted CI runners with this group (docs/operations.md).
        pulumi.export("ciRunnerSecurityGroupId", platform.cluster.ci_runner_security_group_id)
    pulumi.export("privateSubnetIds", platform.network.private_subnet_ids)
    pulumi.export("kubeconfig", pulumi.Output.secret(platform.cluster.kubeconfig))
    pulumi.export("alertTopicArn", platform.monitoring.topic_arn)
    pulumi.export("alarmNames", platform.monitoring.alarm_names)
    pulumi.export("prometheusUrl", platform.monitoring.prometheus_url)
    pulumi.export("modelBucketName", platform.artifacts.bucket_name)
    if platform.serving is not None:
        pulumi.export("inferenceEndpoints", platform.serving.endpoints)
    if platform.ci_identity is not None:
        pulumi.export("ciPreviewRoleArn", platform.ci_identity.preview_role_arn)
        pulumi.export("ciDriftRoleArn", platform.ci_identity.drift_role_arn)
        pulumi.export("ciDeployRoleArn", platform.ci_identity.deploy_role_arn)


def program(cfg: StackConfig, stack: str | None = None) -> Platform:
    """The whole Pulumi program for one stack: build, then export. Used by
    ``stacks/__main__.py`` under the engine and by ``mlstack.synth`` offline."""
    platform = build(cfg, stack)
    export_outputs(platform)
    return platform
