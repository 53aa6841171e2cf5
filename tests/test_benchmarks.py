"""The benchmarks run on the current config schema: what they build is a valid stack.

They are not run here (minutes on a loaded machine); their setup is, since that is what
broke when the schema moved (always-on ALB alarms, pool repair and cache rules)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from stacks.config import PROJECT_ROOT, load_config_file, parse_config
from tests.conftest import raw_stack_config


def _bench(name: str) -> ModuleType:
    path = PROJECT_ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("count", [10, 100])
def test_serving_bench_builds_a_valid_prod_stack_of_count_models(count: int) -> None:
    bench = _bench("serving_bench")
    raw = bench.sized_stack(raw_stack_config("prod"), count, "all")
    cfg = parse_config(raw, "Pulumi.prod.yaml")
    assert len(cfg.models) == count


def test_bake_bench_copies_stack_files_that_load(tmp_path: Path) -> None:
    bench = _bench("bake_bench")
    bench.copy_stack_files(tmp_path)
    for stack in ("dev", "prod"):
        assert load_config_file(stack, tmp_path).environment == stack
