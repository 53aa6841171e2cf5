"""Plan-time estimate of a model's start-up: from zero (a new GPU node) and from a warm node.

A replica that starts on a node that does not exist yet pays the whole chain: the node
is launched and joins, the NVIDIA device plugin advertises its GPUs, the runtime image
is pulled, the model loader (``mlstack model fetch``) streams the weights into the
node-local cache while hashing them, the server loads them into GPU memory and warms
up, and the readiness probe sees it. A replica on a warm node whose cache already holds
the version (same manifest digest) and whose image is already pulled pays only the last
three.

:func:`estimate` adds the phases up from plain facts (:class:`StartupInputs`); every
phase carries the numbers it used and where each assumption comes from, so a reviewer
can challenge one line instead of a total. The assumptions are module constants below;
``docs/cold-start.md`` explains them and how to calibrate them against the measured
time-to-ready (the ``mlstack:model_time_to_ready_seconds`` recording rule).

The estimate feeds three things: ``mlstack coldstart``, the config rule that refuses a
``startupBudgetSeconds`` shorter than the cold estimate, and nothing else (the budget,
not the estimate, sets the timeouts, so a wrong assumption can never shorten a wait).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from components.compute.gpu_instances import GpuInstance

GIB = 1024**3
MIB = 1024**2

Provisioner = Literal["karpenter", "managed"]
AmiFamily = Literal["al2023", "bottlerocket"]
RuntimeName = Literal["vllm", "triton", "custom"]


@dataclass(frozen=True)
class Assumption:
    """One number the estimate relies on, and where it comes from."""

    value: float
    unit: str
    source: str


NODE_LAUNCH_SECONDS: dict[Provisioner, Assumption] = {
    "karpenter": Assumption(
        90,
        "s",
        "Karpenter launches the instance directly (CreateFleet) on a pending pod: EC2 boot "
        "+ nodeadm/Bottlerocket join + kubelet Ready; assumed 90 s for GPU AMIs (ai-on-eks "
        "measured 6m33s pod start on a fresh node against ~2m30s on a warm one, the "
        "difference being node launch plus image pull).",
    ),
    "managed": Assumption(
        150,
        "s",
        "cluster-autoscaler scan (10 s) + Auto Scaling group launch + EKS join; assumed "
        "150 s (one scan interval and the ASG activity on top of the Karpenter figure).",
    ),
}
DEVICE_PLUGIN_SECONDS = Assumption(
    30,
    "s",
    "NVIDIA device plugin DaemonSet pod start on the new node until nvidia.com/gpu is "
    "allocatable; assumed 30 s (small image, no model).",
)
IMAGE_PULL_MIBPS: dict[bool, Assumption] = {
    False: Assumption(
        60,
        "MiB/s",
        "containerd's default pull (layers fetched by up to 3 connections, unpacked one "
        "after another): published figures are 4-6 min for 15-20 GB images (AWS Deep "
        "Learning AMI/Containers SOCI post), i.e. 45-85 MiB/s; 60 MiB/s assumed.",
    ),
    True: Assumption(
        150,
        "MiB/s",
        "SOCI parallel pull and unpack (Bottlerocket >= 1.44 'parallel-pull-unpack' mode): "
        "AWS's SOCI parallel-pull post reports pulls several times faster for large "
        "images; 150 MiB/s (2.5x the default) assumed, not measured here.",
    ),
}
S3_FETCH_MIBPS = Assumption(
    600,
    "MiB/s",
    "`mlstack model fetch`: parallel ranged GETs from S3 in-region (16 connections at "
    "~40-90 MiB/s each), hashed while streaming; 600 MiB/s assumed. The smallest GPU "
    "types ('up to 10 Gbps') may sustain less once their network burst is spent: "
    "calibrate with the loader's per-phase log lines.",
)
NVME_MIBPS = Assumption(
    1500,
    "MiB/s",
    "Sequential write/read of the instance-store NVMe RAID0 of GPU instances (one NVMe "
    "SSD delivers 1-2 GB/s sequential); 1500 MiB/s assumed.",
)
HASH_MIBPS = Assumption(
    1000,
    "MiB/s",
    "SHA-256 on one core while streaming (the loader hashes each file as it arrives; "
    "benchmarks/model_fetch_bench.py measures this machine's floor); 1000 MiB/s assumed.",
)
GPU_LOAD_MIBPS_PER_GPU = Assumption(
    2000,
    "MiB/s per GPU",
    "safetensors from page cache or local disk into GPU memory, each GPU loading its "
    "shard in parallel (PCIe Gen4 x16 is ~25 GB/s; deserialisation and allocation "
    "dominate); 2000 MiB/s per GPU assumed.",
)
WARMUP_SECONDS: dict[RuntimeName, Assumption] = {
    "vllm": Assumption(
        90,
        "s",
        "vLLM engine start after the weights: memory profiling, KV-cache allocation, "
        "torch.compile and CUDA-graph capture; assumed 90 s.",
    ),
    "triton": Assumption(30, "s", "Triton model repository load and instance warm-up; 30 s."),
    "custom": Assumption(60, "s", "Unknown server: 60 s assumed; override the budget."),
}
READINESS_SECONDS = Assumption(
    15,
    "s",
    "Readiness probe period (5 s) until the first success, plus the load balancer's first "
    "healthy check; assumed 15 s.",
)
UNKNOWN_MODEL_FILL = 0.9
"""Without ``modelSizeGib`` the weights are assumed to fill 90 % of the replica's GPU
memory: an upper bound, since served weights must fit on the GPUs."""


@dataclass(frozen=True)
class StartupInputs:
    """The facts one model's start-up depends on (mapped from config by ``stacks/``)."""

    model: str
    runtime: RuntimeName
    gpus: int
    instance: GpuInstance
    """The pool's smallest instance type that fits one replica (where it lands first)."""
    provisioner: Provisioner
    ami_family: AmiFamily
    model_size_gib: float | None
    """Total size of the version's files; ``None`` = unknown (upper bound used)."""
    image_size_gib: float
    """Compressed size of the runtime image."""
    image_size_source: str
    local_nvme: bool
    """The model cache and images live on an instance-store RAID0 (else on EBS)."""
    ebs_throughput_mibps: int
    parallel_image_pull: bool
    """SOCI parallel pull is enabled on the pool's nodes (see components.compute)."""
    model_size_source: str = "models[].modelSizeGib"
    """Where ``model_size_gib`` came from (config, or the version's manifest)."""
    node_cache: bool = True
    """The pool's model cache is node-shared: a new pod on a warm node is a cache hit.
    False (per-pod cache): every new pod fetches the weights again."""


@dataclass(frozen=True)
class Phase:
    """One step of a start-up: how long, from what, on what assumption."""

    name: str
    seconds: float
    basis: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class StartupEstimate:
    """A model's start-up from zero (new node) and from a warm node with a cache hit."""

    model: str
    cold: tuple[Phase, ...]
    warm: tuple[Phase, ...]
    warm_cache_hit: bool = True
    """The warm case finds the version in a node-shared cache (False: per-pod cache)."""

    @property
    def cold_seconds(self) -> int:
        return round(sum(p.seconds for p in self.cold))

    @property
    def warm_seconds(self) -> int:
        return round(sum(p.seconds for p in self.warm))

    @property
    def pod_cold_seconds(self) -> int:
        """From pod creation on a new node to Ready: what ``startupBudgetSeconds`` covers
        (everything in :attr:`cold`)."""
        return self.cold_seconds


def _model_size(inputs: StartupInputs) -> tuple[float, str]:
    if inputs.model_size_gib is not None:
        return inputs.model_size_gib, f"{inputs.model_size_gib:g} GiB ({inputs.model_size_source})"
    size = inputs.gpus * inputs.instance.gpu_memory_gib * UNKNOWN_MODEL_FILL
    return size, (
        f"{size:g} GiB: modelSizeGib unset, assumed {UNKNOWN_MODEL_FILL:.0%} of "
        f"{inputs.gpus} x {inputs.instance.gpu_memory_gib} GiB GPU memory (upper bound)"
    )


def _disk(inputs: StartupInputs) -> tuple[float, str, str]:
    if inputs.local_nvme:
        return NVME_MIBPS.value, "instance-store NVMe RAID0", NVME_MIBPS.source
    return (
        float(inputs.ebs_throughput_mibps),
        f"EBS gp3 at {inputs.ebs_throughput_mibps} MiB/s (rootVolume.throughputMibps)",
        "gp3 throughput is provisioned: the configured MiB/s is its ceiling.",
    )


def estimate(inputs: StartupInputs) -> StartupEstimate:
    """The cold (new node, empty cache) and warm (cached image and version) start-up."""
    size_gib, size_basis = _model_size(inputs)
    size_mib = size_gib * 1024
    disk_mibps, disk_basis, disk_source = _disk(inputs)

    node = NODE_LAUNCH_SECONDS[inputs.provisioner]
    node_phase = Phase(
        "node launch",
        node.value + DEVICE_PLUGIN_SECONDS.value,
        f"{inputs.provisioner} node of type {inputs.instance.instance_type} "
        f"({inputs.ami_family}), then the device plugin",
        (node.source, DEVICE_PLUGIN_SECONDS.source),
    )
    pull = IMAGE_PULL_MIBPS[inputs.parallel_image_pull]
    pull_mibps = min(pull.value, disk_mibps)
    image_phase = Phase(
        "image pull",
        inputs.image_size_gib * 1024 / pull_mibps,
        f"{inputs.image_size_gib:g} GiB image at {pull_mibps:g} MiB/s "
        f"({'parallel pull' if inputs.parallel_image_pull else 'default pull'}, onto "
        f"{disk_basis}); size: {inputs.image_size_source}",
        (pull.source,),
    )
    fetch_mibps = min(S3_FETCH_MIBPS.value, disk_mibps, HASH_MIBPS.value)
    fetch_phase = Phase(
        "weights fetch",
        size_mib / fetch_mibps,
        f"{size_basis} at {fetch_mibps:g} MiB/s = min(S3 {S3_FETCH_MIBPS.value:g}, "
        f"disk {disk_mibps:g} ({disk_basis}), hash {HASH_MIBPS.value:g}), verified while "
        "streaming",
        (S3_FETCH_MIBPS.source, disk_source, HASH_MIBPS.source),
    )
    gpu_mibps = GPU_LOAD_MIBPS_PER_GPU.value * inputs.gpus
    # Just written, the files are in the page cache when the node's memory holds them.
    in_page_cache = size_gib < inputs.instance.memory_gib * 0.5
    cold_load_mibps = gpu_mibps if in_page_cache else min(gpu_mibps, disk_mibps)
    cold_load = Phase(
        "GPU load",
        size_mib / cold_load_mibps,
        f"{size_gib:g} GiB at {cold_load_mibps:g} MiB/s ({inputs.gpus} GPU(s)"
        + (", from page cache)" if in_page_cache else f", read from {disk_basis})"),
        (GPU_LOAD_MIBPS_PER_GPU.source,),
    )
    warm_load_mibps = min(gpu_mibps, disk_mibps)
    warm_load = Phase(
        "GPU load",
        size_mib / warm_load_mibps,
        f"{size_gib:g} GiB read from the node cache on {disk_basis} at "
        f"{warm_load_mibps:g} MiB/s ({inputs.gpus} GPU(s))",
        (GPU_LOAD_MIBPS_PER_GPU.source, disk_source),
    )
    warmup = WARMUP_SECONDS[inputs.runtime]
    warmup_phase = Phase("warm-up", warmup.value, f"{inputs.runtime} engine", (warmup.source,))
    ready = Phase("ready", READINESS_SECONDS.value, "probes", (READINESS_SECONDS.source,))
    if not inputs.node_cache:
        # A per-pod cache: a new pod on a warm node has the image, not the weights.
        refetch = Phase(
            "weights fetch",
            fetch_phase.seconds,
            f"per-pod cache (gpuPools[].modelCache.scope: pod): fetched again, {fetch_phase.basis}",
            fetch_phase.sources,
        )
        return StartupEstimate(
            model=inputs.model,
            cold=(node_phase, image_phase, fetch_phase, cold_load, warmup_phase, ready),
            warm=(refetch, cold_load, warmup_phase, ready),
            warm_cache_hit=False,
        )
    verify_mibps = min(disk_mibps, HASH_MIBPS.value)
    cache_hit = Phase(
        "weights fetch",
        size_mib / verify_mibps,
        f"cache hit: the node cache holds this manifest digest; every file re-hashed "
        f"before use at {verify_mibps:g} MiB/s = min(disk {disk_mibps:g}, hash "
        f"{HASH_MIBPS.value:g}) (a shared entry is trusted only while its bytes match)",
        (HASH_MIBPS.source, disk_source),
    )
    return StartupEstimate(
        model=inputs.model,
        cold=(node_phase, image_phase, fetch_phase, cold_load, warmup_phase, ready),
        warm=(cache_hit, warm_load, warmup_phase, ready),
    )
