"""``mlstack:gpuPools``: GPU node pools, provisioned by Karpenter or as EKS managed node groups.

One config shape for both provisioners. A pool allows an exact set of instance
types: ``instanceTypes`` plus every type of ``instanceFamilies`` (optionally
limited to ``instanceSizes``), resolved against the GPU facts file
(``components/compute/gpu_instances.json``), so config validation knows the GPU
count, model and architecture of every instance a pool may launch.

Single-key checks live on the fields below; checks spanning several keys, the
stack's environment or the cluster version are in :func:`pool_problems`, which
``stacks.config`` registers as an environment rule so every problem names its
exact key (``mlstack:gpuPools[0].maxGpus``) and value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, field_validator, model_validator

from components.compute import gpu_instances
from components.compute.capacity import (
    IMAGE_RESERVE_GIB,
    KUBELET_EVICTION_HEADROOM,
    POD_SCRATCH_GIB,
)
from stacks.schema import aws_enums, cron
from stacks.schema.base import ConfigModel, HotfixReason, fixed, knob

_POOL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DURATION = re.compile(r"^([0-9]+(s|m|h))+$")
_BUDGET_NODES = re.compile(r"^((100|[0-9]{1,2})%|[0-9]+)$")
_RESERVATION_ID = re.compile(r"^cr-[0-9a-z]+$")

# Taint and label domains owned by Kubernetes, EKS and Karpenter. Their controllers add and
# remove these taints (cordon, not-ready, disruption...), so a static one on a pool is never
# what it seems: mlstack will not put one on nodes nor give the device plugin a toleration
# for it, and without that toleration the device plugin cannot start on the node.
RESERVED_DOMAINS = (
    "kubernetes.io",
    "k8s.io",
    "karpenter.sh",
    "karpenter.k8s.aws",
    "eks.amazonaws.com",
    "mlstack.io",
)

AL2023_KARPENTER_RELEASE = re.compile(r"^v\d{8}$")
BOTTLEROCKET_KARPENTER_RELEASE = re.compile(r"^v\d+\.\d+\.\d+$")
AL2023_MANAGED_RELEASE = re.compile(r"^(\d+\.\d+)\.\d+-\d{8}$")
BOTTLEROCKET_MANAGED_RELEASE = re.compile(r"^\d+\.\d+\.\d+-[0-9a-f]{8}$")

MIN_ROOT_VOLUME_GIB = 100


def _domain(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def is_reserved_key(key: str) -> bool:
    """Whether ``key`` (a taint or label key) is in a domain a controller owns."""
    domain = _domain(key)
    return any(domain == d or domain.endswith("." + d) for d in RESERVED_DOMAINS)


class TaintConfig(ConfigModel):
    """A node taint; every workload for the pool gets the matching toleration."""

    key: str = fixed(description="Taint key, e.g. nvidia.com/gpu.")
    value: str = fixed("", description="Taint value (may be empty).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = fixed(
        "NoSchedule", description="NoSchedule, PreferNoSchedule or NoExecute."
    )

    @field_validator("key")
    @classmethod
    def _key_shape(cls, value: str) -> str:
        if not _QUALIFIED_NAME.match(value):
            raise ValueError(f"{value!r} is not a valid taint key ([prefix/]name)")
        if is_reserved_key(value):
            raise ValueError(
                f"{value!r} is in a domain Kubernetes, EKS, Karpenter or mlstack manage "
                f"({', '.join(RESERVED_DOMAINS)}): it would block the NVIDIA device plugin, "
                "which only tolerates the pools' own taints; use your own domain "
                "(e.g. nvidia.com/gpu or example.com/team)"
            )
        return value

    @field_validator("value")
    @classmethod
    def _value_shape(cls, value: str) -> str:
        if not _LABEL_VALUE.match(value):
            raise ValueError(f"{value!r} is not a valid taint value (up to 63 [-A-Za-z0-9_.])")
        return value


def _gpu_instance_type(value: str) -> str:
    known = aws_enums.ec2_instance_types()
    if value not in known:
        raise ValueError(aws_enums.describe_unknown(value, known, "EC2 instance type"))
    if value not in gpu_instances.load_gpu_instances():
        raise ValueError(
            "not a GPU instance type mlstack has facts for (GPU families: "
            f"{', '.join(sorted(gpu_instances.families()))})"
        )
    return value


def _gpu_family(value: str) -> str:
    gpu_families = gpu_instances.families()
    if value in gpu_families:
        return value
    all_families = {t.split(".", 1)[0] for t in aws_enums.ec2_instance_types()}
    what = "not a GPU instance family" if value in all_families else "not an EC2 instance family"
    raise ValueError(f"{what}; allowed: {', '.join(sorted(gpu_families))}")


GpuInstanceType = Annotated[str, AfterValidator(_gpu_instance_type)]
GpuFamily = Annotated[str, AfterValidator(_gpu_family)]


DEFAULT_TAINTS = [TaintConfig(key="nvidia.com/gpu", value="true", effect="NoSchedule")]


class AmiConfig(ConfigModel):
    """The node image: family, CPU architecture and a pinned release (never "latest")."""

    family: Literal["al2023", "bottlerocket"] = fixed(
        "al2023", description="al2023 (EKS AL2023 NVIDIA AMI) or bottlerocket (NVIDIA variant)."
    )
    architecture: Literal["x86_64", "arm64"] = fixed(
        "x86_64", description="CPU architecture of the AMI; every instance type must match."
    )
    release: str = fixed(
        description=(
            "Pinned AMI release. karpenter: al2023 'v20260714', bottlerocket 'v1.46.0'. "
            "managed: al2023 '1.33.13-20260714' (must match cluster.version), "
            "bottlerocket '1.46.0-<8 hex>'."
        )
    )

    @field_validator("release")
    @classmethod
    def _not_latest(cls, value: str) -> str:
        if "latest" in value.lower() or not value:
            raise ValueError(
                "pin a release (e.g. v20260714); 'latest' lets dev and prod drift apart"
            )
        return value

    @property
    def eks_ami_type(self) -> str:
        """The EKS managed node group AMI type for this family and architecture."""
        arch = "x86_64" if self.architecture == "x86_64" else "ARM_64"
        return f"{'AL2023' if self.family == 'al2023' else 'BOTTLEROCKET'}_{arch}_NVIDIA"


class RootVolumeConfig(ConfigModel):
    """The node's root (AL2023) or data (Bottlerocket) gp3 volume, always encrypted."""

    size_gib: int = knob(200, le=65536, description="Size in GiB; at least 100.")
    iops: int = knob(3000, ge=3000, le=80000, description="gp3 IOPS (3000-80000).")
    throughput_mibps: int = knob(
        125, ge=125, le=2000, description="gp3 throughput in MiB/s (125-2000, <= iops/4)."
    )

    @field_validator("size_gib")
    @classmethod
    def _big_enough(cls, value: int) -> int:
        if value < MIN_ROOT_VOLUME_GIB:
            raise ValueError(
                f"root disk of {value} GiB is under {MIN_ROOT_VOLUME_GIB} GiB: CUDA and "
                "model-server images are 10-20 GiB each and image pulls fail on a full disk"
            )
        return value


class ModelCacheConfig(ConfigModel):
    """Where the pool's pods keep verified model versions."""

    scope: Literal["node", "pod"] = fixed(
        "node",
        description="node: one cache per node shared by the pool's pods (a pod restarted or "
        "rescheduled on a warm node starts without downloading); pod: each pod downloads "
        "into its own emptyDir.",
    )
    size_gib: int = knob(
        100,
        ge=10,
        le=60000,
        description="node scope: the cache's bound per node, GiB; least recently used "
        "versions no pod serves are evicted to stay under it. Must hold every model of the "
        "pool (its modelDiskGib) and, on EBS, leave the image reserve free.",
    )


class DisruptionBudgetConfig(ConfigModel):
    """A Karpenter disruption budget: at most ``nodes`` disrupted at once (in a window)."""

    nodes: str = knob(description="Node count ('1') or percentage ('10%').")
    schedule: str | None = knob(None, description="Cron schedule opening the window (UTC).")
    duration: str | None = knob(None, description="Window length, e.g. 8h (with schedule).")
    reasons: list[Literal["Underutilized", "Empty", "Drifted"]] | None = knob(
        None, description="Disruption reasons the budget applies to (default: all)."
    )

    @field_validator("nodes")
    @classmethod
    def _nodes_shape(cls, value: str) -> str:
        if not _BUDGET_NODES.match(value):
            raise ValueError(f"{value!r}: give a node count ('1') or a percentage ('10%')")
        return value

    @field_validator("duration")
    @classmethod
    def _duration_shape(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION.match(value):
            raise ValueError(f"{value!r}: give a duration such as 30m or 8h")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule_shape(cls, value: str | None) -> str | None:
        problem = None if value is None else cron.cron_problem(value, allow_descriptors=True)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _schedule_with_duration(self) -> DisruptionBudgetConfig:
        if (self.schedule is None) != (self.duration is None):
            raise ValueError("schedule and duration go together: give both or neither")
        return self


class AutoRepairConfig(ConfigModel):
    """Node auto repair: a node whose health condition (``AcceleratedHardwareReady`` from the
    EKS node monitoring agent, ``Ready``...) stays bad is replaced (10 minutes for GPU faults,
    30 for the others). Managed pools: the node group's ``nodeRepairConfig``, one node at a
    time. Karpenter pools: the controller's ``NodeRepair`` feature gate, one switch for every
    Karpenter pool."""

    enabled: bool = knob(True, description="Replace nodes whose health conditions stay bad.")
    disabled_reason: HotfixReason | None = knob(
        None,
        description="Why this pool runs without auto repair (required to turn it off in prod; "
        "its GPU faults then page on-call).",
    )


class DisruptionConfig(ConfigModel):
    """How Karpenter removes and replaces nodes (karpenter pools only)."""

    consolidation_policy: Literal["WhenEmpty", "WhenEmptyOrUnderutilized"] = fixed(
        "WhenEmpty",
        description="WhenEmpty (default for GPU pools: never evicts a running model) or "
        "WhenEmptyOrUnderutilized.",
    )
    consolidate_after: str = knob(
        "10m", description="How long a node stays empty before removal, e.g. 10m."
    )
    expire_after: str = knob("720h", description="Maximum node lifetime (then replaced), or Never.")
    budgets: list[DisruptionBudgetConfig] = knob(
        default_factory=lambda: [DisruptionBudgetConfig(nodes="1")],
        description="Disruption budgets; default one node at a time.",
    )

    @field_validator("consolidate_after")
    @classmethod
    def _consolidate_after(cls, value: str) -> str:
        if value != "Never" and not _DURATION.match(value):
            raise ValueError(f"{value!r}: give a duration such as 10m, or Never")
        return value

    @field_validator("expire_after")
    @classmethod
    def _expire_after(cls, value: str) -> str:
        if value != "Never" and not _DURATION.match(value):
            raise ValueError(f"{value!r}: give a duration such as 720h, or Never")
        return value


class GpuPoolConfig(ConfigModel):
    """One GPU node pool."""

    name: str = fixed(description="Pool name, a DNS-1123 label of at most 40 characters.")
    hotfix: HotfixReason | None = knob(
        None,
        description="Why this entry runs in prod without having run in the lower stage first "
        "(`mlstack parity` then lists it as a hotfix instead of failing); remove it once the "
        "lower stage has caught up.",
    )
    provisioner: Literal["karpenter", "managed"] = fixed(
        "karpenter", description="karpenter (NodePool + EC2NodeClass) or managed (EKS node group)."
    )
    instance_families: list[GpuFamily] = knob(
        default_factory=list, description="GPU families allowed, e.g. [g6, g6e] (all sizes)."
    )
    instance_sizes: list[str] = knob(
        default_factory=list, description="Limit instanceFamilies to these sizes, e.g. [xlarge]."
    )
    instance_types: list[GpuInstanceType] = knob(
        default_factory=list, description="Exact instance types allowed, e.g. [g6e.xlarge]."
    )
    capacity_types: list[Literal["on-demand", "spot", "reserved"]] = knob(
        default_factory=lambda: ["on-demand"],
        description="on-demand, spot, reserved (karpenter); managed pools take one of "
        "on-demand / spot.",
    )
    allow_spot_only: bool = knob(
        False, description="Let a prod pool be spot-only (it can lose all capacity at once)."
    )
    capacity_reservation_ids: list[str] = knob(
        default_factory=list, description="ODCR / capacity-block ids (cr-...) for 'reserved'."
    )
    ami: AmiConfig = fixed(description="Node image: family, architecture, pinned release.")
    root_volume: RootVolumeConfig = knob(
        default_factory=RootVolumeConfig, description="gp3 root/data volume."
    )
    instance_store_raid0: bool = fixed(
        True, description="Put kubelet and containerd on the NVMe instance store (RAID0)."
    )
    model_cache: ModelCacheConfig = knob(
        default_factory=ModelCacheConfig,
        description="The model cache: node-shared (default) or per pod.",
    )
    min_nodes: int = knob(
        0, ge=0, le=1000, description="Minimum nodes (managed). Karpenter pools: must be 0."
    )
    max_nodes: int = knob(ge=1, le=1000, description="Maximum nodes of the pool.")
    max_gpus: int | None = knob(
        None,
        ge=1,
        description="GPU limit of the pool (nvidia.com/gpu). Default: maxNodes x GPUs of the "
        "largest allowed instance.",
    )
    taints: list[TaintConfig] = fixed(
        default_factory=lambda: list(DEFAULT_TAINTS),
        description="Node taints. Default nvidia.com/gpu=true:NoSchedule.",
    )
    labels: dict[str, str] = fixed(
        default_factory=dict, description="Extra node labels (mlstack.io/* are set by mlstack)."
    )
    disruption: DisruptionConfig = knob(
        default_factory=DisruptionConfig, description="Karpenter disruption (karpenter only)."
    )
    update_max_unavailable: int = knob(
        1, ge=1, le=100, description="Nodes replaced at once on a node group update (managed)."
    )
    auto_repair: AutoRepairConfig = knob(
        default_factory=AutoRepairConfig,
        description="Node auto repair (on by default; prod needs a reason to turn it off).",
    )

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not _POOL_NAME.match(value):
            raise ValueError(
                f"{value!r}: use 1-40 lowercase letters, digits or '-', starting and ending "
                "alphanumeric"
            )
        return value

    @field_validator("capacity_reservation_ids")
    @classmethod
    def _reservation_ids(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _RESERVATION_ID.match(v)]
        if bad:
            raise ValueError(f"not capacity reservation ids (cr-...): {bad}")
        return value

    @field_validator("labels")
    @classmethod
    def _label_shapes(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            if not _QUALIFIED_NAME.match(key):
                raise ValueError(f"label key {key!r} is not a valid [prefix/]name")
            if is_reserved_key(key):
                raise ValueError(
                    f"label key {key!r} is in a reserved domain ({', '.join(RESERVED_DOMAINS)})"
                )
            if not _LABEL_VALUE.match(label):
                raise ValueError(f"label {key!r}: value {label!r} is not a valid label value")
        return value

    # ------------------------------------------------------------------ derived

    def allowed_instance_types(self) -> tuple[str, ...]:
        """The exact instance types this pool may launch."""
        return gpu_instances.expand(
            self.instance_types, self.instance_families, self.instance_sizes
        )

    def gpus_per_node(self) -> int:
        """GPUs of the largest allowed instance type (0 when none is known)."""
        facts = gpu_instances.load_gpu_instances()
        return max(
            (facts[t].gpu_count for t in self.allowed_instance_types() if t in facts), default=0
        )

    def effective_max_gpus(self) -> int:
        return self.max_gpus if self.max_gpus is not None else self.max_nodes * self.gpus_per_node()


# --------------------------------------------------------------------------- cross-key rules

Loc = tuple[str | int, ...]


def pool_problems(
    pools: Sequence[GpuPoolConfig], *, is_prod: bool, cluster_version: str
) -> Iterator[tuple[Loc, Any, str]]:
    """Problems spanning several keys of ``gpuPools``: (key path, value, message)."""
    seen: dict[str, int] = {}
    for index, pool in enumerate(pools):
        at: Loc = ("gpuPools", index)
        if pool.name in seen:
            yield (
                (*at, "name"),
                pool.name,
                f"duplicate pool name (also gpuPools[{seen[pool.name]}].name)",
            )
        seen.setdefault(pool.name, index)
        yield from _instance_problems(pool, at)
        yield from _size_problems(pool, at)
        yield from _capacity_problems(pool, at, is_prod)
        yield from _provisioner_problems(pool, at, cluster_version)
        yield from _taint_problems(pool, at)
        yield from _repair_problems(pool, at, is_prod)
    yield from _karpenter_repair_switch(pools)


def _repair_problems(pool: GpuPoolConfig, at: Loc, is_prod: bool) -> Iterator[tuple[Loc, Any, str]]:
    repair = pool.auto_repair
    where = (*at, "autoRepair")
    if repair.enabled and repair.disabled_reason is not None:
        yield (
            (*where, "disabledReason"),
            repair.disabled_reason,
            "a reason is only read with enabled: false; remove it",
        )
    if is_prod and not repair.enabled and repair.disabled_reason is None:
        yield (
            (*where, "enabled"),
            False,
            "a prod GPU pool keeps node auto repair on (a GPU fault otherwise holds a node "
            "until someone drains it); give autoRepair.disabledReason to turn it off anyway",
        )


def _karpenter_repair_switch(pools: Sequence[GpuPoolConfig]) -> Iterator[tuple[Loc, Any, str]]:
    """Karpenter's node repair is one feature gate for the whole controller: its pools
    cannot differ."""
    karpenter = [(i, p) for i, p in enumerate(pools) if p.provisioner == "karpenter"]
    values = {p.auto_repair.enabled for _, p in karpenter}
    if len(values) > 1:
        on = [p.name for _, p in karpenter if p.auto_repair.enabled]
        for index, pool in karpenter:
            if not pool.auto_repair.enabled:
                yield (
                    ("gpuPools", index, "autoRepair", "enabled"),
                    False,
                    "Karpenter's node repair is one switch for every Karpenter pool (the "
                    f"controller's NodeRepair feature gate), and {on} keep it on: set the "
                    "same value on every karpenter pool",
                )


def _instance_problems(pool: GpuPoolConfig, at: Loc) -> Iterator[tuple[Loc, Any, str]]:
    facts = gpu_instances.load_gpu_instances()
    if not pool.instance_types and not pool.instance_families:
        yield (
            (*at, "instanceTypes"),
            pool.instance_types,
            "a pool needs instanceTypes and/or instanceFamilies",
        )
        return
    if pool.instance_sizes and not pool.instance_families:
        yield (
            (*at, "instanceSizes"),
            pool.instance_sizes,
            "instanceSizes limits instanceFamilies; give instanceFamilies too",
        )
    for size in pool.instance_sizes:
        if not any(f.family in pool.instance_families and f.size == size for f in facts.values()):
            yield (
                (*at, "instanceSizes"),
                size,
                f"no instance of families {pool.instance_families} has this size",
            )
    arch = pool.ami.architecture
    for position, itype in enumerate(pool.instance_types):
        fact = facts.get(itype)
        if fact is not None and fact.architecture != arch:
            yield (
                (*at, "instanceTypes", position),
                itype,
                f"{itype} is {fact.architecture} but ami.architecture is {arch}: "
                "the AMI cannot boot it",
            )
    for position, family in enumerate(pool.instance_families):
        archs = {f.architecture for f in facts.values() if f.family == family}
        if archs and arch not in archs:
            yield (
                (*at, "instanceFamilies", position),
                family,
                f"{family} is {'/'.join(sorted(archs))} but ami.architecture is {arch}: "
                "the AMI cannot boot it",
            )


def _size_problems(pool: GpuPoolConfig, at: Loc) -> Iterator[tuple[Loc, Any, str]]:
    if pool.min_nodes > pool.max_nodes:
        yield (
            (*at, "minNodes"),
            pool.min_nodes,
            f"minNodes is greater than maxNodes ({pool.max_nodes})",
        )
    facts = gpu_instances.load_gpu_instances()
    allowed = [facts[t] for t in pool.allowed_instance_types() if t in facts]
    if pool.max_gpus is not None and allowed:
        largest = max(allowed, key=lambda f: f.gpu_count)
        if pool.max_gpus < largest.gpu_count:
            yield (
                (*at, "maxGpus"),
                pool.max_gpus,
                f"GPU limit is below the {largest.gpu_count} GPUs of one {largest.instance_type}"
                " node: such a node could never launch; raise maxGpus or drop that type",
            )
    volume = pool.root_volume
    if volume.throughput_mibps * 4 > volume.iops:
        yield (
            (*at, "rootVolume", "throughputMibps"),
            volume.throughput_mibps,
            f"gp3 allows at most iops/4 = {volume.iops // 4} MiB/s at {volume.iops} IOPS",
        )
    cache = pool.model_cache
    on_ebs = [
        f.instance_type for f in allowed if not (pool.instance_store_raid0 and f.instance_store)
    ]
    headroom = math.ceil(volume.size_gib * KUBELET_EVICTION_HEADROOM)
    scratch = POD_SCRATCH_GIB * max(pool.gpus_per_node(), 1)  # at most a pod per GPU
    most = volume.size_gib - IMAGE_RESERVE_GIB - scratch - headroom
    if cache.scope == "node" and on_ebs and cache.size_gib > most:
        yield (
            (*at, "modelCache", "sizeGib"),
            cache.size_gib,
            f"on {on_ebs} the node cache lives on the {volume.size_gib} GiB EBS volume, which "
            f"must also keep {IMAGE_RESERVE_GIB} GiB for images, {scratch} GiB for the "
            f"scratch of a pod per GPU ({POD_SCRATCH_GIB} GiB each) and the kubelet's "
            f"{KUBELET_EVICTION_HEADROOM:.0%} eviction headroom ({headroom} GiB) free; allowed: at "
            f"most {most}, or raise rootVolume.sizeGib",
        )
    raid_on_bottlerocket_group = (
        pool.instance_store_raid0
        and pool.provisioner == "managed"
        and pool.ami.family == "bottlerocket"
    )
    missing = [f.instance_type for f in allowed if not f.instance_store]
    if raid_on_bottlerocket_group and missing:
        yield (
            (*at, "instanceStoreRaid0"),
            True,
            "Bottlerocket node groups fail to boot RAID0 without instance store; "
            f"{missing} have none: set instanceStoreRaid0: false or drop them",
        )


def _capacity_problems(
    pool: GpuPoolConfig, at: Loc, is_prod: bool
) -> Iterator[tuple[Loc, Any, str]]:
    kinds = pool.capacity_types
    if not kinds:
        yield ((*at, "capacityTypes"), kinds, "give at least one capacity type")
        return
    if len(set(kinds)) != len(kinds):
        yield ((*at, "capacityTypes"), kinds, "duplicate capacity types")
    if is_prod and set(kinds) == {"spot"} and not pool.allow_spot_only:
        yield (
            (*at, "capacityTypes"),
            kinds,
            "a prod pool may not be spot-only (all its GPUs can be reclaimed at once); add "
            "on-demand, or set allowSpotOnly: true to accept that",
        )
    if "reserved" in kinds and not pool.capacity_reservation_ids:
        yield (
            (*at, "capacityReservationIds"),
            [],
            "capacity type 'reserved' needs the reservation ids (cr-...)",
        )
    if pool.capacity_reservation_ids and "reserved" not in kinds:
        yield (
            (*at, "capacityReservationIds"),
            pool.capacity_reservation_ids,
            "reservation ids are only used with capacity type 'reserved'",
        )


def _provisioner_problems(
    pool: GpuPoolConfig, at: Loc, cluster_version: str
) -> Iterator[tuple[Loc, Any, str]]:
    release = pool.ami.release
    family = pool.ami.family
    if pool.provisioner == "karpenter":
        pattern = AL2023_KARPENTER_RELEASE if family == "al2023" else BOTTLEROCKET_KARPENTER_RELEASE
        example = "v20260714" if family == "al2023" else "v1.46.0"
        if not pattern.match(release):
            yield (
                (*at, "ami", "release"),
                release,
                f"karpenter {family} releases look like {example!r} (the alias {family}@...)",
            )
        if pool.min_nodes:
            yield (
                (*at, "minNodes"),
                pool.min_nodes,
                "karpenter pools launch nodes for pending pods only; minNodes must be 0 "
                "(keep warm capacity with the model's minReplicas)",
            )
        return
    # managed node group
    if family == "al2023":
        match = AL2023_MANAGED_RELEASE.match(release)
        if not match:
            yield (
                (*at, "ami", "release"),
                release,
                f"managed al2023 releases look like '{cluster_version}.13-20260714' "
                "(EKS AMI release version)",
            )
        elif match.group(1) != cluster_version:
            yield (
                (*at, "ami", "release"),
                release,
                f"AMI release is for Kubernetes {match.group(1)} but cluster.version is "
                f"{cluster_version}",
            )
    elif not BOTTLEROCKET_MANAGED_RELEASE.match(release):
        yield (
            (*at, "ami", "release"),
            release,
            "managed bottlerocket releases look like '1.46.0-<8 hex digits>'",
        )
    kinds = [k for k in pool.capacity_types if k != "reserved"]
    if "reserved" in pool.capacity_types or len(set(kinds)) != 1:
        yield (
            (*at, "capacityTypes"),
            pool.capacity_types,
            "a managed node group has exactly one capacity type: on-demand or spot "
            "(use two pools, or provisioner: karpenter, to mix)",
        )
    if "disruption" in pool.model_fields_set:
        yield (
            (*at, "disruption"),
            pool.disruption.model_dump(by_alias=True),
            "disruption applies to karpenter pools only; managed pools use updateMaxUnavailable",
        )
    ami_type = pool.ami.eks_ami_type
    if ami_type not in aws_enums.eks_ami_types():
        yield ((*at, "ami"), ami_type, "botocore does not know this EKS AMI type")


def _taint_problems(pool: GpuPoolConfig, at: Loc) -> Iterator[tuple[Loc, Any, str]]:
    seen: set[tuple[str, str]] = set()
    for position, taint in enumerate(pool.taints):
        pair = (taint.key, taint.effect)
        if pair in seen:
            yield (
                (*at, "taints", position),
                taint.model_dump(),
                "a node holds one taint per key and effect; this one repeats",
            )
        seen.add(pair)
