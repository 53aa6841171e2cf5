"""The serving layer of the composition: config -> InferenceNamespace, Keda,
LoadBalancer and one InferenceService per ``mlstack:models`` entry.

``stacks.composition.build`` calls :func:`service_targets` (plain values, for the
monitoring layer) and, once the cluster, GPU pools, artifact bucket and monitoring
exist, :func:`build_serving`. Nothing here reads ``pulumi.Config``; everything comes
from the validated :class:`~stacks.config.StackConfig`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pulumi

from components.monitoring import AlbTargetGroupRef, ServiceTarget
from components.monitoring import metrics as monitoring_metrics
from components.serving import runtimes
from components.serving.identity import WorkloadIdentity
from components.serving.image_cache import ImageCache, ImageCacheArgs
from components.serving.inference_service import (
    ArtifactReader,
    InferenceService,
    InferenceServiceArgs,
    Scheduling,
    TrackVersion,
    WakeSchedule,
)
from components.serving.keda import Keda, KedaArgs
from components.serving.load_balancer import LoadBalancer, LoadBalancerArgs
from components.serving.namespace import InferenceNamespace, InferenceNamespaceArgs
from components.serving.rollout import workload_name
from components.versions import AWS_LOAD_BALANCER_CONTROLLER_CHART, KEDA_CHART
from stacks.config import StackConfig
from stacks.schema.models import ModelConfig


def model_prefix(name: str, version: str) -> str:
    """Key prefix of one model version in the artifact bucket."""
    return f"models/{name}/{version}/"


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
    services: dict[str, InferenceService] = field(default_factory=dict)
    endpoints: dict[str, dict[str, str | None]] = field(default_factory=dict)
    """Per model: its in-cluster URL and, when exposed on the ALB, host and path."""
    image_cache: ImageCache | None = None


def model_images(model: ModelConfig) -> list[str]:
    """The image reference of each of the model's tracks (preset default unless set)."""
    preset = runtime_for(model)
    found = []
    for track in model.tracks:
        image = model.version_of(track)[1] or preset.default_image
        assert image is not None  # schema: custom runtime needs an image
        found.append(image)
    return found


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
    if not settings.enabled or not cfg.models:
        return None
    prefix = re.sub(r"[^a-z0-9-]+", "-", f"mlstack-{stack}".lower()).strip("-")[:18]
    return ImageCache(
        "image-cache",
        ImageCacheArgs(
            prefix=prefix,
            region=cfg.region,
            partition=partition,
            images=sorted({i for m in cfg.models for i in model_images(m)}),
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
    gpu_pools: Mapping[str, GpuPool],
    artifacts: ArtifactReader,
    tags: Mapping[str, str],
    prometheus_url: str,
    image_pullers: Sequence[pulumi.Input[str]] = (),
    wait_for: Sequence[pulumi.Resource] = (),
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
    )
    namespace = InferenceNamespace(
        "serving", InferenceNamespaceArgs(namespace=serving.namespace), opts=opts
    )
    keda = Keda(
        "keda",
        KedaArgs(
            chart_version=serving.chart_versions.keda or KEDA_CHART.version,
            replicas=serving.autoscaler.replicas,
            wait_for=tuple(wait_for),
        ),
        opts=opts,
    )
    load_balancer = LoadBalancer(
        "load-balancer",
        LoadBalancerArgs(
            cluster_name=cluster_name,
            region=cfg.region,
            partition=partition,
            vpc_id=vpc_id,
            identity=identity,
            serving_namespace=serving.namespace,
            group_name=f"{cluster_name}-inference"[:63],
            scheme=lb_cfg.scheme,
            https=lb_cfg.https,
            certificate_arn=lb_cfg.certificate_arn,
            ssl_policy=lb_cfg.ssl_policy,
            idle_timeout_seconds=lb_cfg.idle_timeout_seconds,
            inbound_cidrs=tuple(lb_cfg.inbound_cidrs),
            deletion_protection=lb_cfg.deletion_protection,
            access_logs_bucket=lb_cfg.access_logs.bucket if lb_cfg.access_logs else None,
            access_logs_prefix=lb_cfg.access_logs.prefix if lb_cfg.access_logs else "alb",
            replicas=lb_cfg.controller_replicas,
            chart_version=serving.chart_versions.aws_load_balancer_controller
            or AWS_LOAD_BALANCER_CONTROLLER_CHART.version,
            tags=dict(tags),
            wait_for=tuple(wait_for),
        ),
        opts=opts,
    )
    cache = image_cache(cfg, stack, partition=partition, pullers=image_pullers, opts=opts)
    services: dict[str, InferenceService] = {}
    for model in cfg.models:
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
                image_cache=cache,
            ),
            opts=opts,
        )
    return Serving(namespace, keda, load_balancer, services, endpoints(cfg), cache)


def endpoints(cfg: StackConfig) -> dict[str, dict[str, str | None]]:
    """Per model: its in-cluster URL, its exposure and (ALB) host and path."""
    found: dict[str, dict[str, str | None]] = {}
    for model in cfg.models:
        url = f"http://{model.name}.{cfg.serving.namespace}.svc:{runtime_for(model).port}"
        exposure = model.exposure
        alb = exposure.type == "alb"
        found[model.name] = {
            "inCluster": url,
            "exposure": exposure.type,
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
    image_cache: ImageCache | None = None,
) -> InferenceServiceArgs:
    """The InferenceService inputs of one model."""
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
                prefix=model_prefix(model.name, version),
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
        exposure=exposure.type,
        host=exposure.host,
        path=exposure.path,
        alb=load_balancer.alb,
        # prod keeps at least one replica up through node drains.
        pdb_min_available=1 if cfg.is_prod else None,
        startup_budget_seconds=model.startup_budget_seconds,
        drain_seconds=model.drain_seconds,
        loader_config_map=namespace.loader_config_map,
        loader_sha256=namespace.loader_sha256,
        scaler_depends_on=(keda.release,),
        exposure_depends_on=(load_balancer.release, load_balancer.ingress_class),
    )


def scraped_service(model: ModelConfig) -> str:
    """The Service whose metrics the alerts read: stable, or the active blue/green color."""
    blue_green = model.rollout.blue_green
    return workload_name(model.name, blue_green.active_color) if blue_green else model.name


def alarmed_tracks(model: ModelConfig) -> tuple[tuple[str | None, str], ...]:
    """The ALB target groups of a model to alarm on, as (track, Service) pairs: rolling
    its one Service; canary stable (main) and canary (track ``canary``) separately;
    blueGreen the active color only (as main, so switching colors updates the alarms'
    dimensions instead of replacing them; the idle color takes preview traffic only)."""
    if model.exposure.type != "alb":
        return ()
    if model.rollout.strategy == "canary":
        return ((None, model.name), ("canary", workload_name(model.name, "canary")))
    return ((None, scraped_service(model)),)


def alarm_target_groups(
    cfg: StackConfig, load_balancer: LoadBalancer
) -> dict[str, tuple[AlbTargetGroupRef, ...]]:
    """Per ALB-exposed model: its target groups, looked up by the controller's tags
    (invokes under ``load_balancer``). Empty unless ``monitoring.albAlarms.enabled``."""
    if not cfg.monitoring.alb_alarms.enabled:
        return {}
    found: dict[str, tuple[AlbTargetGroupRef, ...]] = {}
    for model in cfg.models:
        refs = []
        for track, service in alarmed_tracks(model):
            suffixes = load_balancer.lookup_target_group(
                namespace=cfg.serving.namespace,
                ingress=model.name,
                service=service,
                port=runtime_for(model).port_name,
            )
            refs.append(AlbTargetGroupRef(suffixes.target_group, suffixes.load_balancer, track))
        if refs:
            found[model.name] = tuple(refs)
    return found


def service_targets(
    cfg: StackConfig, target_groups: Mapping[str, Sequence[AlbTargetGroupRef]] | None = None
) -> tuple[ServiceTarget, ...]:
    """What the monitoring layer needs to scrape and alert on each model; ``target_groups``
    (from :func:`alarm_target_groups`) adds the CloudWatch alarms of a model."""
    key, value = runtimes.METRICS_SERVICE_LABEL
    groups = target_groups or {}
    targets = []
    for model in cfg.models:
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
