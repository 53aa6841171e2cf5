"""One registry: every area module's rules, each once, served by the pack and the CLI."""

from __future__ import annotations

from pathlib import Path

import policy.rules
from mlstack.review import policy_check
from policy import pack
from policy.rules import AREAS, RULES, RULES_BY_ID

RULES_DIR = Path(policy.rules.__file__).parent


def test_every_area_module_is_in_the_registry() -> None:
    modules = {p.stem for p in RULES_DIR.glob("*.py")} - {"__init__", "common"}
    assert modules == set(AREAS)


def test_each_rule_is_checked_by_a_function_of_its_own_area() -> None:
    for area, rules in AREAS.items():
        assert rules, f"area {area} has no rules"
        for rule in rules:
            assert rule.check.__module__ == f"policy.rules.{area}", rule.id


def test_registry_is_every_area_in_order_with_unique_ids() -> None:
    assert [rule for rules in AREAS.values() for rule in rules] == RULES
    assert len(RULES_BY_ID) == len(RULES)
    assert len(RULES) >= 33


def test_pack_and_cli_run_the_registry_itself() -> None:
    assert pack.RULES is RULES
    assert policy_check.RULES is RULES
