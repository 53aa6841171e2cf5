"""Plan time of a prod-shaped stack with 1, 10, 50 and 100 inference services.

Usage: python benchmarks/serving_bench.py [--counts 1 10 50 100] [--runs 3] [--check]
       [--profile N]

Takes ``Pulumi.prod.yaml``, replaces ``mlstack:models`` with N generated models
(alternating vLLM on the shared ALB and Triton on an NLB, every fourth one a canary
and every fourth a blue/green, so all code paths are exercised), then times in one
process: config validation + offline synth + plan JSON (what ``mlstack plan`` does
after its imports), and with ``--check`` the render checks too. Prints the median per
N, the resource count, and the marginal cost per extra service (least-squares slope).
``--profile N`` runs pyinstrument on one synth of N services when it is installed.
Targets (issue 5): 100 services under 10 s, under 50 ms per extra service.
Nothing is asserted; the numbers go in the closing notes.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlstack.plan import plan_json  # noqa: E402
from mlstack.synth import synth_config  # noqa: E402
from stacks.config import parse_config  # noqa: E402
from tests.conftest import raw_stack_config  # noqa: E402


def models(count: int, template: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``count`` prod-shaped models derived from the stack file's two examples."""
    vllm, triton = (copy.deepcopy(m) for m in template[:2])
    out = []
    for i in range(count):
        model = copy.deepcopy(vllm if i % 2 == 0 else triton)
        model["name"] = f"model-{i:03d}"
        if i % 2 == 0:
            model["exposure"] = {"type": "alb", "host": f"m{i:03d}.ml.example.com"}
        if i % 4 == 0 and i:
            model["rollout"] = {
                "strategy": "canary",
                "canary": {"artifactVersion": "candidate", "stableWeight": 90, "canaryWeight": 10},
            }
        elif i % 4 == 1:
            model["rollout"] = {
                "strategy": "blueGreen",
                "blueGreen": {"activeColor": "blue", "green": {"artifactVersion": "candidate"}},
            }
        out.append(model)
    return out


def run_once(count: int, check: bool) -> tuple[float, int]:
    raw = raw_stack_config("prod")
    raw["models"] = models(count, raw["models"])
    start = time.perf_counter()
    cfg = parse_config(raw, "Pulumi.prod.yaml")
    graph = synth_config(cfg, "prod")
    plan_json(graph)
    if check:
        from mlstack.render_checks import check_graph

        findings = check_graph(graph, cfg.cluster.version)
        if findings:
            raise SystemExit(f"render check findings: {findings[0].render()}")
    return time.perf_counter() - start, sum(1 for r in graph.resources if r.custom)


def slope(points: list[tuple[int, float]]) -> float:
    xs, ys = zip(*points, strict=True)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)


def profile(count: int) -> None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise SystemExit("pyinstrument is not installed (pip install pyinstrument)") from None
    run_once(1, check=False)  # warm caches (imports, botocore models)
    profiler = Profiler(interval=0.001)
    profiler.start()
    run_once(count, check=False)
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--counts", type=int, nargs="*", default=[1, 10, 50, 100])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="include the render checks")
    parser.add_argument("--profile", type=int, metavar="N", help="profile one synth of N")
    args = parser.parse_args()
    if args.profile:
        profile(args.profile)
        return
    run_once(1, args.check)  # warm-up: imports, botocore models, schema caches
    print(f"{'services':>8}{'resources':>11}{'median s':>10}{'min s':>8}{'max s':>8}")
    points = []
    for count in args.counts:
        samples, resources = [], 0
        for _ in range(args.runs):
            seconds, resources = run_once(count, args.check)
            samples.append(seconds)
        median = statistics.median(samples)
        points.append((count, median))
        print(f"{count:>8}{resources:>11}{median:>10.2f}{min(samples):>8.2f}{max(samples):>8.2f}")
    if len(points) > 1:
        print(f"marginal cost: {slope(points) * 1000:.1f} ms per extra service (least squares)")


if __name__ == "__main__":
    main()
