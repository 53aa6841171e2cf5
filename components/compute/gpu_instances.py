"""GPU instance facts, read from ``gpu_instances.json`` beside this module.

One typed record per EC2 instance type of the GPU families mlstack supports
(g4dn, g5, g5g, g6, g6e, p4d, p5): GPU count, GPU model, memory per GPU, vCPU,
memory, CPU architecture, whether it has NVMe instance store, and the on-demand
hourly price per region. The file records where the numbers come from and when
they were taken (:func:`price_info`); config validation and the cost estimator
read it through :func:`load_gpu_instances`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

DATA_FILE = Path(__file__).with_name("gpu_instances.json")

Architecture = Literal["x86_64", "arm64"]
KUBERNETES_ARCH: dict[str, str] = {"x86_64": "amd64", "arm64": "arm64"}
"""EC2 architecture name -> the value of the ``kubernetes.io/arch`` node label."""


@dataclass(frozen=True)
class GpuInstance:
    """Facts about one GPU instance type. ``gpu_memory_gib`` is per GPU."""

    instance_type: str
    family: str
    gpu_count: int
    gpu_model: str
    gpu_memory_gib: int
    vcpu: int
    memory_gib: int
    architecture: Architecture
    instance_store: bool
    price_per_hour: dict[str, float]
    """On-demand USD per instance-hour, by region (see :func:`price_info`)."""

    @property
    def total_gpu_memory_gib(self) -> int:
        return self.gpu_count * self.gpu_memory_gib

    @property
    def size(self) -> str:
        """The size part of the name: ``xlarge`` for ``g5.xlarge``."""
        return self.instance_type.split(".", 1)[1]

    @property
    def kubernetes_arch(self) -> str:
        return KUBERNETES_ARCH[self.architecture]


@dataclass(frozen=True)
class PriceInfo:
    """Where the prices come from: date taken, source, currency, and a note per region."""

    date: str
    source: str
    currency: str
    unit: str
    term: str
    regions: dict[str, str]


class GpuInstanceDataError(ValueError):
    """``gpu_instances.json`` is malformed (a bug in the data file, not in user config)."""


def _record(name: str, raw: dict[str, Any], regions: set[str]) -> GpuInstance:
    try:
        record = GpuInstance(
            instance_type=name,
            family=str(raw["family"]),
            gpu_count=int(raw["gpuCount"]),
            gpu_model=str(raw["gpuModel"]),
            gpu_memory_gib=int(raw["gpuMemoryGib"]),
            vcpu=int(raw["vcpu"]),
            memory_gib=int(raw["memoryGib"]),
            architecture=raw["architecture"],
            instance_store=bool(raw["instanceStore"]),
            price_per_hour={str(k): float(v) for k, v in raw["pricePerHour"].items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise GpuInstanceDataError(f"{DATA_FILE.name}: {name}: {exc!r}") from None
    problems: list[str] = []
    if name.split(".", 1)[0] != record.family:
        problems.append(f"family {record.family!r} does not match the name")
    if record.gpu_count < 1 or record.gpu_memory_gib < 1:
        problems.append("gpuCount and gpuMemoryGib must be >= 1")
    if record.architecture not in KUBERNETES_ARCH:
        problems.append(f"architecture {record.architecture!r} not in {sorted(KUBERNETES_ARCH)}")
    if set(record.price_per_hour) != regions:
        problems.append(f"prices for {sorted(record.price_per_hour)}, expected {sorted(regions)}")
    if any(p <= 0 for p in record.price_per_hour.values()):
        problems.append("prices must be positive")
    if problems:
        raise GpuInstanceDataError(f"{DATA_FILE.name}: {name}: {'; '.join(problems)}")
    return record


@cache
def _document() -> dict[str, Any]:
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))


@cache
def _load() -> dict[str, GpuInstance]:
    doc = _document()
    regions = set(doc["prices"]["regions"])
    return {name: _record(name, raw, regions) for name, raw in doc["instanceTypes"].items()}


def load_gpu_instances() -> dict[str, GpuInstance]:
    """Every GPU instance type in the data file, by name (a fresh dict; records are frozen)."""
    return dict(_load())


def price_info() -> PriceInfo:
    """Date, source and per-region notes of the prices in the data file."""
    prices = _document()["prices"]
    return PriceInfo(
        date=prices["date"],
        source=prices["source"],
        currency=prices["currency"],
        unit=prices["unit"],
        term=prices["term"],
        regions=dict(prices["regions"]),
    )


def price_regions() -> frozenset[str]:
    """Regions the data file has prices for."""
    return frozenset(_document()["prices"]["regions"])


def families() -> frozenset[str]:
    """GPU instance families covered by the data file."""
    return frozenset(i.family for i in _load().values())


def expand(
    instance_types: tuple[str, ...] | list[str],
    instance_families: tuple[str, ...] | list[str] = (),
    sizes: tuple[str, ...] | list[str] = (),
) -> tuple[str, ...]:
    """Exact instance types a pool allows: ``instance_types`` plus every type of
    ``instance_families`` (restricted to ``sizes`` when given), deduplicated, in
    data-file order. Names not in the data file are kept (the caller reports them)."""
    known = _load()
    wanted = set(instance_types)
    for name, record in known.items():
        if record.family in instance_families and (not sizes or record.size in sizes):
            wanted.add(name)
    ordered = [name for name in known if name in wanted]
    return (*ordered, *sorted(wanted - set(known)))
