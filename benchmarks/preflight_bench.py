"""Benchmark ``mlstack preflight prod`` against a local moto server: whole process, median of N.

A moto server (``mlstack.testing.moto_server``: 127.0.0.1, free port, stopped by PID)
is seeded with everything the prod stack depends on (``tests/mlstack/preflight/world.py``:
admin roles, GitHub OIDC provider, state bucket + KMS key via ``mlstack bootstrap``, an
imported certificate, the model bucket with every pinned manifest). Each run is a new
interpreter running ``mlstack preflight prod --json`` (imports, offline synth, every
check), with only the APIs moto lacks (EKS add-on versions, SSM public parameters,
Service Quotas) answered by botocore Stubber clients. Printed: each run's wall and CPU
seconds and exit code, the medians, and the load average (the wall time depends on what
else the machine runs).

    .venv/bin/python benchmarks/preflight_bench.py [--runs 5] [--stack prod]
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

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from mlstack.testing.moto_server import moto_server  # noqa: E402
from tests.mlstack.preflight.world import AS_OF, seed  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stack", default="prod")
    options = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLSTACK_"))}
    env |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    with moto_server() as url, tempfile.TemporaryDirectory(prefix="preflight-bench-") as tmp:
        env["AWS_ENDPOINT_URL"] = url
        os.environ.update(env)
        world = seed(url, options.stack, Path(tmp))
        command = [
            sys.executable,
            "-m",
            "tests.mlstack.preflight.stubbed_main",
            options.stack,
            "--root",
            tmp,
            "--as-of",
            AS_OF.isoformat(),
            "--json",
        ]
        times: list[float] = []
        cpus: list[float] = []
        for run in range(1, options.runs + 1):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run(
                command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False
            )
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            times.append(elapsed)
            cpus.append(cpu)
            print(f"run {run}: {elapsed:.2f} s wall, {cpu:.2f} s CPU, exit {done.returncode}")
            if done.returncode != 0:
                print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
                return 1
        print(
            f"mlstack preflight {world.stack} against moto, whole process: median "
            f"{statistics.median(times):.2f} s of {options.runs} (min {min(times):.2f}, "
            f"max {max(times):.2f}); CPU of the process median {statistics.median(cpus):.2f} s; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
