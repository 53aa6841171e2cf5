"""Rollout strategies as route plans: tracks, weights, active and preview colors."""

from __future__ import annotations

import pytest

from components.serving.rollout import TRACKS, Backend, route_plan, workload_name


def test_rolling_sends_everything_to_the_model_service() -> None:
    plan = route_plan("llama", "rolling")
    assert plan.main == (Backend("llama", 100),)
    assert plan.preview is None
    assert TRACKS["rolling"] == ("stable",)


@pytest.mark.parametrize("weight", [0, 10, 50, 100])
def test_canary_splits_by_the_configured_weight(weight: int) -> None:
    plan = route_plan("llama", "canary", canary_weight=weight)
    assert plan.main == (Backend("llama", 100 - weight), Backend("llama-canary", weight))
    assert sum(b.weight for b in plan.main) == 100
    assert plan.cluster_selector_track == "stable"


@pytest.mark.parametrize(("active", "idle"), [("blue", "green"), ("green", "blue")])
def test_blue_green_routes_to_active_and_previews_idle(active: str, idle: str) -> None:
    plan = route_plan("vision", "blueGreen", active_color=active)
    assert plan.main == (Backend(f"vision-{active}", 100),)
    assert plan.preview == f"vision-{idle}"
    assert plan.cluster_selector_track == active


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match=r"not within 0\.\.100"):
        route_plan("m", "canary", canary_weight=101)
    with pytest.raises(ValueError, match="'red' is not blue or green"):
        route_plan("m", "blueGreen", active_color="red")


def test_stable_track_keeps_the_model_name() -> None:
    assert workload_name("llama", "stable") == "llama"
    assert workload_name("llama", "canary") == "llama-canary"
    assert workload_name("llama", "blue") == "llama-blue"
