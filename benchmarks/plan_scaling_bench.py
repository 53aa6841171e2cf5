"""Plan time and peak memory against the number of models (issue 26, item 15).

Usage: python benchmarks/plan_scaling_bench.py [--runs N] [--models 1,10,100,500]
       [--command plan|validate] [--check] [--root DIR]

For each model count N it writes ``Pulumi.scale<N>.yaml`` into a temporary project
directory: ``Pulumi.dev.yaml`` with its models replaced by N copies of the first
ALB-exposed model (own name, own host, listener-rule slot i+1 so no derived slots
collide; the GPU pool's ``maxNodes`` raised so the replicas fit). Then it runs
``mlstack <command> scale<N> --root <tmp>`` as whole processes and reads each child's
wall time, CPU time (user + sys) and peak RSS (``os.wait4``). It prints the medians and
the cost per model: ``(median(N) - median(first N)) / (N - first N)``, whose flatness
across N is what "linear" means. CPU seconds are less disturbed by a shared machine
than wall seconds; the load average is printed with the table. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stacks.stack_yaml import load_stack_yaml  # noqa: E402 (after the path insert)


def scaled_document(base: dict[str, Any], count: int) -> dict[str, Any]:
    """``base`` (a parsed stack file) with ``count`` copies of its first ALB model."""
    document = copy.deepcopy(base)
    config = document["config"]
    models = config["mlstack:models"]
    template = next(m for m in models if m.get("exposure", {}).get("type") == "alb")
    domain = template["exposure"]["host"].split(".", 1)[1]
    scaled = []
    for i in range(count):
        model = copy.deepcopy(template)
        model["name"] = f"model-{i:04d}"
        model["exposure"] = {"type": "alb", "host": f"m{i:04d}.{domain}", "priority": i + 1}
        scaled.append(model)
    config["mlstack:models"] = scaled
    for pool in config.get("mlstack:gpuPools", []):
        pool["maxNodes"] = max(int(pool.get("maxNodes", 0)), 2 * count)
    return document


def write_project(directory: Path, counts: list[int], source: Path) -> None:
    """``Pulumi.yaml`` and one ``Pulumi.scale<N>.yaml`` per count under ``directory``."""
    base = load_stack_yaml(source.read_text(encoding="utf-8"))
    (directory / "Pulumi.yaml").write_text(
        (ROOT / "Pulumi.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    for count in counts:
        text = yaml.safe_dump(scaled_document(base, count), sort_keys=False)
        (directory / f"Pulumi.scale{count}.yaml").write_text(text, encoding="utf-8")


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    rss_mb: float


def run_once(command: list[str]) -> Sample:
    """One child process: wall seconds, user + sys CPU seconds, peak RSS (MiB)."""
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {child.returncode}")
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", default="1,10,100,500", help="comma-separated counts")
    parser.add_argument("--command", choices=("plan", "validate"), default="plan")
    parser.add_argument("--check", action="store_true", help="plan --check (render checks)")
    parser.add_argument("--source", type=Path, default=ROOT / "Pulumi.dev.yaml")
    parser.add_argument("--root", type=Path, help="keep the generated project here")
    args = parser.parse_args()
    counts = sorted({int(c) for c in args.models.split(",")})
    mlstack = str(Path(sys.executable).with_name("mlstack"))
    with tempfile.TemporaryDirectory() as tmp:
        project = args.root or Path(tmp)
        project.mkdir(parents=True, exist_ok=True)
        write_project(project, counts, args.source)
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(
            f"{'models':>6}{'runs':>5}{'wall s':>9}{'cpu s':>8}{'RSS MB':>8}"
            f"{'wall ms/model':>15}{'cpu ms/model':>14}{'RSS MB/model':>14}"
        )
        first: tuple[int, float, float, float] | None = None
        for count in counts:
            command = [mlstack, args.command, f"scale{count}", "--root", str(project)]
            if args.command == "plan":
                command += ["--out", str(Path(tmp) / f"scale{count}.json")]
                if args.check:
                    command.append("--check")
            samples = [run_once(command) for _ in range(args.runs)]
            wall = statistics.median(s.wall for s in samples)
            cpu = statistics.median(s.cpu for s in samples)
            rss = statistics.median(s.rss_mb for s in samples)
            per = ""
            if first is None:
                first = (count, wall, cpu, rss)
            else:
                n = count - first[0]
                per = (
                    f"{1000 * (wall - first[1]) / n:>15.1f}{1000 * (cpu - first[2]) / n:>14.1f}"
                    f"{(rss - first[3]) / n:>14.3f}"
                )
            print(f"{count:>6}{len(samples):>5}{wall:>9.2f}{cpu:>8.2f}{rss:>8.0f}{per}", flush=True)
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
