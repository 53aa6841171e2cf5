"""``mlstack:monitoring``: good stack files load; each kind of bad input fails with one
ConfigError naming the key and the value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from stacks.config import (
    OFFLINE_SECRET_PLACEHOLDER,
    PROJECT_ROOT,
    ConfigError,
    json_schema,
    load_config_file,
    parse_config,
)
from stacks.stack_yaml import load_stack_yaml
from tests.conftest import raw_stack_config, set_path


def _parse(stack: str, edits: dict[str, Any]) -> ConfigError:
    raw = raw_stack_config(stack)
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    with pytest.raises(ConfigError) as info:
        parse_config(raw, f"Pulumi.{stack}.yaml")
    return info.value


def _only_problem(error: ConfigError) -> tuple[str, str]:
    assert len(error.problems) == 1, str(error)
    problem = error.problems[0]
    return problem.path, problem.render()


def test_both_stack_files_load_with_dev_lighter_than_prod() -> None:
    dev, prod = load_config_file("dev").monitoring, load_config_file("prod").monitoring
    assert dev.storage_gib < prod.storage_gib
    assert dev.replicas < prod.replicas
    assert set(dev.page_severities) < set(prod.page_severities)
    assert len(prod.subscribers) >= 1


def test_grafana_password_is_generated_in_both_stack_files_and_opaque_offline_when_set(
    tmp_path: Path,
) -> None:
    for stack in ("dev", "prod"):
        document = load_stack_yaml((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
        assert "grafanaAdminPassword" not in document["config"]["mlstack:monitoring"]
        assert load_config_file(stack).monitoring.grafana_admin_password is None
        # after `pulumi stack init` and `pulumi config set --secret --path ...`
        document["encryptedkey"] = "AQICAHh" + "A" * 61 + "="
        document["config"]["mlstack:monitoring"]["grafanaAdminPassword"] = {
            "secure": "v1:AQEBAQEBAQEBAQEB:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
        }
        (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
        password = load_config_file(stack, tmp_path).monitoring.grafana_admin_password
        assert isinstance(password, SecretStr)
        assert password.get_secret_value() == OFFLINE_SECRET_PLACEHOLDER
        assert OFFLINE_SECRET_PLACEHOLDER not in repr(load_config_file(stack, tmp_path))


def test_json_schema_asks_editors_for_a_secure_value() -> None:
    schema = json_schema()
    monitoring = schema["$defs"]["MonitoringConfig"]["properties"]["grafanaAdminPassword"]
    secret = next(s for s in monitoring["anyOf"] if s.get("type") == "object")
    assert secret["required"] == ["secure"]


@pytest.mark.parametrize(
    ("endpoint", "protocol"),
    [
        ("oncall-at-example.com", "email"),
        ("oncall@", "email"),
        ("http://hooks.example.com", "https"),
    ],
)
def test_malformed_subscriber_endpoint_names_key_and_value(endpoint: str, protocol: str) -> None:
    error = _parse(
        "prod", {"monitoring.subscribers": [{"protocol": protocol, "endpoint": endpoint}]}
    )
    path, rendered = _only_problem(error)
    assert path == "mlstack:monitoring.subscribers[0]"
    assert endpoint in rendered


def test_unknown_subscriber_protocol_lists_the_allowed_ones() -> None:
    error = _parse("prod", {"monitoring.subscribers": [{"protocol": "sms", "endpoint": "+1555"}]})
    path, rendered = _only_problem(error)
    assert path == "mlstack:monitoring.subscribers[0].protocol"
    assert "'email'" in rendered and "'https'" in rendered and '"sms"' in rendered


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("errorRatioPercent", 101),
        ("gpuUtilHighPercent", 150),
        ("gpuMemoryFullPercent", 0),
        ("queueTimeSeconds", -0.5),
        ("rateWindowMinutes", 0),
    ],
)
def test_thresholds_out_of_range_name_key_and_value(key: str, value: float) -> None:
    error = _parse("dev", {f"monitoring.thresholds.{key}": value})
    path, rendered = _only_problem(error)
    assert path == f"mlstack:monitoring.thresholds.{key}"
    assert f"(got {value})" in rendered


def test_low_utilization_must_be_below_high() -> None:
    error = _parse(
        "dev",
        {
            "monitoring.thresholds.gpuUtilLowPercent": 80,
            "monitoring.thresholds.gpuUtilHighPercent": 70,
        },
    )
    path, rendered = _only_problem(error)
    assert path == "mlstack:monitoring.thresholds"
    assert "gpuUtilLowPercent (80" in rendered


def test_prod_without_subscribers_is_refused_but_dev_may_have_none() -> None:
    error = _parse("prod", {"monitoring.subscribers": []})
    path, rendered = _only_problem(error)
    assert path == "mlstack:monitoring.subscribers"
    assert "prod needs at least one subscriber" in rendered
    raw = set_path(raw_stack_config("dev"), "monitoring.subscribers", [])
    assert parse_config(raw, "Pulumi.dev.yaml").monitoring.subscribers == []


def test_retention_below_the_longest_alert_window_is_refused() -> None:
    error = _parse("dev", {"monitoring.retention": "2h"})
    path, rendered = _only_problem(error)
    assert path == "mlstack:monitoring.retention"
    assert '"2h"' in rendered and "longest alert window" in rendered and "(135m" in rendered
    # The window grows with the threshold: 1d of retention stops covering a 2-day window.
    error = _parse(
        "prod",
        {"monitoring.retention": "1d", "monitoring.thresholds.gpuUtilLowWindowMinutes": 2880},
    )
    path, rendered = _only_problem(error)
    assert path == "mlstack:monitoring.retention"
    assert "2895m" in rendered


@pytest.mark.parametrize("retention", ["15", "15days", "1.5d", "90m"])
def test_malformed_retention_shows_the_allowed_shape(retention: str) -> None:
    path, rendered = _only_problem(_parse("dev", {"monitoring.retention": retention}))
    assert path == "mlstack:monitoring.retention"
    assert "<number><h|d|w|y>" in rendered


def test_page_severities_must_include_critical() -> None:
    path, rendered = _only_problem(_parse("prod", {"monitoring.pageSeverities": ["warning"]}))
    assert path == "mlstack:monitoring.pageSeverities"
    assert "must include critical" in rendered


def test_many_monitoring_mistakes_are_reported_together() -> None:
    error = _parse(
        "prod",
        {
            "monitoring.storageGib": 1,
            "monitoring.thresholds.errorRatioPercent": 200,
            "monitoring.subscribers": [{"protocol": "email", "endpoint": "nope"}],
            "monitoring.albAlarms.badMinutesToAlarm": 9,
        },
    )
    paths = {p.path for p in error.problems}
    assert paths == {
        "mlstack:monitoring.storageGib",
        "mlstack:monitoring.thresholds.errorRatioPercent",
        "mlstack:monitoring.subscribers[0]",
        "mlstack:monitoring.albAlarms",
    }


@pytest.mark.parametrize("series", [9_999, 5_000_001])
def test_active_series_out_of_bounds_names_key_value_and_bounds(series: int) -> None:
    path, rendered = _only_problem(_parse("dev", {"monitoring.activeSeries": series}))
    assert path == "mlstack:monitoring.activeSeries"
    assert str(series) in rendered
    assert "10000" in rendered or "5000000" in rendered
