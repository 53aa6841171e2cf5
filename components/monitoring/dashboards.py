"""Grafana dashboards as code: plain dicts (Grafana's dashboard JSON model), built by
pure functions, shipped as ConfigMaps the Grafana sidecar loads.

* ``mlstack-inference``: per service requests/s, latency percentiles (or mean),
  error %, replicas (current / desired / max) and queue;
* ``mlstack-gpu-fleet``: utilization, framebuffer use, power, per GPU / node / pool;
* ``mlstack-gpu-hours``: GPU-hours provisioned and GPU-hours busy per pool over the
  dashboard's time range.

Queries use Grafana's built-in variables (``$__rate_interval``, ``$__range``,
``$__range_s``) and the dashboard's own (``$pool``, ``$node``); the GPU ones read the
recorded series of :mod:`components.monitoring.alert_rules`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from components.monitoring import alert_rules as ar
from components.monitoring import metrics as m

Dashboard = dict[str, Any]
Panel = dict[str, Any]

DATASOURCE_UID = "prometheus"
"""UID kube-prometheus-stack gives its Prometheus data source (grafana.sidecar.datasources.uid)."""
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
SIDECAR_LABEL = ("grafana_dashboard", "1")
"""Label (key, value) the Grafana sidecar watches ConfigMaps for (the chart's default)."""
SCHEMA_VERSION = 39
RATE = "$__rate_interval"
PANEL_WIDTH = 8
PANEL_HEIGHT = 8


class _Layout:
    """Hands out panel ids and grid positions, three panels per row."""

    def __init__(self) -> None:
        self.next_id = 1
        self.x = 0
        self.y = 0

    def place(self, width: int = PANEL_WIDTH, height: int = PANEL_HEIGHT) -> tuple[int, dict]:
        if self.x + width > 24:
            self.x, self.y = 0, self.y + height
        grid = {"x": self.x, "y": self.y, "w": width, "h": height}
        self.x += width
        panel_id = self.next_id
        self.next_id += 1
        return panel_id, grid

    def row(self, title: str) -> Panel:
        if self.x:
            self.x, self.y = 0, self.y + PANEL_HEIGHT
        panel_id = self.next_id
        self.next_id += 1
        panel = {
            "id": panel_id,
            "type": "row",
            "title": title,
            "collapsed": False,
            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1},
            "panels": [],
        }
        self.y += 1
        return panel


def target(expr: str, legend: str, ref: str, instant: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
    }
    if instant:
        out["instant"] = True
        out["range"] = False
    return out


def panel(
    layout: _Layout,
    title: str,
    targets: Sequence[dict[str, Any]],
    unit: str,
    *,
    kind: str = "timeseries",
    width: int = PANEL_WIDTH,
    description: str = "",
) -> Panel:
    panel_id, grid = layout.place(width)
    return {
        "id": panel_id,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": list(targets),
    }


def query_variable(name: str, query: str, label: str) -> dict[str, Any]:
    """A multi-select dashboard variable filled by ``label_values(<query>, <label>)``."""
    definition = f"label_values({query}, {label})"
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": definition,
        "query": {"query": definition, "refId": f"var-{name}"},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }


def dashboard(
    uid: str,
    title: str,
    panels: Sequence[Panel],
    variables: Sequence[dict[str, Any]] = (),
    time_from: str = "now-6h",
) -> Dashboard:
    return {
        "uid": uid,
        "title": title,
        "tags": ["mlstack"],
        "timezone": "utc",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": list(variables)},
        "annotations": {"list": []},
        "links": [],
        "panels": list(panels),
    }


# --------------------------------------------------------------------------- inference


def _service_panels(layout: _Layout, svc: ar.ServiceRuleTarget) -> list[Panel]:
    rt = svc.runtime
    sel = ar.selector(svc)
    errors = rt.errors
    total_metric = errors.metric if isinstance(errors, m.StatusCounter) else errors.success
    panels = [layout.row(f"{svc.name} ({rt.runtime}, {svc.namespace})")]
    panels.append(
        panel(
            layout,
            "Requests per second",
            [target(f"sum(rate({total_metric}{sel}[{RATE}]))", "requests/s", "A")],
            "reqps",
        )
    )
    latency = rt.latency
    if isinstance(latency, m.LatencyHistogram):
        buckets = f"sum by (le) (rate({latency.bucket}{sel}[{RATE}]))"
        latency_targets = [
            target(f"histogram_quantile({q}, {buckets})", f"p{int(q * 100)}", ref)
            for q, ref in ((0.5, "A"), (0.9, "B"), (0.99, "C"))
        ]
    else:
        latency_targets = [target(ar.latency_expr(svc, RATE), "mean", "A")]
    latency_targets.append(
        target(f"vector({ar.number(svc.p99_latency_slo_seconds)})", "SLO (p99)", "Z")
    )
    panels.append(panel(layout, "Latency", latency_targets, "s"))
    panels.append(
        panel(layout, "Errors", [target(ar.error_ratio_expr(svc, RATE), "error %", "A")], "percent")
    )
    hpa = f'{{namespace="{svc.namespace}",horizontalpodautoscaler="{svc.hpa}"}}'
    panels.append(
        panel(
            layout,
            "Replicas",
            [
                target(f"max({m.KSM_HPA_CURRENT}{hpa})", "current", "A"),
                target(
                    f"max({m.KSM_HPA_DESIRED}{hpa})",
                    "desired",
                    "B",
                ),
                target(f"max({m.KSM_HPA_MAX}{hpa})", "max", "C"),
            ],
            "short",
        )
    )
    queue = rt.queue
    if isinstance(queue, m.QueueGauge):
        queue_targets = [
            target(f"sum({queue.metric}{sel})", "waiting", "A"),
        ]
        if rt.running:
            queue_targets.append(target(f"sum({rt.running}{sel})", "running", "B"))
        panels.append(panel(layout, "Queue", queue_targets, "short"))
    elif isinstance(queue, m.CumulativeDuration):
        total = f"sum(rate({queue.total}{sel}[{RATE}]))"
        count = f"sum(rate({queue.count}{sel}[{RATE}]))"
        panels.append(
            panel(
                layout,
                "Mean queue time",
                [target(f"{total} / {count} * {ar.number(queue.unit_seconds)}", "queue", "A")],
                "s",
            )
        )
    if svc.startup_budget_seconds is not None:
        ready = f'{ar.MODEL_TIME_TO_READY}{{service="{svc.name}"'
        panels.append(
            panel(
                layout,
                "Time to ready (current pods)",
                [
                    target(f'max({ready},quantile="0.5"}})', "p50", "A"),
                    target(f'max({ready},quantile="0.9"}})', "p90", "B"),
                    target(f"vector({svc.startup_budget_seconds})", "budget", "Z"),
                ],
                "s",
            )
        )
    if rt.kv_cache_usage_ratio:
        panels.append(
            panel(
                layout,
                "KV-cache use",
                [target(f"max({rt.kv_cache_usage_ratio}{sel})", "max over replicas", "A")],
                "percentunit",
            )
        )
    return panels


def inference_overview(services: Sequence[ar.ServiceRuleTarget]) -> Dashboard:
    """Requests, latency, errors, replicas and queue of every inference service."""
    layout = _Layout()
    panels: list[Panel] = [layout.row("All services")]
    panels.append(
        panel(
            layout,
            "Replicas by service",
            [
                target(
                    f"sum by (namespace, horizontalpodautoscaler) ({m.KSM_HPA_CURRENT}"
                    f'{{horizontalpodautoscaler=~"keda-hpa-.*"}})',
                    "{{namespace}}/{{horizontalpodautoscaler}}",
                    "A",
                )
            ],
            "short",
            width=24,
        )
    )
    for svc in services:
        panels += _service_panels(layout, svc)
    if not services:
        panel_id, grid = layout.place(24, 4)
        panels.append(
            {
                "id": panel_id,
                "type": "text",
                "title": "No services",
                "gridPos": grid,
                "options": {"mode": "markdown", "content": "No inference services are deployed."},
            }
        )
    return dashboard("mlstack-inference", "mlstack / Inference overview", panels)


# --------------------------------------------------------------------------- GPU


def _by_pool(metric_expr: str, selector_vars: bool = True) -> str:
    """``metric`` joined to the node's pool, filtered by the $pool and $node variables."""
    info = f'{ar.NODE_POOL_INFO}{{pool=~"$pool"}}' if selector_vars else ar.NODE_POOL_INFO
    return f"({metric_expr} * on (node) group_left (pool) {info})"


def gpu_fleet() -> Dashboard:
    """Utilization, memory, power per GPU, node and pool; XID errors."""
    layout = _Layout()
    node = '{node=~"$node"}'
    util = f'{ar.GPU_UTIL_BY_GPU}{{pool=~"$pool",node=~"$node"}}'
    fb_used_pct = (
        f"100 * {m.DCGM_FB_USED}{node} / ({m.DCGM_FB_USED}{node} + {m.DCGM_FB_FREE}{node})"
    )
    panels: list[Panel] = [
        layout.row("Pools"),
        panel(
            layout,
            "Utilization by pool",
            [target(f"avg by (pool) ({util})", "{{pool}}", "A")],
            "percent",
        ),
        panel(
            layout,
            "GPUs provisioned by pool",
            [target(f'{ar.GPUS_BY_POOL}{{pool=~"$pool"}}', "{{pool}}", "A")],
            "short",
        ),
        panel(
            layout,
            "Power by pool",
            [target(f"sum by (pool) {_by_pool(f'{m.DCGM_POWER_USAGE}{node}')}", "{{pool}}", "A")],
            "watt",
        ),
        layout.row("GPUs"),
        panel(
            layout,
            "Utilization per GPU",
            [target(util, "{{node}} gpu{{gpu}}", "A")],
            "percent",
        ),
        panel(
            layout,
            "Framebuffer used per GPU",
            [
                target(
                    f"max by (node, gpu, pool) {_by_pool(fb_used_pct)}", "{{node}} gpu{{gpu}}", "A"
                )
            ],
            "percent",
        ),
        panel(
            layout,
            "Power per GPU",
            [
                target(
                    f"max by (node, gpu, pool) {_by_pool(f'{m.DCGM_POWER_USAGE}{node}')}",
                    "{{node}} gpu{{gpu}}",
                    "A",
                )
            ],
            "watt",
        ),
        layout.row("Errors"),
        panel(
            layout,
            "Last XID per GPU",
            [
                target(
                    f"max by (node, gpu) (max_over_time({m.DCGM_XID_ERRORS}{node}[$__range])) > 0",
                    "{{node}} gpu{{gpu}}",
                    "A",
                    instant=True,
                )
            ],
            "none",
            kind="table",
        ),
        panel(
            layout,
            "Uncorrectable ECC errors",
            [
                target(
                    f"sum by (node, gpu) (increase({m.DCGM_ECC_DBE_VOLATILE}{node}[$__range]))",
                    "{{node}} gpu{{gpu}}",
                    "A",
                    instant=True,
                )
            ],
            "none",
            kind="table",
        ),
    ]
    variables = [
        query_variable("pool", ar.NODE_POOL_INFO, "pool"),
        query_variable("node", f'{ar.NODE_POOL_INFO}{{pool=~"$pool"}}', "node"),
    ]
    return dashboard("mlstack-gpu-fleet", "mlstack / GPU fleet", panels, variables)


def gpu_hours() -> Dashboard:
    """GPU-hours provisioned vs. busy per pool over the selected time range."""
    layout = _Layout()
    provisioned = f'avg_over_time({ar.GPUS_BY_POOL}{{pool=~"$pool"}}[$__range]) * $__range_s / 3600'
    busy = (
        f'sum by (pool) (avg_over_time({ar.GPU_UTIL_BY_GPU}{{pool=~"$pool"}}[$__range])) '
        "/ 100 * $__range_s / 3600"
    )
    panels: list[Panel] = [
        layout.row("Over the selected range"),
        panel(
            layout,
            "GPU-hours provisioned",
            [target(provisioned, "{{pool}}", "A", instant=True)],
            "h",
            kind="bargauge",
            description="GPUs on nodes of each pool, integrated over the time range.",
        ),
        panel(
            layout,
            "GPU-hours busy",
            [target(busy, "{{pool}}", "A", instant=True)],
            "h",
            kind="bargauge",
            description="Provisioned GPU-hours weighted by utilization.",
        ),
        panel(
            layout,
            "Busy share",
            [target(f"100 * ({busy}) / ({provisioned})", "{{pool}}", "A", instant=True)],
            "percent",
            kind="bargauge",
        ),
        layout.row("Over time"),
        panel(
            layout,
            "GPUs provisioned",
            [target(f'{ar.GPUS_BY_POOL}{{pool=~"$pool"}}', "{{pool}}", "A")],
            "short",
            width=24,
        ),
    ]
    variables = [query_variable("pool", ar.NODE_POOL_INFO, "pool")]
    return dashboard(
        "mlstack-gpu-hours", "mlstack / GPU-hours by pool", panels, variables, "now-7d"
    )


def all_dashboards(services: Sequence[ar.ServiceRuleTarget]) -> dict[str, Dashboard]:
    """Every dashboard by short name (the ConfigMap suffix)."""
    return {
        "inference": inference_overview(services),
        "gpu-fleet": gpu_fleet(),
        "gpu-hours": gpu_hours(),
    }


def to_json(board: Dashboard) -> str:
    return json.dumps(board, indent=1, sort_keys=True)


def queries(board: Dashboard) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and variable queries."""
    found: list[str] = []

    def walk(panels: Sequence[Panel]) -> None:
        for item in panels:
            found.extend(t["expr"] for t in item.get("targets", []))
            walk(item.get("panels", []))

    walk(board["panels"])
    for var in board["templating"]["list"]:
        definition: str = var["definition"]
        found.append(definition.removeprefix("label_values(").rsplit(",", 1)[0])
    return found
