"""Issue 26 item 15: validate and plan cost O(models), not O(models^2).

500 ALB-exposed models validated in 4 s and planned in 98 s / 884 MB; the per-model cost
grew with the number of models. These tests pin the *shape* of each algorithm that was
quadratic (how many steps it takes for N models, counted, never timed) and that the
faster version gives exactly what a scan of every pair or every event gives.
``benchmarks/plan_scaling_bench.py`` measures the time and memory.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest

from components.compute import capacity
from components.monitoring import MonitoringArgs, ServiceTarget, metrics
from components.serving.rollout import route_covers
from mlstack import plan
from mlstack.synth import ResourceGraph, ResourceNode
from stacks.config import load_config_file
from stacks.schema import capacity as capacity_rules
from stacks.schema import cron, serving
from stacks.schema.models import ModelConfig

# --------------------------------------------------------------------------- wake windows


@functools.cache
def _dev_models() -> tuple[ModelConfig, ...]:
    return tuple(load_config_file("dev").models)


def _model_with_window(start: str, end: str) -> ModelConfig:
    """The dev LLM with its wake window moved to ``start``..``end``."""
    llm = next(m for m in _dev_models() if m.autoscaling.wake_schedule)
    scaling = llm.autoscaling
    assert scaling.wake_schedule is not None
    wake = scaling.wake_schedule.model_copy(update={"start": start, "end": end})
    return llm.model_copy(
        update={"autoscaling": scaling.model_copy(update={"wake_schedule": wake})}
    )


def _awake_sets_by_scanning_every_event(
    models: Sequence[tuple[int, ModelConfig]],
) -> list[tuple[datetime, set[int]]]:
    """The reference: the set of open windows after every opening event."""
    events: list[tuple[datetime, int, int]] = []
    for index, model in models:
        wake = model.autoscaling.wake_schedule
        assert wake is not None
        for lo, hi in cron.reference_windows(wake.start, wake.end, wake.timezone):
            events += [(lo, 1, index), (hi, -1, index)]
    events.sort(key=lambda e: (e[0], e[1]))
    open_count: dict[int, int] = {}
    seen: dict[frozenset[int], datetime] = {}
    for when, step, index in events:
        open_count[index] = open_count.get(index, 0) + step
        awake = frozenset(i for i, n in open_count.items() if n > 0)
        if awake and step > 0 and awake not in seen:
            seen[awake] = when
    maximal = [s for s in seen if not any(s < other for other in seen)]
    return sorted(((seen[s], set(s)) for s in maximal), key=lambda kv: kv[0])


def test_wake_window_overlaps_freeze_one_set_per_instant_not_one_per_model_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """N models woken by one schedule: the sets built hold O(N) members in all, where a
    set of every open model per window event held O(N^2)."""
    count = 120
    model = _model_with_window("0 8 * * 1-5", "0 19 * * 1-5")
    frozen_members = 0

    def counting_frozenset(items: Any = ()) -> frozenset[int]:
        nonlocal frozen_members
        result = frozenset(items)
        frozen_members += len(result)
        return result

    monkeypatch.setattr(capacity_rules, "frozenset", counting_frozenset, raising=False)
    sets = capacity_rules._awake_sets([(i, model) for i in range(count)])
    assert [members for _, members in sets] == [set(range(count))]
    wake = model.autoscaling.wake_schedule
    assert wake is not None
    windows = len(cron.reference_windows(wake.start, wake.end, wake.timezone))
    assert frozen_members <= 2 * count * windows


@pytest.mark.parametrize("seed", range(6))
def test_wake_window_overlaps_match_a_scan_of_every_event(seed: int) -> None:
    hours = random.Random(seed)
    models = []
    for index in range(12):
        start = hours.randrange(0, 22)
        end = hours.randrange(start + 1, 24)
        days = hours.choice(["1-5", "*", "6,0", "2-4"])
        models.append((index, _model_with_window(f"0 {start} * * {days}", f"0 {end} * * {days}")))
    assert capacity_rules._awake_sets(models) == _awake_sets_by_scanning_every_event(models)


# --------------------------------------------------------------------------- packing


class _CountedGpus(int):
    """A GPU count that counts the ``<=`` tests ``pack`` makes against a node's room."""

    tests = 0

    def __le__(self, other: object) -> bool:
        type(self).tests += 1
        return int(self) <= cast(int, other)


def test_packing_one_replica_per_node_tests_each_node_once_not_every_open_node() -> None:
    """First fit skips nodes without room for the smallest replica: N one-GPU replicas on
    one-GPU nodes take O(N) room tests, not the N^2/2 of a scan of every node opened."""
    count = 300
    node = capacity.Allocatable("g6.xlarge", cpu=3.9, memory_gib=14.0, gpus=1)
    _CountedGpus.tests = 0
    demands = [capacity.Demand(cpu=3, memory_gib=12, gpus=_CountedGpus(1)) for _ in range(count)]
    assert capacity.pack(demands, node) == count
    assert _CountedGpus.tests <= 3 * count


def _pack_by_scanning_every_node(
    demands: Sequence[capacity.Demand], node: capacity.Allocatable
) -> int | None:
    """The reference: first fit decreasing over every node opened so far."""
    ordered = sorted(demands, key=lambda d: (d.gpus, d.memory_gib, d.cpu), reverse=True)
    free: list[list[float]] = []
    for demand in ordered:
        if not demand.fits(node):
            return None
        for room in free:
            if (
                demand.gpus <= room[0]
                and demand.cpu <= room[1] + 1e-9
                and demand.memory_gib <= room[2] + 1e-9
            ):
                room[0] -= demand.gpus
                room[1] -= demand.cpu
                room[2] -= demand.memory_gib
                break
        else:
            free.append(
                [
                    node.gpus - demand.gpus,
                    node.cpu - demand.cpu,
                    node.memory_gib - demand.memory_gib,
                ]
            )
    return len(free)


@pytest.mark.parametrize("seed", range(20))
def test_packing_counts_the_same_nodes_as_a_scan_of_every_node(seed: int) -> None:
    rng = random.Random(seed)
    node = capacity.Allocatable("test", cpu=47.0, memory_gib=180.0, gpus=rng.choice([1, 4, 8]))
    demands = [
        capacity.Demand(
            cpu=rng.choice([0.5, 1, 2, 6, 12, 24]),
            memory_gib=rng.choice([1, 4, 8, 16, 48, 90]),
            gpus=rng.choice([0, 1, 1, 2, 4]),
        )
        for _ in range(rng.randrange(0, 60))
    ]
    assert capacity.pack(demands, node) == _pack_by_scanning_every_node(demands, node)


# --------------------------------------------------------------------------- ALB routes


def _alb_model(index: int, host: str | None, path: str, slot: int) -> ModelConfig:
    exposure = SimpleNamespace(type="alb", host=host, path=path, priority=slot)
    return cast(ModelConfig, SimpleNamespace(name=f"m{index}", exposure=exposure))


def test_covering_routes_are_looked_up_not_tested_against_every_other_route(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """N models on their own hosts: O(N) route comparisons, where every ordered pair of
    routes was compared (N^2)."""
    count = 300
    compared = 0

    def counting_route_covers(outer: Any, inner: Any) -> bool:
        nonlocal compared
        compared += 1
        return route_covers(outer, inner)

    monkeypatch.setattr(serving, "route_covers", counting_route_covers)
    models = [_alb_model(i, f"m{i}.ml.example.com", "/", i + 1) for i in range(count)]
    assert list(serving._rule_slots(models)) == []
    assert compared <= 4 * count


def _findings_by_scanning_every_pair(models: Sequence[ModelConfig]) -> list[tuple[str, Any, str]]:
    """The reference: every ordered pair of ALB routes."""
    slots = serving.rule_slots(models)
    index = {m.name: i for i, m in enumerate(models)}
    found = []
    for outer in models:
        for inner in models:
            if outer is inner:
                continue
            o = (outer.exposure.host, outer.exposure.path)
            n = (inner.exposure.host, inner.exposure.path)
            if (
                route_covers(o, n)
                and not route_covers(n, o)
                and slots[inner.name] > slots[outer.name]
            ):
                found.append(
                    (
                        f"mlstack:models[{index[inner.name]}].exposure.priority",
                        slots[inner.name],
                        f"route {n[0] or '*'}{n[1]} is inside models[{index[outer.name]}]'s "
                        f"{o[0] or '*'}{o[1]} (slot {slots[outer.name]}) but would be evaluated "
                        f"after it and never match; allowed: a slot below {slots[outer.name]}",
                    )
                )
    return found


@pytest.mark.parametrize("seed", range(20))
def test_covered_route_findings_match_a_scan_of_every_pair(seed: int) -> None:
    rng = random.Random(seed)
    hosts = [None, "a.example.com", "b.a.example.com", "*.example.com", "*.a.example.com"]
    paths = ["/", "/v1", "/v1/", "/v1/chat", "/v10", "/v1/chat/x", "v1"]
    slots = rng.sample(range(1, 200), 40)
    models = [_alb_model(i, rng.choice(hosts), rng.choice(paths), slots[i]) for i in range(40)]
    got = [f for f in serving._rule_slots(models) if "is inside" in f[2]]
    assert got == _findings_by_scanning_every_pair(models)


# --------------------------------------------------------------------------- plan summary


class _CountedScans(list[ResourceNode]):
    """A resource list that counts the full scans made over it."""

    scans = 0

    def __iter__(self) -> Iterator[ResourceNode]:
        type(self).scans += 1
        return super().__iter__()


def _node(urn: str, type_: str, parent: str | None) -> ResourceNode:
    return ResourceNode(
        urn=urn,
        type=type_,
        name=urn.rsplit("::", 1)[-1],
        parent=parent,
        custom=not type_.startswith("mlstack:"),
        provider=None,
        dependencies=(),
        protect=False,
        retain_on_delete=False,
        ignore_changes=(),
        inputs={},
    )


def test_plan_summary_indexes_the_resources_once_not_once_per_resource() -> None:
    """``summary`` finds each resource's component: one scan of the resources in all,
    where every lookup rebuilt the URN index (a scan per resource)."""
    count = 200
    nodes = _CountedScans()
    for i in range(count):
        component = f"urn:pulumi:dev::mlstack::mlstack:serving:Model::model-{i}"
        nodes.append(_node(component, "mlstack:serving:Model", None))
        nodes.append(
            _node(f"{component}$aws:iam/role:Role::role-{i}", "aws:iam/role:Role", component)
        )
    graph = ResourceGraph("dev", "dev", "us-west-2", nodes)
    _CountedScans.scans = 0
    info = plan.summary(graph)
    assert info["resources"] == count
    assert info["byComponent"]["model-0"] == 1
    assert _CountedScans.scans <= 2


def test_a_graph_whose_resources_are_replaced_finds_components_in_the_new_list() -> None:
    outer = _node("urn:a", "mlstack:x:A", None)
    child = _node("urn:b", "aws:s3/bucket:Bucket", "urn:a")
    graph = ResourceGraph("dev", "dev", "us-west-2", [child])
    assert graph.component_of(child) is None
    graph.resources = [outer, child]
    assert graph.component_of(child) == outer


# --------------------------------------------------------------------------- alarm names


class _CountedName(str):
    """A service name that counts the equality tests made on it."""

    tests = 0

    def __eq__(self, other: object) -> bool:
        type(self).tests += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def _monitoring_args(names: Sequence[str]) -> MonitoringArgs:
    services = tuple(
        ServiceTarget(
            name=name,
            namespace="inference",
            runtime=metrics.VLLM,
            p99_latency_slo_seconds=2.0,
            target_group_arn_suffix=f"targetgroup/{name}/0123456789abcdef",
            load_balancer_arn_suffix="app/serving/1111111111111111",
        )
        for name in names
    )
    return MonitoringArgs(
        name_prefix="mlstack-dev", region="us-west-2", cluster_name="c", services=services
    )


def test_alarm_name_clashes_are_counted_in_one_pass_not_one_pass_per_name() -> None:
    """N services: O(N) name comparisons, where counting each name in the list of all
    alarmed names compared every pair (N^2)."""
    count = 300
    args = _monitoring_args([_CountedName(f"model-{i:04d}") for i in range(count)])
    _CountedName.tests = 0
    assert not [p for p in args.problems() if "collide" in p]
    assert _CountedName.tests <= 4 * count


def test_a_service_and_a_track_with_one_alarm_name_still_collide() -> None:
    args = _monitoring_args(["llm", "llm", "other"])
    assert [p for p in args.problems() if "collide" in p] == [
        "services: alarm names ['llm']: a service and a track collide"
    ]
