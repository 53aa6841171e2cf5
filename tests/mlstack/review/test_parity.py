"""Parity: a passing and a failing pair for each kind of violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlstack.review.parity import (
    ParityReport,
    check_parity,
    compare,
    compare_configs,
    compare_shapes,
    render_markdown,
    render_text,
)
from mlstack.synth import ResourceGraph, ResourceNode
from stacks.config import PROJECT_ROOT, StackConfig, parse_config
from stacks.schema.base import ConfigModel, fixed, knob
from tests.conftest import SynthEdited, raw_stack_config, set_path

# --------------------------------------------------------------------------- config models


class Pool(ConfigModel):
    name: str = fixed(description="name")
    max_nodes: int = knob(1, description="size")
    taint: str = fixed("gpu", description="taint")


class Section(ConfigModel):
    retention_days: int = knob(7, description="retention")
    traffic: str = fixed("REJECT", description="traffic")


class Root(ConfigModel):
    region: str = knob("us-west-2", description="region")
    version: str = fixed("1.33", description="version")
    section: Section = knob(default_factory=Section, description="a knob on a section")
    pools: list[Pool] = fixed(default_factory=list, description="named items")
    zones: list[str] = knob(default_factory=list, description="scalar list knob")
    fixed_list: list[str] = fixed(default_factory=list, description="scalar list, fixed")


def _paths(left: Root, right: Root) -> dict[str, bool]:
    return {f.path: f.allowed for f in compare_configs(left, right)}


def test_identical_configs_have_no_findings() -> None:
    assert compare_configs(Root(), Root()) == []


def test_knob_leaf_differences_are_allowed() -> None:
    assert _paths(Root(region="us-east-1"), Root()) == {"mlstack:region": True}
    assert _paths(Root(zones=["a"]), Root(zones=["a", "b"])) == {"mlstack:zones": True}


def test_fixed_leaf_differences_are_violations() -> None:
    assert _paths(Root(version="1.32"), Root()) == {"mlstack:version": False}
    assert _paths(Root(fixed_list=["x"]), Root()) == {"mlstack:fixedList": False}


def test_inside_a_knob_section_its_fixed_fields_still_must_match() -> None:
    left = Root(section=Section(retention_days=30, traffic="ALL"))
    assert _paths(left, Root()) == {
        "mlstack:section.retentionDays": True,
        "mlstack:section.traffic": False,
    }


def test_named_items_are_matched_by_name_and_compared_field_by_field() -> None:
    left = Root(pools=[Pool(name="a", max_nodes=2), Pool(name="b")])
    right = Root(pools=[Pool(name="b"), Pool(name="a", max_nodes=8)])
    assert _paths(left, right) == {"mlstack:pools[name=a].maxNodes": True}
    tainted = Root(pools=[Pool(name="a", taint="other")])
    assert _paths(tainted, Root(pools=[Pool(name="a")])) == {"mlstack:pools[name=a].taint": False}


def test_a_different_set_of_items_is_a_violation_of_a_fixed_list() -> None:
    findings = compare_configs(Root(pools=[Pool(name="a")]), Root(pools=[Pool(name="b")]))
    assert [(f.path, f.allowed) for f in findings] == [("mlstack:pools", False)]
    assert "a only in left" in findings[0].message


# --------------------------------------------------------------------------- shape


def _node(urn: str, type_token: str, parent: str | None, custom: bool = True) -> ResourceNode:
    return ResourceNode(
        urn, type_token, urn.rsplit("::", 1)[-1], parent, custom, None, (), False, False, (), {}
    )


def _graph(stack: str, children: dict[str, list[str]]) -> ResourceGraph:
    nodes: list[ResourceNode] = []
    for component, types in children.items():
        parent = f"urn:pulumi:{stack}::mlstack::mlstack:x:{component}::{component}"
        nodes.append(_node(parent, f"mlstack:x:{component}", None, custom=False))
        for i, type_token in enumerate(types):
            child = (
                f"urn:pulumi:{stack}::mlstack::mlstack:x:{component}${type_token}::{component}-{i}"
            )
            nodes.append(_node(child, type_token, parent))
    return ResourceGraph(stack, stack, "us-east-1", nodes)


def test_same_components_and_types_with_different_counts_match() -> None:
    dev = _graph("dev", {"Network": ["aws:ec2/natGateway:NatGateway"]})
    prod = _graph("prod", {"Network": ["aws:ec2/natGateway:NatGateway"] * 3})
    assert compare_shapes(dev, prod) == []


def test_a_component_only_in_one_stack_is_a_violation() -> None:
    dev = _graph("dev", {"Network": ["aws:ec2/vpc:Vpc"]})
    prod = _graph("prod", {"Network": ["aws:ec2/vpc:Vpc"], "Monitoring": ["aws:sns/topic:Topic"]})
    findings = compare_shapes(dev, prod)
    assert [(f.kind, f.path, f.left, f.right) for f in findings] == [
        ("component", "mlstack:x:Monitoring::Monitoring", "missing", "present")
    ]


def test_a_resource_type_only_in_one_stack_is_a_violation() -> None:
    dev = _graph("dev", {"Network": ["aws:ec2/vpc:Vpc"]})
    prod = _graph("prod", {"Network": ["aws:ec2/vpc:Vpc", "aws:ec2/flowLog:FlowLog"]})
    findings = compare_shapes(dev, prod)
    assert [(f.kind, f.path, f.allowed) for f in findings] == [
        ("resource-type", "mlstack:x:Network::Network > aws:ec2/flowLog:FlowLog", False)
    ]


# --------------------------------------------------------------------------- real stacks


def test_the_real_dev_and_prod_stacks_are_in_parity(
    dev_graph: ResourceGraph, prod_graph: ResourceGraph, stack_configs: dict[str, StackConfig]
) -> None:
    report = compare(
        "dev",
        "prod",
        left_config=stack_configs["dev"],
        right_config=stack_configs["prod"],
        left_graph=dev_graph,
        right_graph=prod_graph,
    )
    assert report.violations == []
    assert report.ok
    allowed = {f.path for f in report.knob_differences}
    assert {"mlstack:region", "mlstack:network.natGateways", "mlstack:tags"} <= allowed


def _edited_config(stack: str, edits: dict[str, Any]) -> StackConfig:
    raw = raw_stack_config(stack)
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    return parse_config(raw, f"Pulumi.{stack}.yaml")


def test_a_fixed_field_changed_in_one_stack_fails_parity(
    dev_graph: ResourceGraph, prod_graph: ResourceGraph, stack_configs: dict[str, StackConfig]
) -> None:
    prod = _edited_config("prod", {"cluster.logTypes": ["api", "audit"]})
    report = compare(
        "dev",
        "prod",
        left_config=stack_configs["dev"],
        right_config=prod,
        left_graph=dev_graph,
        right_graph=prod_graph,
    )
    assert [(f.path, f.allowed) for f in report.violations] == [("mlstack:cluster.logTypes", False)]
    assert not report.ok
    assert "VIOLATION  config  mlstack:cluster.logTypes" in render_text(report)
    assert "❌" in render_markdown(report)


def test_a_knob_that_changes_the_shape_is_caught_by_the_shape_check(
    synth_edited: SynthEdited, prod_graph: ResourceGraph, stack_configs: dict[str, StackConfig]
) -> None:
    dev = synth_edited("dev", {"network.flowLogs.enabled": False})
    report = compare(
        "dev",
        "prod",
        left_config=_edited_config("dev", {"network.flowLogs.enabled": False}),
        right_config=stack_configs["prod"],
        left_graph=dev,
        right_graph=prod_graph,
    )
    config_paths = {f.path: f.allowed for f in report.findings if f.kind == "config"}
    assert config_paths["mlstack:network.flowLogs.enabled"] is True  # a knob...
    shape = {f.path for f in report.violations if f.kind == "resource-type"}
    assert "mlstack:network:Network::network > aws:ec2/flowLog:FlowLog" in shape  # ...but not shape


def test_check_parity_reports_an_invalid_stack_file(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text((PROJECT_ROOT / "Pulumi.dev.yaml").read_text())
    (tmp_path / "Pulumi.prod.yaml").write_text("config:\n  mlstack:environment: prod\n")
    report = check_parity("dev", "prod", tmp_path)
    assert not report.ok
    assert report.errors and report.errors[0].startswith("prod: invalid config in Pulumi.prod.yaml")
    assert "could not compare" in report.summary()


def test_parity_report_json_is_serialisable() -> None:
    import json

    report = ParityReport("a", "b", [])
    assert json.loads(json.dumps(report.to_json()))["ok"] is True


def test_unnamed_item_lists_of_different_length_show_both_lists() -> None:
    class Budget(ConfigModel):
        nodes: str = knob("1", description="nodes")

    class Holder(ConfigModel):
        budgets: list[Budget] = knob(default_factory=list, description="unnamed items")

    [finding] = compare_configs(Holder(budgets=[Budget()]), Holder(budgets=[Budget(), Budget()]))
    assert (finding.path, finding.allowed, finding.message) == (
        "mlstack:budgets",
        True,
        "1 vs 2 items",
    )
    assert "nodes" in render_text(ParityReport("a", "b", [finding]))


def test_the_text_table_of_the_real_stacks_fits_100_columns() -> None:
    report = check_parity("dev", "prod", PROJECT_ROOT)
    text = render_text(report)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "--format json shows every value" in text
    # Paths are shortened in the middle: the field name at the end stays readable.
    assert "...ncurrentVersionExpirationDays" in text


def test_short_tables_are_not_shortened() -> None:
    finding_text = render_text(ParityReport("a", "b"))
    assert "shortened" not in finding_text
