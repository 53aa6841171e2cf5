"""Runtime presets: how each model server is started, probed, scraped and scaled.

A preset fixes the container's command and arguments, its ports, the HTTP paths of
its liveness / readiness / startup probes and of its Prometheus endpoint, whether it
can run as a non-root user, and the one signal KEDA scales it on.

The metric names are typed constants (:class:`VllmMetric`, :class:`TritonMetric`) so
the monitoring layer imports exactly what each runtime exports instead of retyping
strings: ``PRESETS["vllm"].metrics`` lists every metric family the vLLM preset
exposes, ``PRESETS["vllm"].scaling.metric`` the one autoscaling reads.

Facts (checked against upstream docs for the pinned versions):

* vLLM (``vllm serve``): OpenAI API, ``/health`` and ``/metrics`` on the API port
  (8000); gauges ``vllm:num_requests_waiting`` / ``vllm:num_requests_running``.
* Triton: HTTP 8000 (``/v2/health/live``, ``/v2/health/ready``), gRPC 8001, metrics
  on 8002; ``nv_inference_queue_duration_us`` is a cumulative counter in
  microseconds, so queue time per request is a ratio of two rates.

Behind a load balancer (issue 29, items 4 and 5):

* Keep-alive. An ALB reuses idle back-end connections until its idle timeout (600 s
  here); a target that closes one first races the next request on it, which the ALB
  answers 502 (ELB guide, "Connection idle timeout": the application's idle timeout must
  be larger than the load balancer's). vLLM closes idle connections after
  ``VLLM_HTTP_TIMEOUT_KEEP_ALIVE`` seconds (``vllm/envs.py``, default 5; passed to
  uvicorn as ``timeout_keep_alive`` in ``vllm/entrypoints/openai/api_server.py``). Triton's
  HTTP endpoint (libevhtp, ``src/http_server.cc`` ``HTTPServer::Start``) sets no idle
  timeout at all, so it never closes first. A custom server is told the value in
  ``MLSTACK_HTTP_KEEP_ALIVE_SECONDS`` and must honour it (docs/operations.md).
* Draining. After the preStop pause the kubelet sends SIGTERM. vLLM's engine aborts every
  in-flight request unless ``--shutdown-timeout`` is above 0 (``vllm/v1/engine/core.py``
  ``EngineCoreProc._handle_shutdown``: ``mode = "abort" if shutdown_timeout == 0 else
  "drain"``; flag from ``VllmConfig.shutdown_timeout``, ``vllm/engine/arg_utils.py``).
  Triton waits ``--exit-timeout-secs`` (default 30, ``src/command_line_parser.cc``) for
  in-flight inferences. A custom server gets ``MLSTACK_SHUTDOWN_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from components import versions

RuntimeName = Literal["vllm", "triton", "custom"]
MetricType = Literal["AverageValue", "Value"]

MODEL_DIR = "/models/model"
"""Where the loader puts the verified model files; mounted read-only in the server."""

# Pod labels every inference pod carries; the monitoring layer selects on them.
MODEL_LABEL = "mlstack.io/model"
METRICS_SERVICE_LABEL = ("mlstack.io/metrics", "true")
"""On exactly one Service per Deployment (track): a ServiceMonitor selecting it scrapes
every pod once (the blue/green ``<name>`` alias and NLB Services do not carry it)."""
TRACK_LABEL = "mlstack.io/track"
RUNTIME_LABEL = "mlstack.io/runtime"
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENT_VALUE = "inference"


class VllmMetric(StrEnum):
    """Metric families exported by ``vllm serve`` on ``/metrics`` (V1 engine)."""

    NUM_REQUESTS_WAITING = "vllm:num_requests_waiting"
    NUM_REQUESTS_RUNNING = "vllm:num_requests_running"
    KV_CACHE_USAGE_PERC = "vllm:kv_cache_usage_perc"
    NUM_PREEMPTIONS_TOTAL = "vllm:num_preemptions_total"
    PROMPT_TOKENS_TOTAL = "vllm:prompt_tokens_total"
    GENERATION_TOKENS_TOTAL = "vllm:generation_tokens_total"
    REQUEST_SUCCESS_TOTAL = "vllm:request_success_total"
    TIME_TO_FIRST_TOKEN_SECONDS = "vllm:time_to_first_token_seconds"
    INTER_TOKEN_LATENCY_SECONDS = "vllm:inter_token_latency_seconds"
    E2E_REQUEST_LATENCY_SECONDS = "vllm:e2e_request_latency_seconds"
    REQUEST_QUEUE_TIME_SECONDS = "vllm:request_queue_time_seconds"


class TritonMetric(StrEnum):
    """Metric families exported by Triton on its metrics port (default config)."""

    REQUEST_SUCCESS = "nv_inference_request_success"
    REQUEST_FAILURE = "nv_inference_request_failure"
    INFERENCE_COUNT = "nv_inference_count"
    EXEC_COUNT = "nv_inference_exec_count"
    REQUEST_DURATION_US = "nv_inference_request_duration_us"
    QUEUE_DURATION_US = "nv_inference_queue_duration_us"
    COMPUTE_INFER_DURATION_US = "nv_inference_compute_infer_duration_us"
    GPU_UTILIZATION = "nv_gpu_utilization"
    GPU_MEMORY_USED_BYTES = "nv_gpu_memory_used_bytes"


class HttpMetric(StrEnum):
    """HTTP metrics of the vLLM OpenAI server (prometheus-fastapi-instrumentator); custom
    images are expected to follow the same Prometheus client conventions."""

    REQUESTS_TOTAL = "http_requests_total"
    REQUEST_DURATION_SECONDS = "http_request_duration_seconds"


FamilyType = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class MetricFamily:
    """One exported metric family and the series names Prometheus stores for it."""

    name: str
    type: FamilyType

    @property
    def series(self) -> tuple[str, ...]:
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


_HISTOGRAMS = {
    VllmMetric.TIME_TO_FIRST_TOKEN_SECONDS,
    VllmMetric.INTER_TOKEN_LATENCY_SECONDS,
    VllmMetric.E2E_REQUEST_LATENCY_SECONDS,
    VllmMetric.REQUEST_QUEUE_TIME_SECONDS,
    HttpMetric.REQUEST_DURATION_SECONDS,
}
_GAUGES = {
    VllmMetric.NUM_REQUESTS_WAITING,
    VllmMetric.NUM_REQUESTS_RUNNING,
    VllmMetric.KV_CACHE_USAGE_PERC,
    TritonMetric.GPU_UTILIZATION,
    TritonMetric.GPU_MEMORY_USED_BYTES,
}


def _families(*names: StrEnum) -> tuple[MetricFamily, ...]:
    return tuple(
        MetricFamily(
            n.value, "histogram" if n in _HISTOGRAMS else "gauge" if n in _GAUGES else "counter"
        )
        for n in names
    )


VLLM_FAMILIES = _families(*VllmMetric, *HttpMetric)
TRITON_FAMILIES = _families(*TritonMetric)
HTTP_FAMILIES = _families(*HttpMetric)
VLLM_METRICS: tuple[str, ...] = tuple(f.name for f in VLLM_FAMILIES)
TRITON_METRICS: tuple[str, ...] = tuple(f.name for f in TRITON_FAMILIES)


def pod_name_regex(deployment: str) -> str:
    """Pods of one Deployment: ``<deployment>-<replicaset hash>-<pod suffix>``.

    Both suffixes are dash-free, so ``llama`` does not match ``llama-canary``'s pods.
    """
    return f"{deployment}-[a-z0-9]+-[a-z0-9]+"


def series_selector(namespace: str, deployment: str) -> str:
    """PromQL label matchers for the pods of one Deployment."""
    return f'{{namespace="{namespace}",pod=~"{pod_name_regex(deployment)}"}}'


@dataclass(frozen=True)
class ScalingSignal:
    """The load signal KEDA scales a runtime on, as a PromQL query per Deployment.

    ``kind`` ``gauge``: ``sum`` of a per-pod gauge (waiting requests); with metric type
    ``AverageValue`` the target is per replica. ``kind`` ``queueTime``: average queue
    time per request in milliseconds over one minute, from a cumulative microsecond
    counter and a request counter; metric type ``Value``.
    """

    kind: Literal["gauge", "queueTime"]
    metric: str
    metric_type: MetricType
    default_target: float
    unit: str
    requests_metric: str | None = None

    def query(self, namespace: str, deployment: str) -> str:
        sel = series_selector(namespace, deployment)
        if self.kind == "gauge":
            return f"sum({self.metric}{sel})"
        return (
            f"sum(rate({self.metric}{sel}[1m])) / sum(rate({self.requests_metric}{sel}[1m])) / 1000"
        )


@dataclass(frozen=True)
class RuntimePreset:
    """Everything the InferenceService needs to know about one model server."""

    name: RuntimeName
    default_image: str | None
    command: tuple[str, ...]
    port: int
    liveness_path: str
    readiness_path: str
    metrics_path: str
    metrics_port: int
    scaling: ScalingSignal
    families: tuple[MetricFamily, ...]
    extra_ports: tuple[tuple[str, int], ...] = ()
    run_as_non_root: bool = True
    run_as_user: int = 1000
    env: Mapping[str, str] = field(default_factory=dict)
    default_latency_slo_seconds: float = 5.0
    """p99 request latency objective when the model sets none (monitoring alerts on it)."""
    keep_alive_env: str | None = None
    """Environment variable that sets how long the server keeps an idle HTTP connection
    open (seconds); None with ``keep_alive_unbounded``: the server never closes one."""
    keep_alive_unbounded: bool = False
    """The server sets no idle timeout of its own (Triton's libevhtp endpoint)."""
    shutdown_flag: str | None = None
    """Server flag: seconds in-flight requests get after SIGTERM (None: ``shutdown_env``)."""
    shutdown_env: str | None = None
    """Environment variable telling a custom server the same."""

    port_name = "http"

    @property
    def metrics(self) -> tuple[str, ...]:
        """Names of the metric families this runtime exports."""
        return tuple(f.name for f in self.families)

    @property
    def series(self) -> frozenset[str]:
        """Every series name Prometheus stores from this runtime (``_bucket`` etc.)."""
        return frozenset(s for f in self.families for s in f.series)

    @property
    def startup_path(self) -> str:
        """The startup probe waits for readiness: the model is loaded and serving."""
        return self.readiness_path

    @property
    def metrics_port_name(self) -> str:
        """Name of the Service/container port Prometheus scrapes."""
        return self.port_name if self.metrics_port == self.port else "metrics"

    def keeps_alive_longer_than(self, idle_timeout_seconds: int, keep_alive: int | None) -> bool:
        """Whether the server outlasts a load balancer's idle timeout on an idle connection,
        given the keep-alive it is started with (``keep_alive``, None: not set)."""
        if self.keep_alive_unbounded:
            return True
        return keep_alive is not None and keep_alive > idle_timeout_seconds

    def serving_env(self, *, keep_alive: int | None, shutdown_seconds: int) -> dict[str, str]:
        """The preset's environment plus the keep-alive and drain settings."""
        env = dict(self.env)
        if self.keep_alive_env is not None and keep_alive is not None:
            env[self.keep_alive_env] = str(keep_alive)
        if self.shutdown_env is not None:
            env[self.shutdown_env] = str(shutdown_seconds)
        return env

    def args(
        self,
        model_name: str,
        gpus: int,
        extra: tuple[str, ...] = (),
        *,
        shutdown_seconds: int | None = None,
    ) -> list[str]:
        """Container arguments for a model in :data:`MODEL_DIR` on ``gpus`` GPUs;
        ``shutdown_seconds``: how long in-flight requests may run on after SIGTERM."""
        if self.name == "vllm":
            base = [
                MODEL_DIR,
                "--served-model-name",
                model_name,
                "--host",
                "0.0.0.0",
                "--port",
                str(self.port),
                "--tensor-parallel-size",
                str(gpus),
            ]
        elif self.name == "triton":
            base = [
                f"--model-repository={MODEL_DIR}",
                f"--http-port={self.port}",
                f"--grpc-port={dict(self.extra_ports)['grpc']}",
                f"--metrics-port={self.metrics_port}",
                "--model-control-mode=none",
                "--exit-on-error=true",
                "--strict-readiness=true",
            ]
        else:
            base = []
        if self.shutdown_flag is not None and shutdown_seconds is not None:
            base.append(f"{self.shutdown_flag}={shutdown_seconds}")
        return [*base, *extra]


_CACHE_ENV = {
    # Writable caches on an emptyDir so the servers run as a non-root user.
    "HOME": "/var/cache/model-server",
    "XDG_CACHE_HOME": "/var/cache/model-server",
}

VLLM = RuntimePreset(
    name="vllm",
    default_image=versions.VLLM_IMAGE,
    command=("vllm", "serve"),
    port=8000,
    liveness_path="/health",
    readiness_path="/health",
    metrics_path="/metrics",
    metrics_port=8000,
    scaling=ScalingSignal(
        kind="gauge",
        metric=VllmMetric.NUM_REQUESTS_WAITING.value,
        metric_type="AverageValue",
        default_target=4,
        unit="waiting requests per replica",
    ),
    families=VLLM_FAMILIES,
    env={
        **_CACHE_ENV,
        "HF_HOME": "/var/cache/model-server/huggingface",
        # The model is local: never reach out to the Hugging Face Hub.
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    },
    # End-to-end latency of a whole generation (hundreds of tokens).
    default_latency_slo_seconds=60.0,
    keep_alive_env="VLLM_HTTP_TIMEOUT_KEEP_ALIVE",
    shutdown_flag="--shutdown-timeout",
)

TRITON = RuntimePreset(
    name="triton",
    default_image=versions.TRITON_IMAGE,
    command=("tritonserver",),
    port=8000,
    liveness_path="/v2/health/live",
    readiness_path="/v2/health/ready",
    metrics_path="/metrics",
    metrics_port=8002,
    extra_ports=(("grpc", 8001),),
    scaling=ScalingSignal(
        kind="queueTime",
        metric=TritonMetric.QUEUE_DURATION_US.value,
        requests_metric=TritonMetric.REQUEST_SUCCESS.value,
        metric_type="Value",
        default_target=50,
        unit="milliseconds of queue time per request",
    ),
    families=TRITON_FAMILIES,
    env=dict(_CACHE_ENV),
    default_latency_slo_seconds=1.0,
    keep_alive_unbounded=True,
    shutdown_flag="--exit-timeout-secs",
)

PRESETS: Mapping[str, RuntimePreset] = MappingProxyType({"vllm": VLLM, "triton": TRITON})
"""The built-in presets by name; ``custom`` is built by :func:`custom_runtime`."""
CUSTOM_KEEP_ALIVE_ENV = "MLSTACK_HTTP_KEEP_ALIVE_SECONDS"
"""What a custom server must keep idle HTTP connections open for, at least (seconds)."""
CUSTOM_SHUTDOWN_ENV = "MLSTACK_SHUTDOWN_TIMEOUT_SECONDS"
"""How long a custom server must let in-flight requests finish after SIGTERM (seconds)."""
CUSTOM_LATENCY_SLO_SECONDS = 5.0
"""The ``custom`` runtime's default p99 latency objective."""
KEEP_ALIVE_MARGIN_SECONDS = 5
"""How much longer than the load balancer's idle timeout a server keeps idle connections."""


def default_latency_slo_seconds(runtime: str) -> float:
    """A runtime's default p99 latency objective (vllm 60 s, triton 1 s, custom 5 s)."""
    preset = PRESETS.get(runtime)
    return preset.default_latency_slo_seconds if preset else CUSTOM_LATENCY_SLO_SECONDS


def custom_runtime(
    *,
    port: int,
    liveness_path: str,
    readiness_path: str,
    metrics_path: str,
    metrics_port: int | None,
    queue_metric: str,
    queue_target: float,
    command: tuple[str, ...] = (),
    run_as_non_root: bool = True,
) -> RuntimePreset:
    """A ``custom`` runtime: the image brings its own server; scaling sums a per-pod
    gauge of waiting requests that the server exports. The image is expected to export
    the Prometheus client HTTP metrics too (:class:`HttpMetric`)."""
    return RuntimePreset(
        name="custom",
        default_image=None,
        command=command,
        port=port,
        liveness_path=liveness_path,
        readiness_path=readiness_path,
        metrics_path=metrics_path,
        metrics_port=metrics_port or port,
        scaling=ScalingSignal(
            kind="gauge",
            metric=queue_metric,
            metric_type="AverageValue",
            default_target=queue_target,
            unit="waiting requests per replica",
        ),
        families=(MetricFamily(queue_metric, "gauge"), *HTTP_FAMILIES),
        run_as_non_root=run_as_non_root,
        env=dict(_CACHE_ENV),
        keep_alive_env=CUSTOM_KEEP_ALIVE_ENV,
        shutdown_env=CUSTOM_SHUTDOWN_ENV,
    )


def exported_metrics(runtime: str, queue_metric: str | None = None) -> frozenset[str]:
    """Every series name a runtime exports (histograms as ``_bucket``/``_sum``/``_count``).

    ``custom``: the HTTP conventions plus ``queue_metric`` when given.
    """
    if runtime in PRESETS:
        return PRESETS[runtime].series
    if runtime == "custom":
        families = HTTP_FAMILIES + ((MetricFamily(queue_metric, "gauge"),) if queue_metric else ())
        return frozenset(s for f in families for s in f.series)
    raise ValueError(f"unknown runtime {runtime!r}; allowed: vllm, triton, custom")
