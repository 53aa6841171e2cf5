"""Stack config -> start-up estimates, and the rule that the budget covers the estimate."""

from __future__ import annotations

import pytest

from stacks.config import ConfigError, load_config_file, parse_config
from stacks.startup import landing_instance, startup_estimates
from tests.conftest import raw_stack_config, set_path


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_model_of_the_real_stacks_has_an_estimate_within_its_budget(stack: str) -> None:
    cfg = load_config_file(stack)
    estimates = startup_estimates(list(cfg.models), list(cfg.gpu_pools))
    assert set(estimates) == {m.name for m in cfg.models}
    for model in cfg.models:
        assert estimates[model.name].cold_seconds <= model.startup_budget_seconds


def test_a_replica_lands_on_the_smallest_type_that_fits() -> None:
    pool = load_config_file("prod").gpu_pools[0]
    one = landing_instance(pool, 1)
    assert one is not None and one.gpu_count >= 1
    assert all(
        other.gpu_count >= one.gpu_count
        for other in (landing_instance(pool, n) for n in (1, 2, 4))
        if other is not None
    )
    assert landing_instance(pool, 64) is None


def test_a_budget_shorter_than_the_cold_estimate_is_refused() -> None:
    raw = set_path(raw_stack_config("dev"), "models[0].startupBudgetSeconds", 120)
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "Pulumi.dev.yaml")
    (problem,) = info.value.problems
    assert problem.path == "mlstack:models[0].startupBudgetSeconds"
    assert problem.value == 120
    assert "estimated cold start" in problem.message and "image pull" in problem.message
    assert "Pulumi.dev.yaml" in str(info.value)


def test_slower_storage_raises_the_estimate_past_a_budget_that_fit_before() -> None:
    raw = raw_stack_config("dev")
    cfg = parse_config(raw, "Pulumi.dev.yaml")
    model = cfg.models[0]
    fast = startup_estimates([model], list(cfg.gpu_pools))[model.name].cold_seconds
    set_path(raw, "models[0].startupBudgetSeconds", fast + 1)
    parse_config(raw, "Pulumi.dev.yaml")  # fits on NVMe
    set_path(raw, "gpuPools[0].instanceStoreRaid0", False)
    set_path(raw, "models[0].modelSizeGib", 200)
    with pytest.raises(ConfigError, match="startupBudgetSeconds"):
        parse_config(raw, "Pulumi.dev.yaml")
