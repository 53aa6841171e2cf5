"""Graph diff over hand-made plans: golden output, paths, replacement, Markdown size bounds."""

from __future__ import annotations

import json
import re

import pytest

from mlstack.review.diff import (
    StackDiff,
    diff_graphs,
    diff_outcomes,
    diff_values,
    render_json,
    render_markdown,
    render_text,
)
from mlstack.review.gitrefs import PlanOutcome
from mlstack.review.replacements import FORCES_REPLACEMENT, forces_replacement
from tests.mlstack.review.plans import plan, res

NG = "aws:eks/nodeGroup:NodeGroup"
ROLE = "aws:iam/role:Role"


def _trust(effect: str) -> str:
    return json.dumps({"Statement": [{"Action": "sts:AssumeRole", "Effect": effect}]})


BASE = plan(
    res(NG, "nodes", {"instanceTypes": ["m6i.large"], "scalingConfig": {"minSize": 1, "maxSize": 3}, "labels": {"a": "1"}}),  # noqa: E501
    res(ROLE, "role", {"assumeRolePolicy": _trust("Allow")}),
    res("aws:ec2/subnet:Subnet", "old", {"cidrBlock": "10.0.0.0/24"}, in_component=False),
    res("aws:eks/cluster:Cluster", "eks", {"vpcConfig": {"publicAccessCidrs": ["10.0.0.0/8", "192.168.0.0/16"]}}),  # noqa: E501
)  # fmt: skip
HEAD = plan(
    res(NG, "nodes", {"instanceTypes": ["m6i.xlarge"], "scalingConfig": {"minSize": 1, "maxSize": 5}, "labels": {"a": "1", "b": "2"}}),  # noqa: E501
    res(ROLE, "role", {"assumeRolePolicy": _trust("Deny")}, protect=True),
    res("aws:kms/key:Key", "key", {"enableKeyRotation": True}),
    res("aws:eks/cluster:Cluster", "eks", {"vpcConfig": {"publicAccessCidrs": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}}),  # noqa: E501
)  # fmt: skip

GOLDEN_TEXT = """\
stack dev: +1 ~2 ±1 -1  (base -> head)
  cost: min $144.68 -> $215.76 (+$71.08), max $288.04 -> $784.80 (+$496.76) per month
  cluster
    ~ aws:eks/cluster:Cluster eks (update)
        + vpcConfig.publicAccessCidrs[1]: "172.16.0.0/12"
    ± aws:eks/nodeGroup:NodeGroup nodes (replace)
        - instanceTypes[0]: "m6i.large"
        + instanceTypes[0]: "m6i.xlarge"  # forces replacement
        + labels.b: "2"
        - scalingConfig.maxSize: 3
        + scalingConfig.maxSize: 5
    ~ aws:iam/role:Role role (update)
        - assumeRolePolicy{json}.Statement[0].Effect: "Allow"
        + assumeRolePolicy{json}.Statement[0].Effect: "Deny"
        - opts.protect: false
        + opts.protect: true
    + aws:kms/key:Key key (create)
        + enableKeyRotation: true
  (stack)
    - aws:ec2/subnet:Subnet old (delete)
        - cidrBlock: "10.0.0.0/24"
"""


def test_text_rendering_matches_the_golden_output() -> None:
    assert render_text([diff_graphs(BASE, HEAD)], color=False) == GOLDEN_TEXT


def test_colour_codes_only_when_asked() -> None:
    coloured = render_text([diff_graphs(BASE, HEAD)], color=True)
    assert "\033[31m- cidrBlock" in coloured
    assert "\033[" not in render_text([diff_graphs(BASE, HEAD)], color=False)


def test_actions_and_counts() -> None:
    result = diff_graphs(BASE, HEAD)
    actions = {c.name: c.action for c in result.changes}
    assert actions == {
        "eks": "update",
        "nodes": "replace",
        "role": "update",
        "key": "create",
        "old": "delete",
    }
    assert result.counts() == {"create": 1, "update": 2, "replace": 1, "delete": 1}
    assert result.base_resources == 4 and result.head_resources == 4


def test_identical_plans_have_no_changes() -> None:
    result = diff_graphs(BASE, json.loads(json.dumps(BASE)))
    assert result.changes == []
    assert result.summary() == "no changes"


def test_json_output_carries_everything() -> None:
    document = json.loads(render_json([diff_graphs(BASE, HEAD)]))
    stack = document["stacks"][0]
    by_name = {c["name"]: c for c in stack["changes"]}
    assert by_name["key"]["inputs"] == {"enableKeyRotation": True}
    assert by_name["old"]["inputs"] == {"cidrBlock": "10.0.0.0/24"}
    replaced = [c for c in by_name["nodes"]["changes"] if c.get("forcesReplacement")]
    assert replaced == [
        {
            "path": "instanceTypes[0]",
            "kind": "change",
            "old": "m6i.large",
            "new": "m6i.xlarge",
            "forcesReplacement": True,
        }
    ]
    assert stack["base"]["cost"]["totalMin"] < stack["head"]["cost"]["totalMin"]


# --------------------------------------------------------------------------- value paths


def test_nested_keys_needing_quotes_are_quoted() -> None:
    old, new = {"tags": {"kubernetes.io/role/elb": "1"}}, {"tags": {"kubernetes.io/role/elb": "0"}}
    changes = diff_values(old, new)
    assert [c.path for c in changes] == ['tags["kubernetes.io/role/elb"]']


def test_list_insertion_is_one_addition_and_removal_one_removal() -> None:
    assert [(c.kind, c.path, c.new) for c in diff_values(["a", "c"], ["a", "b", "c"])] == [
        ("add", "[1]", "b")
    ]
    assert [(c.kind, c.path, c.old) for c in diff_values(["a", "b", "c"], ["a", "c"])] == [
        ("remove", "[1]", "b")
    ]


def test_changed_list_element_of_objects_is_diffed_inside() -> None:
    old = {"rules": [{"port": 80, "cidr": "10.0.0.0/8"}, {"port": 443, "cidr": "0.0.0.0/0"}]}
    new = {"rules": [{"port": 80, "cidr": "10.0.0.0/8"}, {"port": 443, "cidr": "10.0.0.0/8"}]}
    changes = diff_values(old, new)
    assert [(c.path, c.old, c.new) for c in changes] == [
        ("rules[1].cidr", "0.0.0.0/0", "10.0.0.0/8")
    ]


def test_type_change_and_key_removal() -> None:
    changes = diff_values({"a": 1, "b": {"c": 1}}, {"a": "1"})
    assert [(c.kind, c.path) for c in changes] == [("change", "a"), ("remove", "b")]


def test_secrets_redacted_on_both_sides_compare_equal() -> None:
    assert diff_values({"kubeconfig": "[secret]"}, {"kubeconfig": "[secret]"}) == []


def test_replacement_markers_follow_the_sourced_list() -> None:
    assert forces_replacement(NG, "instanceTypes[0]")
    assert forces_replacement(NG, "launchTemplate.id")
    assert not forces_replacement(NG, "launchTemplate.version")
    assert not forces_replacement(NG, "scalingConfig.maxSize")
    assert forces_replacement("aws:ec2/vpc:Vpc", "cidrBlock")
    assert not forces_replacement("aws:ec2/vpc:Vpc", "tags.Name")
    assert forces_replacement("kubernetes:apps/v1:Deployment", "metadata.name")
    assert not forces_replacement("aws:kms/key:Key", "description")
    assert not forces_replacement("aws:eks/cluster:Cluster", "nameSuffix")  # prefix, not a path
    # the one table (policy.replacement), complete for both plans: tests/policy/test_replacement.py
    assert "aws:sns/topic:Topic" in FORCES_REPLACEMENT


# --------------------------------------------------------------------------- one side failing


def test_a_failed_side_is_reported_and_the_other_still_shown() -> None:
    result = diff_outcomes(
        "dev",
        PlanOutcome(None, "invalid config in Pulumi.dev.yaml (1 problem):\n  - mlstack:x: bad"),
        PlanOutcome(HEAD),
        "main (abc)",
        "working tree",
    )
    assert not result.ok
    assert result.head_resources == 4
    assert result.cost_head is not None and result.cost_base is None
    text = render_text([result], color=False)
    assert "base failed: invalid config in Pulumi.dev.yaml" in text
    assert "resources: base n/a, head 4" in text
    markdown = render_markdown([result])
    assert "**base failed to synthesize**" in markdown
    assert "| `dev` | base failed |" in markdown


# --------------------------------------------------------------------------- markdown


def test_markdown_has_a_summary_and_one_collapsible_section_per_component() -> None:
    text = render_markdown([diff_graphs(BASE, HEAD)])
    assert "| `dev` | 1 | 2 | 1 | 1 |" in text
    assert text.count("<details>") == 2
    assert "<summary><b>cluster</b>: 1 create, 2 update, 1 replace</summary>" in text
    assert '+ instanceTypes[0]: "m6i.xlarge"  # forces replacement' in text


def _big_diff(resources: int, payload: int) -> StackDiff:
    base = plan()
    head = plan(
        *[
            res(ROLE, f"role-{i:04d}", {"description": "x" * payload, "index": i})
            for i in range(resources)
        ]
    )
    return diff_graphs(base, head)


@pytest.mark.parametrize("limit", [3000, 20000, 60000])
def test_markdown_stays_within_the_limit_and_never_cuts_a_resource(limit: int) -> None:
    result = _big_diff(400, 300)
    text = render_markdown([result], max_chars=limit)
    assert len(text) <= limit
    assert "| `dev` | 400 | 0 | 0 | 0 |" in text  # the summary always stays
    shown = len(re.findall(r"^\*\*\+ create\*\* ", text, flags=re.MULTILINE))
    assert text.count("```diff") == shown  # every block shown is whole
    assert text.count("```") == 2 * shown
    hidden = sum(int(n) for n in re.findall(r"_(\d+) more resource change", text))
    assert shown + hidden == 400
    assert shown > 0


def test_small_diffs_are_shown_in_full() -> None:
    text = render_markdown([_big_diff(5, 10)], max_chars=60000)
    assert "not shown" not in text
    assert text.count("**+ create**") == 5


def test_biggest_changes_stay_when_space_runs_out() -> None:
    base = plan(res(NG, "nodes", {"instanceTypes": ["m6i.large"]}))
    head = plan(
        res(NG, "nodes", {"instanceTypes": ["m6i.xlarge"]}),
        *[res(ROLE, f"r{i}", {"description": "y" * 200}) for i in range(50)],
    )
    text = render_markdown([diff_graphs(base, head)], max_chars=2500)
    assert len(text) <= 2500
    assert "**± replace** `aws:eks/nodeGroup:NodeGroup` **nodes**" in text


def test_huge_summaries_are_truncated_with_a_note() -> None:
    diffs = [StackDiff(stack=f"s{i}", changes=[]) for i in range(200)]
    text = render_markdown(diffs, max_chars=1000)
    assert len(text) <= 1000
    assert "truncated" in text
