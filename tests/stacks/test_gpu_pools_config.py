"""``mlstack:gpuPools``: good pools load; each bad input fails naming its key and value."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.config import ConfigError, StackConfig, parse_config
from stacks.schema.gpu_pools import GpuPoolConfig
from tests.conftest import raw_stack_config, set_path


def parse(stack: str, edits: dict[str, Any]) -> StackConfig:
    raw = raw_stack_config(stack)
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    return parse_config(raw, f"Pulumi.{stack}.yaml")


def problems_of(stack: str, edits: dict[str, Any]) -> list[tuple[str, Any, str]]:
    with pytest.raises(ConfigError) as caught:
        parse(stack, edits)
    return [(p.path, p.value, p.message) for p in caught.value.problems]


def managed(**extra: Any) -> dict[str, Any]:
    pool: dict[str, Any] = {
        "name": "batch",
        "provisioner": "managed",
        "instanceTypes": ["g5.xlarge"],
        "ami": {"release": "1.35.0-20260714"},
        "maxNodes": 2,
    }
    return {**pool, **extra}


# (stack, edits, key path, value shown, fragment of the message)
BAD_POOLS: list[tuple[str, dict[str, Any], str, Any, str]] = [
    (
        "dev",
        {"gpuPools[0].instanceTypes": ["g6.xlarge", "g6.xlarg"]},
        "mlstack:gpuPools[0].instanceTypes[1]",
        "g6.xlarg",
        "unknown EC2 instance type",
    ),
    (
        "dev",
        {"gpuPools[0].instanceTypes": ["m6i.xlarge"]},
        "mlstack:gpuPools[0].instanceTypes[0]",
        "m6i.xlarge",
        "not a GPU instance type",
    ),
    (
        "dev",
        {"gpuPools[0].instanceFamilies": ["c7i"]},
        "mlstack:gpuPools[0].instanceFamilies[0]",
        "c7i",
        "not a GPU instance family",
    ),
    (
        "dev",
        {"gpuPools[0].instanceTypes": ["g6.xlarge", "g5g.xlarge"]},
        "mlstack:gpuPools[0].instanceTypes[1]",
        "g5g.xlarge",
        "arm64 but ami.architecture is x86_64",
    ),
    (
        "dev",
        {"gpuPools[0].instanceTypes": [], "gpuPools[0].instanceFamilies": ["g5g"]},
        "mlstack:gpuPools[0].instanceFamilies[0]",
        "g5g",
        "arm64 but ami.architecture is x86_64",
    ),
    (
        "dev",
        {"gpuPools[0].ami.architecture": "arm64"},
        "mlstack:gpuPools[0].instanceTypes[0]",
        "g6.xlarge",
        "x86_64 but ami.architecture is arm64",
    ),
    (
        "dev",
        {"gpuPools": [managed(minNodes=3, maxNodes=2)]},
        "mlstack:gpuPools[0].minNodes",
        3,
        "greater than maxNodes (2)",
    ),
    (
        "prod",
        {"gpuPools[0].maxGpus": 2},
        "mlstack:gpuPools[0].maxGpus",
        2,
        "below the 4 GPUs of one g6e.12xlarge",
    ),
    (
        "dev",
        {"gpuPools[0].rootVolume.sizeGib": 80},
        "mlstack:gpuPools[0].rootVolume.sizeGib",
        80,
        "under 100 GiB",
    ),
    (
        "prod",
        {"gpuPools[0].capacityTypes": ["spot"]},
        "mlstack:gpuPools[0].capacityTypes",
        ["spot"],
        "prod pool may not be spot-only",
    ),
    (
        "dev",
        {"gpuPools": [managed(name="inference"), managed(name="inference")]},
        "mlstack:gpuPools[1].name",
        "inference",
        "duplicate pool name (also gpuPools[0].name)",
    ),
    (
        "dev",
        {"gpuPools[0].taints": [{"key": "node.kubernetes.io/unschedulable"}]},
        "mlstack:gpuPools[0].taints[0].key",
        "node.kubernetes.io/unschedulable",
        "would block the NVIDIA device plugin",
    ),
    (
        "dev",
        {"gpuPools[0].taints": [{"key": "karpenter.sh/disrupted", "effect": "NoExecute"}]},
        "mlstack:gpuPools[0].taints[0].key",
        "karpenter.sh/disrupted",
        "would block the NVIDIA device plugin",
    ),
    (
        "dev",
        {"gpuPools[0].ami.release": "latest"},
        "mlstack:gpuPools[0].ami.release",
        "latest",
        "pin a release",
    ),
    (
        "dev",
        {"gpuPools[0].ami.release": "1.33.13-20260714"},
        "mlstack:gpuPools[0].ami.release",
        "1.33.13-20260714",
        "karpenter al2023 releases look like 'v20260714'",
    ),
    (
        "dev",
        {"gpuPools": [managed(ami={"release": "1.32.13-20260714"})]},
        "mlstack:gpuPools[0].ami.release",
        "1.32.13-20260714",
        "cluster.version is 1.35",
    ),
    (
        "dev",
        {"gpuPools": [managed(capacityTypes=["on-demand", "spot"])]},
        "mlstack:gpuPools[0].capacityTypes",
        ["on-demand", "spot"],
        "exactly one capacity type",
    ),
    (
        "dev",
        {"gpuPools": [managed(disruption={"consolidateAfter": "5m"})]},
        "mlstack:gpuPools[0].disruption",
        None,
        "karpenter pools only",
    ),
    (
        "dev",
        {"gpuPools[0].minNodes": 1},
        "mlstack:gpuPools[0].minNodes",
        1,
        "minNodes must be 0",
    ),
    (
        "dev",
        {"gpuPools[0].capacityTypes": ["reserved"]},
        "mlstack:gpuPools[0].capacityReservationIds",
        [],
        "needs the reservation ids",
    ),
    (
        "dev",
        {"gpuPools[0].instanceSizes": ["xlarge"]},
        "mlstack:gpuPools[0].instanceSizes",
        ["xlarge"],
        "give instanceFamilies too",
    ),
    (
        "dev",
        {"gpuPools[0].instanceFamilies": ["p5"], "gpuPools[0].instanceSizes": ["2xlarge"]},
        "mlstack:gpuPools[0].instanceSizes",
        "2xlarge",
        "no instance of families ['p5'] has this size",
    ),
    (
        "dev",
        {"gpuPools[0].rootVolume.throughputMibps": 1000},
        "mlstack:gpuPools[0].rootVolume.throughputMibps",
        1000,
        "at most iops/4 = 750 MiB/s",
    ),
    (
        "dev",
        {"gpuPools[0].name": "Inference_1"},
        "mlstack:gpuPools[0].name",
        "Inference_1",
        "lowercase letters",
    ),
    (
        "dev",
        {"gpuPools[0].labels": {"mlstack.io/gpu-pool": "other"}},
        "mlstack:gpuPools[0].labels",
        {"mlstack.io/gpu-pool": "other"},
        "reserved domain",
    ),
    (
        "dev",
        {"gpuPools[0].taints": [{"key": "a.io/x"}, {"key": "a.io/x", "value": "y"}]},
        "mlstack:gpuPools[0].taints[1]",
        {"effect": "NoSchedule", "key": "a.io/x", "value": "y"},
        "one taint per key and effect",
    ),
    (
        "dev",
        {"gpuPools[0].disruption.budgets": [{"nodes": "ten"}]},
        "mlstack:gpuPools[0].disruption.budgets[0].nodes",
        "ten",
        "node count",
    ),
    (
        "dev",
        {"gpuPools[0].maxNodez": 3},
        "mlstack:gpuPools[0].maxNodez",
        3,
        "unknown key; allowed keys:",
    ),
    (
        "dev",
        {
            "gpuPools": [
                managed(
                    instanceTypes=["g5g.xlarge"],
                    ami={
                        "family": "bottlerocket",
                        "architecture": "arm64",
                        "release": "1.46.0-0123abcd",
                    },
                )
            ]
        },
        "mlstack:gpuPools[0].instanceStoreRaid0",
        True,
        "without instance store",
    ),
]


@pytest.mark.parametrize(
    ("stack", "edits", "path", "value", "fragment"),
    BAD_POOLS,
    ids=[
        f"{case[0]}:{case[2].removeprefix('mlstack:gpuPools')}:{case[4][:24]}" for case in BAD_POOLS
    ],
)
def test_bad_pool_names_key_and_value(
    stack: str, edits: dict[str, Any], path: str, value: Any, fragment: str
) -> None:
    found = problems_of(stack, edits)
    matching = [p for p in found if p[0] == path and fragment in p[2]]
    assert matching, f"no problem at {path} containing {fragment!r}; got {found}"
    if value is not None:
        assert matching[0][1] == value


def test_rendered_error_shows_stack_file_key_and_value() -> None:
    with pytest.raises(ConfigError) as caught:
        parse("prod", {"gpuPools[0].capacityTypes": ["spot"]})
    text = str(caught.value)
    assert text.startswith("invalid config in Pulumi.prod.yaml")
    assert "mlstack:gpuPools[0].capacityTypes: a prod pool may not be spot-only" in text
    assert '(got ["spot"])' in text


def test_all_problems_of_one_pool_come_at_once() -> None:
    found = problems_of(
        "prod",
        {
            "gpuPools[0].capacityTypes": ["spot"],
            "gpuPools[0].maxGpus": 1,
            "gpuPools[0].minNodes": 9,
        },
    )
    paths = {p[0] for p in found}
    assert {
        "mlstack:gpuPools[0].capacityTypes",
        "mlstack:gpuPools[0].maxGpus",
        "mlstack:gpuPools[0].minNodes",
    } <= paths


def test_prod_spot_only_is_allowed_when_asked_for_explicitly() -> None:
    cfg = parse("prod", {"gpuPools[0].capacityTypes": ["spot"], "gpuPools[0].allowSpotOnly": True})
    assert cfg.gpu_pools[0].capacity_types == ["spot"]


def test_dev_may_be_spot_only() -> None:
    cfg = parse("dev", {"gpuPools[0].capacityTypes": ["spot"]})
    assert cfg.gpu_pools[0].capacity_types == ["spot"]


def test_real_stacks_have_the_same_pools_with_env_values(stack_configs) -> None:
    dev, prod = stack_configs["dev"].gpu_pools, stack_configs["prod"].gpu_pools
    assert [p.name for p in dev] == [p.name for p in prod]
    for d, p in zip(dev, prod, strict=True):
        assert d.provisioner == p.provisioner
        assert d.ami == p.ami, "dev and prod must run the same pinned AMI"
        assert d.min_nodes == 0, "dev pools scale to zero"
        assert "spot" in d.capacity_types
        assert p.capacity_types[0] == "on-demand"


def test_families_and_sizes_expand_to_exact_types() -> None:
    pool = GpuPoolConfig.model_validate(
        {
            "name": "x",
            "instanceFamilies": ["g6", "g6e"],
            "instanceSizes": ["xlarge", "12xlarge"],
            "instanceTypes": ["g5.2xlarge"],
            "ami": {"release": "v20260714"},
            "maxNodes": 1,
        }
    )
    assert set(pool.allowed_instance_types()) == {
        "g5.2xlarge",
        "g6.xlarge",
        "g6.12xlarge",
        "g6e.xlarge",
        "g6e.12xlarge",
    }
    assert pool.gpus_per_node() == 4
    assert pool.effective_max_gpus() == 4


def test_default_taint_and_disruption() -> None:
    pool = GpuPoolConfig.model_validate(
        {"name": "x", "instanceTypes": ["g5.xlarge"], "ami": {"release": "v1"}, "maxNodes": 3}
    )
    assert [(t.key, t.value, t.effect) for t in pool.taints] == [
        ("nvidia.com/gpu", "true", "NoSchedule")
    ]
    assert pool.disruption.consolidation_policy == "WhenEmpty"
    assert pool.effective_max_gpus() == 3


def test_pool_schema_marks_sizes_as_env_knobs_and_ami_as_fixed() -> None:
    schema = json.dumps(GpuPoolConfig.model_json_schema(by_alias=True))
    props = GpuPoolConfig.model_json_schema(by_alias=True)["properties"]
    assert props["maxNodes"].get("x-env-knob") is True
    assert props["instanceTypes"].get("x-env-knob") is True
    assert "x-env-knob" not in props["ami"]
    assert "x-env-knob" not in props["provisioner"]
    assert "nvidia.com/gpu" in schema
