"""``mlstack:serving.loaderRepository``: dev deletes its loader images on destroy, prod never."""

from __future__ import annotations

import pytest

from stacks.config import ConfigError, StackConfig, parse_config
from tests.conftest import raw_stack_config, set_path

KEY = "mlstack:serving.loaderRepository.forceDelete"


def _parse(stack: str, **edits: object) -> StackConfig:
    raw = raw_stack_config(stack)
    for dotted, value in edits.items():
        set_path(raw, dotted.replace("__", "."), value)
    return parse_config(raw, f"Pulumi.{stack}.yaml")


def test_the_stack_files_force_delete_in_dev_only(stack_configs: dict[str, StackConfig]) -> None:
    assert stack_configs["dev"].serving.loader_repository.force_delete is True
    assert stack_configs["prod"].serving.loader_repository.force_delete is False


def test_force_delete_is_refused_outside_dev_naming_file_key_and_value() -> None:
    with pytest.raises(ConfigError) as failure:
        _parse("prod", serving__loaderRepository__forceDelete=True)
    message = str(failure.value)
    assert "Pulumi.prod.yaml" in message
    assert f"{KEY}: allowed only in dev stacks" in message
    assert "(got true)" in message


def test_force_delete_conflicts_with_protection_in_dev() -> None:
    with pytest.raises(ConfigError) as failure:
        _parse("dev", protectStateful=True)
    assert KEY in {p.path for p in failure.value.problems}
    assert "protectStateful" in str(failure.value)


def test_an_unknown_key_under_loader_repository_is_refused() -> None:
    with pytest.raises(ConfigError) as failure:
        _parse("dev", serving__loaderRepository__forceDestroy=True)
    assert "serving.loaderRepository.forceDestroy" in str(failure.value)
