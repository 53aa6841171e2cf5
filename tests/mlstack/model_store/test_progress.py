"""The progress bar speaks one unit system: binary (MiB and MiB/s), never MB/s next to MiB."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mlstack.model_store.cli import _Bar, binary_rate

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("rate", "shown"),
    [(None, "?"), (512, "512 B/s"), (1536, "1.5 KiB/s"), (5 * MiB, "5.0 MiB/s"),
     (3 * 1024 * MiB, "3.0 GiB/s")],
)  # fmt: skip
def test_rates_are_binary(rate: float | None, shown: str) -> None:
    assert binary_rate(rate) == shown


def test_the_bar_shows_sizes_and_speed_in_binary_units() -> None:
    bar = _Bar("push m/v1")
    task = SimpleNamespace(
        speed=5 * MiB, finished_speed=None, completed=10 * MiB, total=20 * MiB, finished=False
    )
    rendered = [str(column.render(task)) for column in bar._progress.columns[2:4]]  # type: ignore[arg-type]
    assert rendered[0] == "10.0/20.0 MiB"
    assert rendered[1] == "5.0 MiB/s"  # rich's TransferSpeedColumn would say "5.2 MB/s"
