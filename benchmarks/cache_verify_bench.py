"""Benchmark a warm start: ``mlstack model fetch`` on a node cache that holds the version.

A cache hit downloads nothing but re-hashes every file before the pod uses it (a shared
entry is trusted only while its bytes match its manifest). This measures that path end to
end -- the manifest read from moto on loopback, the entry found, every file hashed in
parallel -- against the same fetch with ``verify_hits=False`` (sizes only) and against
hashing the same number of bytes from memory in this run (the floor on this machine).

The entry is written straight into the cache (random bytes, hashed as they are written),
and only its manifest goes to moto: no multi-GiB upload, so the run takes seconds, not
the better part of an hour (``model_fetch_bench.py`` measures the download).

    .venv/bin/python benchmarks/cache_verify_bench.py [--size-mib 4096] [--files 64]
        [--file-mib 64] [--concurrency 8]
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
from mlstack.model_store import node_cache  # noqa: E402
from mlstack.model_store.fetch import FetchSettings, fetch_model  # noqa: E402
from mlstack.model_store.manifest import FileEntry, build_manifest  # noqa: E402
from mlstack.model_store.s3 import make_client  # noqa: E402
from mlstack.testing.moto_server import moto_server, reset  # noqa: E402

BUCKET = "bench-cache"
MiB = 1024 * 1024
BLOCK = 8 * MiB


def _write(path: Path, size: int) -> str:
    """Random bytes (a fresh prefix per block), hashed as written; returns the sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    block = os.urandom(BLOCK)
    with path.open("wb") as handle:
        left = size
        while left:
            chunk = (os.urandom(64) + block[64:])[: min(BLOCK, left)]
            handle.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def warm_entry(cache: Path, client: object, name: str, sizes: dict[str, int]) -> int:
    """Write a complete cache entry of ``sizes`` and publish its manifest; total bytes."""
    staging = cache / ".staging"
    files = [FileEntry(path, size, _write(staging / path, size)) for path, size in sizes.items()]
    manifest = build_manifest(name, "v1", files)
    body = manifest.to_json().encode()
    client.put_object(Bucket=BUCKET, Key=layout.manifest_key(name, "v1"), Body=body)  # type: ignore[attr-defined]
    entry = cache / name / hashlib.sha256(body).hexdigest()
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(entry)
    (entry / node_cache.MANIFEST_COPY).write_bytes(body)
    (entry / node_cache.MARKER).write_text(f"{entry.name}\n")
    return sum(sizes.values())


def memory_hash_seconds(total: int) -> float:
    data = os.urandom(64 * MiB)
    started = time.perf_counter()
    digest = hashlib.sha256()
    left = total
    while left:
        step = min(len(data), left)
        digest.update(data[:step] if step < len(data) else data)
        left -= step
    return time.perf_counter() - started


def run_case(endpoint: str, label: str, sizes: dict[str, int], concurrency: int) -> None:
    client = make_client(endpoint, "us-east-1")
    reset(endpoint)
    client.create_bucket(Bucket=BUCKET)
    root = Path(tempfile.mkdtemp(prefix="mlstack-verify-bench-"))
    try:
        name = "bench"
        total = warm_entry(root, client, name, sizes)
        floor = memory_hash_seconds(total)
        rows = []
        for case, verify in (("verify", True), ("sizes-only", False)):
            settings = FetchSettings(concurrency=concurrency, verify_hits=verify)
            started = time.perf_counter()
            result = fetch_model(client, BUCKET, name, "v1", root, settings=settings)
            seconds = time.perf_counter() - started
            assert result.cache == "hit" and result.downloaded_bytes == 0, result
            rows.append((case, seconds))
        rows.append(("memory-hash", floor))
        print(f"\n{label}: {len(sizes)} file(s), {total / 2**30:.2f} GiB (page cache warm)")
        print(f"  {'case':<12} {'seconds':>9} {'GB/s':>8} {'x memory-hash':>14}")
        for case, seconds in rows:
            rate, ratio = total / seconds / 1e9, seconds / floor
            print(f"  {case:<12} {seconds:>9.2f} {rate:>8.3f} {ratio:>14.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark a warm cache hit (re-hash).")
    parser.add_argument("--size-mib", type=int, default=4096, help="The one big file.")
    parser.add_argument("--files", type=int, default=64, help="Files in the many-files set.")
    parser.add_argument("--file-mib", type=int, default=64, help="Size of each of those.")
    parser.add_argument("--concurrency", type=int, default=8, help="Files hashed at once.")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    print(
        f"cache-hit benchmark: one {args.size_mib} MiB file; {args.files} x {args.file_mib} MiB;"
        f" concurrency {args.concurrency}; {os.cpu_count()} CPUs"
    )
    with moto_server() as endpoint:
        run_case(endpoint, "one file", {"model.safetensors": args.size_mib * MiB}, args.concurrency)
        many = {f"shard-{i:05d}.safetensors": args.file_mib * MiB for i in range(args.files)}
        run_case(endpoint, "many files", many, args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
