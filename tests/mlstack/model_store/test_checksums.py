"""Part sizing and the S3 composite checksum mlstack recomputes to resume a push."""

from __future__ import annotations

import base64
import hashlib

from mlstack.model_store.push import (
    MAX_PARTS,
    MiB,
    PushSettings,
    composite_checksum,
    part_size_for,
)


def test_part_size_stays_unless_the_file_needs_more_than_10000_parts() -> None:
    assert part_size_for(1, 8 * MiB) == 8 * MiB
    assert part_size_for(8 * MiB * MAX_PARTS, 8 * MiB) == 8 * MiB
    bigger = part_size_for(8 * MiB * MAX_PARTS + 1, 8 * MiB)
    assert bigger == 9 * MiB
    size = 200 * 1024 * MiB  # 200 GiB
    chosen = part_size_for(size, 8 * MiB)
    assert chosen % MiB == 0
    assert -(-size // chosen) <= MAX_PARTS


def test_composite_checksum_is_sha256_of_the_part_digests_with_the_part_count() -> None:
    data = bytes(range(256)) * 100
    parts = [data[i : i + 10_000] for i in range(0, len(data), 10_000)]
    digests = [hashlib.sha256(p).digest() for p in parts]
    expected = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()

    assert composite_checksum(digests) == f"{expected}-{len(parts)}"


def test_settings_problems() -> None:
    assert PushSettings().problems() == []
    problems = PushSettings(concurrency=0, part_size=MiB).problems()
    assert len(problems) == 2
    assert "concurrency 0" in problems[0] and "part size 1 MiB" in problems[1]
