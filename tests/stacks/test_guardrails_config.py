"""Break-it cases of issue 13: capacity that fits, derived names, cron, BYO network,
regions, model names, duplicate YAML keys and unreadable stack files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components import naming
from components.compute import capacity, gpu_instances
from components.storage import layout
from stacks.config import ConfigError, Problem, load_config_file, parse_config
from stacks.schema import cron
from tests.conftest import SynthEdited, raw_stack_config, set_path

PROJECT = Path(__file__).resolve().parents[2]


def problems(stack: str, edits: dict[str, Any]) -> list[Problem]:
    raw = raw_stack_config(stack)
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    with pytest.raises(ConfigError) as info:
        parse_config(raw, f"Pulumi.{stack}.yaml")
    return info.value.problems


def accepted(stack: str, edits: dict[str, Any]) -> None:
    raw = raw_stack_config(stack)
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    parse_config(raw, f"Pulumi.{stack}.yaml")


def one_matching(found: list[Problem], path: str, *words: str) -> Problem:
    hits = [p for p in found if p.path == path and all(w in p.message for w in words)]
    assert hits, [p.render() for p in found]
    return hits[0]


# --------------------------------------------------------------------------- capacity

WAKE_LATE = {"start": "0 20 * * 1-5", "end": "0 23 * * 1-5", "timezone": "America/Los_Angeles"}
DEV_POOL_OF_2 = {"gpuPools[0].maxNodes": 2}
NO_SURGE = {"models[0].rollout.maxUnavailable": 1, "models[1].rollout.maxUnavailable": 1}


@pytest.mark.parametrize(
    ("stack", "edits", "path", "words"),
    [
        pytest.param(
            "prod",
            {"models[0].autoscaling.minReplicas": 12, "models[0].autoscaling.maxReplicas": 12},
            "mlstack:gpuPools[0].maxGpus",
            ("minimum replicas:", "14 GPUs", "limited to 12"),
            id="prod-min-replicas-14-gpus-on-a-12-gpu-pool",
        ),
        pytest.param(
            "dev",
            {
                **DEV_POOL_OF_2,
                **NO_SURGE,
                "models[0].autoscaling.maxReplicas": 2,
                "models[0].autoscaling.wakeSchedule.replicas": 2,
            },
            "mlstack:gpuPools[0].maxNodes",
            ("wake window of llama-3-8b-instruct, resnet50", "3 GPUs", "limited to 2"),
            id="dev-overlapping-wake-windows-need-3-gpus-on-a-pool-of-2",
        ),
        pytest.param(
            "dev",
            DEV_POOL_OF_2,
            "mlstack:gpuPools[0].maxNodes",
            ("rolling-update surge", "4 GPUs"),
            id="dev-rolling-update-surge-does-not-fit",
        ),
        pytest.param(
            "prod",
            {"gpuPools[0].maxNodes": 5, "gpuPools[0].instanceTypes": ["g6e.2xlarge"]},
            "mlstack:gpuPools[0].maxNodes",
            ("rolling-update surge", "need at least 6 nodes", "allows 5 nodes"),
            id="prod-surge-needs-more-nodes-than-maxNodes",
        ),
    ],
)
def test_replicas_that_do_not_fit_the_pool_limits_are_refused(
    stack: str, edits: dict[str, Any], path: str, words: tuple[str, ...]
) -> None:
    problem = one_matching(problems(stack, edits), path, *words)
    assert "Pending" in problem.message


def test_wake_windows_that_never_overlap_are_not_added_up() -> None:
    edits = {
        **DEV_POOL_OF_2,
        **NO_SURGE,
        "models[0].autoscaling.maxReplicas": 2,
        "models[0].autoscaling.wakeSchedule.replicas": 2,
    }
    accepted("dev", {**edits, "models[1].autoscaling.wakeSchedule": WAKE_LATE})
    # Same windows (the real ones overlap): 3 GPUs on a pool of 2.
    assert problems("dev", edits)


def test_max_unavailable_lets_a_rolling_update_proceed_without_surge_capacity() -> None:
    accepted("dev", {**DEV_POOL_OF_2, **NO_SURGE})


def test_a_canary_doubles_the_deployments_counted() -> None:
    canary = {
        "strategy": "canary",
        "canary": {"artifactVersion": "v9", "stableWeight": 90, "canaryWeight": 10},
    }
    accepted("dev", {**DEV_POOL_OF_2, **NO_SURGE})
    edits = {**DEV_POOL_OF_2, **NO_SURGE, "models[0].rollout": {**canary, "maxUnavailable": 1}}
    found = problems("dev", edits)
    one_matching(found, "mlstack:gpuPools[0].maxNodes", "llama-3-8b-instruct: 2 pod(s)")


@pytest.mark.parametrize(
    ("edits", "path", "words"),
    [
        pytest.param(
            {"models[0].cpu": "8"},
            "mlstack:models[0].cpu",
            ("fits on none of pool 'inference'", "after system reservations"),
            id="8-cpu-on-8-vcpu-nodes",
        ),
        pytest.param(
            {"models[0].memory": "31Gi", "models[0].shmSize": "2Gi"},
            "mlstack:models[0].memory",
            ("fits on none", "g6.2xlarge"),
            id="31Gi-on-32GiB-nodes",
        ),
    ],
)
def test_a_replica_must_fit_one_instance_type_after_reservations(
    edits: dict[str, Any], path: str, words: tuple[str, ...]
) -> None:
    one_matching(problems("dev", edits), path, *words)


def test_allocatable_subtracts_kubelet_agents_and_vm_overhead() -> None:
    g6 = gpu_instances.load_gpu_instances()["g6.xlarge"]  # 4 vCPU, 16 GiB
    node = capacity.allocatable(g6)
    assert capacity.kube_reserved_cpu(4) == pytest.approx(0.06 + 0.01 + 2 * 0.005)
    assert node.cpu == pytest.approx(4 - 0.08 - capacity.NODE_AGENTS_CPU)
    assert node.memory_gib == pytest.approx(
        16 * 0.925 - (255 + 11 * 110) / 1024 - 100 / 1024 - capacity.NODE_AGENTS_MEMORY_GIB
    )
    assert capacity.Demand(3, 12, 1).fits(node)
    assert not capacity.Demand(4, 12, 1).fits(node)


def test_packing_fills_nodes_before_opening_new_ones() -> None:
    big = gpu_instances.load_gpu_instances()["g6e.12xlarge"]  # 4 GPUs, 48 vCPU, 384 GiB
    node = capacity.allocatable(big)
    assert capacity.pack([capacity.Demand(6, 48, 1)] * 6, node) == 2
    assert capacity.pack([capacity.Demand(6, 48, 4)], node) == 1
    assert capacity.pack([capacity.Demand(6, 48, 5)], node) is None
    assert capacity.pack([], node) == 0


@pytest.mark.parametrize(
    ("value", "hint"),
    [("12", "12Gi"), (12, "12Gi"), ("100m", "100Mi"), ("1.5", "1.5Gi")],
)
def test_memory_without_a_byte_unit_is_refused_with_the_unit_hint(value: object, hint: str) -> None:
    found = problems("dev", {"models[0].memory": value})
    problem = one_matching(found, "mlstack:models[0].memory", hint, "allowed units")
    assert "Gi" in problem.message


def test_shm_size_needs_a_byte_unit_too() -> None:
    one_matching(problems("dev", {"models[0].shmSize": "2"}), "mlstack:models[0].shmSize", "2Gi")


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("suffix", naming.DERIVED_SUFFIXES)
def test_a_model_named_like_another_models_derived_objects_is_refused(suffix: str) -> None:
    name = f"llama-3-8b-instruct-{suffix}"
    found = problems("dev", {"models[1].name": name})
    problem = one_matching(found, "mlstack:models[1].name", "collides with models[0]")
    assert problem.value == name


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("r" + "x" * (naming.MODEL_NAME_MAX_LENGTH - 1), True),
        ("r" + "x" * naming.MODEL_NAME_MAX_LENGTH, False),
        ("3b-model", False),
        ("model-", False),
        ("Model", False),
    ],
)
def test_one_model_name_rule_for_config_and_the_bucket_layout(name: str, ok: bool) -> None:
    assert (layout.name_problem(name) is None) is ok
    assert (naming.model_name_problem(name) is None) is ok
    if ok:
        accepted("dev", {"models[1].name": name})
    else:
        found = problems("dev", {"models[1].name": name})
        assert found[0].path == "mlstack:models[1].name"
        assert found[0].message == naming.model_name_problem(name)


def test_the_longest_model_name_keeps_its_role_and_objects_within_aws_and_k8s_limits(
    synth_edited: SynthEdited,
) -> None:
    name = "r" + "x" * (naming.MODEL_NAME_MAX_LENGTH - 1)
    graph = synth_edited("dev", {"models[1].name": name})
    role = graph.one("aws:iam/role:Role", f"model-{name}-role")
    assert len(role.name) + naming.PULUMI_AUTONAME_SUFFIX_LENGTH <= 64
    names = [
        n.inputs["metadata"]["name"]
        for n in graph.resources
        if n.type.startswith("kubernetes:") and isinstance(n.inputs.get("metadata"), dict)
    ]
    assert all(len(n) <= 63 for n in names if isinstance(n, str))
    assert max(len(d) for d in naming.derived_names(name)) <= 63


# --------------------------------------------------------------------------- cron


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("start", "0 25 * * 1-5", ("hour", "25")),
        ("start", "61 8 * * 1-5", ("minute", "61")),
        ("start", "0 8 * * 8", ("day of week", "8")),
        ("end", "0 19 * * 7", ("day of week", "0-6")),
        ("start", "0 8 32 * *", ("day of month", "32")),
        ("start", "0 8 * 13 *", ("month", "13")),
        ("start", "0 8 L * *", ("day of month", "L")),
        ("start", "0 8 * *", ("needs 5 fields",)),
        ("start", "0 8 30 2 *", ("never fires",)),
    ],
)
def test_wake_window_cron_fields_are_range_checked(
    field: str, value: str, words: tuple[str, ...]
) -> None:
    found = problems("dev", {f"models[0].autoscaling.wakeSchedule.{field}": value})
    one_matching(found, f"mlstack:models[0].autoscaling.wakeSchedule.{field}", *words)


def test_a_wake_window_that_starts_when_it_ends_is_refused() -> None:
    same = {"models[0].autoscaling.wakeSchedule.end": "0  8 * * 1-5"}
    found = problems("dev", same)
    one_matching(found, "mlstack:models[0].autoscaling.wakeSchedule", "start and end are the same")


@pytest.mark.parametrize(
    ("edits", "path", "words"),
    [
        (
            {"gpuPools[0].disruption.budgets[1].schedule": "0 25 * * mon-fri"},
            "mlstack:gpuPools[0].disruption.budgets[1].schedule",
            ("hour",),
        ),
        (
            {"gpuPools[0].disruption.budgets[1].duration": None},
            "mlstack:gpuPools[0].disruption.budgets[1]",
            ("schedule and duration go together",),
        ),
    ],
)
def test_disruption_budget_schedules_use_the_same_parser(
    edits: dict[str, Any], path: str, words: tuple[str, ...]
) -> None:
    one_matching(problems("prod", edits), path, *words)


def test_budget_schedules_may_use_descriptors() -> None:
    accepted("prod", {"gpuPools[0].disruption.budgets[1].schedule": "@daily"})


def test_windows_follow_the_time_zone_and_daylight_saving() -> None:
    winter, summer = cron.REFERENCE_PERIODS
    found = list(cron.windows("0 8 * * 1", "0 9 * * 1", "Europe/Berlin", [winter, summer]))
    hours = sorted({lo.hour for lo, _ in found})
    assert hours == [6, 7]  # 08:00 Berlin = 07:00 UTC in winter, 06:00 UTC in summer
    assert all((hi - lo).total_seconds() == 3600 for lo, hi in found)


# --------------------------------------------------------------------------- network, region

BYO = {
    "network.mode": "existing",
    "network.vpcId": "vpc-0a1b2c3d",
    "network.privateSubnetIds": ["subnet-0000000a", "subnet-0000000b"],
    "network.publicSubnetIds": ["subnet-0000000c"],
}


@pytest.mark.parametrize(
    ("edits", "path", "words"),
    [
        (
            {"network.publicSubnetIds": ["subnet-0000000a"]},
            "mlstack:network",
            ("public and as private", "subnet-0000000a"),
        ),
        (
            {"network.privateSubnetIds": ["subnet-0000000a", "subnet-0000000a"]},
            "mlstack:network.privateSubnetIds",
            ("more than once",),
        ),
        ({"network.vpcId": "vpc-xyz"}, "mlstack:network.vpcId", ("not a VPC id",)),
        ({"network.vpcId": "vpc-0abc"}, "mlstack:network.vpcId", ("8 or 17",)),
        (
            {"network.privateSubnetIds": ["subnet-1", "subnet-0000000b"]},
            "mlstack:network.privateSubnetIds",
            ("not subnet ids",),
        ),
    ],
)
def test_bring_your_own_network_ids_are_checked(
    edits: dict[str, Any], path: str, words: tuple[str, ...]
) -> None:
    one_matching(problems("dev", {**BYO, **edits}), path, *words)


def test_a_valid_bring_your_own_network_is_accepted() -> None:
    accepted("dev", BYO)


def test_vpc_ids_in_create_mode_are_refused() -> None:
    found = problems("dev", {"network.vpcId": "vpc-0a1b2c3d"})
    one_matching(found, "mlstack:network", "for mode 'existing'")


@pytest.mark.parametrize("region", ["us-west-9", "eu-north-7", "xx-east-1"])
def test_regions_botocore_does_not_know_are_refused(region: str) -> None:
    found = problems("dev", {"region": region})
    one_matching(found, "mlstack:region", "unknown AWS region")


# --------------------------------------------------------------------------- the file

DEV_TEXT = (PROJECT / "Pulumi.dev.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("edit", "key", "line"),
    [
        (
            lambda t: t.replace(
                "  mlstack:owner: ml-platform@example.com\n",
                "  mlstack:owner: ml-platform@example.com\n  mlstack:owner: someone-else\n",
            ),
            "mlstack:owner",
            None,
        ),
        (
            lambda t: t.replace(
                "      runtime: vllm\n", "      runtime: vllm\n      runtime: triton\n"
            ),
            "runtime",
            None,
        ),
    ],
)
def test_duplicate_yaml_keys_are_refused_like_the_engine_does(
    tmp_path: Path, edit: Any, key: str, line: int | None
) -> None:
    del line
    (tmp_path / "Pulumi.dev.yaml").write_text(edit(DEV_TEXT), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config_file("dev", tmp_path)
    text = str(info.value)
    assert f"duplicate key '{key}'" in text and "first at line" in text
    assert "\n" not in text and text.startswith("Pulumi.dev.yaml: ")


def test_a_non_utf8_stack_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_bytes(DEV_TEXT.encode() + "# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config_file("dev", tmp_path)
    text = str(info.value)
    assert text.startswith("Pulumi.dev.yaml: file: not UTF-8") and "\n" not in text
