"""The CrossGuard adapter: rules as stack policies, fed the engine's own argument objects.

No Pulumi CLI runs here; the tests build pulumi_policy's ``PolicyResource`` and
``StackValidationArgs`` the way its analyzer does and call each policy's
``validate`` directly (``PolicyPack`` would start a gRPC server and block).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    Severity,
    StackValidationArgs,
)
from pulumi_policy.policy import _NotApplicableError  # type: ignore[attr-defined]
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policy import rules
from policy.core import Rule
from policy.pack import stack_policies, to_stack
from policy.rules import common
from tests.policy.graphs import GOOD_TAGS, PROVIDER_URN, urn

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _opts(protect: bool = False) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


PROVIDER = PolicyProviderResource(
    "pulumi:providers:aws",
    {"defaultTags": json.dumps({"tags": GOOD_TAGS}), "region": "us-east-1"},
    PROVIDER_URN,
    "aws",
)


def resource(type_token: str, name: str, props: dict[str, Any], protect: bool = False):
    return PolicyResource(
        type_token,
        unknown_checking_proxy(props),
        urn(type_token, name),
        name,
        _opts(protect),
        PROVIDER,
        None,
        [],
        {},
    )


def launch_template(http_tokens: str) -> PolicyResource:
    return resource(
        common.LAUNCH_TEMPLATE,
        "lt",
        {"metadataOptions": {"httpTokens": http_tokens, "httpPutResponseHopLimit": 1}},
    )


def run(policy_id: str, resources: list[PolicyResource], config: dict[str, Any] | None = None):
    policy = next(p for p in stack_policies() if p.name == policy_id)
    reported: list[tuple[str, str | None]] = []
    policy.validate(
        StackValidationArgs(resources, config or {}),
        lambda message, urn=None: reported.append((message, urn)),
    )
    return reported


def test_one_stack_policy_per_rule_with_its_level_and_severity() -> None:
    policies = stack_policies()
    assert [p.name for p in policies] == [rule.id for rule in rules.RULES]
    for policy, rule in zip(policies, rules.RULES, strict=True):
        assert policy.enforcement_level == EnforcementLevel(rule.enforcement)
        assert policy.severity == Severity(rule.severity)


def test_violations_are_reported_with_the_offending_urn() -> None:
    reported = run("imdsv2-required", [launch_template("optional")])
    assert reported == [
        ("lt: IMDSv2 not required (httpTokens != required)", urn(common.LAUNCH_TEMPLATE, "lt"))
    ]
    assert run("imdsv2-required", [launch_template("required")]) == []


def test_providers_referenced_only_by_resources_are_added_to_the_stack() -> None:
    stack = to_stack([launch_template("required")])
    assert stack.get(PROVIDER_URN) is not None
    assert stack.environment == "prod"  # from the provider's default tags
    assert run("required-tags", [launch_template("required")]) == []


def test_pack_config_overrides_the_environment() -> None:
    image = resource(
        common.DEPLOYMENT,
        "app",
        {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:latest"}]}}}},
    )
    assert run("no-latest-images-in-prod", [image])  # prod from tags
    with pytest.raises(_NotApplicableError) as raised:  # the engine reports "not applicable"
        run("no-latest-images-in-prod", [image], {"environment": "dev"})
    assert raised.value.reason == "prod only"


def test_unknown_values_during_preview_are_passed_to_the_engine() -> None:
    with pytest.raises(UnknownValueError):
        run("imdsv2-required", [launch_template(UNKNOWN_STRING_VALUE)])


def test_a_crashing_rule_reports_a_violation_not_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(_stack: object) -> list[tuple[str | None, str]]:
        raise KeyError("missing")

    broken = Rule("broken", "always raises", "low", "advisory", (), explode)
    policy = stack_policies([broken])[0]
    reported: list[tuple[str, str | None]] = []
    policy.validate(StackValidationArgs([], {}), lambda m, u=None: reported.append((m, u)))
    assert len(reported) == 1
    assert reported[0][0].startswith("rule error (not a pass): KeyError")


def test_only_the_entry_module_constructs_policy_pack() -> None:
    offenders = []
    for path in PROJECT_ROOT.rglob("*.py"):
        relative = path.relative_to(PROJECT_ROOT)
        if relative.parts[0] in (".venv", "build", "tests"):
            continue
        if "PolicyPack(" in path.read_text(encoding="utf-8"):
            offenders.append(str(relative))
    assert offenders == ["policy/__main__.py"]


def test_pack_project_file_declares_a_python_runtime() -> None:
    import yaml

    project = yaml.safe_load((PROJECT_ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert project["version"]
