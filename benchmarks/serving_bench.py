"""Plan time of a prod-shaped stack with 1, 10, 50 and 100 inference services.

Usage (from the repository root, in its virtualenv):

    .venv/bin/python benchmarks/serving_bench.py --counts 1 10 50 100 --runs 3

(options: ``--check``, ``--mix prod|all``, ``--profile N``; the defaults are shown above.)

Takes ``Pulumi.prod.yaml``, replaces ``mlstack:models`` with N generated models
(alternating its vLLM-on-the-ALB and Triton-on-an-NLB examples; ``--mix all`` also
makes every fourth one a canary and every fourth a blue/green) in its GPU pool, sized
for them (``maxNodes`` 4 and ``maxGpus`` 8 per model, a node model cache holding 4 models'
tracks and next versions, and node auto repair off above 5 nodes: Karpenter repairs 20% of a
pool's nodes at once, which the config refuses for 2-replica models), then times in one
process: config validation + offline synth + plan JSON (what ``mlstack plan`` does
after its imports), and with ``--check`` the render checks too. Prints, per N, the
median wall time and the median process CPU time (wall time on a shared, loaded
machine mostly measures the neighbours; CPU time does not), the resource count,
and the marginal cost per extra service (least-squares slope).
``--profile N`` runs pyinstrument on one synth of N services when it is installed.
Targets (issue 5): 100 services under 10 s, under 50 ms per extra service.
Nothing is asserted; the numbers go in the closing notes.
"""

from __future__ import annotations

import argparse
import copy
import os
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

MAX_REPAIR_SAFE_NODES = 5
REPAIR_OFF_REASON = "serving_bench: one pool sized for every generated model"


def models(count: int, template: list[dict[str, Any]], mix: str = "prod") -> list[dict[str, Any]]:
    """``count`` prod-shaped models derived from the stack file's two examples.

    ``mix`` ``prod``: the examples as they are (rolling); ``all``: every fourth model a
    canary and every fourth a blue/green (more Deployments per model)."""
    vllm, triton = (copy.deepcopy(m) for m in template[:2])
    out = []
    for i in range(count):
        model = copy.deepcopy(vllm if i % 2 == 0 else triton)
        model["name"] = f"model-{i:03d}"
        if i % 2 == 0:
            model["exposure"] = {"type": "alb", "host": f"m{i:03d}.ml.example.com"}
        if mix == "prod":
            pass
        elif i % 4 == 0 and i:
            model["rollout"] = {
                "strategy": "canary",
                "canary": {"artifactVersion": "candidate", "stableWeight": 90, "canaryWeight": 10},
            }
        elif i % 4 == 2:  # an ALB model: an NLB cannot run blue/green
            model["rollout"] = {
                "strategy": "blueGreen",
                "blueGreen": {"activeColor": "blue", "green": {"artifactVersion": "candidate"}},
            }
        out.append(model)
    return out


def sized_stack(raw: dict[str, Any], count: int, mix: str = "prod") -> dict[str, Any]:
    """``raw`` (a stack's config) with ``count`` generated models and a pool that holds them."""
    raw = copy.deepcopy(raw)
    raw["models"] = models(count, raw["models"], mix)
    pool = raw["gpuPools"][0]
    pool["maxNodes"] = max(pool.get("maxNodes", 1), 4 * count)
    # Blue/green: two colors of minReplicas 2, plus a rolling update's surge pod each.
    pool["maxGpus"] = max(pool.get("maxGpus", 1), 8 * count)
    # A node's 4 GPUs may hold 4 models, each with two tracks and a rollout's next version.
    disk = max(int(m.get("modelDiskGib", 100)) for m in raw["models"])
    pool["modelCache"] = {**pool.get("modelCache", {}), "sizeGib": max(100, 3 * 4 * disk)}
    # Karpenter repairs 20% of a pool's nodes at once: above 5 nodes that could take both
    # minimum replicas of a model, which the config refuses; a reason turns repair off.
    if pool["maxNodes"] > MAX_REPAIR_SAFE_NODES:
        pool["autoRepair"] = {"enabled": False, "disabledReason": REPAIR_OFF_REASON}
    return raw


def run_once(count: int, check: bool, mix: str = "prod") -> tuple[float, float, int]:
    """(wall seconds, process CPU seconds, custom resources) of one plan."""
    raw = sized_stack(raw_stack_config("prod"), count, mix)
    start = time.perf_counter()
    cpu = time.process_time()
    cfg = parse_config(raw, "Pulumi.prod.yaml")
    graph = synth_config(cfg, "prod")
    plan_json(graph)
    if check:
        from mlstack.render_checks import check_graph

        findings = check_graph(graph, cfg.cluster.version)
        if findings:
            raise SystemExit(f"render check findings: {findings[0].render()}")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall, cpu, sum(1 for r in graph.resources if r.custom)


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
    parser.add_argument(
        "--mix", choices=["prod", "all"], default="prod", help="all: add canary/blueGreen"
    )
    args = parser.parse_args()
    if args.profile:
        profile(args.profile)
        return
    run_once(1, args.check)  # warm-up: imports, botocore models, schema caches
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    header = ("services", 8), ("resources", 11), ("wall median s", 15), ("wall min s", 12)
    print("".join(f"{h:>{w}}" for h, w in header) + f"{'cpu median s':>14}")
    walls, cpus = [], []
    for count in args.counts:
        samples = [run_once(count, args.check, args.mix) for _ in range(args.runs)]
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        walls.append((count, wall))
        cpus.append((count, cpu))
        print(
            f"{count:>8}{samples[0][2]:>11}{wall:>15.2f}"
            f"{min(s[0] for s in samples):>12.2f}{cpu:>14.2f}"
        )
    if len(walls) > 1:
        print(
            f"marginal cost per extra service (least squares): wall {slope(walls) * 1000:.1f} ms,"
            f" cpu {slope(cpus) * 1000:.1f} ms"
        )
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
