"""Preflight ``eks.addon-configuration[...]``: the plan's add-on ``configurationValues``
validate against the pinned version's schema before ``pulumi up``. ``CreateAddon`` checks
them against the same schema (EKS user guide, "Configure the Amazon EKS node monitoring
agent": the add-on "rejects any others"); without this check the refusal comes 15-20
minutes into the first deploy, after the cluster and its system nodes exist."""

from __future__ import annotations

import json
from typing import Any

from tests.mlstack.preflight.world import NODE_MONITORING_AGENT_SCHEMA

AGENT = "eks-node-monitoring-agent"
CHECK = f"eks.addon-configuration[{AGENT}]"


def _statuses(out: str) -> dict[str, str]:
    return {c["id"]: c["status"] for c in json.loads(out)["checks"]}


def test_the_agents_configuration_validates_against_its_versions_schema(
    world_factory: Any, run_preflight_cli: Any
) -> None:
    world = world_factory("dev")
    code, out, _ = run_preflight_cli(world, "--json")
    assert _statuses(out)[CHECK] == "ok"
    assert code == 0


def test_a_schema_without_the_dcgm_tolerations_fails_before_up(
    world_factory: Any, run_preflight_cli: Any
) -> None:
    world = world_factory("dev")
    older = json.loads(json.dumps(NODE_MONITORING_AGENT_SCHEMA))
    del older["properties"]["dcgmAgent"]
    world.addon_schemas[AGENT] = older
    code, out, _ = run_preflight_cli(world, "--json")
    checks = {c["id"]: c for c in json.loads(out)["checks"]}
    assert code == 1
    assert checks[CHECK]["status"] == "FAIL"
    assert "dcgmAgent" in checks[CHECK]["detail"]
