"""CloudWatch alarm specs and dashboard body (pure)."""

from __future__ import annotations

from components.monitoring import cloudwatch as cw

TARGET = cw.AlbAlarmTarget(
    service="llama",
    target_group_arn_suffix="targetgroup/llama/0123456789abcdef",
    load_balancer_arn_suffix="app/mlstack-dev/fedcba9876543210",
    min_healthy=2,
    p99_latency_slo_seconds=1.5,
)


def test_four_alarms_per_service_on_the_alb_metrics() -> None:
    specs = {s.role: s for s in cw.alarm_specs(TARGET, cw.AlbAlarmSettings())}
    assert {s.metric_name for s in specs.values()} == {
        "HTTPCode_Target_5XX_Count",
        "TargetResponseTime",
        "UnHealthyHostCount",
        "HealthyHostCount",
    }
    assert specs["p99-latency"].extended_statistic == "p99"
    assert specs["p99-latency"].statistic is None
    assert specs["p99-latency"].threshold == 1.5
    assert specs["healthy-below-min"].comparison == "LessThanThreshold"
    assert specs["healthy-below-min"].threshold == 2
    assert specs["healthy-below-min"].treat_missing_data == "breaching"
    assert specs["unhealthy-hosts"].threshold == 0
    assert specs["target-5xx"].threshold == 5.0
    assert specs["target-5xx"].ratio_of == ("HTTPCode_Target_5XX_Count", "RequestCount")


def test_the_5xx_alarm_is_a_ratio_that_ignores_nearly_idle_periods() -> None:
    expression = cw.ratio_expression(cw.AlbAlarmSettings(min_requests_per_period=25))
    assert expression == "IF(requests >= 25, 100 * FILL(errors, 0) / requests, 0)"


def test_nlb_target_groups_get_the_host_alarms_in_the_network_elb_namespace() -> None:
    from dataclasses import replace

    specs = {s.role for s in cw.alarm_specs(replace(TARGET, kind="nlb"), cw.AlbAlarmSettings())}
    assert specs == {"unhealthy-hosts", "healthy-below-min"}
    assert cw.NAMESPACES["nlb"] == "AWS/NetworkELB"


def test_load_balancers_get_their_own_alarms() -> None:
    settings = cw.AlbAlarmSettings(tcp_resets_per_period=7)
    alb = cw.load_balancer_alarm_specs(
        cw.LoadBalancerAlarmTarget("shared-alb", "alb", "a"), settings
    )
    assert [(s.role, s.ratio_of) for s in alb] == [
        ("elb-5xx", ("HTTPCode_ELB_5XX_Count", "RequestCount"))
    ]
    nlb = cw.load_balancer_alarm_specs(cw.LoadBalancerAlarmTarget("m-nlb", "nlb", "n"), settings)
    assert {s.metric_name: s.threshold for s in nlb} == {
        "TCP_ELB_Reset_Count": 7,
        "TCP_Target_Reset_Count": 7,
    }


def test_a_service_that_may_scale_to_zero_keeps_its_floor_alarm_but_it_never_pages() -> None:
    from dataclasses import replace

    from components.monitoring.alert_rules import CRITICAL, INFO

    floor = {
        s.role: s for s in cw.alarm_specs(replace(TARGET, min_healthy=0), cw.AlbAlarmSettings())
    }["healthy-below-min"]
    assert floor.severity == INFO
    assert floor.threshold == 1
    assert floor.treat_missing_data == "notBreaching"
    kept = {s.role: s for s in cw.alarm_specs(TARGET, cw.AlbAlarmSettings())}["healthy-below-min"]
    assert kept.severity == CRITICAL


def test_settings_flow_into_the_specs_and_bad_settings_are_reported() -> None:
    settings = cw.AlbAlarmSettings(target_5xx_percent=3)
    spec = next(s for s in cw.alarm_specs(TARGET, settings) if s.role == "target-5xx")
    assert spec.threshold == 3
    assert any(
        "target_5xx_percent: 0" in p for p in cw.AlbAlarmSettings(target_5xx_percent=0).problems()
    )
    assert cw.AlbAlarmSettings().problems() == []
    bad = cw.AlbAlarmSettings(period_seconds=45, evaluation_periods=2, datapoints_to_alarm=3)
    problems = bad.problems()
    assert any("period_seconds: 45" in p for p in problems)
    assert any("datapoints_to_alarm: 3" in p for p in problems)


def test_dashboard_body_dimensions_each_service_by_its_own_target_group() -> None:
    other = cw.ResolvedTarget("resnet", "targetgroup/resnet/1", "app/lb/2", 0.2)
    body = cw.dashboard_body(
        "us-west-2",
        "mlstack-dev-alerts",
        [cw.ResolvedTarget("llama", "targetgroup/llama/9", "app/lb/2", 1.5), other],
        ["arn:aws:cloudwatch:us-west-2:1:alarm:b", "arn:aws:cloudwatch:us-west-2:1:alarm:a"],
    )
    widgets = body["widgets"]
    assert widgets[0]["type"] == "alarm"
    assert widgets[0]["properties"]["alarms"][0].endswith(":a")
    for widget in widgets[1:-1]:
        service = widget["properties"]["title"].split(":")[0]
        tg = "targetgroup/llama/9" if service == "llama" else "targetgroup/resnet/1"
        for metric in widget["properties"]["metrics"]:
            assert metric[0] == cw.NAMESPACE
            assert metric[2:6] == ["TargetGroup", tg, "LoadBalancer", "app/lb/2"]
    assert widgets[-1]["properties"]["metrics"][0][3] == "mlstack-dev-alerts"
    for widget in widgets:
        assert widget["x"] + widget["width"] <= 24


def test_dashboard_body_without_services_still_watches_the_topic() -> None:
    body = cw.dashboard_body("us-east-1", "t-alerts", [], [])
    assert [w["properties"]["title"] for w in body["widgets"]] == ["Alert topic delivery"]
