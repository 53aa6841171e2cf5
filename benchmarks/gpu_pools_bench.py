"""Plan time against the number of GPU pools (1, 5, 20 by default).

Usage: python benchmarks/gpu_pools_bench.py [--runs N] [--check] [--pools 1 5 20]

Builds the dev stack with N pools (every fourth one a managed node group, the rest
Karpenter), then times, in one process after a warm-up: config validation, the offline
synth and the plan JSON (plus the render checks with --check). Prints resource counts
and min / median / max seconds. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from mlstack.plan import plan_json
from mlstack.render_checks import check_graph
from mlstack.synth import synth_config
from stacks.config import PROJECT_ROOT, parse_config
from stacks.stack_yaml import load_stack_yaml


def raw_stack_config(stack: str) -> dict[str, Any]:
    document = load_stack_yaml((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
    return {
        k.removeprefix("mlstack:"): v
        for k, v in document["config"].items()
        if ":" in k and k.startswith("mlstack:")
    }


def pools(count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index in range(count):
        if index % 4 == 3:
            out.append(
                {
                    "name": f"managed-{index}",
                    "provisioner": "managed",
                    "instanceTypes": ["g5.xlarge", "g5.2xlarge"],
                    "ami": {"release": "1.33.13-20260714"},
                    "maxNodes": 4,
                }
            )
        else:
            out.append(
                {
                    "name": f"karpenter-{index}",
                    "instanceFamilies": ["g6", "g6e"],
                    "instanceSizes": ["xlarge", "2xlarge", "12xlarge"],
                    "capacityTypes": ["spot", "on-demand"],
                    "ami": {"release": "v20260714"},
                    "maxNodes": 4,
                }
            )
    return out


def one_plan(count: int, check: bool) -> tuple[float, int]:
    raw = raw_stack_config("dev")
    raw["gpuPools"] = pools(count)
    start = time.perf_counter()
    cfg = parse_config(raw, "Pulumi.dev.yaml")
    graph = synth_config(cfg, "dev")
    plan_json(graph)
    if check:
        findings = check_graph(graph, cfg.cluster.version)
        if findings:
            raise SystemExit(f"{count} pools: {len(findings)} render finding(s)")
    return time.perf_counter() - start, len(graph.resources)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pools", type=int, nargs="*", default=[1, 5, 20])
    parser.add_argument("--check", action="store_true", help="include the render checks")
    args = parser.parse_args()
    one_plan(1, args.check)  # warm-up: imports, botocore models, schemas
    print(f"{'pools':>5}{'resources':>11}{'runs':>6}{'min s':>9}{'median s':>10}{'max s':>9}")
    for count in args.pools:
        samples: list[float] = []
        resources = 0
        for _ in range(args.runs):
            seconds, resources = one_plan(count, args.check)
            samples.append(seconds)
        print(
            f"{count:>5}{resources:>11}{len(samples):>6}{min(samples):>9.2f}"
            f"{statistics.median(samples):>10.2f}{max(samples):>9.2f}"
        )


if __name__ == "__main__":
    main()
