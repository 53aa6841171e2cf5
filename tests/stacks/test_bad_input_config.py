"""Issue 26, bad input (items 6, 7, 8, 10 and part of 9): each attempt is refused with
the key, the value (secrets hidden) and what is allowed."""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path
from typing import Annotated, Any

import botocore.session
import pytest
from pydantic import StringConstraints, TypeAdapter, ValidationError

from components.network.vpc import NetworkArgs
from components.redact import redact_text, redact_url
from mlstack.cli import main
from mlstack.synth import ResourceGraph
from policy.rules.network import _open_to_world  # pyright: ignore[reportPrivateUsage]
from stacks.composition import default_tags
from stacks.config import PROJECT_ROOT, ConfigError, load_config_file, parse_config
from stacks.schema.problems import Problem
from stacks.schema.tags import OWN_TAGS_MAX, tag_budget, tag_text_problem
from tests.conftest import raw_stack_config, set_path


def _problems(stack: str, edits: dict[str, Any]) -> list[Problem]:
    raw = raw_stack_config(stack)
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    try:
        parse_config(raw, f"Pulumi.{stack}.yaml")
    except ConfigError as exc:
        return exc.problems
    return []


def _rendered(stack: str, edits: dict[str, Any], path: str) -> str:
    found = [p.render() for p in _problems(stack, edits) if p.path == path]
    assert found, f"no problem at {path}: {[p.render() for p in _problems(stack, edits)]}"
    return "\n".join(found)


# --------------------------------------------------------------------------- item 6


@pytest.mark.parametrize(
    "cidr",
    [
        "0.0.0.0/16",
        "127.0.0.0/16",
        "169.254.0.0/16",
        "198.18.0.0/16",
        "100.64.0.0/16",
        "172.32.0.0/16",
        "192.0.0.0/20",
    ],
)
def test_vpc_cidr_outside_rfc1918_is_refused(cidr: str) -> None:
    text = _rendered("dev", {"network.cidr": cidr}, "mlstack:network.cidr")
    assert "RFC 1918" in text
    assert "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16" in text
    assert f'"{cidr}"' in text


@pytest.mark.parametrize(
    "cidr", ["10.0.0.0/16", "172.16.0.0/16", "172.31.240.0/20", "192.168.0.0/16"]
)
def test_vpc_cidr_inside_rfc1918_is_accepted(cidr: str) -> None:
    assert not [p for p in _problems("dev", {"network.cidr": cidr}) if "network" in p.path]


def test_network_component_refuses_a_vpc_cidr_outside_rfc1918() -> None:
    args = NetworkArgs(
        cluster_name="c",
        region="us-west-2",
        cidr="127.0.0.0/16",
        availability_zones=["us-west-2a", "us-west-2b"],
    )
    assert [p for p in args.problems() if p.startswith("cidr: '127.0.0.0/16'")]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for stack in ("dev", "prod"):
        (tmp_path / f"Pulumi.{stack}.yaml").write_bytes(
            (PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_bytes()
        )
    return tmp_path


def _edit_dev(project: Path, old: str, new: str) -> None:
    path = project / "Pulumi.dev.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_plan_refuses_a_vpc_cidr_outside_rfc1918_and_writes_no_plan(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_dev(project, "cidr: 10.20.0.0/16", "cidr: 169.254.0.0/16")
    out = project / "plan.json"
    assert main(["plan", "dev", "--root", str(project), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Pulumi.dev.yaml" in err
    assert "mlstack:network.cidr" in err
    assert "169.254.0.0/16" in err
    assert not out.exists()


# --------------------------------------------------------------------------- item 7

_LB = "serving.loadBalancer"
_INTERNET_FACING = {f"{_LB}.scheme": "internet-facing"}


@pytest.mark.parametrize(
    "cidrs",
    [
        ["0.0.0.0/0"],
        ["0.0.0.0/1", "128.0.0.0/1"],
        ["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/1"],
        ["1.0.0.0/8", "2.0.0.0/8"],
        ["::/1", "8000::/1"],
        ["::/0"],
    ],
)
def test_prod_internet_facing_lb_refuses_inbound_cidrs_whose_union_opens_the_internet(
    cidrs: list[str],
) -> None:
    edits = {**_INTERNET_FACING, f"{_LB}.inboundCidrs": cidrs}
    text = _rendered("prod", edits, "mlstack:serving.loadBalancer.inboundCidrs")
    assert "whole internet" in text
    assert "allowOpenInbound" in text


def test_prod_lb_accepts_a_covering_union_when_allow_open_inbound_says_so() -> None:
    edits = {
        **_INTERNET_FACING,
        f"{_LB}.inboundCidrs": ["0.0.0.0/1", "128.0.0.0/1"],
        f"{_LB}.allowOpenInbound": True,
    }
    paths = {p.path for p in _problems("prod", edits)}
    assert "mlstack:serving.loadBalancer.inboundCidrs" not in paths


def test_prod_lb_accepts_narrow_inbound_cidrs() -> None:
    edits = {**_INTERNET_FACING, f"{_LB}.inboundCidrs": ["203.0.113.0/24", "198.51.100.0/24"]}
    paths = {p.path for p in _problems("prod", edits)}
    assert "mlstack:serving.loadBalancer.inboundCidrs" not in paths


def test_policy_open_ingress_judges_the_parsable_cidrs_on_their_union() -> None:
    """A bad entry beside [0.0.0.0/1, 128.0.0.0/1] does not hide what they open."""
    assert _open_to_world(["0.0.0.0/1", "128.0.0.0/1", "not-a-cidr"])
    assert not _open_to_world(["203.0.113.0/24", "not-a-cidr"])


# --------------------------------------------------------------------------- item 8


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("ml\x00research", "U+0000"),
        ("ml\u202eresearch", "U+202E"),
        ("ml \U0001f680", "U+1F680"),
        ("tab\there", "U+0009"),
        ("x" * 257, "257 characters"),
        ("aws:mine", "'aws:'"),
    ],
)
def test_tag_value_aws_refuses_is_refused(value: str, fragment: str) -> None:
    text = _rendered("dev", {"tags": {"costCenter": value}}, "mlstack:tags")
    assert fragment in text
    assert "\x00" not in text
    assert "\u202e" not in text


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("ml\x00team", "U+0000"), ("team\u202egnp", "U+202E"), ("team \U0001f680", "U+1F680")],
)
def test_owner_aws_refuses_as_a_tag_value_is_refused(value: str, fragment: str) -> None:
    text = _rendered("dev", {"owner": value}, "mlstack:owner")
    assert fragment in text
    assert "allowed:" in text


@pytest.mark.parametrize("key", ["k" * 129, "AWS:cost", "cost\u202ecenter", "cost center!"])
def test_tag_key_aws_refuses_is_refused(key: str) -> None:
    text = _rendered("dev", {"tags": {key: "x"}}, "mlstack:tags")
    assert "not a valid AWS tag key" in text


def test_tags_aws_allows_are_accepted() -> None:
    tags = {"costCenter": "Zürich 東京 ١٢٣", "team/name": "a_b.c:d/e=f+g-h@i", "k" * 128: "v" * 256}
    assert not [p for p in _problems("dev", {"tags": tags}) if p.path == "mlstack:tags"]


def test_more_user_tags_than_fit_fifty_per_resource_are_refused() -> None:
    text = _rendered("dev", {"tags": {f"k{i}": "v" for i in range(61)}}, "mlstack:tags")
    assert "61 tags; allowed: at most 41" in text
    assert "50 per resource" in text


def test_user_tags_up_to_the_budget_are_accepted_and_one_more_is_refused() -> None:
    budget = tag_budget(4)
    assert budget == 50 - 4 - OWN_TAGS_MAX
    fits = {f"k{i}": "v" for i in range(budget)}
    assert not [p for p in _problems("dev", {"tags": fits}) if p.path == "mlstack:tags"]
    over = {**fits, "one-more": "v"}
    assert [p for p in _problems("dev", {"tags": over}) if p.path == "mlstack:tags"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_resource_carries_more_than_fifty_tags_with_the_default_tags_merged(
    stack: str, dev_graph: ResourceGraph, prod_graph: ResourceGraph
) -> None:
    """The AWS provider merges its ``default_tags`` into each resource's own tags by key
    (terraform-provider-aws ``internal/tags/key_value_tags.go``, ``KeyValueTags.Merge``:
    adds missing keys, updates existing ones), and AWS counts the merged set against 50.
    So every resource's own tags beyond the defaults fit in ``OWN_TAGS_MAX``, and with
    the largest user tag set the config allows, the merged set stays within 50."""
    graph = dev_graph if stack == "dev" else prod_graph
    cfg = load_config_file(stack)
    defaults = set(default_tags(cfg, stack))
    largest = {f"user{i}" for i in range(tag_budget(4))}
    for node in graph.resources:
        tags = node.inputs.get("tags")
        if not node.type.startswith("aws:") or not isinstance(tags, dict):
            continue
        own = set(tags) - defaults
        assert len(own) <= OWN_TAGS_MAX, (node.name, sorted(own))
        merged = own | (defaults - set(cfg.tags)) | largest
        assert len(merged) <= 50, node.name


def test_tag_characters_match_the_pattern_aws_documents() -> None:
    """AWS's tag value pattern, as botocore's ``elbv2`` model states it (shape
    ``TagValue``, ``^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$``), run through a regex engine with
    Unicode classes (pydantic-core's), agrees with ours on every assigned code point."""
    model = botocore.session.get_session().get_service_model("elbv2")
    pattern = model.shape_for("TagValue").metadata["pattern"]
    aws = TypeAdapter(Annotated[str, StringConstraints(pattern=pattern)])
    disagree: list[str] = []
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF or unicodedata.category(char) == "Cn":
            continue
        try:
            aws.validate_python(char)
            accepted = True
        except ValidationError:
            accepted = False
        ours = tag_text_problem(char, what="v", max_chars=256) is None
        if accepted != ours:
            disagree.append(f"U+{code:04X}")
    assert disagree == []


def test_an_access_key_id_in_a_tag_value_is_flagged_without_showing_it() -> None:
    text = _rendered("dev", {"tags": {"deployer": "AKIAIOSFODNN7EXAMPLE"}}, "mlstack:tags")
    assert "AWS access key id" in text
    assert "AKIAIOSFODNN7EXAMPLE" not in text


def test_plan_check_refuses_a_nul_in_a_tag_and_writes_no_plan(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_dev(project, "costCenter: ml-research", 'costCenter: "ml\\0research"')
    out = project / "plan.json"
    code = main(["plan", "dev", "--check", "--root", str(project), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    assert "mlstack:tags" in captured.err
    assert "U+0000" in captured.err
    assert "\x00" not in captured.err + captured.out
    assert not out.exists()


# --------------------------------------------------------------------------- item 9 (part)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("cluster.systemNodeGroup.minSize", True),
        ("cluster.systemNodeGroup.minSize", "2"),
        ("network.flowLogs.retentionDays", True),
        ("cluster.logRetentionDays", False),
        ("monitoring.thresholds.errorRatioPercent", True),
        ("network.flowLogs.enabled", 1),
        ("network.flowLogs.enabled", "yes"),
    ],
)
def test_numbers_and_booleans_are_not_coerced(path: str, value: Any) -> None:
    text = _rendered("dev", {path: value}, f"mlstack:{path}")
    assert "allowed:" in text
    assert f"(got {json.dumps(value)})" in text


def test_a_quoted_engine_boolean_still_loads() -> None:
    """Inside `pulumi up` a top-level boolean reaches the program as the text "true"."""
    raw = set_path(raw_stack_config("prod"), "protectStateful", "true")
    assert parse_config(raw, "Pulumi.prod.yaml").protect is True


@pytest.mark.parametrize("region", ["us-west2", "uswest2", "us-wset-2"])
def test_a_bad_region_lists_the_regions_and_suggests_the_closest(region: str) -> None:
    text = _rendered("dev", {"region": region}, "mlstack:region")
    assert "did you mean 'us-west-2'" in text
    assert "allowed: " in text
    assert "eu-west-1" in text
    assert "^[a-z]" not in text


def test_isolated_partition_regions_are_refused() -> None:
    """``stacks.composition.partition_of`` knows aws, aws-cn and aws-us-gov only."""
    assert "mlstack:region" in {p.path for p in _problems("dev", {"region": "us-iso-east-1"})}


# --------------------------------------------------------------------------- item 10


def test_a_webhook_with_credentials_is_refused_without_printing_them(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_dev(
        project,
        "endpoint: ml-platform-dev@example.com",
        "endpoint: ml-platform-dev@example.com\n      - protocol: https\n"
        "        endpoint: https://alerts:hunter2@hooks.example.com/notify?token=s3cr3t",
    )
    assert main(["validate", "dev", "--root", str(project)]) == 2
    err = capsys.readouterr().err
    assert "mlstack:monitoring.subscribers[1]" in err
    assert "credentials" in err
    assert "hooks.example.com" in err
    assert "hunter2" not in err
    assert "alerts:" not in err
    assert "s3cr3t" not in err


def test_problem_hides_the_value_of_a_secret_named_key() -> None:
    text = Problem("mlstack:delivery.apiToken", "tok-123", "not allowed here").render()
    assert "tok-123" not in text
    nested = Problem("mlstack:x", {"password": "p4ss", "user": "bob"}, "bad").render()
    assert "p4ss" not in nested
    assert "bob" in nested


def test_problem_redacts_urls_in_its_message_and_value() -> None:
    text = Problem(
        "mlstack:x", "https://u:pw@h.example/p?sig=abc#frag", "bad https://u:pw@h.example/p?q=1"
    ).render()
    assert "pw" not in text
    assert "sig=abc" not in text
    assert "q=1" not in text
    assert "h.example/p" in text


def test_redact_url_keeps_scheme_host_and_path_only() -> None:
    assert (
        redact_url("https://a:b@h.example:8443/x?y=1#z") == "https://***@h.example:8443/x?y=***#***"
    )
    assert redact_url("https://h.example/x") == "https://h.example/x"
    assert redact_text("key AKIAIOSFODNN7EXAMPLE here") == "key [AWS access key id: ***] here"


def test_a_secrets_provider_region_survives_redaction_so_printed_commands_still_work() -> None:
    """Review finding: the `secure:` error printed `--secrets-provider="awskms://...?***"`,
    a command that no longer works; a region is no secret, other query values still are."""
    from components.redact import redact_text

    line = 'pulumi stack init dev --secrets-provider="awskms://alias/k?region=us-west-2"'
    assert redact_text(line) == line
    assert (
        redact_text("https://hooks.example/x?token=s3cr3t") == "https://hooks.example/x?token=***"
    )
