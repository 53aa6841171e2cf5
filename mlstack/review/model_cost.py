"""What the models' replicas cost on their GPU pools, read from the synth graph.

A model is its Deployments (label ``mlstack.io/model``), each scheduled on a pool by
its ``nodeSelector`` (matched against a Karpenter NodePool's node labels or a managed
node group's labels) and scaled by the KEDA ScaledObject that targets it:
``minReplicaCount``, ``maxReplicaCount`` and cron wake windows (``desiredReplicas``
between ``start`` and ``end``).

* *Minimum*: the pods that are always up (minReplicaCount), plus the wake windows for
  the share of the month they are open, bin-packed onto the pool's cheapest fitting
  instance type for each stretch of time (:mod:`components.compute.capacity`).
* *Maximum*: every Deployment at maxReplicaCount, bin-packed the same way, unless the
  pool's limits bind first (then the limits are priced, as without models).

Per model, the same numbers for its own pods alone (what it adds to the bill).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from components.compute import capacity
from policy.core import Resource, Stack, as_list, get_path

MODEL_LABEL = "mlstack.io/model"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"


@dataclass(frozen=True)
class Wake:
    start: str
    end: str
    timezone: str
    replicas: int


@dataclass(frozen=True)
class Workload:
    """One Deployment of a model: what a pod requests and how it scales."""

    model: str
    deployment: str
    selector: Mapping[str, str]
    demand: capacity.Demand
    min_replicas: int
    max_replicas: int
    wakes: tuple[Wake, ...] = ()


@dataclass
class ModelCost:
    """Monthly USD of one model's pods alone, at minimum and maximum scale."""

    model: str
    pool: str
    min_replicas: int
    max_replicas: int
    deployments: int
    monthly_min: float
    monthly_max: float
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "pool": self.pool,
            "deployments": self.deployments,
            "minReplicas": self.min_replicas,
            "maxReplicas": self.max_replicas,
            "monthlyMin": round(self.monthly_min, 2),
            "monthlyMax": round(self.monthly_max, 2),
            "detail": self.detail,
        }


@dataclass
class PoolDemand:
    """The workloads scheduled on one pool."""

    workloads: list[Workload] = field(default_factory=list)


def _quantity_cpu(value: Any) -> float:
    from mlstack.review.cost import parse_cpu

    return parse_cpu(value) if value not in (None, "") else 0.0


def _quantity_gib(value: Any) -> float:
    from mlstack.review.cost import parse_memory_gib

    return parse_memory_gib(value) if value not in (None, "") else 0.0


def pod_demand(pod_spec: Mapping[str, Any]) -> capacity.Demand:
    """Effective requests of a pod as the scheduler computes them: max(each init container
    plus the sidecars started before it, the containers plus every sidecar). A sidecar is
    an init container with ``restartPolicy: Always``: it runs for the pod's life."""

    def requests(container: Any) -> tuple[float, float, int]:
        req = get_path(container, "resources", "requests") or get_path(
            container, "resources", "limits"
        )
        req = req or {}
        return (
            _quantity_cpu(req.get("cpu")),
            _quantity_gib(req.get("memory")),
            int(float(req.get("nvidia.com/gpu") or 0)),
        )

    main = [requests(c) for c in as_list(pod_spec.get("containers"))]
    init: list[tuple[float, float, int]] = []
    sidecars = (0.0, 0.0, 0)
    for container in as_list(pod_spec.get("initContainers")):
        own = requests(container)
        init.append((own[0] + sidecars[0], own[1] + sidecars[1], own[2] + sidecars[2]))
        if get_path(container, "restartPolicy") == "Always":
            sidecars = (sidecars[0] + own[0], sidecars[1] + own[1], sidecars[2] + own[2])
    main.append(sidecars)
    summed = tuple(sum(r[k] for r in main) for k in range(3))
    cpu = max([summed[0], *(r[0] for r in init)])
    memory = max([summed[1], *(r[1] for r in init)])
    gpus = int(max([summed[2], *(r[2] for r in init)]))
    return capacity.Demand(cpu=cpu, memory_gib=memory, gpus=gpus)


def workloads(stack: Stack) -> list[Workload]:
    """Every model Deployment with its ScaledObject's bounds (1..1 without one)."""
    scalers: dict[tuple[str, str], Resource] = {}
    for scaler in stack.of_type(SCALED_OBJECT):
        namespace = str(get_path(scaler.props, "metadata", "namespace") or "")
        target = get_path(scaler.props, "spec", "scaleTargetRef", "name")
        if target:
            scalers[(namespace, str(target))] = scaler
    found: list[Workload] = []
    for deployment in stack.of_type(DEPLOYMENT):
        metadata = deployment.props.get("metadata") or {}
        model = (metadata.get("labels") or {}).get(MODEL_LABEL)
        if not model:
            continue
        name = str(metadata.get("name") or deployment.name)
        namespace = str(metadata.get("namespace") or "")
        pod = get_path(deployment.props, "spec", "template", "spec") or {}
        replicas = int(get_path(deployment.props, "spec", "replicas", default=1) or 1)
        low, high, wakes = replicas, replicas, ()
        scaler = scalers.get((namespace, name))
        if scaler is not None:
            spec = scaler.props.get("spec") or {}
            low = int(spec.get("minReplicaCount", 0))
            high = int(spec.get("maxReplicaCount", max(low, 1)))
            wakes = tuple(
                Wake(
                    str(get_path(t, "metadata", "start")),
                    str(get_path(t, "metadata", "end")),
                    str(get_path(t, "metadata", "timezone") or "UTC"),
                    int(get_path(t, "metadata", "desiredReplicas") or 1),
                )
                for t in as_list(spec.get("triggers"))
                if isinstance(t, Mapping) and t.get("type") == "cron"
            )
        found.append(
            Workload(
                model=str(model),
                deployment=name,
                selector=dict(pod.get("nodeSelector") or {}),
                demand=pod_demand(pod),
                min_replicas=low,
                max_replicas=high,
                wakes=wakes,
            )
        )
    return found


def on_pool(all_workloads: Sequence[Workload], node_labels: Mapping[str, Any]) -> list[Workload]:
    """The workloads whose nodeSelector the pool's node labels satisfy."""
    return [
        w
        for w in all_workloads
        if w.selector and all(str(node_labels.get(k)) == str(v) for k, v in w.selector.items())
    ]


# --------------------------------------------------------------------------- time


def stretches(items: Sequence[Workload]) -> list[tuple[float, dict[str, int]]]:
    """(share of time, replicas per deployment) over the reference weeks: min replicas
    always, raised to desiredReplicas while a wake window is open."""
    from stacks.schema import cron

    base = {w.deployment: w.min_replicas for w in items}
    total = sum(length.total_seconds() for _, length in cron.REFERENCE_PERIODS)
    shares: dict[tuple[tuple[str, int], ...], float] = {}
    for period in cron.REFERENCE_PERIODS:
        begin, length = period
        events: list[tuple[datetime, int, str, int]] = []
        for w in items:
            for wake in w.wakes:
                try:
                    intervals = list(cron.windows(wake.start, wake.end, wake.timezone, [period]))
                except Exception:
                    continue
                for lo, hi in intervals:
                    events += [(lo, 1, w.deployment, wake.replicas), (hi, -1, w.deployment, 0)]
        events.sort(key=lambda e: (e[0], e[1]))
        open_wakes: dict[str, list[int]] = {}
        cursor = begin
        for when, step, name, replicas in [*events, (begin + length, 0, "", 0)]:
            seconds = (when - cursor).total_seconds()
            if seconds > 0:
                state = {d: max([base[d], *open_wakes.get(d, [])]) for d in base}
                key = tuple(sorted(state.items()))
                shares[key] = shares.get(key, 0.0) + seconds
                cursor = when
            if step > 0:
                open_wakes.setdefault(name, []).append(replicas)
            elif step < 0 and open_wakes.get(name):
                open_wakes[name].pop(0)
    return [(seconds / total, dict(key)) for key, seconds in shares.items() if seconds > 0]
