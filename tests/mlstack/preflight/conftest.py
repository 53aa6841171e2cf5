"""Fixtures: a seeded moto account per test (``world``) and a runner of ``mlstack preflight``
in-process with the stubbed clients of ``world.py``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlstack.preflight import chart_crds
from mlstack.preflight import run as preflight_run
from mlstack.preflight.facts import PlanFacts
from tests.mlstack.preflight.world import AS_OF, World, chart_world, seed, stubbed_clients

Runner = Callable[..., tuple[int, str, str]]

_FACTS: dict[tuple[str, str], PlanFacts] = {}
_collect_facts = preflight_run.collect_facts


def _cached_facts(stack: str, root: Path) -> PlanFacts:
    """The offline synth once per distinct stack file (the facts are not mutated)."""
    key = (stack, (root / f"Pulumi.{stack}.yaml").read_text())
    if key not in _FACTS:
        _FACTS[key] = _collect_facts(stack, root)
    return _FACTS[key]


@pytest.fixture
def preflight_env(moto_reset: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """Dummy credentials, every AWS call to the (emptied) moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_reset)
    monkeypatch.delenv("MLSTACK_MODEL_BUCKET", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)  # the runner-reach check: not here
    return moto_reset


@pytest.fixture
def world_factory(preflight_env: str, tmp_path: Path) -> Callable[..., World]:
    def make(stack: str = "dev", **kwargs: object) -> World:
        return seed(preflight_env, stack, tmp_path / stack, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def run_preflight_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """Run ``mlstack preflight <stack> --root <world.root>`` in-process; (exit, out, err)."""
    from mlstack.cli import main

    def run(
        world: World, *extra: str, as_of: str | None = AS_OF.isoformat()
    ) -> tuple[int, str, str]:
        monkeypatch.setattr(
            preflight_run, "make_clients", lambda facts: stubbed_clients(world, facts)
        )
        # The world's chart packages hold stand-in CRD files: pin their digests.
        monkeypatch.setattr(
            chart_crds,
            "pinned_crd_digests",
            lambda: chart_world(_cached_facts(world.stack, world.root))[1],
        )
        args = ["preflight", world.stack, "--root", str(world.root), *extra]
        if as_of:
            args += ["--as-of", as_of]
        code = main(args)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
