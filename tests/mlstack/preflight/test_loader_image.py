"""Preflight's ``loader.image`` check: the model-loader tag the serving pods pull is in the
stack's ECR repository (moto: present, tag missing, repository missing), for the
checked-out program and for a rollback target's (``--root``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from components.versions import MODEL_LOADER_IMAGE_TAG
from tests.mlstack.preflight.world import World

Runner = Callable[..., tuple[int, str, str]]
WorldFactory = Callable[..., World]


def _loader(out: str) -> dict[str, str]:
    checks = json.loads(out)["checks"]
    return next(c for c in checks if c["id"].startswith("loader."))


def test_the_pinned_loader_tag_in_the_repository_passes(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    world = world_factory("dev")
    code, out, _ = run_preflight_cli(world, "--json")
    check = _loader(out)
    assert code == 0
    assert check["id"] == f"loader.image[{world.loader_repository}:{MODEL_LOADER_IMAGE_TAG}]"
    assert check["status"] == "ok" and check["detail"].startswith("sha256:")


def test_a_missing_loader_tag_fails_naming_the_push_command(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    world = world_factory("dev")
    world.client("ecr").batch_delete_image(
        repositoryName=world.loader_repository, imageIds=[{"imageTag": MODEL_LOADER_IMAGE_TAG}]
    )
    code, out, _ = run_preflight_cli(world, "--json")
    check = _loader(out)
    assert code == 1 and check["status"] == "FAIL"
    assert f"has no image tagged {MODEL_LOADER_IMAGE_TAG}" in check["detail"]
    assert "mlstack loader push dev" in check["fix"]


def test_a_missing_loader_repository_fails_naming_the_platform_phase(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    world = world_factory("dev")
    world.client("ecr").delete_repository(repositoryName=world.loader_repository, force=True)
    code, out, _ = run_preflight_cli(world, "--json")
    check = _loader(out)
    assert code == 1 and check["status"] == "FAIL"
    assert f"ECR repository {world.loader_repository} does not exist" in check["detail"]
    assert "deployModels: false" in check["fix"] and "mlstack loader push dev" in check["fix"]


def test_a_rollback_target_is_checked_for_the_tag_its_own_code_pins(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    """``--root <worktree>``: the target's components/versions.py names the tag its pods pull."""
    world = world_factory("dev")
    versions = Path(world.root) / "components" / "versions.py"
    versions.parent.mkdir(parents=True)
    versions.write_text(
        'MODEL_LOADER_IMAGE_TAG = "mlstack-0.0.9-loader.1"\n'
        "MODEL_LOADER_IMAGE_DIGEST: str | None = None\n"
    )
    code, out, _ = run_preflight_cli(world, "--json")
    check = _loader(out)
    assert code == 1
    assert check["id"] == f"loader.image[{world.loader_repository}:mlstack-0.0.9-loader.1]"


def test_the_bucket_phase_skips_the_loader_saying_when_to_push(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    def bucket_phase(config: dict[str, object]) -> None:
        serving = config["mlstack:serving"]
        assert isinstance(serving, dict)
        serving["deployModels"] = False

    world = world_factory("dev", edit=bucket_phase)
    code, out, _ = run_preflight_cli(world, "--json")
    check = _loader(out)
    assert code == 0 and check["status"] == "skipped"
    assert "mlstack loader push dev" in check["detail"]
