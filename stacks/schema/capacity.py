"""Do the models fit their GPU pools? Config rules that keep the plan from promising
pods that would stay Pending.

Per model: one replica (cpu, memory, GPUs) fits on at least one of its pool's instance
types after system reservations (:mod:`components.compute.capacity`).

Per pool, in every situation the config makes happen, the replicas fit the pool's
limits (``maxGpus``, default ``maxNodes`` x GPUs of the largest type, and ``maxNodes``):

* *minimum*: every model's ``minReplicas`` on each of its Deployments (tracks: a canary
  runs two Deployments, blue/green two full ones);
* *wake windows*: models whose cron windows overlap are up together, at
  ``max(minReplicas, wakeSchedule.replicas)``; every combination that occurs in the
  reference weeks is checked (:func:`stacks.schema.cron.windows`);
* *rolling update*: on top of either, a Deployment with ``maxUnavailable: 0`` needs
  ``maxSurge`` extra pods before it stops an old one, and every model rolls at once
  when something they share changes (the loader script, a preset image).

Per Deployment, the first ``minReplicas`` pods run on distinct nodes (the serving pods'
hostname spread): the pool allows at least that many nodes.

Nodes are counted by packing the replicas onto the pool's allowed instance types; a
Karpenter pool's GPU limit counts whole nodes' GPUs, so a 4-GPU node serving one
1-GPU replica uses 4.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any

from components.compute import capacity, gpu_instances
from components.compute.gpu_node_pool import concurrent_repairs
from stacks.schema import cron
from stacks.schema.gpu_pools import GpuPoolConfig
from stacks.schema.models import ModelConfig, parse_quantity, pdb_min_available

Finding = tuple[str, Any, str]
"""(key path, value, message), turned into a ``stacks.config.Problem``."""

GIB = 2**30


def demand_of(model: ModelConfig, pool: GpuPoolConfig) -> capacity.Demand:
    """What one replica of ``model`` requests on ``pool``: the server, plus the
    model-cache-hold sidecar when the pool's cache is node-shared."""
    server = capacity.Demand(
        cpu=float(parse_quantity(model.cpu)),
        memory_gib=float(parse_quantity(model.memory)) / GIB,
        gpus=model.gpus,
    )
    if pool.model_cache.scope != "node":
        return server
    hold = capacity.MODEL_CACHE_HOLD
    return capacity.Demand(
        cpu=server.cpu + hold.cpu, memory_gib=server.memory_gib + hold.memory_gib, gpus=model.gpus
    )


@dataclass(frozen=True)
class Scenario:
    """Replicas running at one moment: (model index, replicas per Deployment, surge)."""

    label: str
    replicas: tuple[tuple[int, int], ...]
    """(index into the models, total pods of the model at that moment)."""


def _pods(model: ModelConfig, per_deployment: int, surge: bool) -> int:
    tracks = len(model.tracks)
    extra = model.rollout.max_surge if surge and model.rollout.max_unavailable == 0 else 0
    return tracks * (per_deployment + (extra if per_deployment > 0 else 0))


def _awake_sets(models: Sequence[tuple[int, ModelConfig]]) -> list[tuple[datetime, set[int]]]:
    """Each distinct set of models whose wake windows are open together, with a moment."""
    events: list[tuple[datetime, int, int]] = []
    for index, model in models:
        wake = model.autoscaling.wake_schedule
        if wake is None:
            continue
        for lo, hi in cron.reference_windows(wake.start, wake.end, wake.timezone):
            events += [(lo, 1, index), (hi, -1, index)]
    events.sort(key=lambda e: (e[0], e[1]))
    open_count: dict[int, int] = {}
    awake: set[int] = set()
    seen: dict[frozenset[int], datetime] = {}
    # Closes sort before opens, so after an instant's first opening its set only grows:
    # the set after all its events is the one maximal candidate. One set per instant and
    # ``awake`` kept per event: O(events + instants x models), not O(events x models).
    for when, at_instant in groupby(events, key=lambda e: e[0]):
        opened = False
        for _, step, index in at_instant:
            open_count[index] = open_count.get(index, 0) + step
            if open_count[index] > 0:
                awake.add(index)
            else:
                awake.discard(index)
            opened = opened or step > 0
        if opened and awake:
            seen.setdefault(frozenset(awake), when)
    # Keep only maximal sets: a subset of another occurring set never needs more.
    maximal = [s for s in seen if not any(s < other for other in seen)]
    return sorted(((seen[s], set(s)) for s in maximal), key=lambda kv: kv[0])


def scenarios(models: Sequence[tuple[int, ModelConfig]]) -> list[Scenario]:
    """Minimum, each overlap of wake windows, and both again during a rolling update."""
    base: list[tuple[str, set[int]]] = [("minimum replicas", set())]
    for when, awake in _awake_sets(models):
        names = ", ".join(m.name for i, m in models if i in awake)
        base.append((f"wake window of {names} ({when:%a %H:%M} UTC)", awake))
    found: list[Scenario] = []
    for surge in (False, True):
        for label, awake in base:
            replicas = []
            for index, model in models:
                scaling = model.autoscaling
                wake = scaling.wake_schedule
                count = scaling.min_replicas
                if index in awake and wake is not None:
                    count = max(count, wake.replicas)
                replicas.append((index, _pods(model, count, surge)))
            if surge and any(s.replicas == tuple(replicas) for s in found):
                continue  # no Deployment surges (maxUnavailable > 0): nothing new
            found.append(
                Scenario(f"{label} + rolling-update surge" if surge else label, tuple(replicas))
            )
    return found


def _model_fit(models: Sequence[ModelConfig], pool: GpuPoolConfig) -> Iterator[Finding]:
    facts = gpu_instances.load_gpu_instances()
    allowed = [facts[t] for t in pool.allowed_instance_types() if t in facts]
    if not allowed:
        return
    for index, model in enumerate(models):
        if model.pool != pool.name or model.gpus > pool.gpus_per_node():
            continue  # the GPU count per replica is reported by stacks.schema.serving
        need = demand_of(model, pool)
        nodes = [capacity.allocatable(f) for f in allowed]
        if any(need.fits(node) for node in nodes):
            continue
        largest = max(nodes, key=lambda n: (n.gpus >= need.gpus, n.memory_gib, n.cpu))
        key = "memory" if need.memory_gib > largest.memory_gib else "cpu"
        yield (
            f"mlstack:models[{index}].{key}",
            getattr(model, key),
            f"one replica ({model.cpu} CPU, {model.memory} memory, {model.gpus} GPU) fits on "
            f"none of pool {pool.name!r}'s instance types after system reservations "
            f"(kubelet, node agents, VM overhead); largest: {largest.describe()}",
        )


def _pool_limits(
    models: Sequence[ModelConfig], pool_index: int, pool: GpuPoolConfig
) -> Iterator[Finding]:
    facts = gpu_instances.load_gpu_instances()
    allowed = [t for t in pool.allowed_instance_types() if t in facts]
    on_pool = [
        (i, m)
        for i, m in enumerate(models)
        if m.pool == pool.name and m.gpus <= pool.gpus_per_node()
    ]
    if not allowed or not on_pool:
        return
    max_gpus = pool.effective_max_gpus()
    limit_key = "maxGpus" if pool.max_gpus is not None else "maxNodes"
    at = f"mlstack:gpuPools[{pool_index}]"
    limits = {"maxNodes": pool.max_nodes, "maxGpus": max_gpus}
    reported: set[str] = set()
    for scenario in scenarios(on_pool):
        kind = "surge" if scenario.label.endswith("surge") else scenario.label.split(" (")[0]
        if kind in reported:
            continue
        by_index = dict(on_pool)
        demands = [
            demand_of(by_index[i], pool) for i, pods in scenario.replicas for _ in range(pods)
        ]
        gpus = sum(d.gpus for d in demands)
        detail = ", ".join(
            f"{by_index[i].name}: {pods} pod(s) x {by_index[i].gpus} GPU"
            for i, pods in scenario.replicas
            if pods
        )
        if gpus > max_gpus:
            reported.add(kind)
            yield (
                f"{at}.{limit_key}",
                limits[limit_key],
                f"{scenario.label}: the models need {gpus} GPUs ({detail}) but pool "
                f"{pool.name!r} is limited to {max_gpus}; pods would stay Pending. Raise the "
                "limit or lower the replicas",
            )
            continue
        if not demands:
            continue
        fitting = _layouts(scenario, by_index, allowed, facts, pool)
        within = [f for f in fitting if f[0] <= pool.max_nodes and f[1] <= max_gpus]
        if fitting and not within:
            nodes, node_gpus, name = min(fitting)
            reported.add(kind)
            limit = "maxNodes" if nodes > pool.max_nodes else limit_key
            yield (
                f"{at}.{limit}",
                limits[limit],
                f"{scenario.label}: the models' pods ({detail}) need at least "
                f"{nodes} nodes ({name}: {node_gpus} GPUs) but pool {pool.name!r} allows "
                f"{pool.max_nodes} nodes and {max_gpus} GPUs; pods would stay Pending",
            )


def _node_spread(
    models: Sequence[ModelConfig], pool_index: int, pool: GpuPoolConfig
) -> Iterator[Finding]:
    """Each Deployment puts its first ``minReplicas`` pods on nodes of their own (the
    serving pods' hostname spread, so one node repair takes one replica): the pool must
    allow that many nodes."""
    for model in models:
        wake = model.autoscaling.wake_schedule
        floor = max(model.autoscaling.min_replicas, wake.replicas if wake else 0)
        if model.pool == pool.name and floor > pool.max_nodes:
            yield (
                f"mlstack:gpuPools[{pool_index}].maxNodes",
                pool.max_nodes,
                f"model {model.name!r} keeps {floor} replicas, each on a node of its own (so a "
                f"node repair takes one of them), but pool {pool.name!r} allows "
                f"{pool.max_nodes} nodes; raise maxNodes or lower the replicas",
            )


def _layouts(
    scenario: Scenario,
    by_index: dict[int, ModelConfig],
    allowed: Sequence[str],
    facts: dict[str, gpu_instances.GpuInstance],
    pool: GpuPoolConfig,
) -> list[tuple[int, int, str]]:
    """(nodes, GPUs of those nodes, how) of ways to place the scenario's pods: all on one
    instance type, or each model on the type that suits it best (Karpenter mixes types)."""
    demands = [demand_of(by_index[i], pool) for i, pods in scenario.replicas for _ in range(pods)]
    found: list[tuple[int, int, str]] = []
    for name in allowed:
        nodes = capacity.pack(demands, capacity.allocatable(facts[name]))
        if nodes is not None:
            found.append((nodes, nodes * facts[name].gpu_count, name))
    total_nodes, total_gpus, parts = 0, 0, []
    for i, pods in scenario.replicas:
        if not pods:
            continue
        own = [demand_of(by_index[i], pool)] * pods
        options = [
            (n * facts[t].gpu_count, n, t)
            for t in allowed
            if (n := capacity.pack(own, capacity.allocatable(facts[t]))) is not None
        ]
        if not options:
            return found
        gpus, nodes, name = min(options)
        total_nodes, total_gpus = total_nodes + nodes, total_gpus + gpus
        parts.append(f"{nodes} x {name}")
    if len(parts) > 1:
        found.append((total_nodes, total_gpus, " + ".join(parts)))
    return found


def capacity_findings(
    models: Sequence[ModelConfig], gpu_pools: Sequence[GpuPoolConfig], *, is_prod: bool = False
) -> Iterator[Finding]:
    """Every model fits an instance type of its pool; every pool holds its models and
    keeps each model's PDB through the repairs it allows at once."""
    for pool_index, pool in enumerate(gpu_pools):
        yield from _model_fit(models, pool)
        yield from _pool_limits(models, pool_index, pool)
        yield from _node_spread(models, pool_index, pool)
        yield from _repair_survival(models, pool_index, pool, is_prod)


def _repair_limit(pool: GpuPoolConfig) -> str:
    if pool.provisioner == "managed":
        return "the node group's maxParallelNodesRepairedCount"
    return f"Karpenter: 20% of its {pool.max_nodes} nodes, rounded up"


def _repair_survival(
    models: Sequence[ModelConfig], pool_index: int, pool: GpuPoolConfig, is_prod: bool
) -> Iterator[Finding]:
    """Auto repair takes nodes without draining them and without reading PDBs: the nodes
    it may take at once (:func:`components.compute.gpu_node_pool.concurrent_repairs`) must
    leave every model's minimum replicas (one per node) what its PDB keeps."""
    repairs = concurrent_repairs(pool.provisioner, pool.auto_repair.enabled, pool.max_nodes)
    keep = pdb_min_available(is_prod)
    for model in models:
        floor = model.autoscaling.min_replicas
        if model.pool != pool.name or floor < 2 or repairs == 0:
            continue  # a single replica never outlives its node, repaired or not
        allowed = floor - keep if keep is not None else 1
        lost = min(repairs, floor)
        if lost > allowed:
            yield (
                f"mlstack:gpuPools[{pool_index}].maxNodes",
                pool.max_nodes,
                f"auto repair may take {repairs} of pool {pool.name!r}'s nodes at once "
                f"({_repair_limit(pool)}), without draining them or reading PDBs; model "
                f"{model.name!r} keeps its {floor} minimum replicas on {floor} nodes, so one "
                f"repair could take {lost} and leave fewer than its PDB keeps"
                + (f" ({keep})" if keep is not None else "")
                + ": lower maxNodes to 5 or less (one repair at a time), or raise the "
                "model's minReplicas",
            )
