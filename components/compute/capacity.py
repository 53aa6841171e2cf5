"""What one GPU node can hold, and how many nodes a set of replicas needs.

Pure functions over ``gpu_instances.json``: config validation (do the models fit their
pools?) and ``mlstack cost`` (what do the replicas cost?) use the same numbers.

A node's allocatable resources are its instance's capacity minus:

* Karpenter's VM memory overhead, 7.5 % of the instance memory (its default
  ``VM_MEMORY_OVERHEAD_PERCENT``; the hypervisor and firmware take that much);
* the kubelet's ``kube-reserved`` as the EKS AMIs compute it: CPU 6 % of the first
  core, 1 % of the second, 0.5 % of cores 3-4 and 0.25 % of the rest; memory
  255 MiB + 11 MiB per pod at :data:`MAX_PODS` pods;
* the kubelet's hard eviction threshold, ``memory.available < 100Mi``;
* :data:`NODE_AGENTS`: a budget for the DaemonSets every GPU node runs (VPC CNI,
  kube-proxy, EKS Pod Identity agent, EBS CSI node, NVIDIA device plugin, DCGM
  exporter at 100m/128Mi, node exporter).

Packing is first-fit decreasing by GPUs, then memory: close to optimal for the
handful of replica shapes a pool serves, and never optimistic by more than that.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from components.compute.gpu_instances import GpuInstance

VM_MEMORY_OVERHEAD = 0.075
MAX_PODS = 110
EVICTION_MEMORY_GIB = 100 / 1024
NODE_AGENTS_CPU = 0.5
NODE_AGENTS_MEMORY_GIB = 1.0


@dataclass(frozen=True)
class Demand:
    """What one replica requests (requests = limits in mlstack's pods)."""

    cpu: float
    """Cores."""
    memory_gib: float
    gpus: int

    def fits(self, node: Allocatable) -> bool:
        return (
            self.gpus <= node.gpus
            and self.cpu <= node.cpu + 1e-9
            and self.memory_gib <= node.memory_gib + 1e-9
        )


POD_SCRATCH_GIB = 30
"""The model server's own ephemeral storage (compile caches, logs) besides the model:
what each inference pod requests on a pool with a node-shared cache."""

IMAGE_RESERVE_GIB = 60
"""Node disk kept for container images (10-20 GiB each): the node-shared model cache
must leave it free, besides the pods' scratch (``POD_SCRATCH_GIB`` each)."""

KUBELET_EVICTION_HEADROOM = 0.10
"""The kubelet's default hard eviction threshold, ``nodefs.available < 10%``: disk the
node-shared model cache must leave free, or the kubelet evicts pods."""

MODEL_CACHE_HOLD = Demand(cpu=0.1, memory_gib=0.125, gpus=0)
"""The ``model-cache-hold`` sidecar (100m CPU, 128Mi) of every inference pod on a pool
with a node-shared model cache: a native sidecar, so it adds to the pod's requests.
Requests equal limits (Guaranteed pods); 100m starts its Python in about 3 s (at 20m it
took about 15 s, on the path of every start)."""


@dataclass(frozen=True)
class Allocatable:
    """What pods may request on one node of ``instance_type``."""

    instance_type: str
    cpu: float
    memory_gib: float
    gpus: int

    def describe(self) -> str:
        return (
            f"{self.instance_type}: {self.gpus} GPU, {self.cpu:.2f} CPU, "
            f"{self.memory_gib:.1f} GiB allocatable"
        )


def kube_reserved_cpu(vcpu: int) -> float:
    """Cores the kubelet reserves on a node with ``vcpu`` cores (EKS AMI formula)."""
    steps = ((1, 0.06), (1, 0.01), (2, 0.005), (math.inf, 0.0025))
    left, reserved = float(vcpu), 0.0
    for cores, share in steps:
        taken = min(left, cores)
        reserved += taken * share
        left -= taken
        if left <= 0:
            break
    return reserved


def kube_reserved_memory_gib(max_pods: int = MAX_PODS) -> float:
    """Memory the kubelet reserves: 255 MiB + 11 MiB per pod (EKS AMI formula)."""
    return (255 + 11 * max_pods) / 1024


def allocatable(instance: GpuInstance) -> Allocatable:
    """Allocatable resources of one node of ``instance`` after system reservations."""
    return allocatable_of(
        instance.instance_type, instance.vcpu, instance.memory_gib, instance.gpu_count
    )


def allocatable_of(instance_type: str, vcpu: int, memory_gib: float, gpus: int) -> Allocatable:
    """Allocatable resources of a node with this capacity after system reservations."""
    memory = (
        memory_gib * (1 - VM_MEMORY_OVERHEAD)
        - kube_reserved_memory_gib()
        - EVICTION_MEMORY_GIB
        - NODE_AGENTS_MEMORY_GIB
    )
    cpu = vcpu - kube_reserved_cpu(vcpu) - NODE_AGENTS_CPU
    return Allocatable(instance_type, max(cpu, 0.0), max(memory, 0.0), gpus)


def pack(demands: Iterable[Demand], node: Allocatable) -> int | None:
    """Nodes of one type the replicas need (first-fit decreasing); None if one never fits."""
    ordered = sorted(demands, key=lambda d: (d.gpus, d.memory_gib, d.cpu), reverse=True)
    if not ordered:
        return 0
    # A node with less room in one dimension than the smallest demand has takes nothing
    # more: leave it out of the scan (first fit still picks the same node), so replicas
    # that fill a node each cost O(1), not a scan of every node opened so far.
    least = (
        min(d.gpus for d in ordered),
        min(d.cpu for d in ordered),
        min(d.memory_gib for d in ordered),
    )

    def full(room: list[float]) -> bool:
        return room[0] < least[0] or room[1] + 1e-9 < least[1] or room[2] + 1e-9 < least[2]

    nodes = 0
    free: list[list[float]] = []
    for demand in ordered:
        if not demand.fits(node):
            return None
        for at, room in enumerate(free):
            if (
                demand.gpus <= room[0]
                and demand.cpu <= room[1] + 1e-9
                and (demand.memory_gib <= room[2] + 1e-9)
            ):
                room[0] -= demand.gpus
                room[1] -= demand.cpu
                room[2] -= demand.memory_gib
                if full(room):
                    del free[at]
                break
        else:
            nodes += 1
            room = [
                node.gpus - demand.gpus,
                node.cpu - demand.cpu,
                node.memory_gib - demand.memory_gib,
            ]
            if not full(room):
                free.append(room)
    return nodes
