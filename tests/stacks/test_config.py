"""Stack config: the real files load; every bad value fails with key path and value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import config as runtime_config

from stacks.config import (
    OFFLINE_SECRET_PLACEHOLDER,
    ConfigError,
    load_config,
    load_config_file,
    parse_config,
)
from tests.conftest import STACKS, raw_stack_config, set_path


@pytest.mark.parametrize("stack", STACKS)
def test_real_stack_files_load(stack: str) -> None:
    cfg = load_config_file(stack)
    assert cfg.environment == stack
    assert cfg.cluster.version == "1.35"


def test_prod_protects_stateful_resources_and_dev_does_not() -> None:
    assert load_config_file("prod").protect is True
    assert load_config_file("dev").protect is False


def test_config_is_frozen() -> None:
    cfg = load_config_file("dev")
    with pytest.raises(Exception, match="frozen"):
        cfg.region = "eu-west-1"  # type: ignore[misc]


# (stack, edits, expected key path, expected fragment of the message/value)
BAD_CONFIGS: list[tuple[str, dict[str, Any], str, str]] = [
    ("dev", {"environment": "staging"}, "mlstack:environment", "'dev' or 'prod'"),
    ("dev", {"region": "mars-1"}, "mlstack:region", '"mars-1"'),
    ("dev", {"owner": ""}, "mlstack:owner", "at least 1 character"),
    ("dev", {"tags": {"owner": "x"}}, "mlstack:tags", "set by mlstack itself"),
    ("dev", {"tags": {"aws:foo": "x"}}, "mlstack:tags", "not a valid AWS tag key"),
    ("dev", {"clusterr": {}}, "mlstack:clusterr", "unknown key; allowed keys:"),
    ("dev", {"network.cidr": "10.0.0.0/8"}, "mlstack:network.cidr", "/16 to /20"),
    ("dev", {"network.cidr": "8.8.0.0/16"}, "mlstack:network.cidr", "private"),
    ("dev", {"network.cidr": "10.0.0.1/16"}, "mlstack:network.cidr", "not a network CIDR"),
    ("dev", {"network.availabilityZones": ["us-west-2a"]}, "mlstack:network", "at least 2"),
    (
        "dev",
        {"network.availabilityZones": ["us-west-2a", "us-west-2a"]},
        "mlstack:network.availabilityZones",
        "unique",
    ),
    (
        "dev",
        {"network.availabilityZones": ["us-west-2a", "eu-west-1b"]},
        "mlstack:network.availabilityZones[1]",
        "not in region us-west-2",
    ),
    ("dev", {"network.natGateways": "two"}, "mlstack:network.natGateways", "'single' or 'perAz'"),
    ("dev", {"network.flowLogs.retentionDays": 10}, "mlstack:network.flowLogs.retentionDays", "10"),
    ("dev", {"network.flowLogs.enable": True}, "mlstack:network.flowLogs.enable", "unknown key"),
    ("dev", {"network.mode": "existing"}, "mlstack:network", "needs vpcId"),
    ("dev", {"network.vpcId": "abc"}, "mlstack:network.vpcId", "'vpc-'"),
    ("dev", {"cluster.version": 1.3}, "mlstack:cluster.version", "quote the version"),
    ("dev", {"cluster.version": "1.20"}, "mlstack:cluster.version", "unsupported version"),
    ("dev", {"cluster.mode": "existing"}, "mlstack:cluster", "needs the name"),
    ("dev", {"cluster.name": "-bad"}, "mlstack:cluster.name", "starting alphanumeric"),
    (
        "dev",
        {"cluster.adminRoleArns": ["arn:aws:iam::123:user/bob"]},
        "mlstack:cluster.adminRoleArns",
        "not IAM role ARNs",
    ),
    ("dev", {"cluster.logTypes": ["api", "kubelet"]}, "mlstack:cluster.logTypes", "kubelet"),
    (
        "dev",
        {"cluster.publicAccessCidrs": ["1.2.3.4/40"]},
        "mlstack:cluster.publicAccessCidrs",
        "1.2.3.4/40",
    ),
    (
        "dev",
        {"cluster.endpointPublicAccess": False, "cluster.endpointPrivateAccess": False},
        "mlstack:cluster",
        "at least one of",
    ),
    (
        "dev",
        {"cluster.systemNodeGroup.instanceTypes": ["m6i.huge"]},
        "mlstack:cluster.systemNodeGroup.instanceTypes",
        "unknown EC2 instance type",
    ),
    (
        "dev",
        {"cluster.systemNodeGroup.amiType": "AL2023_x86_64_NVIDIA"},
        "mlstack:cluster.systemNodeGroup.amiType",
        "non-accelerated",
    ),
    (
        "dev",
        {"cluster.systemNodeGroup.amiType": "UBUNTU"},
        "mlstack:cluster.systemNodeGroup.amiType",
        "unknown EKS AMI type",
    ),
    (
        "dev",
        {"cluster.systemNodeGroup.minSize": 5, "cluster.systemNodeGroup.maxSize": 3},
        "mlstack:cluster.systemNodeGroup",
        "minSize <= desiredSize <= maxSize",
    ),
    (
        "dev",
        {"cluster.systemNodeGroup.diskSizeGib": 10},
        "mlstack:cluster.systemNodeGroup.diskSizeGib",
        "greater than or equal to 20",
    ),
    ("dev", {"cluster.logRetentionDays": -1}, "mlstack:cluster.logRetentionDays", "-1"),
    (
        "prod",
        {"network.availabilityZones": ["us-east-1a", "us-east-1b"]},
        "mlstack:network.availabilityZones",
        "at least 3 availability zones",
    ),
    ("prod", {"network.natGateways": "single"}, "mlstack:network.natGateways", "perAz"),
    (
        "prod",
        {"cluster.publicAccessCidrs": ["0.0.0.0/0"]},
        "mlstack:cluster.publicAccessCidrs",
        "whole internet",
    ),
    (
        "prod",
        {"cluster.publicAccessCidrs": ["0.0.0.0/1", "128.0.0.0/1"]},
        "mlstack:cluster.publicAccessCidrs",
        "whole internet: together they cover 100.00% of the IPv4",
    ),
    (
        "prod",
        {"cluster.publicAccessCidrs": ["203.0.113.0/24", "::/1", "8000::/1"]},
        "mlstack:cluster.publicAccessCidrs",
        "IPv6 address space",
    ),
    (
        "prod",
        {"cluster.publicAccessCidrs": ["10.0.0.0/8", "11.0.0.0/8"]},
        "mlstack:cluster.publicAccessCidrs",
        "as much as one /7",
    ),
    ("dev", {"cluster.adminRoleArns": []}, "mlstack:cluster.adminRoleArns", "at least one admin"),
    (
        "prod",
        {"cluster.systemNodeGroup.minSize": 1, "cluster.systemNodeGroup.desiredSize": 1},
        "mlstack:cluster.systemNodeGroup.minSize",
        "at least 2 system nodes",
    ),
]


@pytest.mark.parametrize(
    ("stack", "edits", "path", "fragment"),
    BAD_CONFIGS,
    ids=[f"{s}:{next(iter(e))}:{f}" for s, e, _, f in BAD_CONFIGS],
)
def test_bad_config_names_key_path_and_value(
    stack: str, edits: dict[str, Any], path: str, fragment: str
) -> None:
    raw = raw_stack_config(stack)
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, f"Pulumi.{stack}.yaml")
    message = str(caught.value)
    assert message.startswith(f"invalid config in Pulumi.{stack}.yaml")
    matching = [p for p in caught.value.problems if p.path == path]
    assert matching, f"no problem at {path}: {message}"
    assert any(fragment in p.render() for p in matching), message


def test_every_problem_is_reported_at_once() -> None:
    raw = raw_stack_config("dev")
    set_path(raw, "region", "nowhere")
    set_path(raw, "cluster.version", "0.1")
    set_path(raw, "network.natGateways", "many")
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "Pulumi.dev.yaml")
    paths = {p.path for p in caught.value.problems}
    assert {"mlstack:region", "mlstack:cluster.version", "mlstack:network.natGateways"} <= paths
    assert str(caught.value).count("\n  - ") == len(caught.value.problems)


def test_missing_required_key_is_named() -> None:
    raw = raw_stack_config("dev")
    del raw["owner"]
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "Pulumi.dev.yaml")
    assert [p.render() for p in caught.value.problems] == ["mlstack:owner: required key is missing"]


def _write_stack(tmp_path: Path, text: str, stack: str = "dev") -> Path:
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(text)
    return tmp_path


def test_unknown_stack_lists_the_stacks_there(tmp_path: Path) -> None:
    _write_stack(tmp_path, "config: {}\n", "staging")
    with pytest.raises(ConfigError, match=r"stacks here: staging"):
        load_config_file("qa", tmp_path)


def test_invalid_yaml_is_reported_with_the_file(tmp_path: Path) -> None:
    _write_stack(tmp_path, "config: [unclosed\n")
    with pytest.raises(ConfigError, match=r"Pulumi.dev.yaml(?s:.)*not valid YAML at line 2"):
        load_config_file("dev", tmp_path)


def test_aws_namespace_is_rejected_in_favour_of_mlstack_region(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "Pulumi.dev.yaml").read_text()
    _write_stack(tmp_path, text + "  aws:region: eu-west-1\n")
    with pytest.raises(ConfigError, match=r"aws:region: mlstack uses an explicit AWS provider"):
        load_config_file("dev", tmp_path)


def test_secure_values_stay_opaque_offline(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "Pulumi.dev.yaml").read_text()
    text = text.replace(
        "    costCenter: ml-research",
        "    costCenter:\n      secure: v1:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA==",
    )
    # after `pulumi stack init`: the data key the secure: value is encrypted with
    text = text.replace("\nconfig:\n", "\nencryptedkey: AQICAHhAAAAA\nconfig:\n", 1)
    cfg = load_config_file("dev", _write_stack(tmp_path, text))
    assert cfg.tags["costCenter"] == OFFLINE_SECRET_PLACEHOLDER


@pytest.mark.parametrize("stack", STACKS)
def test_engine_config_path_gives_the_same_config_as_the_file(stack: str) -> None:
    """Inside `pulumi up` the engine hands over structured values as JSON text."""
    raw = raw_stack_config(stack)
    engine_values = {
        f"mlstack:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()
    }
    engine_values["pulumi:disable-default-providers"] = '["*"]'
    token = runtime_config.CONFIG.set(engine_values)
    # The engine reports keys holding a secure: value as secret (decrypted in CONFIG).
    secret = runtime_config._SECRET_KEYS.set({"mlstack:monitoring"})  # pyright: ignore[reportPrivateUsage]
    try:
        assert load_config(stack) == load_config_file(stack)
    finally:
        runtime_config._SECRET_KEYS.reset(secret)  # pyright: ignore[reportPrivateUsage]
        runtime_config.CONFIG.reset(token)


@pytest.mark.parametrize(
    "cidrs",
    [["203.0.113.0/24"], ["198.51.100.0/24", "203.0.113.0/24"], ["10.0.0.0/8"], ["2001:db8::/32"]],
)
def test_prod_accepts_public_endpoint_cidrs_whose_union_is_small(cidrs: list[str]) -> None:
    raw = set_path(raw_stack_config("prod"), "cluster.publicAccessCidrs", cidrs)
    assert parse_config(raw, "Pulumi.prod.yaml").cluster.public_access_cidrs == cidrs


TODAY = __import__("datetime").date(2026, 12, 1)


@pytest.mark.parametrize("stack", STACKS)
def test_stack_clusters_run_a_version_in_eks_standard_support(stack: str) -> None:
    """Extended support costs 6x per cluster hour (components/versions.py, EKS_SUPPORT)."""
    from components.versions import EKS_ADDONS, EKS_SUPPORT, IMAGES, support_status

    version = load_config_file(stack).cluster.version
    assert support_status(version, TODAY) == "standard"
    assert (EKS_SUPPORT[version].standard_support_end - TODAY).days > 60
    # everything pinned per minor exists for it
    assert version in EKS_ADDONS
    assert f"cluster-autoscaler/{version}" in IMAGES


def test_the_support_table_is_consistent() -> None:
    from components.versions import ADDON_PINS_VERIFIED, EKS_ADDONS, EKS_SUPPORT, support_status
    from stacks.schema.cluster import SUPPORTED_VERSIONS

    assert (
        set(EKS_SUPPORT) == set(EKS_ADDONS) == set(ADDON_PINS_VERIFIED) == set(SUPPORTED_VERSIONS)
    )
    for window in EKS_SUPPORT.values():
        assert window.released < window.standard_support_end < window.extended_support_end
    assert support_status("1.33", TODAY) == "extended"
    assert support_status("1.31", TODAY) == "unsupported"
    assert support_status("1.99", TODAY) == "unsupported"
