"""Alert and recording rules as pure data: they parse, read only exported series, carry
runbooks that exist, and their thresholds come from the arguments."""

from __future__ import annotations

import dataclasses
import re

import pytest

from components.monitoring import alert_rules as ar
from components.monitoring import metrics as m
from stacks.config import PROJECT_ROOT
from tests.components.monitoring.promql import (
    cluster_exporters,
    exported_by_runtime,
    series_names,
)

RUNBOOK = "https://example.com/docs/monitoring.md"


def _target(runtime: m.RuntimeMetrics, **kw: object) -> ar.ServiceRuleTarget:
    fields = {
        "name": "llama",
        "namespace": "serving",
        "p99_latency_slo_seconds": 2.5,
        "startup_budget_seconds": 900,
        **kw,
    }
    return ar.ServiceRuleTarget(runtime=runtime, **fields)  # type: ignore[arg-type]


def _all_groups(thresholds: ar.AlertThresholds | None = None) -> list[ar.RuleGroup]:
    th = thresholds or ar.AlertThresholds()
    groups = ar.fleet_groups(th, "mlstack.io/gpu-pool", RUNBOOK)
    for runtime in m.RUNTIMES.values():
        target = _target(runtime)
        rules = ar.service_recording_rules(target) + ar.service_rules(target, th, RUNBOOK)
        groups.append(ar.rule_group(runtime.runtime, rules))
    return groups


def _rules() -> list[ar.Rule]:
    return [rule for group in _all_groups() for rule in group["rules"]]


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r.get("alert") or r.get("record"))
def test_every_expression_parses_as_promql(rule: ar.Rule) -> None:
    assert series_names(rule["expr"])


@pytest.mark.parametrize("runtime", sorted(m.RUNTIMES))
def test_service_rules_read_only_series_the_runtime_or_cluster_exporters_export(
    runtime: str,
) -> None:
    target = _target(m.RUNTIMES[runtime])
    rules = ar.service_recording_rules(target) + ar.service_rules(
        target, ar.AlertThresholds(), RUNBOOK
    )
    read = set().union(*(series_names(r["expr"]) for r in rules))
    recorded = {r["record"] for r in rules if "record" in r}  # by the same group
    allowed = exported_by_runtime(runtime) | cluster_exporters() | recorded
    assert read - allowed == set()
    # The runtime's own series are actually used (not only cluster-wide ones).
    assert read & exported_by_runtime(runtime)


@pytest.mark.parametrize("runtime", sorted(m.RUNTIMES))
def test_preset_metric_names_are_all_exported_by_the_runtime(runtime: str) -> None:
    assert m.RUNTIMES[runtime].metric_names() <= exported_by_runtime(runtime)


def test_fleet_rules_read_only_exporter_or_recorded_series() -> None:
    groups = ar.fleet_groups(ar.AlertThresholds(), "mlstack.io/gpu-pool", RUNBOOK)
    read = {n for g in groups for r in g["rules"] for n in series_names(r["expr"])}
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    assert recorded == ar.RECORDED
    assert read - cluster_exporters() - recorded == set()
    assert {m.DCGM_GPU_UTIL, m.DCGM_XID_ERRORS, m.DCGM_ECC_DBE_VOLATILE} <= read


def test_recording_rules_come_before_the_alerts_that_read_them() -> None:
    groups = ar.fleet_groups(ar.AlertThresholds(), "mlstack.io/gpu-pool", RUNBOOK)
    assert [g["name"] for g in groups] == ["mlstack-gpu-recording", "mlstack-gpu-fleet"]
    assert all("record" in r for r in groups[0]["rules"])
    assert all("alert" in r for r in groups[1]["rules"])


def test_pool_label_is_read_through_kube_state_metrics_label_name() -> None:
    rules = ar.recording_rules("karpenter.sh/nodepool")
    assert 'label_karpenter_sh_nodepool!=""' in rules[0]["expr"]
    assert m.ksm_label_name("mlstack.io/gpu-pool") == "label_mlstack_io_gpu_pool"


def test_every_required_alert_exists() -> None:
    names = set(ar.alert_names(_all_groups()))
    assert names == {
        "InferenceErrorRatioHigh",
        "InferenceLatencyAboveSlo",
        "InferenceQueueSaturated",
        "InferenceReplicasAtMax",
        "ModelLoaderFailing",
        "ModelStartupOverBudget",
        "GpuPoolSaturated",
        "GpuPoolUnderused",
        "GpuMemoryNearFull",
        "GpuXidError",
        "GpuEccUncorrectable",
        "GpuPodsPendingCapacity",
    }


def test_every_alert_has_summary_description_runbook_and_a_known_severity() -> None:
    for rule in _rules():
        if "alert" not in rule:
            continue
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"]
        assert annotations["runbook_url"] == f"{RUNBOOK}#{rule['alert'].lower()}"
        assert rule["labels"]["severity"] in ar.SEVERITIES
        assert re.fullmatch(r"\d+[mhd]", rule["for"])


def test_every_runbook_anchor_has_a_section_in_the_docs() -> None:
    doc = (PROJECT_ROOT / "docs" / "monitoring.md").read_text()
    headings = {
        re.sub(r"[^a-z0-9-]", "", line.lstrip("#").strip().lower().replace(" ", "-"))
        for line in doc.splitlines()
        if line.startswith("#")
    }
    missing = {a.lower() for a in ar.alert_names(_all_groups())} - headings
    assert missing == set()


def test_service_rules_select_only_that_service() -> None:
    target = _target(m.VLLM, name="mistral", namespace="team-a", k8s_service="mistral-svc")
    for rule in ar.service_rules(target, ar.AlertThresholds(), RUNBOOK):
        assert rule["labels"]["service"] == "mistral"
        assert rule["labels"]["namespace"] == "team-a"
        assert 'namespace="team-a"' in rule["expr"]
        if rule["alert"] in ("InferenceErrorRatioHigh", "InferenceLatencyAboveSlo"):
            assert 'service="mistral-svc"' in rule["expr"]


def test_latency_alert_uses_the_service_slo_and_a_p99_where_a_histogram_exists() -> None:
    rules = {
        r["alert"]: r
        for r in ar.service_rules(
            _target(m.VLLM, p99_latency_slo_seconds=0.75), ar.AlertThresholds(), RUNBOOK
        )
    }
    expr = rules["InferenceLatencyAboveSlo"]["expr"]
    assert expr.startswith("histogram_quantile(0.99,") and expr.endswith("> 0.75")
    triton = {
        r["alert"]: r for r in ar.service_rules(_target(m.TRITON), ar.AlertThresholds(), RUNBOOK)
    }
    assert "histogram_quantile" not in triton["InferenceLatencyAboveSlo"]["expr"]
    assert "mean" in triton["InferenceLatencyAboveSlo"]["annotations"]["description"]


def test_thresholds_flow_into_the_expressions() -> None:
    th = ar.AlertThresholds(
        error_ratio_percent=2.5,
        gpu_util_high_percent=85,
        gpu_util_low_percent=20,
        gpu_util_low_window_minutes=90,
        gpu_memory_full_percent=99,
        queue_waiting_per_replica=4,
        gpu_pending_for_minutes=20,
    )
    by_alert = {r["alert"]: r for g in _all_groups(th) for r in g["rules"] if "alert" in r}
    assert by_alert["InferenceErrorRatioHigh"]["expr"].endswith("> 2.5")
    assert by_alert["GpuPoolSaturated"]["expr"].endswith("> 85")
    assert "[90m]" in by_alert["GpuPoolUnderused"]["expr"]
    assert by_alert["GpuPoolUnderused"]["expr"].endswith("< 20")
    assert by_alert["GpuMemoryNearFull"]["expr"].endswith("> 99")
    assert by_alert["GpuPodsPendingCapacity"]["for"] == "20m"


def test_runtime_without_queue_metric_gets_no_queue_alert() -> None:
    names = {r["alert"] for r in ar.service_rules(_target(m.CUSTOM), ar.AlertThresholds(), "u")}
    assert "InferenceQueueSaturated" not in names
    no_loader = ar.service_rules(
        _target(m.VLLM, model_loader_container=None), ar.AlertThresholds(), "u"
    )
    assert "ModelLoaderFailing" not in {r["alert"] for r in no_loader}


def test_replicas_at_max_compares_current_with_max_of_the_keda_hpa() -> None:
    rule = next(
        r
        for r in ar.service_rules(_target(m.VLLM), ar.AlertThresholds(), RUNBOOK)
        if r["alert"] == "InferenceReplicasAtMax"
    )
    assert series_names(rule["expr"]) == {m.KSM_HPA_CURRENT, m.KSM_HPA_MAX}
    assert 'horizontalpodautoscaler="keda-hpa-llama"' in rule["expr"]


def test_default_thresholds_are_valid_and_bad_ones_are_all_reported() -> None:
    assert ar.AlertThresholds().problems() == []
    bad = ar.AlertThresholds(
        error_ratio_percent=150,
        gpu_util_high_percent=0,
        gpu_util_low_percent=50,
        queue_time_seconds=-1,
        slo_for_minutes=0,
    )
    problems = bad.problems()
    joined = "\n".join(problems)
    assert "error_ratio_percent: 150" in joined
    assert "gpu_util_high_percent: 0" in joined
    assert "queue_time_seconds: -1" in joined
    assert "slo_for_minutes: 0" in joined
    assert "gpu_util_low_percent: 50" in joined
    assert len(problems) == 5


def test_longest_window_covers_the_gpu_waste_window() -> None:
    th = ar.AlertThresholds(gpu_util_low_window_minutes=600)
    assert th.longest_window_minutes() >= 600
    shorter = dataclasses.replace(th, gpu_util_low_window_minutes=60)
    assert shorter.longest_window_minutes() < th.longest_window_minutes()


@pytest.mark.parametrize(
    ("minutes", "text"), [(5, "5m"), (90, "90m"), (60, "1h"), (360, "6h"), (2880, "2d")]
)
def test_duration_format(minutes: int, text: str) -> None:
    assert ar.duration(minutes) == text


def test_number_literals_are_promql() -> None:
    assert [ar.number(v) for v in (5.0, 2.5, 1e-06)] == ["5", "2.5", "1e-06"]
    assert series_names(f"x > {ar.number(1e-06)}") == {"x"}


def test_unknown_severity_is_refused() -> None:
    with pytest.raises(ValueError, match="severity 'page'"):
        ar.alert_rule("X", "up", 1, "page", summary="s", description="d", runbook_base="u")


def test_startup_rules_record_time_to_ready_and_alert_above_the_budget() -> None:
    target = _target(m.RUNTIMES["vllm"])
    records = ar.service_recording_rules(target)
    rules = ar.service_rules(target, ar.AlertThresholds(), RUNBOOK)
    assert [r["record"] for r in records] == [
        ar.POD_TIME_TO_READY,
        ar.MODEL_TIME_TO_READY,
        ar.MODEL_TIME_TO_READY,
    ]
    assert [r["labels"].get("quantile") for r in records[1:]] == ["0.5", "0.9"]
    assert m.KSM_POD_READY_TIME in records[0]["expr"] and m.KSM_POD_CREATED in records[0]["expr"]
    (alert,) = [r for r in rules if r.get("alert") == "ModelStartupOverBudget"]
    assert "> 900" in alert["expr"]
    assert alert["labels"]["severity"] == ar.WARNING


def test_no_startup_rules_without_a_budget() -> None:
    target = _target(m.RUNTIMES["vllm"], startup_budget_seconds=None)
    rules = ar.service_rules(target, ar.AlertThresholds(), RUNBOOK)
    assert ar.service_recording_rules(target) == []
    assert "ModelStartupOverBudget" not in {r.get("alert") for r in rules}
