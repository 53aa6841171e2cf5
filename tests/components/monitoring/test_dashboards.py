"""Grafana dashboards: valid JSON of Grafana's model, every query parses, panels fit the grid."""

from __future__ import annotations

import json

import pytest

from components.monitoring import alert_rules as ar
from components.monitoring import dashboards as dash
from components.monitoring import metrics as m
from tests.components.monitoring.promql import (
    cluster_exporters,
    expand_grafana,
    exported_by_runtime,
    series_names,
)

SERVICES = [
    ar.ServiceRuleTarget("llama", "serving", m.VLLM, 2.0),
    ar.ServiceRuleTarget("resnet", "vision", m.TRITON, 0.2),
    ar.ServiceRuleTarget("ranker", "serving", m.CUSTOM, 0.5),
]
BOARDS = dash.all_dashboards(SERVICES)


def _panels(board: dash.Dashboard) -> list[dash.Panel]:
    out: list[dash.Panel] = []
    for item in board["panels"]:
        out.append(item)
        out += item.get("panels", [])
    return out


@pytest.mark.parametrize("short", sorted(BOARDS))
def test_dashboard_json_round_trips_and_has_grafana_fields(short: str) -> None:
    board = json.loads(dash.to_json(BOARDS[short]))
    assert board == BOARDS[short]
    assert {"uid", "title", "panels", "templating", "schemaVersion", "time"} <= set(board)
    assert len(board["uid"]) <= 40
    assert board["uid"].startswith("mlstack-")


@pytest.mark.parametrize("short", sorted(BOARDS))
def test_every_query_parses_after_grafana_variables_expand(short: str) -> None:
    queries = dash.queries(BOARDS[short])
    assert queries
    for query in queries:
        assert "$" not in expand_grafana(query), query
        series_names(expand_grafana(query))


def test_queries_read_only_exported_or_recorded_series() -> None:
    allowed = set(cluster_exporters()) | ar.RECORDED
    for svc in SERVICES:
        allowed |= exported_by_runtime(svc.runtime.runtime)
    read = {
        name
        for board in BOARDS.values()
        for query in dash.queries(board)
        for name in series_names(expand_grafana(query))
    }
    assert read - allowed == set()


@pytest.mark.parametrize("short", sorted(BOARDS))
def test_panel_ids_are_unique_and_panels_fit_the_24_column_grid(short: str) -> None:
    panels = _panels(BOARDS[short])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        assert grid["w"] > 0 and grid["h"] > 0


@pytest.mark.parametrize("short", sorted(BOARDS))
def test_targets_have_unique_ref_ids_and_use_the_chart_datasource(short: str) -> None:
    for p in _panels(BOARDS[short]):
        refs = [t["refId"] for t in p.get("targets", [])]
        assert len(refs) == len(set(refs))
        for t in p.get("targets", []):
            assert t["datasource"] == {"type": "prometheus", "uid": dash.DATASOURCE_UID}


def test_inference_overview_has_a_row_per_service_with_the_required_panels() -> None:
    panels = _panels(BOARDS["inference"])
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == [
        "All services",
        "llama (vllm, serving)",
        "resnet (triton, vision)",
        "ranker (custom, serving)",
    ]
    titles = [p["title"] for p in panels]
    for required in ("Requests per second", "Latency", "Errors", "Replicas"):
        assert titles.count(required) == len(SERVICES)
    assert titles.count("Queue") == 1  # vLLM's gauge
    assert titles.count("Mean queue time") == 1  # Triton's counters


def test_latency_panel_shows_percentiles_and_the_slo_line() -> None:
    latency = [p for p in _panels(BOARDS["inference"]) if p["title"] == "Latency"]
    vllm_legends = [t["legendFormat"] for t in latency[0]["targets"]]
    assert vllm_legends == ["p50", "p90", "p99", "SLO (p99)"]
    assert latency[0]["targets"][-1]["expr"] == "vector(2)"
    assert [t["legendFormat"] for t in latency[1]["targets"]] == ["mean", "SLO (p99)"]


def test_empty_service_list_still_renders_a_valid_overview() -> None:
    board = dash.inference_overview([])
    assert any(p["type"] == "text" for p in board["panels"])
    for query in dash.queries(board):
        series_names(expand_grafana(query))


def test_gpu_dashboards_filter_by_pool_and_node_variables() -> None:
    fleet = BOARDS["gpu-fleet"]
    assert [v["name"] for v in fleet["templating"]["list"]] == ["pool", "node"]
    assert all("$pool" in q or "$node" in q for q in dash.queries(fleet)[:-2])
    hours = BOARDS["gpu-hours"]
    provisioned = next(p for p in _panels(hours) if p["title"] == "GPU-hours provisioned")
    expr = provisioned["targets"][0]["expr"]
    assert ar.GPUS_BY_POOL in expr and "$__range_s / 3600" in expr
    assert hours["time"]["from"] == "now-7d"
