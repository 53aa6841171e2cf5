"""Part sizing and push settings."""

from __future__ import annotations

from mlstack.model_store.push import (
    MAX_PARTS,
    MiB,
    PushSettings,
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


def test_settings_problems() -> None:
    assert PushSettings().problems() == []
    problems = PushSettings(concurrency=0, part_size=MiB).problems()
    assert len(problems) == 2
    assert "concurrency 0" in problems[0] and "part size 1 MiB" in problems[1]
