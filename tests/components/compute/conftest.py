"""A dev stack with three extra GPU pools, synthesized once: every provisioner x AMI family.

``mixed`` holds the graph and the Platform object ``build`` returned, so tests can compare
what a component promises (``scheduling()``) with what it rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from mlstack.synth import ResourceGraph, synth_config
from stacks.composition import Platform, program
from stacks.config import StackConfig, parse_config
from tests.conftest import raw_stack_config

EXTRA_POOLS: list[dict[str, Any]] = [
    {
        # managed AL2023 with a custom taint next to the default one, on-demand
        "name": "batch",
        "provisioner": "managed",
        "instanceTypes": ["g5.xlarge", "g5.12xlarge"],
        "capacityTypes": ["on-demand"],
        "ami": {"family": "al2023", "release": "1.33.13-20260714"},
        "minNodes": 0,
        "maxNodes": 3,
        "taints": [
            {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"},
            {"key": "example.com/team", "value": "research", "effect": "NoExecute"},
        ],
        "labels": {"example.com/team": "research"},
    },
    {
        # managed Bottlerocket, spot: its AMI runs its own device plugin
        "name": "rocket",
        "provisioner": "managed",
        "instanceFamilies": ["g6"],
        "instanceSizes": ["xlarge", "2xlarge"],
        "capacityTypes": ["spot"],
        "ami": {"family": "bottlerocket", "release": "1.46.0-0123abcd"},
        "maxNodes": 2,
    },
    {
        # karpenter Bottlerocket with an empty-valued taint
        "name": "rocket-k",
        "instanceTypes": ["g6e.xlarge"],
        "ami": {"family": "bottlerocket", "release": "v1.46.0"},
        "maxNodes": 2,
        "taints": [{"key": "example.com/dedicated", "effect": "NoSchedule"}],
    },
]


@dataclass
class Synthesized:
    cfg: StackConfig
    graph: ResourceGraph
    platform: Platform


def synth_with_platform(stack: str, raw: dict[str, Any]) -> Synthesized:
    cfg = parse_config(raw, f"Pulumi.{stack}.yaml")
    captured: list[Platform] = []

    def run(config: StackConfig, name: str) -> object:
        platform = program(config, name)
        captured.append(platform)
        return platform

    graph = synth_config(cfg, stack, run)
    return Synthesized(cfg, graph, captured[0])


@pytest.fixture(scope="session")
def mixed() -> Synthesized:
    raw = raw_stack_config("dev")
    raw["gpuPools"] = [*raw["gpuPools"], *EXTRA_POOLS]
    return synth_with_platform("dev", raw)
