"""Prometheus alerting and recording rules, as plain dicts built by pure functions.

Two families:

* **per service** (:func:`service_rules`): error ratio, latency above the service's
  SLO, queue saturation, replicas pinned at the autoscaler's maximum, model-loader
  failures. The expressions depend on what the service's runtime exports
  (:class:`~components.monitoring.metrics.RuntimeMetrics`).
* **fleet** (:func:`fleet_rules`): GPU utilization sustained high (saturation) and
  sustained low (waste) per pool, GPU memory near full, XID and uncorrectable ECC
  errors, pods Pending for GPU capacity; plus the recording rules the GPU dashboards
  read (pool of each node, utilization per GPU, GPUs provisioned per pool).

Every alert carries ``severity`` (``critical`` / ``warning`` / ``info``) and the
annotations ``summary``, ``description`` and ``runbook_url`` (an anchor in
``docs/monitoring.md`` named after the alert, lower-cased).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.monitoring import metrics as m

Rule = dict[str, Any]
RuleGroup = dict[str, Any]

CRITICAL = "critical"
WARNING = "warning"
INFO = "info"
SEVERITIES = (CRITICAL, WARNING, INFO)

# Recorded series (names follow the level:metric:operations convention).
NODE_POOL_INFO = "mlstack:node_gpu_pool:info"
GPU_UTIL_BY_GPU = "mlstack:gpu_utilization_percent:by_gpu"
GPUS_BY_POOL = "mlstack:gpus_provisioned:sum_by_pool"
RECORDED = frozenset({NODE_POOL_INFO, GPU_UTIL_BY_GPU, GPUS_BY_POOL})

DEFAULT_MODEL_LOADER_CONTAINER = "model-loader"
LOADER_FAILURE_REASONS = "CrashLoopBackOff|CreateContainerConfigError|ErrImagePull|ImagePullBackOff"


@dataclass(frozen=True)
class AlertThresholds:
    """Alert thresholds and windows. Defaults suit GPU inference; every one is documented.

    Percentages are 0-100. Windows are minutes: ``*_window_minutes`` is the range a
    rule averages over (so Prometheus must retain at least that much data);
    ``*_for_minutes`` is how long a condition must hold before the alert fires.
    """

    error_ratio_percent: float = 5.0
    """Alert when more than this share of a service's requests fail."""
    rate_window_minutes: int = 5
    """Range of the rate() behind error ratio, latency and queue time."""
    slo_for_minutes: int = 10
    """How long latency, errors or queueing must stay bad before alerting."""
    queue_waiting_per_replica: float = 16.0
    """Requests waiting per replica (runtimes with a queue gauge, e.g. vLLM)."""
    queue_time_seconds: float = 1.0
    """Mean queue time per request (runtimes with queue counters, e.g. Triton)."""
    replicas_at_max_for_minutes: int = 15
    """How long a service may sit at its autoscaler maximum before alerting."""
    gpu_util_high_percent: float = 90.0
    """A pool averaging above this is saturated (add capacity)."""
    gpu_util_high_window_minutes: int = 30
    gpu_util_low_percent: float = 10.0
    """A pool averaging below this wastes GPUs (scale in, or share)."""
    gpu_util_low_window_minutes: int = 360
    gpu_memory_full_percent: float = 97.0
    """Framebuffer use per GPU; vLLM pre-allocates ~90 %, so keep this above that."""
    gpu_memory_for_minutes: int = 15
    gpu_pending_for_minutes: int = 15
    """Pods asking for GPUs unschedulable this long (a fresh GPU node takes ~7 min)."""
    gpu_error_window_minutes: int = 15
    """Range scanned for XID / ECC errors."""
    model_loader_window_minutes: int = 15
    """Range scanned for model-loader restarts."""

    def problems(self) -> list[str]:
        """Every out-of-range value, as 'field: value: allowed' lines."""
        found: list[str] = []
        for name in (
            "error_ratio_percent",
            "gpu_util_high_percent",
            "gpu_util_low_percent",
            "gpu_memory_full_percent",
        ):
            value = getattr(self, name)
            if not 0 < value <= 100:
                found.append(f"{name}: {value}: a percentage in (0, 100]")
        for name in ("queue_waiting_per_replica", "queue_time_seconds"):
            value = getattr(self, name)
            if value <= 0:
                found.append(f"{name}: {value}: must be > 0")
        for name, value in self.__dict__.items():
            if name.endswith("_minutes") and not 1 <= value <= 10080:
                found.append(f"{name}: {value}: minutes in [1, 10080]")
        if self.gpu_util_low_percent >= self.gpu_util_high_percent:
            found.append(
                f"gpu_util_low_percent: {self.gpu_util_low_percent}: must be below "
                f"gpu_util_high_percent ({self.gpu_util_high_percent})"
            )
        return found

    def longest_window_minutes(self) -> int:
        """The longest stretch of history any rule reads (range plus hold time)."""
        return max(
            self.rate_window_minutes + self.slo_for_minutes,
            self.gpu_util_high_window_minutes + 5,
            self.gpu_util_low_window_minutes + 15,
            self.gpu_error_window_minutes,
            self.model_loader_window_minutes,
        )


@dataclass(frozen=True)
class ServiceRuleTarget:
    """What the per-service rules need to know about one inference service."""

    name: str
    namespace: str
    runtime: m.RuntimeMetrics
    p99_latency_slo_seconds: float
    k8s_service: str | None = None
    """Kubernetes Service whose endpoints are scraped (the ``service`` label). Default: name."""
    hpa_name: str | None = None
    """HorizontalPodAutoscaler of the service. Default: KEDA's ``keda-hpa-<name>``."""
    model_loader_container: str | None = DEFAULT_MODEL_LOADER_CONTAINER
    """Init container that fetches the model; None: no loader rule."""
    startup_budget_seconds: int | None = None
    """The model's start-up budget: records time-to-ready and alerts above it; None: off."""

    @property
    def service_label(self) -> str:
        return self.k8s_service or self.name

    @property
    def hpa(self) -> str:
        return self.hpa_name or f"keda-hpa-{self.name}"


# --------------------------------------------------------------------------- helpers


def duration(minutes: int) -> str:
    """Minutes as a Prometheus duration: 90 -> ``90m``, 360 -> ``6h``, 2880 -> ``2d``."""
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def number(value: float) -> str:
    """A PromQL number literal: whole numbers without a fraction, others in short form."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def runbook_url(base: str, alert: str) -> str:
    return f"{base}#{alert.lower()}"


def alert_rule(
    alert: str,
    expr: str,
    for_minutes: int,
    severity: str,
    *,
    summary: str,
    description: str,
    runbook_base: str,
    labels: dict[str, str] | None = None,
) -> Rule:
    """One alerting rule in the PrometheusRule shape."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r}: allowed {SEVERITIES}")
    return {
        "alert": alert,
        "expr": expr,
        "for": duration(for_minutes),
        "labels": {"severity": severity, **(labels or {})},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": runbook_url(runbook_base, alert),
        },
    }


def selector(target: ServiceRuleTarget, extra: str = "") -> str:
    """The label matchers that pick one service's series."""
    base = f'namespace="{target.namespace}",service="{target.service_label}"'
    return "{" + base + (f",{extra}" if extra else "") + "}"


def _rate_sum(metric: str, matchers: str, window: str) -> str:
    return f"sum(rate({metric}{matchers}[{window}]))"


# --------------------------------------------------------------------------- per service


def error_ratio_expr(target: ServiceRuleTarget, window: str) -> str:
    """Percent of requests that failed over ``window``."""
    errors = target.runtime.errors
    if isinstance(errors, m.StatusCounter):
        failed = _rate_sum(errors.metric, selector(target, errors.error_matcher), window)
        total = _rate_sum(errors.metric, selector(target), window)
        return f"100 * {failed} / {total}"
    failed = _rate_sum(errors.failure, selector(target), window)
    ok = _rate_sum(errors.success, selector(target), window)
    return f"100 * {failed} / ({ok} + {failed})"


def latency_expr(target: ServiceRuleTarget, window: str) -> str:
    """Request latency in seconds: p99 from a histogram, else the mean from counters."""
    latency = target.runtime.latency
    if isinstance(latency, m.LatencyHistogram):
        buckets = f"sum by (le) (rate({latency.bucket}{selector(target)}[{window}]))"
        return f"histogram_quantile(0.99, {buckets})"
    return _mean_seconds(latency, target, window)


def _mean_seconds(shape: m.CumulativeDuration, target: ServiceRuleTarget, window: str) -> str:
    total = _rate_sum(shape.total, selector(target), window)
    count = _rate_sum(shape.count, selector(target), window)
    return f"{total} / {count} * {number(shape.unit_seconds)}"


def service_rules(
    target: ServiceRuleTarget, thresholds: AlertThresholds, runbook_base: str
) -> list[Rule]:
    """The alerting rules of one inference service."""
    th = thresholds
    window = duration(th.rate_window_minutes)
    labels = {"service": target.name, "namespace": target.namespace}
    name = target.name
    rules: list[Rule] = [
        alert_rule(
            "InferenceErrorRatioHigh",
            f"{error_ratio_expr(target, window)} > {number(th.error_ratio_percent)}",
            th.slo_for_minutes,
            CRITICAL,
            summary=f"{name}: {{{{ $value | humanize }}}}% of requests failing",
            description=f"More than {number(th.error_ratio_percent)}% of requests to {name} "
            f"failed over the last {window}.",
            runbook_base=runbook_base,
            labels=labels,
        )
    ]
    slo = number(target.p99_latency_slo_seconds)
    statistic = "p99" if target.runtime.latency_is_percentile else "mean"
    rules.append(
        alert_rule(
            "InferenceLatencyAboveSlo",
            f"{latency_expr(target, window)} > {slo}",
            th.slo_for_minutes,
            CRITICAL,
            summary=f"{name}: {statistic} latency {{{{ $value | humanizeDuration }}}} "
            f"above SLO {slo}s",
            description=f"The {statistic} request latency of {name} is above its SLO of {slo}s "
            + (
                "(p99 from the latency histogram)."
                if statistic == "p99"
                else "(this runtime exports no latency histogram: this is the mean; the "
                "ALB p99 alarm in CloudWatch watches the tail)."
            ),
            runbook_base=runbook_base,
            labels=labels,
        )
    )
    queue = target.runtime.queue
    if isinstance(queue, m.QueueGauge):
        rules.append(
            alert_rule(
                "InferenceQueueSaturated",
                f"avg({queue.metric}{selector(target)}) > {number(th.queue_waiting_per_replica)}",
                th.slo_for_minutes,
                WARNING,
                summary=f"{name}: {{{{ $value | humanize }}}} requests waiting per replica",
                description=f"Requests are queueing in {name} faster than replicas drain them.",
                runbook_base=runbook_base,
                labels=labels,
            )
        )
    elif isinstance(queue, m.CumulativeDuration):
        rules.append(
            alert_rule(
                "InferenceQueueSaturated",
                f"{_mean_seconds(queue, target, window)} > {number(th.queue_time_seconds)}",
                th.slo_for_minutes,
                WARNING,
                summary=f"{name}: requests queue {{{{ $value | humanizeDuration }}}} on average",
                description=f"Requests to {name} wait longer than "
                f"{number(th.queue_time_seconds)}s in the server queue.",
                runbook_base=runbook_base,
                labels=labels,
            )
        )
    hpa = f'{{namespace="{target.namespace}",horizontalpodautoscaler="{target.hpa}"}}'
    rules.append(
        alert_rule(
            "InferenceReplicasAtMax",
            f"max({m.KSM_HPA_CURRENT}{hpa}) >= max({m.KSM_HPA_MAX}{hpa})",
            th.replicas_at_max_for_minutes,
            WARNING,
            summary=f"{name}: autoscaler pinned at its maximum replicas",
            description=f"{name} has run at its maximum replica count for "
            f"{duration(th.replicas_at_max_for_minutes)}: demand may exceed capacity.",
            runbook_base=runbook_base,
            labels=labels,
        )
    )
    if target.model_loader_container:
        pods = (
            f'namespace="{target.namespace}",pod=~"{pod_regex(target)}",'
            f'container="{target.model_loader_container}"'
        )
        loader_window = duration(th.model_loader_window_minutes)
        restarts = f"sum(increase({m.KSM_INIT_RESTARTS}{{{pods}}}[{loader_window}])) > 0"
        waiting = f'sum({m.KSM_INIT_WAITING}{{{pods},reason=~"{LOADER_FAILURE_REASONS}"}}) > 0'
        rules.append(
            alert_rule(
                "ModelLoaderFailing",
                f"({restarts}) or ({waiting})",
                1,
                CRITICAL,
                summary=f"{name}: model loader failing, new replicas cannot start",
                description=f"The {target.model_loader_container} init container of {name} "
                f"restarted or is stuck in the last {loader_window}: new replicas cannot load "
                "the model.",
                runbook_base=runbook_base,
                labels=labels,
            )
        )
    if target.startup_budget_seconds is not None:
        rules.append(startup_alert(target, target.startup_budget_seconds, runbook_base))
    return rules


POD_TIME_TO_READY = "mlstack:pod_time_to_ready_seconds"
"""Recorded per pod: seconds from pod creation to Ready (kube-state-metrics timestamps)."""
MODEL_TIME_TO_READY = "mlstack:model_time_to_ready_seconds"
"""Recorded per service with a ``quantile`` label (0.5, 0.9) over its current pods."""
STARTUP_ALERT_WINDOW_SECONDS = 1800
"""A slow start keeps its alert this long after the pod became ready, then it clears; a pod
older than budget + this window is no longer in its start (readiness blips don't alert)."""


TRACK_SUFFIXES = ("canary", "blue", "green")
"""Deployment name suffixes of a model's non-stable tracks (the stable Deployment has the
model's name; ``components.serving.rollout.workload_name``)."""


def pod_regex(target: ServiceRuleTarget) -> str:
    """The pods of the model's own Deployments: ``<deployment>-<template hash>-<suffix>``
    (Kubernetes cuts ``<replica set>-`` to 58 characters, so the last ``-`` may be gone).
    Never ``<name>-.*``: that would also match the pods of ``<name>-small``."""
    tracks = "|".join(TRACK_SUFFIXES)
    return f"{target.name}(-({tracks}))?-[a-z0-9]+(-[a-z0-9]+)?"


def _pods(target: ServiceRuleTarget, extra: str = "") -> str:
    return f'{{namespace="{target.namespace}",pod=~"{pod_regex(target)}"{extra}}}'


def _pod_times(target: ServiceRuleTarget) -> tuple[str, str]:
    ready_at = f"max by (namespace, pod) ({m.KSM_POD_READY_TIME}{_pods(target)})"
    created_at = f"max by (namespace, pod) ({m.KSM_POD_CREATED}{_pods(target)})"
    return ready_at, created_at


def service_recording_rules(target: ServiceRuleTarget) -> list[Rule]:
    """Cold-start series of one service (only with a start-up budget): time-to-ready per
    pod, and its p50/p90 over the service's current pods."""
    if target.startup_budget_seconds is None:
        return []
    labels = {"service": target.name, "namespace": target.namespace}
    ready_at, created_at = _pod_times(target)
    recorded = f'{POD_TIME_TO_READY}{{service="{target.name}"}}'
    return [
        {"record": POD_TIME_TO_READY, "expr": f"{ready_at} - {created_at}", "labels": labels},
        *(
            {
                "record": MODEL_TIME_TO_READY,
                "expr": f"quantile({q}, {recorded})",
                "labels": {**labels, "quantile": q},
            }
            for q in ("0.5", "0.9")
        ),
    ]


def startup_alert(target: ServiceRuleTarget, budget: int, runbook_base: str) -> Rule:
    """A pod took longer than the start-up budget to become ready (alert kept for
    :data:`STARTUP_ALERT_WINDOW_SECONDS` after it did), or is still not ready past it.
    Reads :func:`service_recording_rules`' per-pod series."""
    ready_at, created_at = _pod_times(target)
    recorded = f'{POD_TIME_TO_READY}{{service="{target.name}"}}'
    # Only a pod's start counts: kube-state-metrics' ready time is the *last* transition to
    # Ready, so a pod serving for days that fails one readiness probe would otherwise look
    # like a start of days (and a not-ready pod older than the budget like a stuck start).
    horizon = budget + STARTUP_ALERT_WINDOW_SECONDS
    recent = f"(time() - {ready_at}) < {STARTUP_ALERT_WINDOW_SECONDS}"
    slow = f"(({recorded} > {budget}) < {horizon}) and on (namespace, pod) ({recent})"
    not_ready_pods = _pods(target, ',condition="false"')
    not_ready = f"max by (namespace, pod) ({m.KSM_POD_READY}{not_ready_pods}) == 1"
    age = f"time() - {created_at}"
    stuck = f"((({age}) > {budget}) < {horizon}) and on (namespace, pod) ({not_ready})"
    return alert_rule(
        "ModelStartupOverBudget",
        f"({slow}) or ({stuck})",
        0,
        WARNING,
        summary=f"{target.name}: a replica took longer than its {budget}s start-up budget",
        description=f"A pod of {target.name} became ready (or is still not ready) more than "
        f"{budget}s after it was created: the start-up budget (startupBudgetSeconds) is "
        "exceeded, so scale-ups and rollouts are slower than planned.",
        runbook_base=runbook_base,
        labels={"service": target.name, "namespace": target.namespace},
    )


# --------------------------------------------------------------------------- fleet


def recording_rules(gpu_pool_label: str) -> list[Rule]:
    """Series the fleet alerts and GPU dashboards read."""
    pool = m.ksm_label_name(gpu_pool_label)
    gpu = f'resource="{m.GPU_RESOURCE_LABEL}"'
    return [
        {
            "record": NODE_POOL_INFO,
            "expr": (
                f'max by (node, pool) (label_replace({m.KSM_NODE_LABELS}{{{pool}!=""}}, '
                f'"pool", "$1", "{pool}", "(.+)"))'
            ),
        },
        {
            "record": GPU_UTIL_BY_GPU,
            "expr": (
                f"avg by (node, gpu, pool) ({m.DCGM_GPU_UTIL} * on (node) group_left (pool) "
                f"{NODE_POOL_INFO})"
            ),
        },
        {
            "record": GPUS_BY_POOL,
            "expr": (
                f"sum by (pool) ({m.KSM_NODE_CAPACITY}{{{gpu}}} * on (node) group_left (pool) "
                f"{NODE_POOL_INFO})"
            ),
        },
    ]


@dataclass(frozen=True)
class PoolRepair:
    """How one GPU pool heals a faulty node: the alerts say it and page only when nobody
    else will act."""

    pool: str
    enabled: bool
    provisioner: str = "karpenter"
    disabled_reason: str | None = None

    @property
    def action(self) -> str:
        """What repair does after :data:`REPAIR_AFTER_MINUTES`."""
        if self.provisioner == "managed":
            return "EKS reboots or replaces the node (per XID code)"
        return "Karpenter replaces the node (forcefully: no drain)"


REPAIR_AFTER_MINUTES = 10
"""How long ``AcceleratedHardwareReady=False`` holds before EKS or Karpenter repairs
(EKS user guide, "Automatically repair nodes"; Karpenter's AWS repair policy)."""
REPAIR_GRACE_MINUTES = 20
"""Time a repair gets to replace the node (a new GPU node's boot and join) before the
overdue alert pages."""


def _pools_matcher(pools: Sequence[PoolRepair]) -> str:
    # Pool names are DNS labels (letters, digits, '-'): nothing to escape in the regex.
    names = "|".join(sorted(p.pool for p in pools))
    return f'pool=~"{names}"'


def _fault_alerts(error_window: str) -> list[tuple[str, str, str, str]]:
    """(alert, expression by node and GPU, summary, what it means) per GPU fault."""
    return [
        (
            "GpuXidError",
            f"max by (node, gpu) (max_over_time({m.DCGM_XID_ERRORS}[{error_window}])) > 0",
            "GPU {{ $labels.gpu }} on node {{ $labels.node }} reported XID {{ $value }}",
            "The NVIDIA driver reported an XID error; some codes (48, 63, 64, 74, 79, 92, 94, "
            "95) mean the GPU needs a reset or the node a replacement.",
        ),
        (
            "GpuEccUncorrectable",
            f"sum by (node, gpu) (increase({m.DCGM_ECC_DBE_VOLATILE}[{error_window}])) > 0",
            "GPU {{ $labels.gpu }} on node {{ $labels.node }} has uncorrectable ECC errors",
            "Double-bit ECC errors corrupt results.",
        ),
    ]


def gpu_fault_rules(
    repairs: Sequence[PoolRepair], error_window: str, runbook_base: str
) -> list[Rule]:
    """XID and uncorrectable-ECC alerts per repair mode, and the overdue-repair page.

    On nodes of pools with repair on (joined through the node's pool label): a warning
    that says what repair will do and when; ``GpuNodeRepairOverdue`` pages when the node
    monitoring agent's ``AcceleratedHardwareReady=False`` outlives the repair window plus
    its grace. On every other GPU node (repair off, no pool label, or kube-state-metrics
    down so no label is known): critical at once, as before repair existed.
    """
    on = [r for r in repairs if r.enabled]
    off = [r for r in repairs if not r.enabled]
    repaired = f"{NODE_POOL_INFO}{{{_pools_matcher(on)}}}" if on else ""
    rules: list[Rule] = []
    for alert, expr, summary, what in _fault_alerts(error_window):
        if on:
            actions = "; ".join(f"{r.pool}: {r.action}" for r in on)
            rules.append(
                alert_rule(
                    alert,
                    f"({expr}) * on (node) group_left (pool) {repaired}",
                    1,
                    WARNING,
                    summary=summary + " (pool {{ $labels.pool }}, auto repair on)",
                    description=f"{what} Auto repair is on for this pool: once the node "
                    "monitoring agent marks the GPU unhealthy (AcceleratedHardwareReady=False) "
                    f"for {REPAIR_AFTER_MINUTES} minutes, {actions}. No page unless "
                    f"GpuNodeRepairOverdue fires ({REPAIR_AFTER_MINUTES + REPAIR_GRACE_MINUTES} "
                    "minutes without a replacement).",
                    runbook_base=runbook_base,
                    labels={"repair": "auto"},
                )
            )
        reasons = "; ".join(f"{r.pool}: {r.disabled_reason or 'off'}" for r in off)
        rules.append(
            alert_rule(
                alert,
                f"({expr}) unless on (node) {repaired}" if on else expr,
                1,
                CRITICAL,
                summary=summary,
                description=f"{what} No auto repair acts on this node"
                + (f" (off for {reasons})" if reasons else "")
                + ": cordon and drain the node, then terminate it.",
                runbook_base=runbook_base,
                labels={"repair": "manual"},
            )
        )
    if on:
        rules.append(
            alert_rule(
                "GpuNodeRepairOverdue",
                f'max by (node, pool) ({m.KSM_NODE_CONDITION}{{condition="'
                f'AcceleratedHardwareReady",status="false"}} * on (node) group_left (pool) '
                f"{NODE_POOL_INFO}{{{_pools_matcher(on)}}}) > 0",
                REPAIR_AFTER_MINUTES + REPAIR_GRACE_MINUTES,
                CRITICAL,
                summary="Node {{ $labels.node }} (pool {{ $labels.pool }}) has had an unhealthy "
                f"GPU for {REPAIR_AFTER_MINUTES + REPAIR_GRACE_MINUTES} minutes and auto repair "
                "has not replaced it",
                description="Repair is held back while more than 20% of the pool's nodes are "
                "unhealthy, by a zonal shift (managed node groups), or failed to launch a "
                "replacement (capacity, quota): read the node's events and the Karpenter or "
                "node group health, then drain and terminate the node by hand.",
                runbook_base=runbook_base,
            )
        )
    return rules


def fleet_rules(
    thresholds: AlertThresholds, runbook_base: str, repairs: Sequence[PoolRepair] = ()
) -> list[Rule]:
    """GPU fleet alerts (reading the recorded series of :func:`recording_rules`)."""
    th = thresholds
    high_window = duration(th.gpu_util_high_window_minutes)
    low_window = duration(th.gpu_util_low_window_minutes)
    error_window = duration(th.gpu_error_window_minutes)
    gpu = f'resource="{m.GPU_RESOURCE_LABEL}"'
    return [
        alert_rule(
            "GpuPoolSaturated",
            f"avg by (pool) (avg_over_time({GPU_UTIL_BY_GPU}[{high_window}])) > "
            f"{number(th.gpu_util_high_percent)}",
            5,
            WARNING,
            summary="GPU pool {{ $labels.pool }} at {{ $value | humanize }}% utilization",
            description=f"GPUs of the pool averaged above {number(th.gpu_util_high_percent)}% for "
            f"{high_window}: latency will climb; raise the pool's limits.",
            runbook_base=runbook_base,
        ),
        alert_rule(
            "GpuPoolUnderused",
            f"avg by (pool) (avg_over_time({GPU_UTIL_BY_GPU}[{low_window}])) < "
            f"{number(th.gpu_util_low_percent)}",
            15,
            WARNING,
            summary="GPU pool {{ $labels.pool }} idle at {{ $value | humanize }}% utilization",
            description=f"GPUs of the pool averaged below {number(th.gpu_util_low_percent)}% for "
            f"{low_window}: paid-for GPUs sit idle; lower min replicas or share GPUs.",
            runbook_base=runbook_base,
        ),
        alert_rule(
            "GpuMemoryNearFull",
            f"max by (node, gpu) (100 * {m.DCGM_FB_USED} / ({m.DCGM_FB_USED} + "
            f"{m.DCGM_FB_FREE})) > {number(th.gpu_memory_full_percent)}",
            th.gpu_memory_for_minutes,
            WARNING,
            summary="GPU {{ $labels.gpu }} on {{ $labels.node }} memory "
            "{{ $value | humanize }}% full",
            description=f"Framebuffer use above {number(th.gpu_memory_full_percent)}%: the next "
            "large batch or model load may fail with out-of-memory.",
            runbook_base=runbook_base,
        ),
        *gpu_fault_rules(repairs, error_window, runbook_base),
        alert_rule(
            "GpuPodsPendingCapacity",
            f"(max by (namespace, pod) ({m.KSM_POD_UNSCHEDULABLE}) > 0) and on (namespace, pod) "
            f"(sum by (namespace, pod) ({m.KSM_CONTAINER_REQUESTS}{{{gpu}}}) > 0)",
            th.gpu_pending_for_minutes,
            WARNING,
            summary="Pod {{ $labels.namespace }}/{{ $labels.pod }} waits for GPU capacity",
            description=f"A pod requesting GPUs has been unschedulable for "
            f"{duration(th.gpu_pending_for_minutes)}: the pool is at its limit or the "
            "instance type has no capacity in these zones.",
            runbook_base=runbook_base,
        ),
    ]


def rule_group(name: str, rules: Sequence[Rule], interval_seconds: int | None = None) -> RuleGroup:
    group: RuleGroup = {"name": name, "rules": list(rules)}
    if interval_seconds:
        group["interval"] = f"{interval_seconds}s"
    return group


def fleet_groups(
    thresholds: AlertThresholds,
    gpu_pool_label: str,
    runbook_base: str,
    repairs: Sequence[PoolRepair] = (),
) -> list[RuleGroup]:
    """The fleet PrometheusRule's groups: recordings first (evaluated every 30 s), then alerts."""
    return [
        rule_group("mlstack-gpu-recording", recording_rules(gpu_pool_label), 30),
        rule_group("mlstack-gpu-fleet", fleet_rules(thresholds, runbook_base, repairs)),
    ]


def alert_names(groups: Sequence[RuleGroup]) -> list[str]:
    return [r["alert"] for g in groups for r in g["rules"] if "alert" in r]
