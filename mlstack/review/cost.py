"""``mlstack cost <stack>``: a monthly estimate at minimum and at maximum scale, line by line.

Read from the synth graph by resource type, so a component's resources are priced
the moment it declares them:

* ``aws:eks/cluster`` control plane (standard support);
* ``aws:eks/nodeGroup`` min/max nodes x instance price (the first instance type at
  minimum, the dearest at maximum) plus their gp3 root volumes (size from the
  launch template the group depends on);
* Karpenter ``NodePool``: 0 at minimum, at maximum as many of the dearest allowed
  instance type as ``spec.limits`` (nodes, cpu, memory, nvidia.com/gpu) allow, plus disks
  from its ``EC2NodeClass``; a pool without limits is reported as unbounded;
* NAT gateways (+ data processed, from :class:`Usage`), public IPv4 addresses,
  interface VPC endpoints, load balancers (``aws:lb``, ``alb`` Ingress groups,
  ``LoadBalancer`` Services) + LCUs, KMS keys (rotation adds up to $2),
  CloudWatch alarms, EBS volumes and PVCs.

Prices: ``prices.json`` beside this module (dated, with sources) for services and
non-GPU EC2 types, and the GPU facts file of ``components.compute.gpu_instances``
for GPU types (:func:`default_catalog`). Pass your own :data:`InstanceCatalog` to
:func:`estimate` to price other types or test with fixtures. Usage
charges (S3, CloudWatch Logs ingestion, data transfer) are listed as not included.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from components.compute import capacity
from mlstack.errors import MlstackError
from mlstack.review import model_cost
from mlstack.review.model_cost import ModelCost, Workload
from mlstack.review.plans import policy_stack
from mlstack.synth import ResourceGraph
from policy.core import Resource, Stack, as_list, get_path, truthy

PRICE_FILE = Path(__file__).with_name("prices.json")
HOURS_PER_MONTH = 730


class UnpricedRegionError(MlstackError):
    """The stack's region has no prices: an estimate would read $0.00."""


@dataclass(frozen=True)
class InstanceFacts:
    """What cost needs to know about one EC2 instance type."""

    instance_type: str
    vcpu: int
    memory_gib: float
    gpus: int
    price_per_hour: Mapping[str, float]
    """USD per instance-hour, On-Demand, by region."""


InstanceCatalog = Mapping[str, InstanceFacts]
"""Instance type -> facts. :func:`default_catalog` builds the project's one."""


@dataclass(frozen=True)
class PriceBook:
    """Dated service prices by region (``prices.json``)."""

    date: str
    currency: str
    regions: Mapping[str, Mapping[str, float]]
    sources: Mapping[str, str]

    def rate(self, region: str, key: str) -> float | None:
        return self.regions.get(region, {}).get(key)


@dataclass(frozen=True)
class Usage:
    """Traffic assumptions for usage-priced items (0 = not included; shown in notes)."""

    nat_gb_per_month: float = 0.0
    lcu_per_load_balancer: float = 0.0


@dataclass(frozen=True)
class CostLine:
    """One line of the estimate, monthly USD at minimum and maximum scale."""

    category: str
    item: str
    detail: str
    monthly_min: float
    monthly_max: float | None
    """None: unbounded (e.g. a NodePool without limits)."""


@dataclass
class CostEstimate:
    """The estimate for one stack."""

    stack: str
    region: str
    price_date: str
    lines: list[CostLine] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)
    """Things that cost money but could not be priced (unknown type, missing price...)."""
    not_included: list[str] = field(default_factory=list)
    models: list[ModelCost] = field(default_factory=list)
    """What each model's pods cost on their own (already inside the node lines)."""

    @property
    def total_min(self) -> float:
        return round(sum(line.monthly_min for line in self.lines), 2)

    @property
    def total_max(self) -> float | None:
        """None when any line is unbounded."""
        if any(line.monthly_max is None for line in self.lines):
            return None
        return round(sum(line.monthly_max or 0.0 for line in self.lines), 2)

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "region": self.region,
            "priceDate": self.price_date,
            "totalMin": self.total_min,
            "totalMax": self.total_max,
            "lines": [
                {
                    "category": line.category,
                    "item": line.item,
                    "detail": line.detail,
                    "monthlyMin": round(line.monthly_min, 2),
                    "monthlyMax": None if line.monthly_max is None else round(line.monthly_max, 2),
                }
                for line in self.lines
            ],
            "unpriced": self.unpriced,
            "notIncluded": self.not_included,
            "models": [m.to_json() for m in self.models],
        }


# --------------------------------------------------------------------------- price data


@cache
def load_price_book(path: Path = PRICE_FILE) -> PriceBook:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return PriceBook(
        date=str(doc["date"]),
        currency=str(doc["currency"]),
        regions={r: {k: float(v) for k, v in p.items()} for r, p in doc["regions"].items()},
        sources=dict(doc["sources"]),
    )


def _project_instances(path: Path = PRICE_FILE) -> dict[str, InstanceFacts]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {
        name: InstanceFacts(
            instance_type=name,
            vcpu=int(raw["vcpu"]),
            memory_gib=float(raw["memoryGib"]),
            gpus=int(raw.get("gpus", 0)),
            price_per_hour={r: float(p) for r, p in raw["pricePerHour"].items()},
        )
        for name, raw in doc["ec2"]["instanceTypes"].items()
    }


def _gpu_instances() -> dict[str, InstanceFacts]:
    """GPU types from the GPU facts file (``components.compute.gpu_instances``)."""
    from components.compute import gpu_instances

    return {
        name: InstanceFacts(
            instance_type=name,
            vcpu=int(record.vcpu),
            memory_gib=float(record.memory_gib),
            gpus=int(record.gpu_count),
            price_per_hour=dict(record.price_per_hour),
        )
        for name, record in gpu_instances.load_gpu_instances().items()
    }


@cache
def default_catalog() -> dict[str, InstanceFacts]:
    """Project EC2 prices plus the GPU facts file (GPU file wins on overlap)."""
    return {**_project_instances(), **_gpu_instances()}


# --------------------------------------------------------------------------- quantities

_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)([KMGTPE]i?)?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def parse_cpu(value: Any) -> float:
    """A Kubernetes CPU quantity (``4``, ``"500m"``) in cores."""
    match = _CPU.match(str(value).strip())
    if not match:
        raise ValueError(f"not a CPU quantity: {value!r}")
    number = float(match.group(1))
    return number / 1000 if match.group(2) else number


def parse_memory_gib(value: Any) -> float:
    """A Kubernetes memory quantity (``"64Gi"``, ``"1Ti"``, ``"500M"``, bytes) in GiB."""
    match = _MEMORY.match(str(value).strip())
    if not match:
        raise ValueError(f"not a memory quantity: {value!r}")
    number, suffix = float(match.group(1)), match.group(2) or ""
    factor = _BINARY.get(suffix) or _DECIMAL.get(suffix) or 1
    return number * factor / 2**30


# --------------------------------------------------------------------------- estimator


_LB_TYPES = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")


class _Estimator:
    def __init__(
        self,
        stack: Stack,
        *,
        name: str,
        region: str,
        prices: PriceBook,
        catalog: InstanceCatalog,
        usage: Usage,
    ) -> None:
        self.stack = stack
        self.region = region
        self.prices = prices
        self.catalog = catalog
        self.usage = usage
        self.result = CostEstimate(stack=name, region=region, price_date=prices.date)
        self.workloads: list[Workload] = []

    # helpers ---------------------------------------------------------------

    def rate(self, key: str) -> float | None:
        value = self.prices.rate(self.region, key)
        if value is None:
            self.result.unpriced.append(f"no {key} price for region {self.region}")
        return value

    def add(self, category: str, item: str, detail: str, low: float, high: float | None) -> None:
        self.result.lines.append(CostLine(category, item, detail, low, high))

    def hourly(self, instance_type: str) -> float | None:
        facts = self.catalog.get(instance_type)
        return facts.price_per_hour.get(self.region) if facts else None

    # lines -----------------------------------------------------------------

    def eks(self) -> None:
        rate = None
        for cluster in self.stack.of_type("aws:eks/cluster:Cluster"):
            rate = rate if rate is not None else self.rate("eksClusterHour")
            if rate is None:
                return
            monthly = rate * HOURS_PER_MONTH
            version = cluster.props.get("version", "?")
            detail = f"Kubernetes {version}, standard support ${rate}/h"
            self.add("EKS control plane", cluster.name, detail, monthly, monthly)

    def _launch_template_disk_gib(self, group: Resource) -> float:
        for template in self.stack.dependencies_of(group, "aws:ec2/launchTemplate:LaunchTemplate"):
            sizes = [
                float(get_path(m, "ebs", "volumeSize") or 0)
                for m in as_list(template.props.get("blockDeviceMappings"))
            ]
            if sum(sizes):
                return sum(sizes)
        return float(group.props.get("diskSize") or 20)

    def node_groups(self) -> None:
        gp3 = None
        for group in self.stack.of_type("aws:eks/nodeGroup:NodeGroup"):
            scaling = group.props.get("scalingConfig") or {}
            low_n = int(get_path(scaling, "minSize", default=0))
            high_n = int(get_path(scaling, "maxSize", default=low_n))
            types = [str(t) for t in as_list(group.props.get("instanceTypes"))] or ["t3.medium"]
            capacity = str(group.props.get("capacityType") or "ON_DEMAND")
            priced = {t: self.hourly(t) for t in types}
            missing = [t for t, p in priced.items() if p is None]
            if missing:
                self.result.unpriced.append(
                    f"node group {group.name}: no {self.region} price for {', '.join(missing)}"
                )
            known = [p for p in priced.values() if p is not None]
            if known:
                first = priced[types[0]] if priced[types[0]] is not None else min(known)
                assert first is not None
                note = " (spot priced at on-demand: upper bound)" if capacity == "SPOT" else ""
                detail = (
                    f"{low_n}-{high_n} x {'/'.join(types)} {capacity.lower().replace('_', '-')}"
                    f"{note}"
                )
                low = low_n * first * HOURS_PER_MONTH
                high = high_n * max(known) * HOURS_PER_MONTH
                disk_low, disk_high = float(low_n), float(high_n)
                mine = model_cost.on_pool(self.workloads, group.props.get("labels") or {})
                with_price = [t for t in types if priced[t] is not None]
                if mine:
                    # The autoscaler adds nodes for the models' pods, never below minSize.
                    floor = self._time_weighted(mine, with_price, group.name, at_least=low_n)
                    peak = self._placement(
                        [(w, w.max_replicas) for w in mine], with_price, lambda _t, n=high_n: n
                    )
                    if floor is not None:
                        low, disk_low = floor[0], floor[1]
                        detail += f"; models' replicas: min {floor[2]}"
                    if peak is not None:
                        high = max(peak[1], low_n) * (priced[peak[0]] or 0.0) * HOURS_PER_MONTH
                        disk_high = float(max(peak[1], low_n))
                        detail += f"; max {max(peak[1], low_n)} x {peak[0]} (max replicas)"
                    else:
                        detail += f"; max {high_n} nodes bind before the max replicas"
                    self._model_lines(mine, with_price, group.name)
                self.add("EC2 nodes", group.name, detail, low, high)
            else:
                disk_low, disk_high = float(low_n), float(high_n)
            disk = self._launch_template_disk_gib(group)
            gp3 = gp3 if gp3 is not None else self.rate("gp3GbMonth")
            if gp3 is not None:
                self.add(
                    "EBS storage",
                    f"{group.name} disks",
                    f"{disk_low:.3g}-{disk_high:g} x {disk:g} GiB gp3",
                    disk_low * disk * gp3,
                    disk_high * disk * gp3,
                )

    def _pool_types(self, pool: Resource) -> list[str] | None:
        requirements = [
            r
            for r in as_list(get_path(pool.props, "spec", "template", "spec", "requirements"))
            if isinstance(r, Mapping) and r.get("operator") == "In"
        ]

        def values(key: str) -> list[str] | None:
            for r in requirements:
                if r.get("key") == key:
                    return [str(v) for v in as_list(r.get("values"))]
            return None

        exact = values("node.kubernetes.io/instance-type")
        if exact is not None:
            return exact
        families = values("karpenter.k8s.aws/instance-family")
        if families is None:
            return None
        sizes = values("karpenter.k8s.aws/instance-size")
        return sorted(
            t
            for t in self.catalog
            if t.split(".", 1)[0] in families and (sizes is None or t.split(".", 1)[1] in sizes)
        )

    def _node_class_disk_gib(self, pool: Resource) -> float:
        ref = get_path(pool.props, "spec", "template", "spec", "nodeClassRef", "name")
        for node_class in self.stack.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"):
            if get_path(node_class.props, "metadata", "name") == ref:
                return sum(
                    parse_memory_gib(get_path(m, "ebs", "volumeSize") or 0)
                    for m in as_list(get_path(node_class.props, "spec", "blockDeviceMappings"))
                )
        return 20.0

    def node_pools(self) -> None:
        for pool in self.stack.of_type("kubernetes:karpenter.sh/v1:NodePool"):
            name = str(get_path(pool.props, "metadata", "name") or pool.name)
            types = self._pool_types(pool)
            if not types:
                self.result.unpriced.append(
                    f"NodePool {name}: requirements name no instance types or families"
                )
                continue
            limits = get_path(pool.props, "spec", "limits") or {}
            capacity = self._capacity_types(pool)
            counts: dict[str, int] = {}
            for instance_type in types:
                facts = self.catalog.get(instance_type)
                price = facts.price_per_hour.get(self.region) if facts else None
                if facts is None or price is None:
                    self.result.unpriced.append(f"NodePool {name}: no price for {instance_type}")
                    continue
                counts[instance_type] = self._max_nodes(limits, facts)
            if not counts:
                continue
            detail_types = "/".join(types) if len(types) <= 4 else f"{len(types)} types"
            if any(c < 0 for c in counts.values()):
                self.add("Karpenter nodes", name, f"{detail_types}; no spec.limits", 0.0, None)
                self.result.unpriced.append(f"NodePool {name}: no spec.limits, cost unbounded")
                continue
            worst = max(counts, key=lambda t: counts[t] * (self.hourly(t) or 0.0))
            top = counts[worst] * (self.hourly(worst) or 0.0) * HOURS_PER_MONTH
            note = " (spot priced at on-demand: upper bound)" if capacity == ["spot"] else ""
            labels = get_path(pool.props, "spec", "template", "metadata", "labels") or {}
            mine = model_cost.on_pool(self.workloads, labels)
            priced = [t for t in types if t in counts]
            low, high = 0.0, top
            low_nodes, high_nodes = 0.0, float(counts[worst])
            detail = f"0-{counts[worst]} x {worst} within limits {dict(limits)}"
            if mine:
                floor = self._time_weighted(mine, priced, name)
                peak = self._placement(
                    [(w, w.max_replicas) for w in mine], priced, counts.__getitem__
                )
                if floor is not None:
                    low, low_nodes, floor_detail = floor
                    detail = f"models' replicas: min {floor_detail}"
                    if peak is not None:
                        high, high_nodes = peak[2] * HOURS_PER_MONTH, float(peak[1])
                        detail += f"; max {peak[1]} x {peak[0]} (max replicas)"
                    else:
                        detail += (
                            f"; max {counts[worst]} x {worst} (pool limits {dict(limits)} bind "
                            "before the max replicas)"
                        )
                self._model_lines(mine, priced, name)
            self.add("Karpenter nodes", name, f"{detail}, {'/'.join(capacity)}{note}", low, high)
            gp3 = self.rate("gp3GbMonth")
            disk = self._node_class_disk_gib(pool)
            if gp3 is not None:
                self.add(
                    "EBS storage",
                    f"{name} disks",
                    f"{low_nodes:.2g}-{high_nodes:g} x {disk:g} GiB gp3",
                    low_nodes * disk * gp3,
                    high_nodes * disk * gp3,
                )

    # models on pools ------------------------------------------------------

    def _placement(
        self,
        pods: Sequence[tuple[Workload, int]],
        types: Sequence[str],
        max_nodes: Callable[[str], int] | None = None,
    ) -> tuple[str, int, float] | None:
        """(type, nodes, USD/hour) of the cheapest allowed type holding every pod (within
        ``max_nodes(type)`` nodes when given)."""
        demands = [w.demand for w, count in pods for _ in range(count)]
        best: tuple[str, int, float] | None = None
        for instance_type in types:
            facts = self.catalog.get(instance_type)
            price = self.hourly(instance_type)
            if facts is None or price is None:
                continue
            node = capacity.allocatable_of(instance_type, facts.vcpu, facts.memory_gib, facts.gpus)
            nodes = capacity.pack(demands, node)
            if nodes is None or (max_nodes is not None and nodes > max_nodes(instance_type)):
                continue
            if best is None or (nodes * price, nodes) < (best[2], best[1]):
                best = (instance_type, nodes, nodes * price)
        return best

    def _time_weighted(
        self, mine: Sequence[Workload], types: Sequence[str], pool: str, at_least: int = 0
    ) -> tuple[float, float, str] | None:
        """(monthly USD, average nodes, detail) at minimum scale: min replicas always,
        wake windows for the share of time they are open; never fewer than ``at_least``
        nodes (a node group's minSize)."""
        monthly, nodes, parts = 0.0, 0.0, []
        by_name = {w.deployment: w for w in mine}
        for share, state in model_cost.stretches(mine):
            pods = [(by_name[d], n) for d, n in state.items()]
            placed = self._placement(pods, types)
            if placed is None:
                self.result.unpriced.append(
                    f"pool {pool}: the models' pods fit none of its instance types"
                )
                return None
            if placed[1] < at_least:
                price = self.hourly(placed[0]) or 0.0
                placed = (placed[0], at_least, at_least * price)
            monthly += share * placed[2] * HOURS_PER_MONTH
            nodes += share * placed[1]
            if placed[1]:
                parts.append(f"{placed[1]} x {placed[0]} {share:.0%} of the time")
        return monthly, nodes, ", ".join(parts) or "no pods (scaled to zero)"

    def _model_lines(self, mine: Sequence[Workload], types: Sequence[str], pool: str) -> None:
        for model in sorted({w.model for w in mine}):
            own = [w for w in mine if w.model == model]
            floor = self._time_weighted(own, types, pool)
            peak = self._placement([(w, w.max_replicas) for w in own], types)
            if floor is None or peak is None:
                continue
            self.result.models.append(
                ModelCost(
                    model=model,
                    pool=pool,
                    min_replicas=sum(w.min_replicas for w in own),
                    max_replicas=sum(w.max_replicas for w in own),
                    deployments=len(own),
                    monthly_min=floor[0],
                    monthly_max=peak[2] * HOURS_PER_MONTH,
                    detail=f"min {floor[2]}; max {peak[1]} x {peak[0]}",
                )
            )

    @staticmethod
    def _capacity_types(pool: Resource) -> list[str]:
        for r in as_list(get_path(pool.props, "spec", "template", "spec", "requirements")):
            if isinstance(r, Mapping) and r.get("key") == "karpenter.sh/capacity-type":
                return [str(v) for v in as_list(r.get("values"))]
        return ["on-demand"]

    @staticmethod
    def _max_nodes(limits: Mapping[str, Any], facts: InstanceFacts) -> int:
        """How many nodes of this type fit in the pool's limits; -1 when unlimited."""
        bounds: list[int] = []
        if "nodes" in limits:
            bounds.append(int(limits["nodes"]))
        if "cpu" in limits:
            bounds.append(math.floor(parse_cpu(limits["cpu"]) / facts.vcpu))
        if "memory" in limits:
            bounds.append(math.floor(parse_memory_gib(limits["memory"]) / facts.memory_gib))
        if "nvidia.com/gpu" in limits and facts.gpus:
            bounds.append(math.floor(float(limits["nvidia.com/gpu"]) / facts.gpus))
        return min(bounds) if bounds else -1

    def nat(self) -> None:
        gateways = self.stack.of_type("aws:ec2/natGateway:NatGateway")
        if not gateways:
            return
        hour, gb = self.rate("natGatewayHour"), self.rate("natGatewayGb")
        if hour is None or gb is None:
            return
        fixed = len(gateways) * hour * HOURS_PER_MONTH
        data = self.usage.nat_gb_per_month * gb
        detail = f"{len(gateways)} x ${hour}/h"
        if self.usage.nat_gb_per_month:
            detail += f" + {self.usage.nat_gb_per_month:g} GB x ${gb} at max"
        else:
            self.result.not_included.append(f"NAT data processing (${gb}/GB)")
        self.add("Networking", "NAT gateways", detail, fixed, fixed + data)

    def public_ips(self) -> None:
        addresses = self.stack.of_type("aws:ec2/eip:Eip")
        rate = self.rate("publicIpv4Hour") if addresses else None
        if rate is None:
            return
        monthly = len(addresses) * rate * HOURS_PER_MONTH
        self.add("Networking", "public IPv4", f"{len(addresses)} x ${rate}/h", monthly, monthly)

    def endpoints(self) -> None:
        azs = 0
        for endpoint in self.stack.of_type("aws:ec2/vpcEndpoint:VpcEndpoint"):
            if endpoint.props.get("vpcEndpointType") == "Interface":
                azs += max(1, len(as_list(endpoint.props.get("subnetIds"))))
        rate = self.rate("interfaceEndpointAzHour") if azs else None
        if rate is None:
            return
        monthly = azs * rate * HOURS_PER_MONTH
        self.add("Networking", "interface endpoints", f"{azs} AZ-endpoints", monthly, monthly)

    def _load_balancers(self) -> list[tuple[str, str]]:
        """(kind alb|nlb, label) of every load balancer the stack creates or asks for."""
        found: list[tuple[str, str]] = []
        for lb in self.stack.of_type(*_LB_TYPES):
            kind = "nlb" if lb.props.get("loadBalancerType") == "network" else "alb"
            if lb.props.get("loadBalancerType") == "gateway":
                self.result.unpriced.append(f"gateway load balancer {lb.name}")
                continue
            found.append((kind, lb.name))
        groups: set[str] = set()
        alb_classes = self._alb_ingress_classes()
        for ingress in self.stack.of_type("kubernetes:networking.k8s.io/v1:Ingress"):
            annotations = get_path(ingress.props, "metadata", "annotations") or {}
            klass = get_path(ingress.props, "spec", "ingressClassName") or annotations.get(
                "kubernetes.io/ingress.class"
            )
            if klass not in alb_classes:
                continue
            group = annotations.get("alb.ingress.kubernetes.io/group.name") or alb_classes[klass]
            key = f"group {group}" if group else f"Ingress {ingress.name}"
            if key not in groups:
                groups.add(key)
                found.append(("alb", key))
        for service in self.stack.of_type("kubernetes:core/v1:Service"):
            if get_path(service.props, "spec", "type") != "LoadBalancer":
                continue
            annotations = get_path(service.props, "metadata", "annotations") or {}
            lb_type = annotations.get("service.beta.kubernetes.io/aws-load-balancer-type")
            lb_class = get_path(service.props, "spec", "loadBalancerClass")
            if lb_type in ("external", "nlb", "nlb-ip") or lb_class == "service.k8s.aws/nlb":
                found.append(("nlb", f"Service {service.name}"))
            else:
                self.result.unpriced.append(f"Service {service.name}: classic load balancer")
        return found

    def _alb_ingress_classes(self) -> dict[str, str | None]:
        """Ingress class name -> the IngressGroup its IngressClassParams sets (or None).

        ``alb`` always counts (the controller's default class); so does every IngressClass
        whose controller is the AWS Load Balancer Controller's.
        """
        params_group = {
            get_path(p.props, "metadata", "name"): get_path(p.props, "spec", "group", "name")
            for p in self.stack.of_type("kubernetes:elbv2.k8s.aws/v1beta1:IngressClassParams")
        }
        classes: dict[str, str | None] = {"alb": None}
        for klass in self.stack.of_type("kubernetes:networking.k8s.io/v1:IngressClass"):
            if get_path(klass.props, "spec", "controller") != "ingress.k8s.aws/alb":
                continue
            params = get_path(klass.props, "spec", "parameters", "name")
            classes[get_path(klass.props, "metadata", "name") or klass.name] = params_group.get(
                params
            )
        return classes

    def load_balancers(self) -> None:
        for kind, label in self._load_balancers():
            hour = self.rate(f"{kind}Hour")
            lcu = self.rate(f"{kind}LcuHour")
            if hour is None or lcu is None:
                continue
            fixed = hour * HOURS_PER_MONTH
            used = self.usage.lcu_per_load_balancer * lcu * HOURS_PER_MONTH
            detail = f"{kind.upper()} ${hour}/h"
            if self.usage.lcu_per_load_balancer:
                detail += f" + {self.usage.lcu_per_load_balancer:g} LCU at max"
            else:
                note = f"{kind.upper()} capacity units (${lcu}/LCU-hour)"
                if note not in self.result.not_included:
                    self.result.not_included.append(note)
            self.add("Load balancers", label, detail, fixed, fixed + used)

    def kms(self) -> None:
        keys = self.stack.of_type("aws:kms/key:Key")
        month = self.rate("kmsKeyMonth") if keys else None
        rotation = self.rate("kmsRotationMonth") if keys else None
        if month is None or rotation is None:
            return
        rotating = sum(1 for k in keys if truthy(k.props.get("enableKeyRotation")))
        low = len(keys) * month
        high = low + rotating * 2 * rotation
        detail = f"{len(keys)} key(s), {rotating} rotating (+${rotation:g}/rotation, first two)"
        self.add("Security", "KMS keys", detail, low, high)

    def alarms(self) -> None:
        alarms = self.stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        composites = self.stack.of_type("aws:cloudwatch/compositeAlarm:CompositeAlarm")
        if not alarms and not composites:
            return
        standard, high_res = self.rate("alarmStandardMonth"), self.rate("alarmHighResolutionMonth")
        composite = self.rate("alarmCompositeMonth")
        if standard is None or high_res is None or composite is None:
            return
        total = 0.0
        metrics = 0
        for alarm in alarms:
            queries = [
                q for q in as_list(alarm.props.get("metricQueries")) if get_path(q, "metric")
            ]
            count = max(1, len(queries))
            periods = [alarm.props.get("period")] + [
                get_path(q, "metric", "period") for q in queries
            ]
            known = [float(p) for p in periods if p is not None]
            per_metric = high_res if known and min(known) < 60 else standard
            total += count * per_metric
            metrics += count
        total += len(composites) * composite
        detail = f"{len(alarms)} metric alarm(s) ({metrics} metrics), {len(composites)} composite"
        self.add("Monitoring", "CloudWatch alarms", detail, total, total)

    def volumes(self) -> None:
        gp3 = None
        for volume in self.stack.of_type("aws:ebs/volume:Volume"):
            gp3 = gp3 if gp3 is not None else self.rate("gp3GbMonth")
            if gp3 is None:
                return
            size = float(volume.props.get("size") or 0)
            if volume.props.get("type", "gp3") != "gp3":
                self.result.unpriced.append(
                    f"EBS volume {volume.name}: type {volume.props['type']}"
                )
                continue
            self.add("EBS storage", volume.name, f"{size:g} GiB gp3", size * gp3, size * gp3)
        for claim in self.stack.of_type("kubernetes:core/v1:PersistentVolumeClaim"):
            gp3 = gp3 if gp3 is not None else self.rate("gp3GbMonth")
            if gp3 is None:
                return
            requested = get_path(claim.props, "spec", "resources", "requests", "storage")
            size = parse_memory_gib(requested or 0)
            monthly = size * gp3
            self.add(
                "EBS storage", f"PVC {claim.name}", f"{size:g} GiB (gp3 assumed)", monthly, monthly
            )

    def usage_notes(self) -> None:
        if self.stack.of_type("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"):
            self.result.not_included.append("S3 storage and requests (usage)")
        if self.stack.of_type("aws:cloudwatch/logGroup:LogGroup"):
            self.result.not_included.append("CloudWatch Logs ingestion and storage (usage)")
        self.result.not_included.append("data transfer out of AWS and across AZs (usage)")

    def run(self) -> CostEstimate:
        if self.region not in self.prices.regions:
            have = ", ".join(sorted(self.prices.regions))
            raise UnpricedRegionError(
                f"cost of stack {self.result.stack}: no prices for region {self.region} "
                f"(mlstack/review/prices.json has {have}); add the region's prices"
            )
        self.workloads = model_cost.workloads(self.stack)
        for step in (
            self.eks,
            self.node_groups,
            self.node_pools,
            self.nat,
            self.public_ips,
            self.endpoints,
            self.load_balancers,
            self.kms,
            self.alarms,
            self.volumes,
            self.usage_notes,
        ):
            step()
        return self.result


def estimate(
    graph: ResourceGraph,
    *,
    prices: PriceBook | None = None,
    catalog: InstanceCatalog | None = None,
    usage: Usage | None = None,
) -> CostEstimate:
    """The monthly estimate of one synthesized stack."""
    return _Estimator(
        policy_stack(graph),
        name=graph.stack,
        region=graph.region,
        prices=prices or load_price_book(),
        catalog=default_catalog() if catalog is None else catalog,
        usage=usage or Usage(),
    ).run()


# --------------------------------------------------------------------------- rendering


def money(value: float | None) -> str:
    return "unbounded" if value is None else f"${value:,.2f}"


def delta(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "n/a" if before == after else "unbounded"
    change = after - before
    sign = "+" if change > 0 else "-" if change < 0 else "±"
    return f"{sign}${abs(change):,.2f}"


def render_text(estimate_: CostEstimate) -> str:
    rows = [
        (line.category, line.item, money(line.monthly_min), money(line.monthly_max), line.detail)
        for line in estimate_.lines
    ]
    widths = [max([len(r[i]) for r in rows] + [len(h)]) for i, h in enumerate(_HEADER)]
    out = [
        f"cost {estimate_.stack} ({estimate_.region}), USD/month, prices of {estimate_.price_date}"
    ]
    out.append("  ".join(h.ljust(w) for h, w in zip(_HEADER, widths, strict=True)).rstrip())
    for row in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    out.append(
        f"total: {money(estimate_.total_min)} at minimum scale, "
        f"{money(estimate_.total_max)} at maximum scale"
    )
    out += _model_rows(estimate_)
    out += [f"unpriced: {u}" for u in estimate_.unpriced]
    if estimate_.not_included:
        out.append("not included: " + "; ".join(estimate_.not_included))
    return "\n".join(out) + "\n"


_HEADER = ("category", "item", "min", "max", "detail")
_MODEL_HEADER = ("model", "pool", "replicas", "min", "max", "detail")


def _model_rows(estimate_: CostEstimate) -> list[str]:
    """The per-model table (each model's pods alone; included in the node lines)."""
    if not estimate_.models:
        return []
    rows = [
        (
            m.model,
            m.pool,
            f"{m.min_replicas}-{m.max_replicas}",
            money(m.monthly_min),
            money(m.monthly_max),
            m.detail,
        )
        for m in estimate_.models
    ]
    widths = [max([len(r[i]) for r in rows] + [len(h)]) for i, h in enumerate(_MODEL_HEADER)]
    out = ["by model (its pods alone, on the cheapest fitting type; inside the lines above):"]
    out.append(
        "  " + "  ".join(h.ljust(w) for h, w in zip(_MODEL_HEADER, widths, strict=True)).rstrip()
    )
    for row in rows:
        out.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return out


def render_markdown(estimate_: CostEstimate) -> str:
    lines = [
        f"**{estimate_.stack}** ({estimate_.region}): {money(estimate_.total_min)} - "
        f"{money(estimate_.total_max)} per month",
        "",
        "| category | item | min/month | max/month | detail |",
        "|---|---|---:|---:|---|",
    ]
    for line in estimate_.lines:
        lines.append(
            f"| {line.category} | {line.item} | {money(line.monthly_min)} | "
            f"{money(line.monthly_max)} | {line.detail} |"
        )
    lines.append("")
    if estimate_.models:
        lines += [
            "By model (its pods alone; included above):",
            "",
            "| model | pool | replicas | min/month | max/month | detail |",
            "|---|---|---:|---:|---:|---|",
        ]
        lines += [
            f"| {m.model} | {m.pool} | {m.min_replicas}-{m.max_replicas} | "
            f"{money(m.monthly_min)} | {money(m.monthly_max)} | {m.detail} |"
            for m in estimate_.models
        ]
        lines.append("")
    if estimate_.unpriced:
        lines.append("Unpriced: " + "; ".join(estimate_.unpriced))
    if estimate_.not_included:
        lines.append("Not included: " + "; ".join(estimate_.not_included))
    lines.append(f"Prices of {estimate_.price_date} (`mlstack/review/prices.json`).")
    return "\n".join(lines) + "\n"


def estimates_json(estimates: Iterable[CostEstimate]) -> str:
    return json.dumps([e.to_json() for e in estimates], indent=2)
