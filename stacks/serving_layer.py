"""The serving layer of the composition: config -> InferenceNamespace, Keda, the load
balancers' log bucket, LoadBalancer (controller + shared ALB) and one InferenceService
per ``mlstack:models`` entry (its target groups, listener rules, TargetGroupBindings, NLB).

``stacks.composition.build`` calls :func:`service_targets` (plain values, for the
monitoring layer) and, once the cluster, GPU pools, artifact bucket and monitoring
exist, :func:`build_serving`. Nothing here reads ``pulumi.Config``; everything comes
from the validated :class:`~stacks.config.StackConfig`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pulumi
import pulumi_aws as aws

from components.compute.gpu_node_pool import POOL_LABEL
from components.iam.scope import RoleScope
from components.monitoring import AlbTargetGroupRef, LoadBalancerRef, ServiceTarget
from components.monitoring import metrics as monitoring_metrics
from components.naming import dns_safe
from components.serving import runtimes
from components.serving.identity import WorkloadIdentity
from components.serving.image_cache import ImageCache, ImageCacheArgs
from components.serving.inference_service import (
    HOLD_READY_FILE,
    MODEL_CACHE_DIR,
    ArtifactReader,
    InferenceService,
    InferenceServiceArgs,
    Scheduling,
    TrackVersion,
    WakeSchedule,
)
from components.serving.keda import Keda, KedaArgs
from components.serving.load_balancer import LoadBalancer, LoadBalancerArgs, account_of
from components.serving.loader_repository import ModelLoaderRepository, ModelLoaderRepositoryArgs
from components.serving.model_cache import NodeCacheMount, NodeModelCache, NodeModelCacheArgs
from components.serving.model_cache_admission import ModelCacheAdmission, ModelCacheAdmissionArgs
from components.serving.namespace import InferenceNamespace, InferenceNamespaceArgs
from components.serving.rollout import workload_name
from components.storage import layout
from components.storage.lb_log_bucket import LoadBalancerLogBucket, LoadBalancerLogBucketArgs
from components.versions import (
    AWS_LOAD_BALANCER_CONTROLLER_CHART,
    KEDA_CHART,
    model_loader_image,
)
from stacks.config import StackConfig
from stacks.schema.models import ModelConfig, pdb_min_available
from stacks.schema.serving import rule_slots

SLOW_START_SECONDS: dict[str, int] = {"vllm": 60}
"""Target-group slow start per runtime: a new vLLM replica's share of requests ramps up
over a minute (its first requests compile CUDA graphs and fill the prefix cache) instead
of a round-robin burst. Off for Triton (fixed-size batches) and custom runtimes."""


def deployed_models(cfg: StackConfig) -> Sequence[ModelConfig]:
    """The models the stack deploys: none while ``serving.deployModels`` is false (the
    first deploy of a new stack, before any artifact is pushed)."""
    return cfg.models if cfg.serving.deploy_models else ()


class GpuPool(Protocol):
    """What the serving layer needs of a GPU pool (``GpuNodePool``)."""

    @property
    def pool_name(self) -> str: ...

    def scheduling(self) -> Scheduling: ...


class ClusterInfo(Protocol):
    """What the serving layer needs of the cluster (``EksCluster``)."""

    @property
    def cluster_name(self) -> pulumi.Output[str]: ...

    @property
    def oidc_provider_arn(self) -> pulumi.Output[str]: ...

    @property
    def oidc_issuer_url(self) -> pulumi.Output[str]: ...


@dataclass(frozen=True)
class Serving:
    """What the serving layer created."""

    namespace: InferenceNamespace
    keda: Keda
    load_balancer: LoadBalancer
    loader_repository: ModelLoaderRepository
    services: dict[str, InferenceService] = field(default_factory=dict)
    endpoints: dict[str, dict[str, pulumi.Input[str] | None]] = field(default_factory=dict)
    """Per model: its in-cluster URL, exposure and, exposed, DNS name (+ ALB host, path)."""
    image_cache: ImageCache | None = None
    log_bucket: LoadBalancerLogBucket | None = None
    model_caches: dict[str, NodeModelCache] = field(default_factory=dict)
    """Per GPU pool with a node-scope cache and deployed models: its claim."""


def model_images(model: ModelConfig) -> list[str]:
    """The image reference of each of the model's tracks (preset default unless set)."""
    preset = runtime_for(model)
    found = []
    for track in model.tracks:
        image = model.version_of(track)[1] or preset.default_image
        assert image is not None  # schema: custom runtime needs an image
        found.append(image)
    return found


CACHE_PREFIX_MAX = 18
"""Room for the longest ``-<registry>`` suffix in ECR's 30-character cache rule prefix."""


def cache_prefix(stack: str) -> str:
    """The stack's pull-through cache prefix: ``mlstack-<stack>`` when that is already
    lowercase, DNS-safe and short enough; otherwise its start plus a hash of the stack
    name, so stacks that differ only past the cut or in sanitised characters never share
    rules, templates or cached repositories in one account and region."""
    readable = f"mlstack-{stack}"
    safe = dns_safe(readable)
    if safe == readable and len(safe) <= CACHE_PREFIX_MAX:
        return safe
    digest = hashlib.sha256(stack.encode("utf-8")).hexdigest()[:6]
    return f"{safe[: CACHE_PREFIX_MAX - 7].rstrip('-')}-{digest}"


def image_cache(
    cfg: StackConfig,
    stack: str,
    *,
    partition: str,
    pullers: Sequence[pulumi.Input[str]],
    opts: pulumi.ResourceOptions | None = None,
) -> ImageCache | None:
    """The ECR pull-through caches of every model image (``serving.imageCache``)."""
    settings = cfg.serving.image_cache
    models = deployed_models(cfg)
    if not settings.enabled or not models:
        return None
    return ImageCache(
        "image-cache",
        ImageCacheArgs(
            prefix=cache_prefix(stack),
            region=cfg.region,
            partition=partition,
            images=sorted({i for m in models for i in model_images(m)}),
            credential_arns=dict(settings.credential_arns),
            puller_role_names=tuple(pullers),
        ),
        opts=opts,
    )


def runtime_for(model: ModelConfig) -> runtimes.RuntimePreset:
    """The runtime preset of a model (``custom`` built from its ``custom`` block)."""
    if model.runtime != "custom":
        return runtimes.PRESETS[model.runtime]
    custom = model.custom
    assert custom is not None  # schema: runtime custom needs a custom block
    return runtimes.custom_runtime(
        port=custom.port,
        liveness_path=custom.liveness_path,
        readiness_path=custom.readiness_path,
        metrics_path=custom.metrics_path,
        metrics_port=custom.metrics_port,
        queue_metric=custom.queue_metric,
        queue_target=model.autoscaling.target or 4,
        command=tuple(custom.command),
        run_as_non_root=custom.run_as_non_root,
    )


def build_serving(
    cfg: StackConfig,
    stack: str,
    *,
    cluster_name: str,
    partition: str,
    cluster: ClusterInfo,
    vpc_id: pulumi.Input[str],
    vpc_cidr: str,
    public_subnet_ids: pulumi.Input[Sequence[str]],
    private_subnet_ids: pulumi.Input[Sequence[str]],
    target_security_group_id: pulumi.Input[str],
    gpu_pools: Mapping[str, GpuPool],
    artifacts: ArtifactReader,
    tags: Mapping[str, str],
    prometheus_url: str,
    image_pullers: Sequence[pulumi.Input[str]] = (),
    wait_for: Sequence[pulumi.Resource] = (),
    image_pushers: Sequence[aws.iam.Role] = (),
    role_scope: RoleScope | None = None,
    opts: pulumi.ResourceOptions | None = None,
) -> Serving:
    """Declare the serving layer. ``opts`` carries the AWS + Kubernetes providers;
    ``prometheus_url`` is where KEDA reads the runtimes' metrics (unless config says
    otherwise)."""
    serving = cfg.serving
    lb_cfg = serving.load_balancer
    identity = WorkloadIdentity(
        mode=serving.identity,
        cluster_name=cluster.cluster_name,
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer_url=cluster.oidc_issuer_url,
        role_scope=role_scope,
    )
    namespace = InferenceNamespace(
        "serving", InferenceNamespaceArgs(namespace=serving.namespace), opts=opts
    )
    # The model-loader image lives in the stack's own ECR repository (loader/Dockerfile,
    # pushed by `mlstack loader push`; ``image_pushers`` may push to it).
    loader_repository = ModelLoaderRepository(
        "model-loader",
        ModelLoaderRepositoryArgs(
            repository_name=loader_repository_name(stack),
            protect=cfg.protect,
            force_delete=serving.loader_repository.force_delete,
        ),
        opts=opts,
    )
    for index, role in enumerate(image_pushers):
        loader_repository.grant_push(role, f"model-loader-push-{index}")
    loader_image = loader_repository.repository_url.apply(model_loader_image)
    keda = Keda(
        "keda",
        KedaArgs(
            chart_version=serving.chart_versions.keda or KEDA_CHART.version,
            replicas=serving.autoscaler.replicas,
            wait_for=tuple(wait_for),
        ),
        opts=opts,
    )
    logs = lb_cfg.access_logs
    log_bucket = None
    if logs.enabled:
        log_bucket = LoadBalancerLogBucket(
            "lb-logs",
            LoadBalancerLogBucketArgs(
                region=cfg.region,
                partition=partition,
                # The account is the fifth field of an ARN the stack owns: no invoke. The
                # boundary policy, retained in prod like this bucket, or else the OIDC
                # provider (lifecycle-retained-dependencies).
                account_id=pulumi.Output.from_input(
                    role_scope.permissions_boundary_arn
                    if role_scope is not None
                    else cluster.oidc_provider_arn
                ).apply(lambda arn: account_of(str(arn))),
                bucket_prefix=f"{cluster_name}-lb-logs-"[:37],
                prefix=logs.prefix,
                retention_days=logs.retention_days,
                protect=cfg.protect,
            ),
            opts=opts,
        )
    alb_models = [m for m in cfg.models if m.exposure.type == "alb"]
    nlb_models = [m for m in cfg.models if m.exposure.type == "nlb"]
    load_balancer = LoadBalancer(
        "load-balancer",
        LoadBalancerArgs(
            cluster_name=cluster_name,
            region=cfg.region,
            partition=partition,
            vpc_id=vpc_id,
            vpc_cidr=vpc_cidr,
            subnet_ids=public_subnet_ids
            if lb_cfg.scheme == "internet-facing"
            else private_subnet_ids,
            target_security_group_id=target_security_group_id,
            identity=identity,
            scheme=lb_cfg.scheme,
            alb_target_ports=tuple(sorted({runtime_for(m).port for m in alb_models})),
            nlb_ports=tuple(sorted({p for m in nlb_models for p in _ports(runtime_for(m))})),
            certificate_arn=lb_cfg.certificate_arn,
            extra_certificate_arns=tuple(
                m.exposure.certificate_arn for m in alb_models if m.exposure.certificate_arn
            ),
            ssl_policy=lb_cfg.ssl_policy,
            idle_timeout_seconds=lb_cfg.idle_timeout_seconds,
            desync_mitigation_mode=lb_cfg.desync_mitigation_mode,
            inbound_cidrs=tuple(lb_cfg.inbound_cidrs),
            deletion_protection=lb_cfg.deletion_protection,
            access_logs_bucket=log_bucket.bucket_name if log_bucket else None,
            access_logs_prefix=logs.prefix,
            access_logs_ready=(log_bucket.policy,) if log_bucket else (),
            replicas=lb_cfg.controller_replicas,
            chart_version=serving.chart_versions.aws_load_balancer_controller
            or AWS_LOAD_BALANCER_CONTROLLER_CHART.version,
            tags=dict(tags),
            wait_for=tuple(wait_for),
        ),
        opts=opts,
    )
    cache = image_cache(cfg, stack, partition=partition, pullers=image_pullers, opts=opts)
    model_caches = node_model_caches(cfg, namespace, loader_image=loader_image, opts=opts)
    services: dict[str, InferenceService] = {}
    slots = rule_slots(cfg.models)  # from every model: priorities never move
    for model in deployed_models(cfg):
        services[model.name] = InferenceService(
            f"model-{model.name}",
            service_args(
                cfg,
                model,
                identity=identity,
                pool=gpu_pools[model.pool],
                artifacts=artifacts,
                namespace=namespace,
                keda=keda,
                load_balancer=load_balancer,
                prometheus_url=cfg.serving.autoscaler.prometheus_address or prometheus_url,
                loader_image=loader_image,
                image_cache=cache,
                node_cache=model_caches[model.pool].mount if model.pool in model_caches else None,
                rule_slot=slots.get(model.name),
                tags=dict(tags),
                vpc_cidr=vpc_cidr,
            ),
            opts=opts,
        )
    return Serving(
        namespace,
        keda,
        load_balancer,
        loader_repository,
        services,
        endpoints(cfg, services),
        cache,
        log_bucket,
        model_caches,
    )


def node_model_caches(
    cfg: StackConfig,
    namespace: InferenceNamespace,
    *,
    loader_image: pulumi.Input[str],
    opts: pulumi.ResourceOptions | None,
) -> dict[str, NodeModelCache]:
    """One ``NodeModelCache`` per GPU pool whose cache is node-scoped and that serves a
    deployed model (``gpuPools[].modelCache``), and, when there is one, the admission
    policy that lets only the loader's own steps write them."""
    used = {m.pool for m in deployed_models(cfg)}
    pools = [p for p in cfg.gpu_pools if p.model_cache.scope == "node" and p.name in used]
    if not pools:
        return {}
    admission = ModelCacheAdmission(
        "model-cache-admission",
        ModelCacheAdmissionArgs(
            namespace=namespace.namespace,
            loader_image=loader_image,
            cache_dir=MODEL_CACHE_DIR,
            ready_file=HOLD_READY_FILE,
        ),
        opts=opts,
    )
    found: dict[str, NodeModelCache] = {}
    for pool in pools:
        found[pool.name] = NodeModelCache(
            f"model-cache-{pool.name}",
            NodeModelCacheArgs(
                pool_name=pool.name,
                namespace=namespace.namespace,
                node_label=(POOL_LABEL, pool.name),
                size_gib=pool.model_cache.size_gib,
                claim_depends_on=(namespace.resource, admission.binding),
            ),
            opts=opts,
        )
    return found


def loader_repository_name(stack: str) -> str:
    """``mlstack-<stack>-model-loader``: the ECR repository of the loader image."""
    return f"mlstack-{dns_safe(stack)}-model-loader"


def _ports(preset: runtimes.RuntimePreset) -> tuple[int, ...]:
    """The ports an NLB model listens on: the preset's serving port and extra ports."""
    return (preset.port, *(number for _, number in preset.extra_ports))


def endpoints(
    cfg: StackConfig, services: Mapping[str, InferenceService] | None = None
) -> dict[str, dict[str, pulumi.Input[str] | None]]:
    """Per model: its in-cluster URL, its exposure, the DNS name of its load balancer
    (the shared ALB or its own NLB; from ``services``) and, on the ALB, host and path."""
    found: dict[str, dict[str, pulumi.Input[str] | None]] = {}
    for model in deployed_models(cfg):
        url = f"http://{model.name}.{cfg.serving.namespace}.svc:{runtime_for(model).port}"
        exposure = model.exposure
        alb = exposure.type == "alb"
        service = (services or {}).get(model.name)
        found[model.name] = {
            "inCluster": url,
            "exposure": exposure.type,
            "dnsName": service.endpoint_dns_name if service is not None else None,
            "host": exposure.host if alb else None,
            "path": exposure.path if alb else None,
        }
    return found


def service_args(
    cfg: StackConfig,
    model: ModelConfig,
    *,
    identity: WorkloadIdentity,
    pool: GpuPool,
    artifacts: ArtifactReader,
    namespace: InferenceNamespace,
    keda: Keda,
    load_balancer: LoadBalancer,
    prometheus_url: str,
    loader_image: pulumi.Input[str],
    rule_slot: int | None = None,
    tags: Mapping[str, str] | None = None,
    image_cache: ImageCache | None = None,
    node_cache: NodeCacheMount | None = None,
    vpc_cidr: str | None = None,
) -> InferenceServiceArgs:
    """The InferenceService inputs of one model. ``vpc_cidr``: who may use a blue/green
    preview route unless ``blueGreen.previewSourceCidrs`` says otherwise."""
    preset = runtime_for(model)
    tracks = []
    for track in model.tracks:
        version, image = model.version_of(track)
        resolved = image or preset.default_image
        assert resolved is not None  # schema: custom runtime needs an image
        tracks.append(
            TrackVersion(
                track=track,
                artifact_version=version,
                image=image_cache.resolve(resolved) if image_cache else resolved,
                manifest_key=layout.manifest_key(model.name, version),
            )
        )
    scaling = model.autoscaling
    wake = scaling.wake_schedule
    rollout = model.rollout
    exposure = model.exposure
    return InferenceServiceArgs(
        model_name=model.name,
        namespace=namespace.namespace,
        runtime=preset,
        tracks=tuple(tracks),
        pool_name=pool.pool_name,
        scheduling=pool.scheduling(),
        artifacts=artifacts,
        identity=identity,
        region=cfg.region,
        gpus=model.gpus,
        cpu=model.cpu,
        memory=model.memory,
        shm_size=model.shm_size,
        model_disk_gib=model.model_disk_gib,
        extra_args=tuple(model.args),
        min_replicas=scaling.min_replicas,
        max_replicas=scaling.max_replicas,
        scale_target=scaling.target,
        scale_down_stabilization_seconds=scaling.scale_down_stabilization_seconds,
        wake_schedule=WakeSchedule(wake.timezone, wake.start, wake.end, wake.replicas)
        if wake
        else None,
        prometheus_address=prometheus_url,
        polling_interval_seconds=cfg.serving.autoscaler.polling_interval_seconds,
        cooldown_period_seconds=cfg.serving.autoscaler.cooldown_period_seconds,
        strategy=rollout.strategy,
        max_surge=rollout.max_surge,
        max_unavailable=rollout.max_unavailable,
        canary_weight=rollout.canary.canary_weight if rollout.canary else 0,
        active_color=rollout.blue_green.active_color if rollout.blue_green else None,
        preview_header=rollout.blue_green.preview_header
        if rollout.blue_green
        else "x-mlstack-preview",
        preview_source_cidrs=preview_source_cidrs(model, vpc_cidr),
        exposure=exposure.type,
        host=exposure.host,
        path=exposure.path,
        frontend=load_balancer.frontend,
        rule_slot=rule_slot,
        certificate_arn=exposure.certificate_arn,
        slow_start_seconds=SLOW_START_SECONDS.get(model.runtime, 0)
        if exposure.type == "alb"
        else 0,
        tags=dict(tags or {}),
        # prod keeps at least one replica up through node drains.
        pdb_min_available=pdb_min_available(cfg.is_prod),
        startup_budget_seconds=model.startup_budget_seconds,
        drain_seconds=model.drain_seconds,
        max_request_seconds=model.longest_request_seconds,
        keep_alive_seconds=model.custom.keep_alive_seconds if model.custom else None,
        loader_image=loader_image,
        node_cache=node_cache,
        scaler_depends_on=(keda.release,),
    )


def preview_source_cidrs(model: ModelConfig, vpc_cidr: str | None) -> tuple[str, ...]:
    """Who may reach a blue/green model's idle color through the preview route:
    ``blueGreen.previewSourceCidrs``, else the VPC (the private network)."""
    blue_green = model.rollout.blue_green
    if blue_green is None or model.exposure.type != "alb":
        return ()
    if blue_green.preview_source_cidrs:
        return tuple(blue_green.preview_source_cidrs)
    return (vpc_cidr,) if vpc_cidr else ()


def scraped_service(model: ModelConfig) -> str:
    """The Service whose metrics the alerts read: stable, or the active blue/green color."""
    blue_green = model.rollout.blue_green
    return workload_name(model.name, blue_green.active_color) if blue_green else model.name


def alarm_target_groups(serving: Serving) -> dict[str, tuple[AlbTargetGroupRef, ...]]:
    """Per exposed model: every target group Pulumi created for it (ALB: one per track;
    NLB: one per track and port), with its load balancer, for the CloudWatch alarms.
    Outputs of the resources themselves: the alarms exist from the first deploy on."""
    found: dict[str, tuple[AlbTargetGroupRef, ...]] = {}
    for model, service in serving.services.items():
        suffix = service.load_balancer_arn_suffix
        if suffix is None:
            continue
        found[model] = tuple(
            AlbTargetGroupRef(t.group.arn_suffix, suffix, t.track, t.kind)
            for t in service.target_groups
        )
    return found


def alarmed_load_balancers(serving: Serving) -> tuple[LoadBalancerRef, ...]:
    """The shared ALB and every NLB, for their load-balancer-level alarms."""
    refs: list[LoadBalancerRef] = []
    alb = serving.load_balancer.alb
    if alb is not None:
        refs.append(LoadBalancerRef("shared-alb", "alb", alb.arn_suffix))
    for model, service in serving.services.items():
        if service.nlb is not None:
            refs.append(LoadBalancerRef(f"{model}-nlb", "nlb", service.nlb.arn_suffix))
    return tuple(refs)


def service_targets(
    cfg: StackConfig, target_groups: Mapping[str, Sequence[AlbTargetGroupRef]] | None = None
) -> tuple[ServiceTarget, ...]:
    """What the monitoring layer needs to scrape and alert on each model; ``target_groups``
    (from :func:`alarm_target_groups`) gives the CloudWatch alarms of a model."""
    key, value = runtimes.METRICS_SERVICE_LABEL
    groups = target_groups or {}
    targets = []
    for model in deployed_models(cfg):
        preset = runtime_for(model)
        active = scraped_service(model)
        targets.append(
            ServiceTarget(
                name=model.name,
                namespace=cfg.serving.namespace,
                runtime=monitoring_metrics.RUNTIMES[model.runtime],
                p99_latency_slo_seconds=model.latency_slo_seconds
                or preset.default_latency_slo_seconds,
                min_healthy=model.autoscaling.min_replicas,
                selector_labels={runtimes.MODEL_LABEL: model.name, key: value},
                metrics_port=preset.metrics_port_name,
                metrics_path=preset.metrics_path,
                k8s_service=active,
                hpa_name=f"keda-hpa-{active}",
                startup_budget_seconds=model.startup_budget_seconds,
                alb_target_groups=tuple(groups.get(model.name, ())),
            )
        )
    return tuple(targets)
