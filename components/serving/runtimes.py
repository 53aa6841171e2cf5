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


VLLM_METRICS: tuple[str, ...] = tuple(m.value for m in VllmMetric)
TRITON_METRICS: tuple[str, ...] = tuple(m.value for m in TritonMetric)


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
    metrics: tuple[str, ...]
    extra_ports: tuple[tuple[str, int], ...] = ()
    run_as_non_root: bool = True
    run_as_user: int = 1000
    env: Mapping[str, str] = field(default_factory=dict)

    port_name = "http"

    @property
    def startup_path(self) -> str:
        """The startup probe waits for readiness: the model is loaded and serving."""
        return self.readiness_path

    @property
    def metrics_port_name(self) -> str:
        """Name of the Service/container port Prometheus scrapes."""
        return self.port_name if self.metrics_port == self.port else "metrics"

    def args(self, model_name: str, gpus: int, extra: tuple[str, ...] = ()) -> list[str]:
        """Container arguments for a model in :data:`MODEL_DIR` on ``gpus`` GPUs."""
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
    metrics=VLLM_METRICS,
    env={
        **_CACHE_ENV,
        "HF_HOME": "/var/cache/model-server/huggingface",
        # The model is local: never reach out to the Hugging Face Hub.
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    },
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
    metrics=TRITON_METRICS,
    env=dict(_CACHE_ENV),
)

PRESETS: Mapping[str, RuntimePreset] = MappingProxyType({"vllm": VLLM, "triton": TRITON})
"""The built-in presets by name; ``custom`` is built by :func:`custom_runtime`."""


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
    gauge of waiting requests that the server exports."""
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
        metrics=(queue_metric,),
        run_as_non_root=run_as_non_root,
        env=dict(_CACHE_ENV),
    )
