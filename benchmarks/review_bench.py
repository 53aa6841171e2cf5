"""Time `mlstack review --base <ref>` for all stacks as a whole process.

Usage: python benchmarks/review_bench.py [--base REF] [--runs N]
Prints min / median / max wall seconds, plus user+sys CPU seconds of the whole
process tree (the machine is shared: CPU time says more than wall time when it is
busy). Also times `mlstack diff dev prod --base REF` and the load average at the
start. Nothing is asserted; the target (under 15 s) goes in the closing notes.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(command: list[str], runs: int) -> tuple[list[float], list[float]]:
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(runs):
        cpu_before = _children_cpu()
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - start)
        cpus.append(_children_cpu() - cpu_before)
        if done.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="HEAD~1")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    mlstack = str(Path(sys.executable).with_name("mlstack"))
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "review": [mlstack, "review", "--base", args.base, "--out", f"{tmp}/review.md"],
            "diff": [mlstack, "diff", "dev", "prod", "--base", args.base, "--out", f"{tmp}/d.txt"],
        }
        print(f"{'command':<8}{'runs':>6}{'min s':>9}{'median s':>10}{'max s':>9}{'cpu s':>9}")
        for name, command in commands.items():
            walls, cpus = time_command(command, args.runs)
            print(
                f"{name:<8}{len(walls):>6}{min(walls):>9.2f}{statistics.median(walls):>10.2f}"
                f"{max(walls):>9.2f}{statistics.median(cpus):>9.2f}"
            )


if __name__ == "__main__":
    main()
