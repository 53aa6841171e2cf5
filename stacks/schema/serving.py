"""``mlstack:serving``: what all inference services share.

The namespace they run in, how their pods get AWS credentials (Pod Identity or
IRSA), the one shared ALB (scheme, TLS, idle timeout, access logs) behind the AWS
Load Balancer Controller, and the KEDA autoscaler (Prometheus address, polling).

:func:`cross_checks` holds the rules that span models, GPU pools and these
settings; ``stacks.config`` turns each finding into a ``Problem``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import field_validator

from components.network.cidrs import too_open
from components.serving.registries import UPSTREAMS
from components.serving.rollout import (
    RULE_CONDITION_VALUES,
    RULE_SLOTS,
    condition_values,
    derived_rule_slot,
    route_covers,
)
from components.serving.tls_policies import TLS12_POLICIES
from stacks.schema.base import ConfigModel, fixed, knob
from stacks.schema.gpu_pools import GpuPoolConfig
from stacks.schema.models import DNS_LABEL, ModelConfig, image_parts

_CERT_ARN = re.compile(r"^arn:aws[a-z-]*:acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/[0-9a-f-]+$")
_CHART_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/-]{0,200}$")


class AccessLogsConfig(ConfigModel):
    """ALB (and NLB TLS) access logs, written to a bucket the stack creates itself."""

    enabled: bool = knob(
        True, description="Write access logs (prod: required when internet-facing)."
    )
    prefix: str = knob("alb", description="Key prefix of the log objects.")
    retention_days: int = knob(
        90, ge=1, le=3650, description="Days log objects are kept before they expire."
    )

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREFIX.match(value) or value.startswith("/") or value.endswith("/"):
            raise ValueError("must be an S3 key prefix without leading or trailing '/'")
        if "AWSLogs" in value:
            raise ValueError("must not contain 'AWSLogs' (ELB adds it and refuses it in a prefix)")
        return value


class LoadBalancerConfig(ConfigModel):
    """The one ALB all ``alb`` models share, the NLBs of ``nlb`` models, and the AWS Load
    Balancer Controller that registers pod IPs in their target groups."""

    scheme: Literal["internal", "internet-facing"] = knob(
        "internal", description="ALB/NLB scheme: internal (VPC only) or internet-facing."
    )
    certificate_arn: str | None = knob(
        None, description="ACM certificate ARN for the HTTPS (and NLB TLS) listeners, same region."
    )
    ssl_policy: str = fixed(
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
        description="ELB TLS security policy of the HTTPS/TLS listeners (TLS 1.2 or newer).",
    )
    idle_timeout_seconds: int = knob(
        600, ge=1, le=4000, description="ALB idle timeout; long enough for slow generations."
    )
    desync_mitigation_mode: Literal["defensive", "strictest"] = fixed(
        "defensive", description="ALB HTTP desync mitigation mode."
    )
    inbound_cidrs: list[str] = knob(
        default_factory=list,
        description="CIDRs allowed to reach the load balancers (default for internal: the VPC).",
    )
    allow_open_inbound: bool = knob(
        False,
        description="Allow inboundCidrs whose union opens the internet (0.0.0.0/0, or "
        "0.0.0.0/1 + 128.0.0.0/1...) in a prod stack (refused otherwise).",
    )
    deletion_protection: bool = knob(False, description="Load balancer deletion protection.")
    access_logs: AccessLogsConfig = knob(
        default_factory=AccessLogsConfig,
        description="Access logs to the stack's own log bucket (SSE-S3, ELB delivery policy).",
    )
    controller_replicas: int = knob(2, ge=1, le=5, description="Controller replicas.")

    @field_validator("certificate_arn")
    @classmethod
    def _arn(cls, value: str | None) -> str | None:
        if value is not None and not _CERT_ARN.match(value):
            raise ValueError(
                f"{value!r} is not an ACM certificate ARN "
                "(arn:aws:acm:<region>:<account>:certificate/<id>)"
            )
        return value

    @field_validator("ssl_policy")
    @classmethod
    def _tls12(cls, value: str) -> str:
        if value not in TLS12_POLICIES:
            raise ValueError(
                f"{value!r} is not a TLS 1.2+ ELB security policy; allowed: "
                + ", ".join(TLS12_POLICIES)
            )
        return value

    @field_validator("inbound_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a CIDR ({exc})") from None
        return value

    @property
    def certificate_region(self) -> str | None:
        match = _CERT_ARN.match(self.certificate_arn or "")
        return match["region"] if match else None


class AutoscalerConfig(ConfigModel):
    """KEDA: where it reads the runtimes' metrics and how often."""

    prometheus_address: str | None = fixed(
        None,
        description="Prometheus HTTP API KEDA queries. Default: the monitoring layer's.",
        pattern=r"^https?://[A-Za-z0-9.-]+(:\d+)?(/.*)?$",
    )
    polling_interval_seconds: int = knob(
        15, ge=5, le=300, description="How often KEDA evaluates each trigger."
    )
    cooldown_period_seconds: int = knob(
        300, ge=30, le=3600, description="Idle time before scaling a scale-to-zero model to 0."
    )
    replicas: int = knob(1, ge=1, le=3, description="KEDA operator/metrics-server replicas.")


_CACHE_SECRET = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:ecr-pullthroughcache/[A-Za-z0-9/_+=.@-]+$"
)


class ImageCacheConfig(ConfigModel):
    """ECR pull-through caches for the images the models run (docs/cold-start.md)."""

    enabled: bool = fixed(
        True,
        description="Pull runtime images through ECR pull-through caches in the stack's region "
        "(registries ECR supports; nvcr.io is pulled directly).",
    )
    credential_arns: dict[str, str] = knob(
        default_factory=dict,
        description="Registry host -> Secrets Manager secret ECR authenticates with, named "
        "ecr-pullthroughcache/...; Docker Hub, ghcr.io and GitLab need one, else their images "
        "are pulled from upstream. Example: {docker.io: arn:aws:secretsmanager:...}.",
    )

    @field_validator("credential_arns")
    @classmethod
    def _secrets(cls, value: dict[str, str]) -> dict[str, str]:
        for host, arn in value.items():
            if host not in UPSTREAMS:
                raise ValueError(f"unknown registry {host!r}; allowed: {', '.join(UPSTREAMS)}")
            if not _CACHE_SECRET.match(arn):
                raise ValueError(
                    f"{arn!r} is not the ARN of a Secrets Manager secret named "
                    "ecr-pullthroughcache/..."
                )
        return value


class ChartVersionsConfig(ConfigModel):
    """Overrides of the chart versions pinned in components/versions.py."""

    keda: str | None = fixed(None, description="KEDA chart version override.")
    aws_load_balancer_controller: str | None = fixed(
        None, description="aws-load-balancer-controller chart version override."
    )

    @field_validator("keda", "aws_load_balancer_controller")
    @classmethod
    def _semver(cls, value: str | None) -> str | None:
        if value is not None and not _CHART_VERSION.match(value):
            raise ValueError("must be an exact chart version like 2.20.2")
        return value


class LoaderRepositoryConfig(ConfigModel):
    """The stack's ECR repository of the model-loader image."""

    force_delete: bool = knob(
        False,
        description=(
            "Let `pulumi destroy` (and a delete-first replacement) delete the repository "
            "with its images; without it the delete fails with RepositoryNotEmptyException "
            "once an image was pushed. Allowed only in dev stacks that do not protect "
            "stateful resources."
        ),
    )


class ServingConfig(ConfigModel):
    """Load balancer and autoscaler settings shared by every model."""

    namespace: str = fixed("inference", description="Namespace of every inference service.")
    identity: Literal["podIdentity", "irsa"] = fixed(
        "podIdentity",
        description="How pods get AWS credentials: EKS Pod Identity or IRSA (OIDC).",
    )
    load_balancer: LoadBalancerConfig = knob(
        default_factory=LoadBalancerConfig, description="ALB/NLB settings."
    )
    autoscaler: AutoscalerConfig = knob(
        default_factory=AutoscalerConfig, description="KEDA settings."
    )
    chart_versions: ChartVersionsConfig = fixed(
        default_factory=ChartVersionsConfig, description="Pinned chart version overrides."
    )
    deploy_models: bool = knob(
        True,
        description="Deploy the models[] services. false on the first deploy of a new stack: "
        "the platform and the model bucket come up, nothing waits on artifacts; push them "
        "(mlstack model push --stack <stack>), then set true (docs/operations.md, First "
        "deploy).",
    )
    image_cache: ImageCacheConfig = fixed(
        default_factory=ImageCacheConfig, description="ECR pull-through caches for images."
    )
    loader_repository: LoaderRepositoryConfig = knob(
        default_factory=LoaderRepositoryConfig,
        description="The model-loader image's ECR repository.",
    )

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not DNS_LABEL.match(value) or len(value) > 63:
            raise ValueError(f"{value!r} is not a DNS-1123 label")
        return value


# --------------------------------------------------------------------------- cross-key rules

NLB_BLUE_GREEN = (
    "an nlb model cannot run blueGreen: an NLB listener forwards to one target group, so "
    "the idle color's target groups sit behind no listener, AWS reports their targets "
    "'unused', and the AWS Load Balancer Controller sets the pods' readiness gate only on "
    "'healthy' (pkg/targetgroupbinding/resource_manager.go): the idle pods never become "
    "Ready and `pulumi up` waits out its deadline; allowed: rolling with exposure.type "
    "nlb, or blueGreen with exposure.type alb (docs/rollouts.md, Blue/green)"
)

Finding = tuple[str, Any, str]
"""(key path, value, message), turned into a ``stacks.config.Problem``."""


def versions_held(model: ModelConfig) -> int:
    """How many versions of ``model`` one node may hold at once: every track's version
    plus the next one a rollout brings (rolling: old and new; canary: stable, canary and
    the canary's next version; blue/green: both colors and the next one)."""
    return len(model.tracks) + 1


def worst_node_versions(models: Sequence[ModelConfig], gpus_per_node: int) -> list[ModelConfig]:
    """The versions one node may hold at once, at most: the pods that fit its GPUs
    (``versions_held`` per model at most) with the largest total ``modelDiskGib`` (a
    knapsack on GPUs; CPU and memory are ignored, so the bound errs large)."""
    items = [m for m in models for _ in range(versions_held(m))]
    best: list[tuple[int, list[ModelConfig]]] = [(0, []) for _ in range(gpus_per_node + 1)]
    for item in items:
        for budget in range(gpus_per_node, item.gpus - 1, -1):
            size, chosen = best[budget - item.gpus]
            if size + item.model_disk_gib > best[budget][0]:
                best[budget] = (size + item.model_disk_gib, [*chosen, item])
    return best[gpus_per_node][1]


def _node_cache_room(
    models: Sequence[ModelConfig], gpu_pools: Sequence[GpuPoolConfig]
) -> Iterator[Finding]:
    """A node-shared cache holds every version its node's pods may serve at once, or the
    loaders wait and then fail: the worst set of pods one node's GPUs can run."""
    for index, pool in enumerate(gpu_pools):
        cache = pool.model_cache
        on_pool = [m for m in models if m.pool == pool.name and m.gpus <= pool.gpus_per_node()]
        if cache.scope != "node" or not on_pool:
            continue
        if any(m.model_disk_gib > cache.size_gib for m in on_pool):
            continue  # reported per model
        worst = worst_node_versions(on_pool, pool.gpus_per_node())
        need = sum(m.model_disk_gib for m in worst)
        if need > cache.size_gib:
            parts = " + ".join(f"{m.model_disk_gib} ({m.name})" for m in worst)
            yield (
                f"mlstack:gpuPools[{index}].modelCache.sizeGib",
                cache.size_gib,
                f"the pods one node's {pool.gpus_per_node()} GPUs can run may hold these "
                f"versions at once (every track's and a rollout's next, per model): "
                f"{parts} = {need} GiB; allowed: at least {need}, or set "
                "modelCache.scope: pod",
            )


def cross_checks(
    *,
    region: str,
    is_prod: bool,
    models: Sequence[ModelConfig],
    gpu_pools: Sequence[GpuPoolConfig],
    serving: ServingConfig,
) -> Iterator[Finding]:
    """Rules spanning models, GPU pools, serving settings and the environment.

    The root config passes its sections in (``stacks.config._serving_rules``): this
    module is a leaf and never imports the root model.
    """
    pools = {p.name: p for p in gpu_pools}
    routes: dict[tuple[str, str], int] = {}
    lb = serving.load_balancer
    for i, model in enumerate(models):
        at = f"mlstack:models[{i}]"
        pool = pools.get(model.pool)
        if pool is None:
            allowed = ", ".join(pools) if pools else "none defined in mlstack:gpuPools"
            yield f"{at}.pool", model.pool, f"unknown GPU pool; allowed: {allowed}"
        elif pool.model_cache.scope == "node" and model.model_disk_gib > pool.model_cache.size_gib:
            yield (
                f"{at}.modelDiskGib",
                model.model_disk_gib,
                f"larger than pool {pool.name!r}'s node cache of {pool.model_cache.size_gib} "
                f"GiB (gpuPools[].modelCache.sizeGib): the version could never be cached; "
                f"allowed: at most {pool.model_cache.size_gib}, or raise the cache",
            )
        if pool is not None and model.gpus > pool.gpus_per_node():
            yield (
                f"{at}.gpus",
                model.gpus,
                f"more GPUs per replica than pool {pool.name!r} instances have; allowed: "
                f"1..{pool.gpus_per_node()} (largest type: {_largest(pool)})",
            )
        if is_prod and model.autoscaling.min_replicas < 2:
            yield (
                f"{at}.autoscaling.minReplicas",
                model.autoscaling.min_replicas,
                "prod needs at least 2 replicas",
            )
        if is_prod:
            yield from _prod_images(at, model)
        exposure = model.exposure
        if model.rollout.strategy == "canary" and exposure.type != "alb":
            yield (
                f"{at}.exposure.type",
                exposure.type,
                "strategy canary splits traffic with ALB weights; allowed: alb",
            )
        blue_green = model.rollout.blue_green
        if blue_green is not None and exposure.type == "alb" and blue_green.preview_source_cidrs:
            values = condition_values(
                exposure.host, exposure.path, True, blue_green.preview_source_cidrs
            )
            if values > RULE_CONDITION_VALUES:
                room = RULE_CONDITION_VALUES - (values - len(blue_green.preview_source_cidrs))
                yield (
                    f"{at}.rollout.blueGreen.previewSourceCidrs",
                    blue_green.preview_source_cidrs,
                    f"the preview rule (host, path patterns, header and these CIDRs) would "
                    f"carry {values} condition values; ALB allows {RULE_CONDITION_VALUES} per "
                    f"rule; allowed: at most {room} CIDR(s) for this host/path",
                )
        if model.rollout.strategy == "blueGreen" and exposure.type == "nlb":
            yield (
                f"{at}.rollout.strategy",
                "blueGreen",
                NLB_BLUE_GREEN,
            )
        if exposure.type == "alb":
            route = (exposure.host or "*", exposure.path)
            if route in routes:
                yield (
                    f"{at}.exposure",
                    {"host": exposure.host, "path": exposure.path},
                    f"same host and path as models[{routes[route]}]; allowed: a host/path "
                    "no other model routes",
                )
            routes.setdefault(route, i)
        else:
            for key, value in (("host", exposure.host), ("priority", exposure.priority)):
                if value is not None:
                    yield (
                        f"{at}.exposure.{key}",
                        value,
                        f"exposure {exposure.type} has no ALB listener rule; allowed: unset "
                        f"(an {exposure.type} model is reached by "
                        + ("its NLB's DNS name)" if exposure.type == "nlb" else "its Service)"),
                    )
            if exposure.path != "/":
                yield (
                    f"{at}.exposure.path",
                    exposure.path,
                    f"exposure {exposure.type} does no path routing; allowed: / (the default)",
                )
    yield from _rule_slots(models)
    yield from _keep_alive(models, lb.idle_timeout_seconds)
    yield from _node_cache_room(models, gpu_pools)
    uses_alb = bool(routes)
    if uses_alb and lb.certificate_arn is None:
        yield (
            "mlstack:serving.loadBalancer.certificateArn",
            None,
            "models use the ALB, whose HTTPS listener needs an ACM certificate; allowed: "
            "an ACM certificate ARN in the stack's region",
        )
    cert_region = lb.certificate_region
    if cert_region is not None and cert_region != region:
        yield (
            "mlstack:serving.loadBalancer.certificateArn",
            lb.certificate_arn,
            f"certificate is in {cert_region}; the ALB needs one in {region}",
        )
    yield from _inbound(is_prod, serving)


def _keep_alive(models: Sequence[ModelConfig], idle_timeout: int) -> Iterator[Finding]:
    """An ALB model's server keeps idle connections open longer than the ALB's idle timeout
    (else the ALB reuses one the server is closing and answers 502). vLLM gets the idle
    timeout + 5 s (VLLM_HTTP_TIMEOUT_KEEP_ALIVE), Triton never closes first; a custom
    server's declared keepAliveSeconds is checked here."""
    for i, model in enumerate(models):
        custom = model.custom
        if model.exposure.type != "alb" or custom is None or custom.keep_alive_seconds is None:
            continue
        if custom.keep_alive_seconds <= idle_timeout:
            yield (
                f"mlstack:models[{i}].custom.keepAliveSeconds",
                custom.keep_alive_seconds,
                f"the server would close idle connections before the ALB's idle timeout "
                f"(serving.loadBalancer.idleTimeoutSeconds {idle_timeout}), and the ALB "
                f"answers the next request on such a connection with 502; allowed: more "
                f"than {idle_timeout} (or unset: {idle_timeout + 5})",
            )


def _inbound(is_prod: bool, serving: ServingConfig) -> Iterator[Finding]:
    """Who may reach the load balancers: prod internet-facing needs explicit CIDRs, and
    0.0.0.0/0 only with allowOpenInbound; prod internet-facing LBs are protected and logged."""
    lb = serving.load_balancer
    at = "mlstack:serving.loadBalancer"
    if not (is_prod and lb.scheme == "internet-facing"):
        return
    if not lb.inbound_cidrs:
        yield (
            f"{at}.inboundCidrs",
            [],
            "a prod internet-facing load balancer needs the CIDRs of its clients; allowed: "
            "a non-empty list of CIDRs (0.0.0.0/0 only with allowOpenInbound: true)",
        )
    opened = too_open(lb.inbound_cidrs)
    if opened and not lb.allow_open_inbound:
        yield (
            f"{at}.inboundCidrs",
            lb.inbound_cidrs,
            f"opens a prod load balancer to the whole internet: {opened} (narrower CIDRs), "
            "or set allowOpenInbound: true to mean it",
        )
    if not lb.deletion_protection:
        yield (
            f"{at}.deletionProtection",
            False,
            "a prod internet-facing load balancer must have deletion protection; allowed: true",
        )
    if not lb.access_logs.enabled:
        yield (
            f"{at}.accessLogs.enabled",
            False,
            "a prod internet-facing load balancer must write access logs; allowed: true",
        )


def rule_slots(models: Sequence[ModelConfig]) -> dict[str, int]:
    """Listener-rule slot of every ALB-exposed model: ``exposure.priority`` or derived from
    the name (``components.serving.rollout.derived_rule_slot``)."""
    return {
        m.name: m.exposure.priority or derived_rule_slot(m.name)
        for m in models
        if m.exposure.type == "alb"
    }


def _rule_slots(models: Sequence[ModelConfig]) -> Iterator[Finding]:
    """No two models on one slot; a route that another route covers (same host, longer
    path; or a named host under a wildcard/any host) is evaluated first."""
    slots = rule_slots(models)
    index = {m.name: i for i, m in enumerate(models)}
    taken: dict[int, str] = {}
    alb = [m for m in models if m.exposure.type == "alb"]
    for model in alb:
        slot = slots[model.name]
        i = index[model.name]
        other = taken.get(slot)
        if other is not None:
            source = "set" if model.exposure.priority else f"derived from the name {model.name!r}"
            used = set(slots.values())
            free = next(s for s in range(1, RULE_SLOTS + 1) if s not in used)
            yield (
                f"mlstack:models[{i}].exposure.priority",
                slot,
                f"rule slot {slot} ({source}) is already used by models[{index[other]}] "
                f"({other}); allowed: a free slot in 1..{RULE_SLOTS}, e.g. {free}",
            )
        taken.setdefault(slot, model.name)
    for outer_at, inner_at in _covering_pairs(alb):
        outer, inner = alb[outer_at], alb[inner_at]
        o = (outer.exposure.host, outer.exposure.path)
        n = (inner.exposure.host, inner.exposure.path)
        if slots[inner.name] > slots[outer.name]:
            yield (
                f"mlstack:models[{index[inner.name]}].exposure.priority",
                slots[inner.name],
                f"route {n[0] or '*'}{n[1]} is inside models[{index[outer.name]}]'s "
                f"{o[0] or '*'}{o[1]} (slot {slots[outer.name]}) but would be evaluated "
                f"after it and never match; allowed: a slot below {slots[outer.name]}",
            )


def _covering_keys(host: str | None, path: str) -> set[tuple[str | None, str]]:
    """Every (host, path without trailing ``/``) of a route that may cover ``(host, path)``
    (``route_covers``): any host, the same host or a wildcard over one of its parent
    domains; the same path or a prefix ending before one of its ``/``."""
    hosts: set[str | None] = {None}
    if host is not None:
        hosts.add(host)
        hosts.update(f"*{host[at:]}" for at, char in enumerate(host) if char == ".")
    paths = {path.rstrip("/")} | {path[:at] for at, char in enumerate(path) if char == "/"}
    return {(h, p) for h in hosts for p in paths}


def _covering_pairs(alb: Sequence[ModelConfig]) -> list[tuple[int, int]]:
    """(outer, inner) positions in ``alb`` where outer's route strictly covers inner's, in
    the order of a scan over every pair, found through an index of the routes: each route
    looks up only the few routes that could cover it, not every other route."""
    by_route: dict[tuple[str | None, str], list[int]] = {}
    for at, model in enumerate(alb):
        key = (model.exposure.host, model.exposure.path.rstrip("/"))
        by_route.setdefault(key, []).append(at)
    pairs: list[tuple[int, int]] = []
    for inner_at, inner in enumerate(alb):
        n = (inner.exposure.host, inner.exposure.path)
        for key in _covering_keys(*n):
            for outer_at in by_route.get(key, ()):
                o = (alb[outer_at].exposure.host, alb[outer_at].exposure.path)
                if outer_at != inner_at and route_covers(o, n) and not route_covers(n, o):
                    pairs.append((outer_at, inner_at))
    return sorted(pairs)


def _largest(pool: Any) -> str:
    """The pool's instance type with the most GPUs (ties: the first listed)."""
    from components.compute import gpu_instances

    facts = gpu_instances.load_gpu_instances()
    types = pool.allowed_instance_types()
    return max(types, key=lambda t: facts[t].gpu_count) if types else "none"


def _prod_images(at: str, model: Any) -> Iterator[Finding]:
    images: list[tuple[str, str | None]] = [(f"{at}.image", model.image)]
    canary = model.rollout.canary
    if canary is not None:
        images.append((f"{at}.rollout.canary.image", canary.image))
    blue_green = model.rollout.blue_green
    if blue_green is not None:
        images += [
            (f"{at}.rollout.blueGreen.blue.image", blue_green.blue.image),
            (f"{at}.rollout.blueGreen.green.image", blue_green.green.image),
        ]
    for path, image in images:
        if image is None:
            continue  # the preset's pinned image
        _, tag, digest = image_parts(image)
        if digest is None and tag in (None, "latest"):
            yield path, image, "prod needs a pinned image: an explicit tag other than latest"
