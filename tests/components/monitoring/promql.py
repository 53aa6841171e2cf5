"""PromQL helpers for the monitoring tests: parse with promql-parser (a real parser of the
Prometheus grammar), list the series an expression reads, expand Grafana variables."""

from __future__ import annotations

import promql_parser

from components.monitoring import metrics as m

GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "$__range_s": "21600",
    "$__range": "6h",
    "$pool": "gpu-a10g",
    "$node": "ip-10-20-1-5.us-west-2.compute.internal",
}


def expand_grafana(query: str) -> str:
    """Substitute Grafana's variables the way Grafana does before sending the query."""
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        query = query.replace(name, GRAFANA_VARIABLES[name])
    return query


def series_names(expr: str) -> set[str]:
    """Metric names an expression selects (raises ValueError if it does not parse)."""
    found: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                found.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    found.add(matcher.value)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


# What each runtime exports, as far as the monitoring layer relies on it. Used until the
# serving layer's presets (components.serving.runtimes) are importable; then the tests
# read the presets instead (see exported_by_runtime).
CONTRACT_EXPORTS: dict[str, frozenset[str]] = {
    "vllm": frozenset(
        {
            "vllm:num_requests_waiting",
            "vllm:num_requests_running",
            "vllm:e2e_request_latency_seconds_bucket",
            "vllm:request_success_total",
            "vllm:gpu_cache_usage_perc",
            # The OpenAI server's HTTP layer (prometheus-fastapi-instrumentator, mounted
            # by vllm/entrypoints/serve/instrumentator/metrics.py) counts requests by
            # status class: http_requests_total{handler,method,status="2xx|4xx|5xx"}.
            "http_requests_total",
        }
    ),
    "triton": frozenset(
        {
            "nv_inference_request_success",
            "nv_inference_request_failure",
            "nv_inference_queue_duration_us",
            "nv_inference_request_duration_us",
            "nv_inference_count",
        }
    ),
    # A custom image must follow the Prometheus client conventions.
    "custom": frozenset({"http_requests_total", "http_request_duration_seconds_bucket"}),
}
DCGM_CONTRACT = frozenset(
    {
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    }
)


def exported_by_runtime(runtime: str) -> frozenset[str]:
    """The metric names the serving preset of ``runtime`` exports."""
    try:
        from components.serving import runtimes  # type: ignore[import-not-found]
    except ImportError:
        return CONTRACT_EXPORTS[runtime]
    return frozenset(runtimes.exported_metrics(runtime))  # pragma: no cover


def cluster_exporters() -> frozenset[str]:
    """Series from the DCGM exporter and kube-state-metrics."""
    return DCGM_CONTRACT | m.KSM_METRICS
