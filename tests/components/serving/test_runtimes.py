"""Runtime presets: ports, probe paths, exported metrics and the KEDA scaling query."""

from __future__ import annotations

import re

import promql_parser
import pytest

from components.serving import runtimes
from components.serving.runtimes import TRITON, VLLM, TritonMetric, VllmMetric


def test_every_preset_scales_on_a_metric_it_exports() -> None:
    for preset in runtimes.PRESETS.values():
        assert preset.scaling.metric in preset.metrics
        if preset.scaling.requests_metric is not None:
            assert preset.scaling.requests_metric in preset.metrics


def test_metric_constants_are_prometheus_metric_names_without_duplicates() -> None:
    for names in (runtimes.VLLM_METRICS, runtimes.TRITON_METRICS):
        assert len(set(names)) == len(names)
        for name in names:
            assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name), name
    assert all(m.startswith(("vllm:", "http_")) for m in runtimes.VLLM_METRICS)
    assert all(m.startswith("nv_") for m in runtimes.TRITON_METRICS)


def test_vllm_scales_on_waiting_requests_per_replica() -> None:
    signal = VLLM.scaling
    assert signal.metric == VllmMetric.NUM_REQUESTS_WAITING == "vllm:num_requests_waiting"
    assert signal.metric_type == "AverageValue"
    query = signal.query("inference", "llama")
    assert query == (
        'sum(vllm:num_requests_waiting{namespace="inference",pod=~"llama-[a-z0-9]+-[a-z0-9]+"})'
    )


def test_triton_scales_on_queue_time_per_request_in_milliseconds() -> None:
    signal = TRITON.scaling
    assert signal.metric == TritonMetric.QUEUE_DURATION_US
    assert signal.metric_type == "Value"
    query = signal.query("inference", "vision-blue")
    assert "rate(nv_inference_queue_duration_us{" in query
    assert "rate(nv_inference_request_success{" in query
    assert query.endswith("/ 1000")


@pytest.mark.parametrize("preset", [VLLM, TRITON], ids=lambda p: p.name)
def test_scaling_queries_parse_as_promql(preset: runtimes.RuntimePreset) -> None:
    parsed = promql_parser.parse(preset.scaling.query("inference", "model-a"))
    assert parsed is not None


def test_pod_regex_selects_one_deployment_only() -> None:
    stable = re.compile(runtimes.pod_name_regex("llama"))
    assert stable.fullmatch("llama-7d9f8b6c5d-x2v4q")
    # The canary's pods, and another model sharing the prefix, are not "llama".
    assert not stable.fullmatch("llama-canary-7d9f8b6c5d-x2v4q")
    assert not stable.fullmatch("llama-70b-7d9f8b6c5d-x2v4q")


def test_vllm_arguments_serve_the_local_model_with_tensor_parallelism() -> None:
    args = VLLM.args("llama", gpus=4, extra=("--max-model-len", "8192"))
    assert args[0] == runtimes.MODEL_DIR
    assert args[args.index("--tensor-parallel-size") + 1] == "4"
    assert args[args.index("--served-model-name") + 1] == "llama"
    assert args[args.index("--port") + 1] == str(VLLM.port)
    assert args[-2:] == ["--max-model-len", "8192"]
    assert VLLM.env["HF_HUB_OFFLINE"] == "1"


def test_triton_ports_and_probe_paths() -> None:
    args = TRITON.args("vision", gpus=1)
    assert f"--model-repository={runtimes.MODEL_DIR}" in args
    assert "--http-port=8000" in args
    assert "--grpc-port=8001" in args
    assert "--metrics-port=8002" in args
    assert TRITON.readiness_path == "/v2/health/ready"
    assert TRITON.liveness_path == "/v2/health/live"
    assert TRITON.metrics_port_name == "metrics"
    assert VLLM.metrics_port_name == "http"


def test_custom_runtime_takes_its_queue_metric_from_config() -> None:
    custom = runtimes.custom_runtime(
        port=9000,
        liveness_path="/live",
        readiness_path="/ready",
        metrics_path="/stats",
        metrics_port=None,
        queue_metric="app_queue_depth",
        queue_target=8,
    )
    assert custom.metrics == (
        "app_queue_depth",
        "http_requests_total",
        "http_request_duration_seconds",
    )
    assert custom.metrics_port == 9000
    assert custom.scaling.query("ns", "svc").startswith("sum(app_queue_depth{")
    assert custom.scaling.default_target == 8
    assert custom.args("svc", gpus=1, extra=("--x",)) == ["--x"]


def test_presets_pin_exact_image_tags() -> None:
    for preset in runtimes.PRESETS.values():
        assert preset.default_image is not None
        _, _, tag = preset.default_image.rpartition(":")
        assert tag and tag != "latest"


def test_exported_series_include_histogram_buckets_and_http_metrics() -> None:
    vllm = runtimes.exported_metrics("vllm")
    assert "vllm:e2e_request_latency_seconds_bucket" in vllm
    assert "vllm:e2e_request_latency_seconds" not in vllm  # a histogram has no bare series
    assert {"http_requests_total", "vllm:num_requests_waiting"} <= vllm
    triton = runtimes.exported_metrics("triton")
    assert {"nv_inference_queue_duration_us", "nv_inference_count"} <= triton
    custom = runtimes.exported_metrics("custom", queue_metric="app_waiting")
    assert custom == {
        "app_waiting",
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "http_request_duration_seconds_sum",
        "http_request_duration_seconds_count",
    }
    with pytest.raises(ValueError, match="unknown runtime"):
        runtimes.exported_metrics("tgi")
