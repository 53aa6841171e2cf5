"""Benchmark the model loader: today's path vs ``mlstack model fetch``, from moto on loopback.

Two data sets (random bytes in a temporary directory, removed at the end), each pushed
once with ``push_model`` (not timed): one file of ``--size-mib`` (default 4096: 4 GiB)
and ``--files`` files of ``--file-mib`` each (default 64 x 64 MiB). Per data set:

* ``old``: what ``load_model.sh`` did -- every file downloaded one after the other
  (boto3's managed transfer, as ``aws s3 cp`` does), then a sequential sha256 of each
  file read back from disk;
* ``fetch``: ``fetch_model`` into an empty cache (parallel ranged GETs, hashed while
  streaming, verified, published by rename);
* ``warm``: ``fetch_model`` again on the warm cache (a restarted pod);
* ``memory-hash``: sha256 of the same number of bytes from memory, in this run: the
  floor of any loader that verifies every byte on this machine.

Printed per case: seconds, GB/s (10^9 bytes/s) and the ratio of its time to the
memory-hash time. moto is one Python process holding every object in memory: it bounds
the download speed here; real S3 over the network parallelises far better. moto also reads
the whole object for every ranged GET (one lock per object), so with 8-10 ranges in flight
on the 4 GiB object a GET waits longer for its headers than the default 30 s read timeout:
the one client that serves both paths gets a read timeout of ``READ_TIMEOUT_S`` (unless
``$MLSTACK_AWS_READ_TIMEOUT`` is set), so neither path is timed out and retried.

    .venv/bin/python benchmarks/model_fetch_bench.py [--size-mib 4096] [--files 64]
        [--file-mib 64] [--concurrency 8] [--part-mib 16]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from components.storage import layout  # noqa: E402
from mlstack import aws  # noqa: E402
from mlstack.model_store.fetch import FetchSettings, fetch_model  # noqa: E402
from mlstack.model_store.local import scan_model_dir  # noqa: E402
from mlstack.model_store.push import MiB, PushSettings, push_model  # noqa: E402
from mlstack.model_store.s3 import make_client  # noqa: E402
from mlstack.testing.moto_server import moto_server, reset  # noqa: E402

BUCKET = "bench-models"
WRITE_BLOCK = 8 * MiB
HASH_BLOCK = 8 * MiB
READ_TIMEOUT_S = 900


def _write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(min(WRITE_BLOCK, max(size, 1)))
    with path.open("wb") as handle:
        left = size
        while left:
            # A fresh random prefix per block keeps blocks distinct without the cost of
            # os.urandom for every byte.
            chunk = os.urandom(64) + block[64 : min(WRITE_BLOCK, left)]
            handle.write(chunk[: min(WRITE_BLOCK, left)])
            left -= min(WRITE_BLOCK, left)


def _reset(endpoint: str) -> None:
    reset(endpoint, timeout_s=60)
    client = make_client(endpoint, "us-east-1")
    client.create_bucket(Bucket=BUCKET)


def old_path(client: object, name: str, version: str, target: Path) -> float:
    """Sequential download of every file, then a sequential sha256 read from disk."""
    from boto3.s3.transfer import TransferConfig

    from mlstack.model_store.manifest import parse_manifest

    started = time.perf_counter()
    body = client.get_object(Bucket=BUCKET, Key=layout.manifest_key(name, version))  # type: ignore[attr-defined]
    manifest = parse_manifest(body["Body"].read(), name, version)
    config = TransferConfig()  # what `aws s3 cp` uses: 8 MiB parts, 10 threads per file
    for entry in manifest.files:
        path = target / entry.path
        path.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(  # type: ignore[attr-defined]
            BUCKET, layout.blob_key(name, entry.sha256), str(path), Config=config
        )
    for entry in manifest.files:
        digest = hashlib.sha256()
        with (target / entry.path).open("rb") as handle:
            while chunk := handle.read(HASH_BLOCK):
                digest.update(chunk)
        if digest.hexdigest() != entry.sha256:
            raise SystemExit(f"old path: {entry.path} sha256 mismatch")
    return time.perf_counter() - started


def memory_hash_seconds(total: int) -> float:
    block = os.urandom(HASH_BLOCK)
    started = time.perf_counter()
    digest = hashlib.sha256()
    left = total
    while left > 0:
        digest.update(block if left >= HASH_BLOCK else block[:left])
        left -= HASH_BLOCK
    digest.hexdigest()
    return time.perf_counter() - started


def run_case(endpoint: str, label: str, directory: Path, args: argparse.Namespace) -> None:
    _reset(endpoint)
    files = scan_model_dir(directory)
    total = sum(f.size for f in files)
    client = make_client(endpoint, "us-east-1", max_connections=args.concurrency + 4)
    push_model(
        client, BUCKET, "bench", "v1", files,
        settings=PushSettings(concurrency=args.concurrency, part_size=64 * MiB),
    )  # fmt: skip
    scratch = Path(tempfile.mkdtemp(prefix="mlstack-fetch-bench-"))
    try:
        old = old_path(client, "bench", "v1", scratch / "old")
        shutil.rmtree(scratch / "old")
        settings = FetchSettings(concurrency=args.concurrency, part_size=args.part_mib * MiB)
        started = time.perf_counter()
        result = fetch_model(client, BUCKET, "bench", "v1", scratch / "cache", settings=settings)
        cold = time.perf_counter() - started
        assert result.cache == "miss" and result.downloaded_bytes == total
        started = time.perf_counter()
        again = fetch_model(client, BUCKET, "bench", "v1", scratch / "cache", settings=settings)
        warm = time.perf_counter() - started
        assert again.cache == "hit"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    floor = memory_hash_seconds(total)
    print(f"\n{label}: {len(files)} file(s), {total / 2**30:.2f} GiB")
    print(f"  {'case':<13}{'seconds':>9}{'GB/s':>8}{'x memory-hash':>15}")
    for case, seconds in (("old", old), ("fetch", cold), ("warm", warm), ("memory-hash", floor)):
        rate = total / seconds / 1e9
        print(f"  {case:<13}{seconds:>9.2f}{rate:>8.3f}{seconds / floor:>15.2f}")
    print(f"  fetch vs old: {old / cold:.2f}x faster")


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark mlstack model fetch on moto.")
    parser.add_argument("--size-mib", type=int, default=4096, help="The one big file.")
    parser.add_argument("--files", type=int, default=64, help="Files in the many-files set.")
    parser.add_argument("--file-mib", type=int, default=64, help="Size of each of those.")
    parser.add_argument("--concurrency", type=int, default=8, help="Ranged GETs in flight.")
    parser.add_argument("--part-mib", type=int, default=16, help="Bytes per ranged GET.")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault(aws.READ_ENV, str(READ_TIMEOUT_S))
    timeouts = aws.Timeouts.from_env()
    root = Path(tempfile.mkdtemp(prefix="mlstack-fetch-data-"))
    print(
        f"model fetch benchmark: one {args.size_mib} MiB file; {args.files} x {args.file_mib} "
        f"MiB; concurrency {args.concurrency}, {args.part_mib} MiB ranges; {os.cpu_count()} CPUs; "
        f"boto3 read timeout {timeouts.read_seconds:g} s, {timeouts.max_attempts} attempts"
    )
    try:
        with moto_server() as endpoint:
            one = root / "one"
            _write_random(one / "model.bin", args.size_mib * MiB)
            run_case(endpoint, "one file", one, args)
            shutil.rmtree(one)
            many = root / "many"
            for index in range(args.files):
                _write_random(many / f"shard-{index:03d}.bin", args.file_mib * MiB)
            run_case(endpoint, "many files", many, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
