"""Time `mlstack plan <stack>` as whole processes (import + config + synth + write).

Usage: python benchmarks/plan_bench.py [--runs N] [--check] [stack ...]
Prints min / median / max wall seconds per stack. Nothing is asserted: the
numbers go in the closing notes and the README.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def time_plan(stack: str, runs: int, check: bool) -> list[float]:
    mlstack = Path(sys.executable).with_name("mlstack")
    samples: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            command = [str(mlstack), "plan", stack, "--out", f"{tmp}/{stack}.json"]
            if check:
                command.append("--check")
            start = time.perf_counter()
            subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stacks", nargs="*", default=["dev", "prod"])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--check", action="store_true", help="include the render checks")
    args = parser.parse_args()
    print(f"{'stack':<8}{'runs':>6}{'min s':>9}{'median s':>10}{'max s':>9}")
    for stack in args.stacks:
        samples = time_plan(stack, args.runs, args.check)
        print(
            f"{stack:<8}{len(samples):>6}{min(samples):>9.2f}"
            f"{statistics.median(samples):>10.2f}{max(samples):>9.2f}"
        )


if __name__ == "__main__":
    main()
