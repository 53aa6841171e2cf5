"""``InferenceService``: one model, served on GPUs, scaled by load, changed safely.

Per model:

* a ServiceAccount and its own IAM role (Pod Identity or IRSA) trusted by exactly
  that namespace/service account, allowed to read only its own model's prefix
  (granted by the artifact bucket: ``grant_read``);
* one Deployment per *track* (``stable`` [+ ``canary``], or ``blue`` + ``green``),
  each with: the runtime preset's command, ports and probes; GPU/CPU/memory requests
  equal to limits; the GPU pool's tolerations and node selector; a model-loader init
  container that fetches exactly the pinned version and checks every sha256 of its
  manifest (failing the pod on a mismatch); ``/dev/shm`` in memory; a preStop pause
  plus a grace period to drain in-flight requests; zone spreading; a restricted
  security context (no privilege escalation, no capabilities, RuntimeDefault
  seccomp, non-root where the runtime allows);
* per track a ClusterIP Service, a PodDisruptionBudget and a KEDA ScaledObject on the
  runtime's queue signal (fast scale-up, stabilized scale-down, optional cron wake
  window for scale-to-zero);
* exposure (AWS objects owned by Pulumi, built by ``components.serving.load_balancer``):
  on the shared ALB one target group per track, the listener rule(s) (host/path; one
  weighted forward for canary; blue/green main rule to the active color plus a
  header-matched preview rule to the idle one) and one TargetGroupBinding per target
  group; or its own NLB with a TCP/TLS listener per port, target groups per track and
  port, and their TargetGroupBindings; or nothing (in-cluster only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.compute.capacity import MODEL_CACHE_HOLD, POD_SCRATCH_GIB
from components.serving import load_balancer as lb
from components.serving import runtimes
from components.serving.identity import WorkloadIdentity, workload_role
from components.serving.model_cache import NodeCacheMount
from components.serving.rollout import (
    RULE_CONDITION_VALUES,
    TRACKS,
    RoutePlan,
    Strategy,
    condition_values,
    route_plan,
    workload_name,
)
from components.storage import layout
from components.validation import require_valid

TYPE_TOKEN = "mlstack:serving:InferenceService"
PRE_STOP_SECONDS = 15
"""Pause before SIGTERM so the load balancer stops sending new requests first."""
EXIT_MARGIN_SECONDS = 5
"""Added to the grace period for the server to exit once its drain has ended."""
ROLLOUT_MARGIN_SECONDS = 300
"""Added to the start-up budget for the progress deadline and Pulumi's wait."""
HPA_MAX_PERIOD_SECONDS = 1800
"""The HorizontalPodAutoscaler API's upper bound on a scaling policy's periodSeconds."""
LOADER_USER = 1000
GPU_RESOURCE = "nvidia.com/gpu"
CACHE_DIR = "/var/cache/model-server"
MODEL_CACHE_DIR = "/var/cache/mlstack/models"
"""Where ``mlstack model fetch`` keeps verified versions (``--cache-dir``), keyed by the
manifest digest; mounted at the same path, read-only, in the server (``MODEL_DIR`` is a
symlink into it)."""
MODEL_CACHE_VOLUME = "model-cache"
HOLD_READY_FILE = "/tmp/mlstack-model-held"
"""Written by the hold sidecar once the version is held; the loader waits for it."""
SCRATCH_GIB = POD_SCRATCH_GIB
Exposure = Literal["alb", "nlb", "none"]


class Scheduling(Protocol):
    """Where a GPU pool's pods go (``GpuNodePool.scheduling()``)."""

    @property
    def tolerations(self) -> Sequence[k8s.core.v1.TolerationArgs]: ...

    @property
    def node_selector(self) -> Mapping[str, str]: ...

    @property
    def gpus_per_node(self) -> int: ...


class ArtifactReader(Protocol):
    """The model-artifact bucket, as the service uses it (``ModelArtifactBucket``)."""

    @property
    def bucket_name(self) -> pulumi.Output[str]: ...

    def grant_read(self, role: aws.iam.Role, prefix: str, name: str) -> aws.iam.RolePolicy: ...


@dataclass(frozen=True)
class TrackVersion:
    """What one track (Deployment) runs: ``manifest_key`` is the version's manifest in the
    artifact bucket (``layout.manifest_key(name, version)``)."""

    track: str
    artifact_version: str
    image: pulumi.Input[str]
    """The image reference pods pull (the ECR pull-through cache's when cached)."""
    manifest_key: str


@dataclass(frozen=True)
class WakeSchedule:
    """KEDA cron trigger: keep ``replicas`` up between ``start`` and ``end``."""

    timezone: str
    start: str
    end: str
    replicas: int = 1


@dataclass(frozen=True)
class InferenceServiceArgs:
    """Inputs of :class:`InferenceService`.

    ``tracks`` must match ``strategy``: (stable,) for rolling, (stable, canary) for
    canary, (blue, green) for blueGreen. ``canary_weight`` is the canary's percent of
    ALB traffic; ``active_color`` the blue/green color taking traffic. Defaults:
    1..1 replicas, preset scaling target, 300 s scale-down stabilization, rolling
    maxSurge 1 / maxUnavailable 0, in-cluster only, PDB maxUnavailable 1 (set
    ``pdb_min_available`` to keep that many up instead), 1800 s startup, 60 s drain.
    """

    model_name: str
    namespace: str
    runtime: runtimes.RuntimePreset
    tracks: tuple[TrackVersion, ...]
    pool_name: str
    scheduling: Scheduling
    artifacts: ArtifactReader
    identity: WorkloadIdentity
    region: str
    gpus: int = 1
    cpu: str = "4"
    memory: str = "32Gi"
    shm_size: str = "8Gi"
    model_disk_gib: int = 100
    extra_args: tuple[str, ...] = ()
    min_replicas: int = 1
    max_replicas: int = 1
    scale_target: float | None = None
    scale_down_stabilization_seconds: int = 300
    wake_schedule: WakeSchedule | None = None
    prometheus_address: str = "http://prometheus.monitoring.svc:9090"
    polling_interval_seconds: int = 15
    cooldown_period_seconds: int = 300
    strategy: Strategy = "rolling"
    max_surge: int = 1
    max_unavailable: int = 0
    canary_weight: int = 0
    active_color: str | None = None
    preview_header: str = "x-mlstack-preview"
    preview_source_cidrs: tuple[str, ...] = ()
    """blueGreen on alb: the only client CIDRs the preview rule accepts (source-ip)."""
    exposure: Exposure = "none"
    host: str | None = None
    path: str = "/"
    frontend: lb.Frontend | None = None
    """The shared ALB's listener / the NLB settings (``LoadBalancer.frontend``)."""
    rule_slot: int | None = None
    """alb: listener-rule slot (priorities 2*slot-1 preview, 2*slot main)."""
    certificate_arn: str | None = None
    """nlb: certificate of its TLS listeners (default: the frontend's)."""
    slow_start_seconds: int = 0
    """alb: ramp-up of a new target's share of requests (0: off)."""
    tags: dict[str, str] = field(default_factory=dict)
    pdb_min_available: int | None = None
    startup_budget_seconds: int = 1800
    drain_seconds: int = 60
    """Deregistration delay of the model's target groups and the server's shutdown timeout
    (``--shutdown-timeout``, ``--exit-timeout-secs``): in-flight requests get this long."""
    max_request_seconds: int = 60
    """The model's longest request: ``drain_seconds`` must be at least this."""
    keep_alive_seconds: int | None = None
    """How long the server keeps idle HTTP connections (its keep-alive variable). None: the
    frontend's idle timeout plus ``runtimes.KEEP_ALIVE_MARGIN_SECONDS`` when exposed."""
    loader_image: pulumi.Input[str] = ""
    """The model-loader image (``components.versions.model_loader_image``)."""
    model_cache_dir: str = MODEL_CACHE_DIR
    node_cache: NodeCacheMount | None = None
    """The pool's node-shared cache (``NodeModelCache.mount``): the pods mount its claim
    at ``model_cache_dir`` (the server only its model's directory, read-only), a root init
    container gives the node's directory to the loader user, a ``model-cache-hold``
    sidecar holds the version for the pod's life and the loader evicts least recently
    used versions to stay under the bound. None: a per-pod emptyDir of ``model_disk_gib``."""
    scaler_depends_on: Sequence[pulumi.Resource] = ()

    def problems(self) -> list[str]:
        """Everything wrong with these args, as 'field: value: allowed' lines."""
        found: list[str] = []
        expected = TRACKS.get(self.strategy)
        got = tuple(t.track for t in self.tracks)
        if expected is None:
            found.append(f"strategy: {self.strategy!r}: allowed {sorted(TRACKS)}")
        elif got != expected:
            found.append(f"tracks: {got}: strategy {self.strategy} needs {expected}")
        per_node = self.scheduling.gpus_per_node
        if not 1 <= self.gpus <= per_node:
            found.append(
                f"gpus: {self.gpus}: pool {self.pool_name!r} nodes have {per_node} GPUs; "
                f"allowed 1..{per_node}"
            )
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            found.append(
                f"min/max replicas: {self.min_replicas}/{self.max_replicas}: need "
                "0 <= min <= max, max >= 1"
            )
        if self.min_replicas == 0 and self.wake_schedule is None:
            found.append("min_replicas: 0: scale-to-zero needs a wake_schedule")
        if not 0 <= self.canary_weight <= 100:
            found.append(f"canary_weight: {self.canary_weight}: allowed 0..100")
        if self.strategy == "blueGreen" and self.active_color not in ("blue", "green"):
            found.append(f"active_color: {self.active_color!r}: allowed blue, green")
        if self.exposure in ("alb", "nlb") and self.frontend is None:
            found.append(f"frontend: None: exposure {self.exposure} needs LoadBalancer.frontend")
        if self.exposure == "alb" and self.frontend is not None:
            if self.frontend.https_listener is None:
                found.append("frontend.https_listener: None: the stack has no shared ALB")
            if self.rule_slot is None:
                found.append("rule_slot: None: an ALB route needs its listener-rule slot")
        if self.exposure != "alb" and self.host is not None:
            found.append(f"host: {self.host!r}: only alb exposure routes by host")
        if not 0 <= self.slow_start_seconds <= 900 or 0 < self.slow_start_seconds < 30:
            found.append(f"slow_start_seconds: {self.slow_start_seconds}: 0 or 30..900")
        if self.strategy == "blueGreen" and self.exposure == "alb":
            if not self.preview_source_cidrs:
                found.append(
                    "preview_source_cidrs: (): the preview rule reaches the un-promoted color; "
                    "allowed: the CIDRs that may preview (the stack passes the VPC's)"
                )
            values = condition_values(self.host, self.path, True, self.preview_source_cidrs)
            if values > RULE_CONDITION_VALUES:
                found.append(
                    f"preview_source_cidrs: {list(self.preview_source_cidrs)}: the preview "
                    f"rule would carry {values} condition values; ALB allows "
                    f"{RULE_CONDITION_VALUES} per rule"
                )
        if self.strategy == "blueGreen" and self.exposure == "nlb":
            found.append(
                "exposure: 'nlb': blueGreen's idle color would sit behind no listener "
                "(targets 'unused', readiness gate never passes); allowed: alb"
            )
        if self.strategy == "canary" and self.exposure != "alb":
            found.append(f"exposure: {self.exposure!r}: canary weights need alb")
        if self.max_surge + self.max_unavailable == 0:
            found.append("max_surge/max_unavailable: 0/0: at least one must be positive")
        if self.scale_target is not None and self.scale_target <= 0:
            found.append(f"scale_target: {self.scale_target}: must be > 0")
        for t in self.tracks:
            try:
                expected = layout.manifest_key(self.model_name, t.artifact_version)
            except ValueError as exc:
                found.append(f"tracks[{t.track}].artifact_version: {exc}")
                continue
            if t.manifest_key != expected:
                found.append(
                    f"tracks[{t.track}].manifest_key: {t.manifest_key!r}: must be {expected!r}"
                )
        if not self.path.startswith("/"):
            found.append(f"path: {self.path!r}: must start with '/'")
        if not self.model_cache_dir.startswith("/") or self.model_cache_dir.rstrip("/") in (
            "",
            "/models",
            "/tmp",
        ):
            found.append(
                f"model_cache_dir: {self.model_cache_dir!r}: an absolute path of its own "
                "(not /, /models or /tmp)"
            )
        cache = self.node_cache
        if cache is not None and cache.limit_bytes < self.model_disk_gib * 1024**3:
            found.append(
                f"node_cache.limit_bytes: {cache.limit_bytes}: below model_disk_gib "
                f"{self.model_disk_gib} GiB, the model could never fit"
            )
        if isinstance(self.loader_image, str) and not self.loader_image:
            found.append("loader_image: '': the model-loader image is required")
        found += self._drain_problems()
        return found

    @property
    def effective_keep_alive_seconds(self) -> int | None:
        """The keep-alive the server is started with (see ``keep_alive_seconds``)."""
        if self.keep_alive_seconds is not None:
            return self.keep_alive_seconds
        if self.frontend is not None and self.exposure != "none":
            return self.frontend.idle_timeout_seconds + runtimes.KEEP_ALIVE_MARGIN_SECONDS
        return None

    def _drain_problems(self) -> list[str]:
        """Keep-alive beyond the ALB's idle timeout; a drain as long as the longest request,
        never shortened by a server flag in ``extra_args``."""
        found: list[str] = []
        preset = self.runtime
        if self.exposure == "alb" and self.frontend is not None:
            idle = self.frontend.idle_timeout_seconds
            keep = self.effective_keep_alive_seconds
            if not preset.keeps_alive_longer_than(idle, keep):
                found.append(
                    f"keep_alive_seconds: {keep}: the {preset.name} server would close idle "
                    f"connections before the ALB's idle timeout ({idle} s), which answers "
                    f"the next request on one with a 502; allowed: more than {idle}"
                )
        if self.drain_seconds < self.max_request_seconds:
            found.append(
                f"drain_seconds: {self.drain_seconds}: shorter than the longest request "
                f"(max_request_seconds {self.max_request_seconds}); allowed: at least "
                f"{self.max_request_seconds}"
            )
        flag = preset.shutdown_flag
        if flag is not None and any(a == flag or a.startswith(f"{flag}=") for a in self.extra_args):
            found.append(
                f"extra_args: {list(self.extra_args)}: sets {flag}, which drain_seconds "
                "sets (with the grace period and the deregistration delay); allowed: "
                f"arguments other than {flag}"
            )
        return found


class InferenceService(pulumi.ComponentResource):
    """One served model: identity, Deployments per track, Services, PDBs, scalers,
    and its route on the shared ALB (or its NLB)."""

    role: aws.iam.Role
    service_name: str
    """In-cluster Service name (``<model>``): stable track, or the active color."""
    deployments: dict[str, k8s.apps.v1.Deployment]
    scalers: dict[str, k8s.apiextensions.CustomResource]
    routes: RoutePlan
    target_groups: list[ExposedTargetGroup]
    """Every target group of the model (one per track, per port for an NLB)."""
    rules: list[aws.lb.ListenerRule]
    bindings: list[k8s.apiextensions.CustomResource]
    nlb: aws.lb.LoadBalancer | None
    load_balancer_arn_suffix: pulumi.Output[str] | None
    """``app/...`` or ``net/...``: the CloudWatch dimension of the model's load balancer."""
    endpoint_dns_name: pulumi.Output[str] | None
    """DNS name clients use: the shared ALB's or the model's NLB's (None: in-cluster)."""

    def __init__(
        self, name: str, args: InferenceServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        require_valid("InferenceService", name, args.problems())
        super().__init__(TYPE_TOKEN, name, None, opts)
        self._name = name
        self._args = args
        model = args.model_name
        self.routes = route_plan(model, args.strategy, args.canary_weight, args.active_color)
        child = pulumi.ResourceOptions(parent=self)

        identity = workload_role(
            name,
            args.identity,
            namespace=args.namespace,
            service_account=model,
            description=f"Inference service {model} in {args.namespace}: reads its model versions",
            parent=self,
        )
        self.role = identity.role
        # One grant per model: its versions share the content-addressed blobs, so the
        # prefix is models/<name>/ (blobs + manifests of this model, nothing else).
        grants: list[pulumi.Resource] = [
            args.artifacts.grant_read(self.role, layout.name_prefix(model), f"{name}-read-model")
        ]
        if identity.association is not None:
            grants.append(identity.association)

        account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=model,
                namespace=args.namespace,
                labels=self._labels(None),
                annotations=identity.service_account_annotations or None,
            ),
            automount_service_account_token=False,
            opts=child,
        )

        self.deployments = {}
        self.scalers = {}
        self.target_groups = []
        self.rules = []
        self.bindings = []
        services: dict[str, k8s.core.v1.Service] = {}
        exposed: dict[str, list[_TrackTarget]] = {}
        for track in args.tracks:
            base = name if track.track == "stable" else f"{name}-{track.track}"
            workload = workload_name(model, track.track)
            services[track.track] = self._service(f"{base}-service", workload, track.track)
            # The binding exists before the track's pods: the controller injects a pod's
            # readiness gate only at pod creation, and only when a binding for its Service
            # exists (aws-load-balancer-controller pkg/inject/pod_readiness); without the
            # gate a pod is Ready before its target is healthy.
            exposed[track.track] = self._track_targets(track.track, services[track.track])
            bindings = [t.binding for t in exposed[track.track]]
            self.deployments[track.track] = k8s.apps.v1.Deployment(
                f"{base}-deployment",
                k8s.apps.v1.DeploymentInitArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        name=workload,
                        namespace=args.namespace,
                        labels=self._labels(track.track),
                        annotations={
                            # Start-up budget per rolling round (Pulumi's default is 10 min).
                            "pulumi.com/timeoutSeconds": str(self._rollout_deadline()),
                        },
                    ),
                    spec=self._deployment_spec(track),
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[account, *grants, *bindings]),
            )
            self._pdb(f"{base}-pdb", workload, track.track)
            self.scalers[track.track] = self._scaler(f"{base}-scaler", workload)

        self.service_name = model
        if args.strategy == "blueGreen":
            # The in-cluster name follows the active color (same URN as the stable
            # track's Service under rolling/canary, so switching strategies updates it).
            self._service(
                f"{name}-service", model, self.routes.cluster_selector_track, scraped=False
            )

        self.nlb = None
        self.endpoint_dns_name = None
        self.load_balancer_arn_suffix = None
        if args.exposure == "alb":
            self._expose_alb(exposed)
        elif args.exposure == "nlb":
            self._expose_nlb(exposed)
        self.register_outputs(
            {
                "roleArn": self.role.arn,
                "service": model,
                "deployments": sorted(self.deployments),
            }
        )

    # ------------------------------------------------------------------ helpers

    def _labels(self, track: str | None) -> dict[str, str]:
        args = self._args
        labels = {
            runtimes.NAME_LABEL: args.model_name,
            runtimes.COMPONENT_LABEL: runtimes.COMPONENT_VALUE,
            runtimes.MODEL_LABEL: args.model_name,
            runtimes.RUNTIME_LABEL: args.runtime.name,
        }
        if track is not None:
            labels[runtimes.TRACK_LABEL] = track
        return labels

    def _selector(self, track: str) -> dict[str, str]:
        return {runtimes.MODEL_LABEL: self._args.model_name, runtimes.TRACK_LABEL: track}

    def _progress_deadline(self) -> int:
        """Kubernetes marks the rollout failed when no new pod became ready for this long:
        one replica's start-up budget plus a 5-minute margin."""
        return self._args.startup_budget_seconds + ROLLOUT_MARGIN_SECONDS

    def _rollout_deadline(self) -> int:
        """Pulumi's wait for the Deployment: one start-up budget per round of the rolling
        update (``maxSurge + maxUnavailable`` pods replaced per round, over the minimum
        replicas), plus the margin."""
        args = self._args
        per_round = max(1, args.max_surge + args.max_unavailable)
        rounds = math.ceil(max(1, args.min_replicas) / per_round)
        return args.startup_budget_seconds * rounds + ROLLOUT_MARGIN_SECONDS

    def _scale_up_period(self) -> int:
        """HPA scale-up policy period: the start-up budget (HPA allows at most 1800 s).
        Pods started within it have not yet lowered the queue signal, so scaling up at
        most doubles (or adds 4) per budget instead of every 15 s up to maxReplicas."""
        return min(self._args.startup_budget_seconds, HPA_MAX_PERIOD_SECONDS)

    def _deployment_spec(self, track: TrackVersion) -> k8s.apps.v1.DeploymentSpecArgs:
        args = self._args
        selector = self._selector(track.track)
        return k8s.apps.v1.DeploymentSpecArgs(
            # No replicas: KEDA's HPA owns the count once the Deployment exists.
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            revision_history_limit=5,
            progress_deadline_seconds=self._progress_deadline(),
            strategy=k8s.apps.v1.DeploymentStrategyArgs(
                type="RollingUpdate",
                rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                    max_surge=args.max_surge, max_unavailable=args.max_unavailable
                ),
            ),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    labels=self._labels(track.track),
                    annotations={"mlstack.io/artifact-version": track.artifact_version},
                ),
                spec=self._pod_spec(track, selector),
            ),
        )

    def _pod_spec(self, track: TrackVersion, selector: dict[str, str]) -> k8s.core.v1.PodSpecArgs:
        args = self._args
        preset = args.runtime
        non_root = preset.run_as_non_root
        return k8s.core.v1.PodSpecArgs(
            service_account_name=args.model_name,
            automount_service_account_token=False,
            enable_service_links=False,
            termination_grace_period_seconds=termination_grace_seconds(args.drain_seconds),
            node_selector=dict(args.scheduling.node_selector),
            tolerations=list(args.scheduling.tolerations),
            topology_spread_constraints=[
                k8s.core.v1.TopologySpreadConstraintArgs(
                    max_skew=1,
                    topology_key="topology.kubernetes.io/zone",
                    # GPU capacity is scarce per zone: prefer spreading, never block on it.
                    when_unsatisfiable="ScheduleAnyway",
                    label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                    match_label_keys=["pod-template-hash"],
                ),
                node_spread(selector, args.min_replicas),
            ],
            security_context=k8s.core.v1.PodSecurityContextArgs(
                run_as_non_root=non_root or None,
                run_as_user=preset.run_as_user if non_root else None,
                run_as_group=preset.run_as_user if non_root else None,
                fs_group=LOADER_USER,
                seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
            ),
            init_containers=self._init_containers(track),
            containers=[self._server(track)],
            volumes=[
                k8s.core.v1.VolumeArgs(
                    # Holds only the symlink MODEL_DIR -> the verified copy in the cache.
                    name="model",
                    empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="1Mi"),
                ),
                self._cache_volume(),
                k8s.core.v1.VolumeArgs(
                    name="shm",
                    empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                        medium="Memory", size_limit=args.shm_size
                    ),
                ),
                k8s.core.v1.VolumeArgs(
                    name="cache",
                    empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="20Gi"),
                ),
                k8s.core.v1.VolumeArgs(
                    name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="4Gi")
                ),
            ],
        )

    def _cache_volume(self) -> k8s.core.v1.VolumeArgs:
        args = self._args
        if args.node_cache is not None:
            return k8s.core.v1.VolumeArgs(
                name=MODEL_CACHE_VOLUME,
                persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
                    claim_name=args.node_cache.claim_name
                ),
            )
        return k8s.core.v1.VolumeArgs(
            name=MODEL_CACHE_VOLUME,
            empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=f"{args.model_disk_gib}Gi"),
        )

    def _init_containers(self, track: TrackVersion) -> list[k8s.core.v1.ContainerArgs]:
        """The loader; with a node cache first the root prepare step and the hold sidecar
        (a native sidecar: started before the loader, running until the pod ends)."""
        if self._args.node_cache is None:
            return [self._loader(track)]
        return [self._cache_prepare(), self._cache_hold(track), self._loader(track)]

    def _cache_prepare(self) -> k8s.core.v1.ContainerArgs:
        """Gives the node's cache directory (created root-owned by the kubelet) to the
        loader user: root, but only CAP_CHOWN, read-only root filesystem, no escalation."""
        args = self._args
        owner = str(LOADER_USER)
        command = ["mlstack", "model", "cache-prepare", "--cache-dir", args.model_cache_dir]
        command += ["--owner", owner, "--group", owner]
        return k8s.core.v1.ContainerArgs(
            name="model-cache-prepare",
            image=args.loader_image,
            command=command,
            resources=_equal_resources({"cpu": "100m", "memory": "256Mi"}),
            security_context=k8s.core.v1.SecurityContextArgs(
                allow_privilege_escalation=False,
                capabilities=k8s.core.v1.CapabilitiesArgs(add=["CHOWN"], drop=["ALL"]),
                privileged=False,
                read_only_root_filesystem=True,
                run_as_non_root=False,
                run_as_user=0,
                run_as_group=0,
                seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
            ),
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(
                    name=MODEL_CACHE_VOLUME, mount_path=args.model_cache_dir
                ),
                k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
            ],
        )

    def _cache_hold(self, track: TrackVersion) -> k8s.core.v1.ContainerArgs:
        """Holds the version's use lock in the node cache for the pod's life, so no other
        pod's loader evicts what this one serves; the kernel releases it when the pod dies."""
        args = self._args
        command = ["mlstack", "model", "hold", "--name", args.model_name]
        command += ["--version", track.artifact_version, "--cache-dir", args.model_cache_dir]
        command += ["--ready-file", HOLD_READY_FILE, "--link", runtimes.MODEL_DIR]
        return k8s.core.v1.ContainerArgs(
            name="model-cache-hold",
            image=args.loader_image,
            restart_policy="Always",
            command=command,
            # The kubelet starts the loader only once this passes: the version is held.
            startup_probe=k8s.core.v1.ProbeArgs(
                exec_=k8s.core.v1.ExecActionArgs(command=["test", "-f", HOLD_READY_FILE]),
                period_seconds=1,
                failure_threshold=120,
                timeout_seconds=1,
            ),
            env=[k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp")],
            resources=_equal_resources(
                {
                    "cpu": f"{round(MODEL_CACHE_HOLD.cpu * 1000)}m",
                    "memory": f"{round(MODEL_CACHE_HOLD.memory_gib * 1024)}Mi",
                }
            ),
            security_context=_container_security(non_root=True, user=LOADER_USER, ro_root=True),
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="model", mount_path="/models", read_only=True),
                k8s.core.v1.VolumeMountArgs(
                    name=MODEL_CACHE_VOLUME, mount_path=args.model_cache_dir
                ),
                k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
            ],
        )

    def _room_wait_seconds(self) -> int:
        """A third of the start-up budget, at most 10 minutes: long enough for a rolling
        update's old pods to drain, short of the budget the fetch itself needs."""
        return min(self._args.startup_budget_seconds // 3, 600)

    def _loader(self, track: TrackVersion) -> k8s.core.v1.ContainerArgs:
        """``mlstack model fetch`` of the pinned version into the cache, MODEL_DIR pointed
        at the verified copy; any mismatch fails the init container, so the pod."""
        args = self._args
        env: dict[str, pulumi.Input[str]] = {
            "MLSTACK_MODEL_BUCKET": args.artifacts.bucket_name,
            "AWS_REGION": args.region,
            "HOME": "/tmp",
        }
        command = ["mlstack", "model", "fetch", "--name", args.model_name]
        command += ["--version", track.artifact_version, "--region", args.region]
        command += ["--cache-dir", args.model_cache_dir, "--link", runtimes.MODEL_DIR]
        if args.node_cache is not None:
            command += ["--cache-limit-bytes", str(args.node_cache.limit_bytes), "--evict"]
            command += ["--wait-for", HOLD_READY_FILE]
            # A full cache of versions in use frees up as a rollout's old pods end.
            command += ["--room-wait-seconds", str(self._room_wait_seconds())]
        return k8s.core.v1.ContainerArgs(
            name="model-loader",
            image=args.loader_image,
            # The last log lines become the termination message of a failed load, so
            # `mlstack bake` can count checksum failures through the API (no log access).
            termination_message_policy="FallbackToLogsOnError",
            command=command,
            env=[k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in env.items()],
            resources=_equal_resources({"cpu": "2", "memory": "2Gi"}),
            security_context=_container_security(non_root=True, user=LOADER_USER, ro_root=True),
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="model", mount_path="/models"),
                k8s.core.v1.VolumeMountArgs(
                    name=MODEL_CACHE_VOLUME, mount_path=args.model_cache_dir
                ),
                k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
            ],
        )

    def _server(self, track: TrackVersion) -> k8s.core.v1.ContainerArgs:
        args = self._args
        preset = args.runtime
        ports = [k8s.core.v1.ContainerPortArgs(name=preset.port_name, container_port=preset.port)]
        ports += [
            k8s.core.v1.ContainerPortArgs(name=port_name, container_port=number)
            for port_name, number in preset.extra_ports
        ]
        if preset.metrics_port != preset.port:
            ports.append(
                k8s.core.v1.ContainerPortArgs(name="metrics", container_port=preset.metrics_port)
            )

        def probe(path: str, period: int, failures: int, timeout: int) -> k8s.core.v1.ProbeArgs:
            return k8s.core.v1.ProbeArgs(
                http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port=preset.port_name),
                period_seconds=period,
                failure_threshold=failures,
                timeout_seconds=timeout,
            )

        return k8s.core.v1.ContainerArgs(
            name="server",
            image=track.image,
            command=list(preset.command) or None,
            args=preset.args(
                args.model_name, args.gpus, args.extra_args, shutdown_seconds=args.drain_seconds
            )
            or None,
            ports=ports,
            env=[
                k8s.core.v1.EnvVarArgs(name=k, value=v)
                for k, v in sorted(
                    preset.serving_env(
                        keep_alive=args.effective_keep_alive_seconds,
                        shutdown_seconds=args.drain_seconds,
                    ).items()
                )
            ]
            or None,
            resources=_equal_resources(
                {
                    "cpu": args.cpu,
                    "memory": args.memory,
                    GPU_RESOURCE: str(args.gpus),
                    # The node cache is not the pod's: only scratch space counts then.
                    "ephemeral-storage": f"{SCRATCH_GIB}Gi"
                    if args.node_cache is not None
                    else f"{args.model_disk_gib + SCRATCH_GIB}Gi",
                }
            ),
            startup_probe=probe(
                preset.startup_path, 10, math.ceil(args.startup_budget_seconds / 10), 5
            ),
            readiness_probe=probe(preset.readiness_path, 5, 3, 3),
            liveness_probe=probe(preset.liveness_path, 15, 4, 5),
            lifecycle=k8s.core.v1.LifecycleArgs(
                pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                    sleep=k8s.core.v1.SleepActionArgs(seconds=PRE_STOP_SECONDS)
                )
            ),
            security_context=_container_security(
                non_root=preset.run_as_non_root, user=preset.run_as_user, ro_root=False
            ),
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="model", mount_path="/models", read_only=True),
                self._server_cache_mount(),
                k8s.core.v1.VolumeMountArgs(name="shm", mount_path="/dev/shm"),
                k8s.core.v1.VolumeMountArgs(name="cache", mount_path=CACHE_DIR),
                k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
            ],
        )

    def _server_cache_mount(self) -> k8s.core.v1.VolumeMountArgs:
        """Read-only; from a node cache only the model's own directory (sub-path), so a
        runtime never sees the other models cached on its node."""
        args = self._args
        if args.node_cache is None:
            return k8s.core.v1.VolumeMountArgs(
                name=MODEL_CACHE_VOLUME, mount_path=args.model_cache_dir, read_only=True
            )
        return k8s.core.v1.VolumeMountArgs(
            name=MODEL_CACHE_VOLUME,
            mount_path=f"{args.model_cache_dir.rstrip('/')}/{args.model_name}",
            sub_path=args.model_name,
            read_only=True,
        )

    def _service_ports(self) -> list[k8s.core.v1.ServicePortArgs]:
        preset = self._args.runtime
        ports = [
            k8s.core.v1.ServicePortArgs(
                name=preset.port_name, port=preset.port, target_port=preset.port_name
            )
        ]
        ports += [
            k8s.core.v1.ServicePortArgs(name=port_name, port=number, target_port=port_name)
            for port_name, number in preset.extra_ports
        ]
        if preset.metrics_port != preset.port:
            ports.append(
                k8s.core.v1.ServicePortArgs(
                    name="metrics", port=preset.metrics_port, target_port="metrics"
                )
            )
        return ports

    def _service(
        self, resource_name: str, service: str, track: str, *, scraped: bool = True
    ) -> k8s.core.v1.Service:
        """A ClusterIP Service; ``scraped``: carries the metrics label (one per track)."""
        args = self._args
        labels = self._labels(track)
        if scraped:
            key, value = runtimes.METRICS_SERVICE_LABEL
            labels[key] = value
        return k8s.core.v1.Service(
            resource_name,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=service, namespace=args.namespace, labels=labels
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP", selector=self._selector(track), ports=self._service_ports()
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _pdb(self, resource_name: str, workload: str, track: str) -> None:
        args = self._args
        k8s.policy.v1.PodDisruptionBudget(
            resource_name,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=workload, namespace=args.namespace, labels=self._labels(track)
            ),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=self._selector(track)),
                min_available=args.pdb_min_available,
                max_unavailable=None if args.pdb_min_available is not None else 1,
                # A pod that never became ready must not block node drains.
                unhealthy_pod_eviction_policy="AlwaysAllow",
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def scaled_object_spec(self, workload: str) -> dict[str, object]:
        """The KEDA ScaledObject spec for one Deployment."""
        args = self._args
        signal = args.runtime.scaling
        target = args.scale_target if args.scale_target is not None else signal.default_target
        triggers: list[dict[str, object]] = [
            {
                "type": "prometheus",
                "name": "queue",
                "metricType": signal.metric_type,
                "metadata": {
                    "serverAddress": args.prometheus_address,
                    "query": signal.query(args.namespace, workload),
                    "threshold": f"{target:g}",
                    "activationThreshold": "0",
                    "ignoreNullValues": "true",
                },
            }
        ]
        if args.wake_schedule is not None:
            wake = args.wake_schedule
            triggers.append(
                {
                    "type": "cron",
                    "name": "wake",
                    "metadata": {
                        "timezone": wake.timezone,
                        "start": wake.start,
                        "end": wake.end,
                        "desiredReplicas": str(wake.replicas),
                    },
                }
            )
        return {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload},
            "minReplicaCount": args.min_replicas,
            "maxReplicaCount": args.max_replicas,
            "pollingInterval": args.polling_interval_seconds,
            "cooldownPeriod": args.cooldown_period_seconds,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": {
                            "stabilizationWindowSeconds": 0,
                            "selectPolicy": "Max",
                            "policies": [
                                {
                                    "type": "Pods",
                                    "value": 4,
                                    "periodSeconds": self._scale_up_period(),
                                },
                                {
                                    "type": "Percent",
                                    "value": 100,
                                    "periodSeconds": self._scale_up_period(),
                                },
                            ],
                        },
                        "scaleDown": {
                            "stabilizationWindowSeconds": args.scale_down_stabilization_seconds,
                            "selectPolicy": "Min",
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                        },
                    }
                }
            },
            "triggers": triggers,
        }

    def _scaler(self, resource_name: str, workload: str) -> k8s.apiextensions.CustomResource:
        args = self._args
        return k8s.apiextensions.CustomResource(
            resource_name,
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=workload, namespace=args.namespace, labels=self._labels(None)
            ),
            spec=self.scaled_object_spec(workload),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.deployments_by_name(workload), *args.scaler_depends_on],
            ),
        )

    def deployments_by_name(self, workload: str) -> k8s.apps.v1.Deployment:
        for track, deployment in self.deployments.items():
            if workload_name(self._args.model_name, track) == workload:
                return deployment
        raise KeyError(workload)

    # ------------------------------------------------------------------ exposure

    def _base(self, track: str) -> str:
        return self._name if track == "stable" else f"{self._name}-{track}"

    def _bind(
        self,
        track: str,
        port_name: str,
        spec: lb.TargetSpec,
        service: k8s.core.v1.Service,
        suffix: str,
    ) -> tuple[aws.lb.TargetGroup, k8s.apiextensions.CustomResource]:
        """A target group for one track (and port) and its TargetGroupBinding."""
        args = self._args
        assert args.frontend is not None  # checked in problems()
        workload = workload_name(args.model_name, track)
        base = self._base(track)
        group = lb.target_group(
            f"{base}-tg{suffix}",
            spec,
            frontend=args.frontend,
            tags={**args.tags, "mlstack:model": args.model_name, "mlstack:track": track},
            parent=self,
        )
        binding = lb.target_group_binding(
            f"{base}-tgb{suffix}",
            namespace=args.namespace,
            binding_name=f"{workload}{suffix}",
            service=service,
            service_name=workload,
            port=port_name,
            group=group,
            frontend=args.frontend,
            labels=self._labels(track),
            parent=self,
        )
        self.bindings.append(binding)
        return group, binding

    def _nlb_ports(self) -> list[lb.NlbPort]:
        preset = self._args.runtime
        return [lb.NlbPort(preset.port_name, preset.port)] + [
            lb.NlbPort(port_name, number) for port_name, number in preset.extra_ports
        ]

    def _track_targets(self, track: str, service: k8s.core.v1.Service) -> list[_TrackTarget]:
        """The target groups (one, or one per NLB port) of one track and their bindings."""
        args = self._args
        preset = args.runtime
        if args.exposure == "alb":
            spec = lb.TargetSpec(
                port=preset.port,
                protocol="HTTP",
                health_check_path=preset.readiness_path,
                drain_seconds=args.drain_seconds,
                slow_start_seconds=args.slow_start_seconds,
            )
            group, binding = self._bind(track, preset.port_name, spec, service, "")
            return [_TrackTarget(preset.port_name, "", group, binding)]
        if args.exposure != "nlb":
            return []
        found: list[_TrackTarget] = []
        for port in self._nlb_ports():
            suffix = "" if port.name == preset.port_name else f"-{port.name}"
            spec = lb.TargetSpec(
                port=port.port,
                protocol="TCP",
                health_check_path=preset.readiness_path,
                health_check_port=preset.port,
                drain_seconds=args.drain_seconds,
            )
            group, binding = self._bind(track, port.name, spec, service, suffix)
            found.append(_TrackTarget(port.name, suffix, group, binding))
        return found

    def _expose_alb(self, exposed: Mapping[str, list[_TrackTarget]]) -> None:
        args = self._args
        frontend = args.frontend
        assert frontend is not None and frontend.https_listener is not None
        assert frontend.alb is not None and args.rule_slot is not None
        groups: dict[str, tuple[aws.lb.TargetGroup, tuple[pulumi.Resource, ...]]] = {}
        for track in args.tracks:
            [target_of_track] = exposed[track.track]
            group, binding = target_of_track.group, target_of_track.binding
            # Traffic only once the track's rollout is available and its binding exists.
            ready = (self.deployments[track.track], binding)
            groups[workload_name(args.model_name, track.track)] = (group, ready)
            self.target_groups.append(
                ExposedTargetGroup("alb", None if track.track == "stable" else track.track, group)
            )

        def target(service: str, weight: int) -> lb.WeightedTarget:
            group, ready = groups[service]
            return lb.WeightedTarget(group, weight, ready)

        main, preview = lb.alb_rules(
            self._name,
            listener=frontend.https_listener,
            slot=args.rule_slot,
            host=args.host,
            path=args.path,
            main=[target(b.service, b.weight) for b in self.routes.main],
            preview=target(self.routes.preview, 100) if self.routes.preview else None,
            warm_listener=frontend.http_listener,
            warm_groups=[group for group, _ in groups.values()],
            preview_header=args.preview_header,
            tags={**args.tags, "mlstack:model": args.model_name},
            parent=self,
            preview_source_cidrs=args.preview_source_cidrs,
        )
        self.rules = [main] + ([preview] if preview is not None else [])
        self.load_balancer_arn_suffix = frontend.alb.arn_suffix
        self.endpoint_dns_name = frontend.alb.dns_name

    def _expose_nlb(self, exposed: Mapping[str, list[_TrackTarget]]) -> None:
        args = self._args
        frontend = args.frontend
        assert frontend is not None
        active_track = self.routes.cluster_selector_track
        active: dict[str, aws.lb.TargetGroup] = {}
        for track in args.tracks:
            for target in exposed[track.track]:
                label = None if track.track == "stable" else track.track
                if target.suffix:
                    label = f"{label}-{target.port_name}" if label else target.port_name
                self.target_groups.append(ExposedTargetGroup("nlb", label, target.group))
                if track.track == active_track:
                    active[target.port_name] = target.group
        self.nlb, _ = lb.nlb(
            f"{self._name}-nlb",
            frontend=frontend,
            ports=self._nlb_ports(),
            active=active,
            certificate_arn=args.certificate_arn or frontend.certificate_arn,
            tags={**args.tags, "mlstack:model": args.model_name},
            parent=self,
        )
        self.load_balancer_arn_suffix = self.nlb.arn_suffix
        self.endpoint_dns_name = self.nlb.dns_name


@dataclass(frozen=True)
class _TrackTarget:
    """One target group of a track (``suffix``: ``-<port>`` for an NLB's extra ports)."""

    port_name: str
    suffix: str
    group: aws.lb.TargetGroup
    binding: k8s.apiextensions.CustomResource


@dataclass(frozen=True)
class ExposedTargetGroup:
    """One target group of a model, for its alarms: ``track`` None is the main (stable)
    one; otherwise the label its alarms carry (``canary``, ``blue``, ``grpc``...)."""

    kind: Literal["alb", "nlb"]
    track: str | None
    group: aws.lb.TargetGroup


def termination_grace_seconds(shutdown_seconds: int) -> int:
    """The pod's grace period: the preStop pause, then the server's own drain after SIGTERM
    (its shutdown timeout), then a margin to exit; the kubelet kills what is left."""
    return PRE_STOP_SECONDS + shutdown_seconds + EXIT_MARGIN_SECONDS


def _equal_resources(amounts: Mapping[str, str]) -> k8s.core.v1.ResourceRequirementsArgs:
    """Requests = limits (Guaranteed QoS for the server)."""
    return k8s.core.v1.ResourceRequirementsArgs(requests=dict(amounts), limits=dict(amounts))


def _container_security(
    *, non_root: bool, user: int, ro_root: bool
) -> k8s.core.v1.SecurityContextArgs:
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        privileged=False,
        read_only_root_filesystem=ro_root,
        run_as_non_root=non_root or None,
        run_as_user=user if non_root else None,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def node_spread(
    selector: dict[str, str], min_replicas: int
) -> k8s.core.v1.TopologySpreadConstraintArgs:
    """Replicas of one ReplicaSet on different nodes: the first ``min_replicas`` each on a
    node of its own (``minDomains``), the rest at most one more per node than the emptiest.

    A node repair (Karpenter's is forceful: no drain, no PDB) or a GPU fault then takes one
    replica of a model, never all of them, which is what the PDB's one-unavailable promises.
    """
    return k8s.core.v1.TopologySpreadConstraintArgs(
        max_skew=1,
        topology_key="kubernetes.io/hostname",
        when_unsatisfiable="DoNotSchedule",
        min_domains=max(1, min_replicas),
        label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
        match_label_keys=["pod-template-hash"],
    )
