"""Monitoring requests and limits from scrape load and retention (docs/monitoring.md#sizing)."""

from __future__ import annotations

from components.monitoring import sizing as sz


def test_prometheus_memory_follows_the_documented_formula() -> None:
    # 512 MiB + 100k x (8 KiB + 3 d x 64 B) = 512 + 799.6 -> 1344 MiB (64 MiB steps)
    r = sz.prometheus_resources(100_000, 3 * 1440, 30)
    assert (r.memory_mib, r.memory_limit_mib) == (1344, 2048)
    # 200m + 100k / 30 s / 50 = 266.7 -> 270m
    assert r.cpu_milli == 270


def test_more_series_and_longer_retention_need_more_prometheus_memory() -> None:
    base = sz.prometheus_resources(100_000, 3 * 1440, 30)
    assert sz.prometheus_resources(300_000, 3 * 1440, 30).memory_mib > base.memory_mib
    assert sz.prometheus_resources(100_000, 30 * 1440, 30).memory_mib > base.memory_mib


def test_every_size_has_a_memory_limit_at_or_above_its_request() -> None:
    sizing = sz.size(sz.DEFAULT_ACTIVE_SERIES["prod"], 30 * 1440, 30)
    for name, r in vars(sizing).items():
        assert r.memory_limit_mib >= r.memory_mib > 0, name
        assert r.to_k8s()["limits"] == {"memory": f"{r.memory_limit_mib}Mi"}
