"""Benchmark ``mlstack model push``: parallel vs sequential, against a local moto server.

Two data sets are generated in a temporary directory (random bytes, removed at the
end): ~1 GiB in 64 files, and one ~1 GiB file. Each is pushed twice through the
same code path as ``mlstack model push`` (``push_model``): once sequentially
(``concurrency=1``: one request in flight) and once in parallel (``--concurrency``).
Printed: seconds, MiB/s and the parallel/sequential speed-up per data set.

The moto server runs on 127.0.0.1 (free port) in a child process, is reset
between runs to free its memory, and is stopped by PID. It keeps objects in
memory (expect ~3 GiB of RAM while the 1 GiB multipart object is assembled) and
is one Python process: it, not the client, bounds the speed-up. CompleteMultipartUpload
alone takes several seconds per GiB there (the parts are concatenated in memory),
which weighs most on the one-file case. Real S3 over HTTPS parallelises far better.

    .venv/bin/python benchmarks/model_push_bench.py [--total-mib 1024] [--files 64]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from mlstack.model_store.local import scan_model_dir  # noqa: E402
from mlstack.model_store.push import MiB, PushSettings, push_model  # noqa: E402
from mlstack.model_store.s3 import make_client  # noqa: E402
from mlstack.testing.moto_server import moto_server, reset  # noqa: E402

BUCKET = "bench-models"
WRITE_BLOCK = 4 * MiB


def _write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        left = size
        while left:
            block = min(WRITE_BLOCK, left)
            handle.write(os.urandom(block))
            left -= block


def make_data(root: Path, total: int, files: int) -> tuple[Path, Path]:
    many = root / "many"
    for index in range(files):
        _write_random(many / f"shard-{index:03d}.bin", total // files)
    one = root / "one"
    _write_random(one / "model.bin", total)
    return many, one


def _fresh_bucket(endpoint: str) -> None:
    reset(endpoint)
    client = make_client(endpoint, "us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})


def timed_push(endpoint: str, directory: Path, version: str, settings: PushSettings) -> float:
    """Wall time of one push into a freshly emptied bucket."""
    _fresh_bucket(endpoint)
    client = make_client(endpoint, "us-east-1", max_connections=settings.concurrency + 4)
    files = scan_model_dir(directory)
    started = time.perf_counter()
    result = push_model(client, BUCKET, "bench", version, files, settings=settings)
    elapsed = time.perf_counter() - started
    assert result.uploaded_files == len(files)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark mlstack model push on moto.")
    parser.add_argument("--total-mib", type=int, default=1024, help="Size of each data set.")
    parser.add_argument("--files", type=int, default=64, help="Files in the many-files set.")
    parser.add_argument("--concurrency", type=int, default=8, help="Parallel requests.")
    parser.add_argument("--part-size-mib", type=int, default=8, help="Multipart part size.")
    parser.add_argument("--repeat", type=int, default=1, help="Runs per case; the best counts.")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

    total = args.total_mib * MiB
    scratch = Path(tempfile.mkdtemp(prefix="mlstack-push-bench-"))
    try:
        print(f"generating 2 x {args.total_mib} MiB of random data in {scratch} ...", flush=True)
        many, one = make_data(scratch, total, args.files)
        sequential = PushSettings(concurrency=1, part_size=args.part_size_mib * MiB)
        parallel = PushSettings(concurrency=args.concurrency, part_size=args.part_size_mib * MiB)
        print(
            f"moto server on 127.0.0.1; part size {args.part_size_mib} MiB; "
            f"parallel = {args.concurrency} requests in flight; cpus: {os.cpu_count()}"
        )
        print(f"{'data set':<24}{'sequential':>20}{'parallel':>20}{'speed-up':>10}")
        with moto_server() as endpoint:
            for label, directory in (
                (f"{args.files} files x {args.total_mib // args.files} MiB", many),
                (f"1 file x {args.total_mib} MiB", one),
            ):
                seq = min(
                    timed_push(endpoint, directory, "seq", sequential) for _ in range(args.repeat)
                )
                par = min(
                    timed_push(endpoint, directory, "par", parallel) for _ in range(args.repeat)
                )
                mib = args.total_mib
                print(
                    f"{label:<24}{seq:>8.1f} s {mib / seq:>5.0f} MiB/s"
                    f"{par:>8.1f} s {mib / par:>5.0f} MiB/s{seq / par:>9.2f}x",
                    flush=True,
                )
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"load average after the runs: {load:.1f} on {os.cpu_count()} cpus")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
