"""`mlstack coldstart`: per-model report, JSON, and the review section."""

from __future__ import annotations

import json
from dataclasses import replace

from mlstack import coldstart
from mlstack.cli import main
from stacks.config import load_config_file


def test_text_report_lists_both_paths_per_model_and_numbers_the_sources(capsys) -> None:
    assert main(["coldstart", "dev"]) == 0
    out = capsys.readouterr().out
    for model in load_config_file("dev").models:
        assert f"  {model.name}: from zero " in out
    assert "from zero (new node, empty cache):" in out
    assert "warm node, cache hit:" in out
    assert "sources:\n  [1] " in out


def test_json_report_carries_phases_and_budget(capsys) -> None:
    assert main(["coldstart", "prod", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stack"] == "prod"
    for model in report["models"]:
        assert abs(model["coldSeconds"] - sum(p["seconds"] for p in model["cold"])) < 1
        assert model["withinBudget"] is (model["coldSeconds"] <= model["budgetSeconds"])
        assert all(p["sources"] for p in model["cold"] if p["seconds"] > 0)


def test_unknown_stack_is_a_usage_error(capsys) -> None:
    assert main(["coldstart", "nope"]) == 2


def test_review_section_is_empty_when_nothing_changed_and_shows_a_changed_budget() -> None:
    head = coldstart.model_startups(load_config_file("dev"))
    assert coldstart.review_section("dev", head, head) == ""
    changed = [replace(head[0], budget_seconds=head[0].budget_seconds + 60), *head[1:]]
    section = coldstart.review_section("dev", head, changed)
    assert head[0].model in section
    assert all(s.model not in section for s in head[1:])
    assert "removed" in coldstart.review_section("dev", head, head[1:])
