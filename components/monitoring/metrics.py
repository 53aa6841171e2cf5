"""Metric names the monitoring layer reads, per inference runtime and per exporter.

A :class:`RuntimeMetrics` says, for one serving runtime, which of its exported
series answer the questions the alerts and dashboards ask: how many requests
failed, how slow they were, how long the queue is. Runtimes differ in shape:

* vLLM exports a latency *histogram* and a queue-depth *gauge*; its HTTP layer
  (prometheus-fastapi-instrumentator) counts requests by status class
  (``status="5xx"``).
* Triton exports cumulative *counters* only (success/failure counts, total
  request and queue microseconds): it gives a mean latency, not a percentile.
* ``custom`` images are expected to follow the Prometheus client conventions
  (``http_requests_total`` with a ``status`` label, ``http_request_duration_seconds``).

The serving layer's runtime presets (``components.serving.runtimes``) are the
source of truth for what each runtime exports; tests check every name used here
against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class StatusCounter:
    """One request counter with a status label: errors are the series matching ``error_matcher``."""

    metric: str
    error_matcher: str
    """PromQL label matcher (without braces) selecting failed requests, e.g. ``status="5xx"``."""


@dataclass(frozen=True)
class SuccessFailureCounters:
    """Two counters: successful and failed requests."""

    success: str
    failure: str


@dataclass(frozen=True)
class LatencyHistogram:
    """A Prometheus histogram of request latency in seconds (the ``_bucket`` series)."""

    bucket: str


@dataclass(frozen=True)
class CumulativeDuration:
    """Total time spent (a counter in ``unit_seconds`` units) over a request counter: a mean."""

    total: str
    count: str
    unit_seconds: float


@dataclass(frozen=True)
class QueueGauge:
    """A gauge of requests waiting, one series per replica."""

    metric: str


ErrorShape = StatusCounter | SuccessFailureCounters
LatencyShape = LatencyHistogram | CumulativeDuration
QueueShape = QueueGauge | CumulativeDuration


@dataclass(frozen=True)
class RuntimeMetrics:
    """What one serving runtime exports, as the monitoring layer uses it."""

    runtime: Literal["vllm", "triton", "custom"]
    errors: ErrorShape
    latency: LatencyShape
    queue: QueueShape | None = None
    running: str | None = None
    """Gauge of requests in flight (dashboards only)."""
    kv_cache_usage_ratio: str | None = None
    """Gauge 0..1 of KV-cache use (vLLM; dashboards only)."""

    @property
    def latency_is_percentile(self) -> bool:
        """True when the runtime gives a real p99 (a histogram), False for a mean."""
        return isinstance(self.latency, LatencyHistogram)

    def metric_names(self) -> frozenset[str]:
        """Every series name this preset makes the alerts and dashboards read."""
        names: set[str] = set()
        for part in (self.errors, self.latency, self.queue):
            if isinstance(part, StatusCounter | QueueGauge):
                names.add(part.metric)
            elif isinstance(part, SuccessFailureCounters):
                names |= {part.success, part.failure}
            elif isinstance(part, LatencyHistogram):
                names.add(part.bucket)
            elif isinstance(part, CumulativeDuration):
                names |= {part.total, part.count}
        names |= {n for n in (self.running, self.kv_cache_usage_ratio) if n}
        return frozenset(names)


VLLM = RuntimeMetrics(
    runtime="vllm",
    errors=StatusCounter(metric="http_requests_total", error_matcher='status="5xx"'),
    latency=LatencyHistogram(bucket="vllm:e2e_request_latency_seconds_bucket"),
    queue=QueueGauge(metric="vllm:num_requests_waiting"),
    running="vllm:num_requests_running",
    kv_cache_usage_ratio="vllm:kv_cache_usage_perc",  # gpu_cache_usage_perc: removed in vLLM 0.12
)
TRITON = RuntimeMetrics(
    runtime="triton",
    errors=SuccessFailureCounters(
        success="nv_inference_request_success", failure="nv_inference_request_failure"
    ),
    latency=CumulativeDuration(
        total="nv_inference_request_duration_us",
        count="nv_inference_request_success",
        unit_seconds=1e-6,
    ),
    queue=CumulativeDuration(
        total="nv_inference_queue_duration_us",
        count="nv_inference_request_success",
        unit_seconds=1e-6,
    ),
)
CUSTOM = RuntimeMetrics(
    runtime="custom",
    errors=StatusCounter(metric="http_requests_total", error_matcher='status=~"5.."'),
    latency=LatencyHistogram(bucket="http_request_duration_seconds_bucket"),
)
RUNTIMES: dict[str, RuntimeMetrics] = {r.runtime: r for r in (VLLM, TRITON, CUSTOM)}
"""The presets by runtime name (the names the serving layer uses)."""

# --------------------------------------------------------------------------- exporters

DCGM_GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
DCGM_FB_USED = "DCGM_FI_DEV_FB_USED"
DCGM_FB_FREE = "DCGM_FI_DEV_FB_FREE"
DCGM_POWER_USAGE = "DCGM_FI_DEV_POWER_USAGE"
DCGM_XID_ERRORS = "DCGM_FI_DEV_XID_ERRORS"
DCGM_ECC_DBE_VOLATILE = "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"
DCGM_METRICS = frozenset(
    {
        DCGM_GPU_UTIL,
        DCGM_FB_USED,
        DCGM_FB_FREE,
        DCGM_POWER_USAGE,
        DCGM_XID_ERRORS,
        DCGM_ECC_DBE_VOLATILE,
    }
)
"""The DCGM fields the rules and dashboards read; ``components.compute.nvidia.DCGM_COUNTERS``
is the exporter's list and must hold them all (tested against the rendered objects)."""

KSM_NODE_LABELS = "kube_node_labels"
KSM_NODE_CAPACITY = "kube_node_status_capacity"
KSM_POD_UNSCHEDULABLE = "kube_pod_status_unschedulable"
KSM_CONTAINER_REQUESTS = "kube_pod_container_resource_requests"
KSM_HPA_CURRENT = "kube_horizontalpodautoscaler_status_current_replicas"
KSM_HPA_MAX = "kube_horizontalpodautoscaler_spec_max_replicas"
KSM_HPA_DESIRED = "kube_horizontalpodautoscaler_status_desired_replicas"
KSM_INIT_RESTARTS = "kube_pod_init_container_status_restarts_total"
KSM_INIT_WAITING = "kube_pod_init_container_status_waiting_reason"
KSM_POD_CREATED = "kube_pod_created"
KSM_POD_READY_TIME = "kube_pod_status_ready_time"
KSM_POD_READY = "kube_pod_status_ready"
KSM_NODE_CONDITION = "kube_node_status_condition"
"""Every node condition, the node monitoring agent's ``AcceleratedHardwareReady`` included."""
KSM_METRICS = frozenset(
    {
        KSM_NODE_LABELS,
        KSM_NODE_CAPACITY,
        KSM_POD_UNSCHEDULABLE,
        KSM_CONTAINER_REQUESTS,
        KSM_HPA_CURRENT,
        KSM_HPA_MAX,
        KSM_HPA_DESIRED,
        KSM_INIT_RESTARTS,
        KSM_INIT_WAITING,
        KSM_POD_CREATED,
        KSM_POD_READY_TIME,
        KSM_POD_READY,
        KSM_NODE_CONDITION,
    }
)
"""kube-state-metrics series the rules read (all in its default collectors)."""

GPU_RESOURCE_LABEL = "nvidia_com_gpu"
"""How kube-state-metrics spells the ``nvidia.com/gpu`` resource in its ``resource`` label."""


def ksm_label_name(kubernetes_label: str) -> str:
    """The label kube-state-metrics gives a node label: ``mlstack.io/gpu-pool`` ->
    ``label_mlstack_io_gpu_pool`` (non-alphanumerics become ``_``)."""
    return "label_" + "".join(c if c.isalnum() else "_" for c in kubernetes_label)
