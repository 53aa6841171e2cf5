"""``python -m tests.mlstack.preflight.stubbed_main <stack> --root DIR [options]``.

The real ``mlstack preflight`` process (CLI, offline synth, every check against the
moto server in ``AWS_ENDPOINT_URL``), with only the APIs moto lacks (``eks``, ``ssm``,
``service-quotas``) answered by the Stubber clients of ``world.py``. Used by the
whole-process test and ``benchmarks/preflight_bench.py``.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import yaml

from mlstack.cli import main as cli_main
from mlstack.preflight import chart_crds
from mlstack.preflight import run as preflight_run
from tests.mlstack.preflight.world import World, chart_world, stubbed_clients


def main(argv: list[str]) -> int:
    stack, root = argv[0], Path(argv[argv.index("--root") + 1])
    document = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text())
    world = World(
        endpoint=os.environ["AWS_ENDPOINT_URL"],
        root=root,
        stack=stack,
        region=document["config"]["mlstack:region"],
    )
    preflight_run.make_clients = lambda facts: stubbed_clients(world, facts)
    # The world's chart repositories serve stand-in CRD files: pin their digests.
    # The facts are synthesized once (the real collect_facts, cached), not once more here.
    collect = functools.cache(preflight_run.collect_facts)
    preflight_run.collect_facts = collect
    chart_crds.pinned_crd_digests = lambda: chart_world(collect(stack, root.resolve()))[1]
    return cli_main(["preflight", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
