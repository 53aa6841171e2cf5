"""What one `mlstack bake` poll costs, per stack: API calls per minute and time.

Usage (from the repository root, in its virtualenv):

    .venv/bin/python benchmarks/bake_bench.py --runs 5 --poll-seconds 30 --counts 1 10 50 100

Starts a moto server on 127.0.0.1 (`mlstack.testing.moto_server`, stopped by PID),
copies the stack files to a temporary directory (their CloudWatch alarms are always
in the plan), creates those alarms in moto, then for each stack:

- API calls per poll = ceil(alarms / 100) DescribeAlarms + 2 per inference Deployment
  (the Deployment and its pods) with Kubernetes, and per minute at --poll-seconds;
- whole-process time of `mlstack bake <stack> --skip-kubernetes` making exactly one
  poll against moto (import, offline synth of the plan, credentials, one poll),
  min / median / max of --runs (default 5);
- time of one poll alone (alarms against moto + rollouts against a loopback fake
  Kubernetes API serving the test suite's recorded responses), median of --runs.

Then the same per-poll numbers (not the whole process) for prod with 1, 10, 50 and 100
generated models (``--counts``; ``serving_bench.sized_stack``: vLLM on the ALB and
Triton on NLBs, alternating).

Nothing is asserted; the numbers go in the closing notes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESPONSES = ROOT / "tests" / "mlstack" / "delivery" / "kube" / "responses.json"


def fake_kube() -> tuple[ThreadingHTTPServer, str]:
    """Every Deployment ready, every pod list healthy (the tests' recorded responses)."""
    responses = json.loads(RESPONSES.read_text())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = responses["llama-pods-ready" if "/pods" in self.path else "llama-ready"]
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def copy_stack_files(into: Path) -> None:
    """The stack files as they are (their CloudWatch alarms are always on)."""
    for stack in ("dev", "prod"):
        shutil.copy(ROOT / f"Pulumi.{stack}.yaml", into / f"Pulumi.{stack}.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--poll-seconds", type=float, default=30.0)
    parser.add_argument(
        "--counts", type=int, nargs="*", default=[1, 10, 50, 100], help="generated models"
    )
    args = parser.parse_args()

    import boto3

    from mlstack.delivery.bake import (
        CloudWatchAlarms,
        KubeApi,
        calls_per_poll,
        poll_once,
        targets_from_plan,
    )
    from mlstack.synth import synth_config
    from mlstack.testing.moto_server import moto_server
    from stacks.config import load_config_file, parse_config
    from tests.conftest import raw_stack_config

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from serving_bench import sized_stack

    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    server, kube_url = fake_kube()
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    try:
        with (
            moto_server() as endpoint,
            tempfile.TemporaryDirectory(prefix="mlstack-bake-") as scratch,
        ):
            root = Path(scratch)
            copy_stack_files(root)
            cases = [(stack, stack, load_config_file(stack, root)) for stack in ("dev", "prod")]
            for count in args.counts:
                raw = sized_stack(raw_stack_config("prod"), count)
                cases.append((f"prod, {count} models", "prod", parse_config(raw, "generated")))
            for label, stack, cfg in cases:
                whole_process = label == stack
                plan = json.loads(json.dumps(synth_config(cfg, stack).to_json()))
                targets = targets_from_plan(plan)
                cloudwatch = boto3.client(
                    "cloudwatch", region_name=targets.region, endpoint_url=endpoint
                )
                for alarm in targets.alarms:
                    cloudwatch.put_metric_alarm(
                        AlarmName=alarm.name,
                        MetricName="m",
                        Namespace="AWS/ApplicationELB",
                        Statistic="Sum",
                        Period=60,
                        EvaluationPeriods=1,
                        Threshold=1,
                        ComparisonOperator="GreaterThanThreshold",
                    )
                per_poll = calls_per_poll(targets, kubernetes=True)
                per_poll_alarms = calls_per_poll(targets, kubernetes=False)
                per_minute = per_poll * 60 / args.poll_seconds
                print(
                    f"{label}: {len(targets.alarms)} alarms, {len(targets.deployments)} "
                    f"deployments -> {per_poll} API calls per poll ({per_poll_alarms} with "
                    f"--skip-kubernetes), {per_minute:g} per minute at "
                    f"--poll-seconds {args.poll_seconds:g}"
                )
                polls: list[float] = []
                for _ in range(args.runs):
                    source = CloudWatchAlarms(cloudwatch)
                    kube = KubeApi(kube_url, "bench")
                    start = time.perf_counter()
                    poll = poll_once(targets, source, kube)
                    polls.append(time.perf_counter() - start)
                    assert source.calls + kube.calls == per_poll, (source.calls, kube.calls)
                    assert not poll.breaches
                print(f"  one poll in-process: median {statistics.median(polls) * 1000:.1f} ms")
                if not whole_process:
                    continue
                command = [
                    sys.executable,
                    "-m",
                    "mlstack.cli",
                    "bake",
                    stack,
                    "--root",
                    str(root),
                    "--minutes",
                    "0.00001",
                    "--poll-seconds",
                    "60",
                    "--skip-kubernetes",
                    "--endpoint-url",
                    endpoint,
                    "--json",
                ]
                walls: list[float] = []
                for _ in range(args.runs):
                    start = time.perf_counter()
                    done = subprocess.run(
                        command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
                    )
                    walls.append(time.perf_counter() - start)
                    if done.returncode != 0:
                        raise SystemExit(f"bake failed ({done.returncode}):\n{done.stderr}")
                    report = json.loads(done.stdout)
                    assert report["polls"] == 1, report
                print(
                    f"  whole process, one poll (--skip-kubernetes): min {min(walls):.2f} s, "
                    f"median {statistics.median(walls):.2f} s, max {max(walls):.2f} s "
                    f"({args.runs} runs)"
                )
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
