"""Parity: a passing and a failing pair for each kind of violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlstack.review.parity import (
    ParityReport,
    PinnedVersions,
    check_parity,
    compare,
    compare_configs,
    compare_shapes,
    evidence_from_git,
    evidence_from_ledger,
    render_markdown,
    render_promotions_markdown,
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
    assert [f.path for f in report.pending_promotions] == [LLAMA_VERSION]
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


# --------------------------------------------------------------------------- issue 13 item 13


def test_matched_items_are_compared_field_by_field_even_when_the_lists_differ() -> None:
    left = Root(pools=[Pool(name="a", taint="changed"), Pool(name="b")])
    right = Root(pools=[Pool(name="a")])
    paths = _paths(left, right)
    assert paths == {"mlstack:pools": False, "mlstack:pools[name=a].taint": False}


# --------------------------------------------------------------------------- promotions


LLAMA = "llama-3-8b-instruct"
LLAMA_VERSION = "mlstack:models[name=llama-3-8b-instruct].artifactVersion"


def _model(stack: str, name: str, **changes: Any) -> dict[str, Any]:
    raw = raw_stack_config(stack)
    entry = dict(next(m for m in raw["models"] if m["name"] == "resnet50"))  # NLB: no host
    entry["name"] = name
    entry.update(changes)
    return entry


def _with_models(stack: str, models: list[dict[str, Any]]) -> StackConfig:
    raw = raw_stack_config(stack)
    raw["models"] = models
    if len(models) > 2:  # room in the pool for the extra model (capacity rule); prod
        # stays at 5 nodes: Karpenter's repairs may take 20% of them at once (repair rule)
        raw["gpuPools"][0]["maxNodes"] = 8 if stack == "dev" else 5
    return parse_config(raw, f"Pulumi.{stack}.yaml")


def _models_of(stack: str) -> list[dict[str, Any]]:
    return [dict(m) for m in raw_stack_config(stack)["models"]]


def _compare_configs(
    dev: StackConfig,
    prod: StackConfig,
    dev_graph: ResourceGraph,
    prod_graph: ResourceGraph,
    evidence: PinnedVersions | None = None,
) -> ParityReport:
    return compare(
        "dev",
        "prod",
        left_config=dev,
        right_config=prod,
        left_graph=dev_graph,
        right_graph=prod_graph,
        evidence=evidence,
    )


def _set_version(models: list[dict[str, Any]], version: str) -> list[dict[str, Any]]:
    return [m | {"artifactVersion": version} if m["name"] == LLAMA else m for m in models]


def test_a_model_only_in_dev_is_a_pending_promotion_with_its_components_exempt(
    synth_edited: SynthEdited, prod_graph: ResourceGraph, stack_configs: dict[str, StackConfig]
) -> None:
    models = [*_models_of("dev"), _model("dev", "ranker")]
    dev_graph = synth_edited("dev", {"models": models, "gpuPools[0].maxNodes": 8})
    report = _compare_configs(
        _with_models("dev", models), stack_configs["prod"], dev_graph, prod_graph
    )
    assert report.violations == []
    # The real stacks already have one (the LLM's newer dev version), plus the new model.
    assert [(f.kind, f.path) for f in report.pending_promotions] == [
        ("promotion", "mlstack:models[name=ranker]"),
        ("promotion", LLAMA_VERSION),
    ]
    assert "2 pending promotion(s)" in report.summary()
    assert "promotion  config  mlstack:models[name=ranker]" in render_text(report)
    promotions = "\n".join(render_promotions_markdown(report))
    assert "**Pending promotions** (dev -> prod): 2" in promotions
    assert "Pending promotions" not in render_markdown(report, promotions=False)


def test_a_model_only_in_prod_is_a_violation_unless_it_carries_a_hotfix_reason(
    dev_graph: ResourceGraph, prod_graph: ResourceGraph, stack_configs: dict[str, StackConfig]
) -> None:
    extra = _model("prod", "ranker")
    report = _compare_configs(
        stack_configs["dev"],
        _with_models("prod", [*_models_of("prod"), extra]),
        dev_graph,
        prod_graph,
    )
    [violation] = report.violations
    assert violation.path == "mlstack:models[name=ranker]"
    assert "add it to dev first" in violation.message and "hotfix: <reason>" in violation.message

    hotfixed = extra | {"hotfix": "INC-42: ranker pinned in prod during the outage"}
    ok = _compare_configs(
        stack_configs["dev"],
        _with_models("prod", [*_models_of("prod"), hotfixed]),
        dev_graph,
        prod_graph,
    )
    assert ok.ok
    assert [f.message for f in ok.hotfixes] == [
        "model ranker runs in prod only: hotfix: INC-42: ranker pinned in prod during the outage"
    ]


def test_a_newer_dev_version_is_pending_when_dev_ran_the_prod_version(
    dev_graph: ResourceGraph, prod_graph: ResourceGraph, stack_configs: dict[str, StackConfig]
) -> None:
    dev = _with_models("dev", _set_version(_models_of("dev"), "2026-01-01"))
    prod = _with_models("prod", _set_version(_models_of("prod"), "2025-12-01"))
    ran = PinnedVersions(frozenset({(LLAMA, "2025-12-01")}), "passed bakes of stack dev")
    report = _compare_configs(dev, prod, dev_graph, prod_graph, ran)
    assert report.ok
    [pending] = report.pending_promotions
    assert pending.path == f"mlstack:models[name={LLAMA}].artifactVersion"
    assert (pending.left, pending.right) == ("2026-01-01", "2025-12-01")

    never = PinnedVersions(frozenset(), "passed bakes of stack dev (file:///l)", baked=True)
    refused = _compare_configs(dev, prod, dev_graph, prod_graph, never)
    [violation] = refused.violations
    assert "prod runs llama-3-8b-instruct 2025-12-01, which dev never ran" in violation.message
    assert "passed bakes of stack dev" in violation.message

    # Offline (git evidence only): a newer dev version is taken as dev ahead, unverified...
    offline = PinnedVersions(frozenset(), "git history of Pulumi.dev.yaml")
    unverified = _compare_configs(dev, prod, dev_graph, prod_graph, offline)
    assert unverified.ok
    assert "unverified" in unverified.pending_promotions[0].message
    # ...but prod NEWER than dev is a violation even offline.
    ahead = _with_models("prod", _set_version(_models_of("prod"), "2026-02-01"))
    assert not _compare_configs(dev, ahead, dev_graph, prod_graph, offline).ok

    hotfix = [
        m | {"hotfix": "rolled back in prod by hand"} if m["name"] == LLAMA else m
        for m in _set_version(_models_of("prod"), "2025-12-01")
    ]
    excused = _compare_configs(dev, _with_models("prod", hotfix), dev_graph, prod_graph, never)
    assert [f.kind for f in excused.findings if "artifactVersion" in f.path] == ["hotfix"]
    assert excused.ok and len(excused.hotfixes) == 1


def test_gpu_pools_follow_the_same_promotion_rules(
    dev_graph: ResourceGraph, prod_graph: ResourceGraph, stack_configs: dict[str, StackConfig]
) -> None:
    def with_pools(stack: str, extra: dict[str, Any]) -> StackConfig:
        raw = raw_stack_config(stack)
        raw["gpuPools"] = [*raw["gpuPools"], extra]
        return parse_config(raw, f"Pulumi.{stack}.yaml")

    burst = dict(raw_stack_config("prod")["gpuPools"][0]) | {"name": "burst"}
    dev_only = _compare_configs(
        with_pools("dev", burst), stack_configs["prod"], dev_graph, prod_graph
    )
    assert dev_only.ok
    assert [f.path for f in dev_only.pending_promotions] == [
        LLAMA_VERSION,
        "mlstack:gpuPools[name=burst]",
    ]
    prod_only = _compare_configs(
        stack_configs["dev"], with_pools("prod", burst), dev_graph, prod_graph
    )
    assert [f.path for f in prod_only.violations] == ["mlstack:gpuPools[name=burst]"]
    hotfix = burst | {"hotfix": "capacity emergency"}
    excused = _compare_configs(
        stack_configs["dev"], with_pools("prod", hotfix), dev_graph, prod_graph
    )
    assert excused.ok and [f.kind for f in excused.hotfixes] == ["hotfix"]


def test_a_changed_fixed_field_of_a_shared_model_is_caught_while_dev_is_ahead(
    dev_graph: ResourceGraph, prod_graph: ResourceGraph, stack_configs: dict[str, StackConfig]
) -> None:
    models = [m | {"runtime": "vllm"} if m["name"] == "resnet50" else m for m in _models_of("dev")]
    models.append(_model("dev", "ranker"))
    dev = _with_models("dev", models)
    report = _compare_configs(dev, stack_configs["prod"], dev_graph, prod_graph)
    paths = {f.path for f in report.violations}
    assert "mlstack:models[name=resnet50].runtime" in paths
    assert [f.path for f in report.pending_promotions] == [
        "mlstack:models[name=ranker]",
        LLAMA_VERSION,
    ]


def test_evidence_from_git_and_from_the_bake_ledger(tmp_path: Path) -> None:
    import subprocess
    from datetime import UTC, datetime

    from mlstack.delivery.verdicts import BakeRecord, FileLedger

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "T")
    stack_file = tmp_path / "Pulumi.dev.yaml"
    commits = []
    for version in ("v1", "v2", "v3"):
        stack_file.write_text(
            f"config:\n  mlstack:models:\n    - name: m\n      artifactVersion: {version}\n"
        )
        git("add", "-A")
        git("commit", "-qm", version)
        commits.append(git("rev-parse", "HEAD"))
    assert evidence_from_git(tmp_path, "dev").pairs == {("m", "v1"), ("m", "v2"), ("m", "v3")}
    ledger = FileLedger(tmp_path / "ledger")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    ledger.put(BakeRecord("dev", 1, commits[0], "passed", now, now, 5))
    ledger.put(BakeRecord("dev", 2, commits[1], "passed", now, now, 5))
    ledger.put(BakeRecord("dev", 2, commits[1], "failed", now, now.replace(hour=1), 5))
    baked = evidence_from_ledger(tmp_path, "dev", ledger)
    assert baked.pairs == {("m", "v1")}  # v2's update failed a bake; v3 was never baked
    assert baked.source.startswith("passed bakes of stack dev")


def test_the_real_stacks_show_the_llm_as_a_pending_promotion() -> None:
    report = check_parity("dev", "prod", PROJECT_ROOT)
    assert report.ok, report.summary()
    assert [f.path for f in report.pending_promotions] == [
        "mlstack:models[name=llama-3-8b-instruct].artifactVersion"
    ]


def test_the_review_report_shows_pending_promotions_as_their_own_section(
    dev_graph: ResourceGraph, prod_graph: ResourceGraph, stack_configs: dict[str, StackConfig]
) -> None:
    from mlstack.review.review import ReviewResult, render_report

    report = _compare_configs(stack_configs["dev"], stack_configs["prod"], dev_graph, prod_graph)
    markdown = render_report(ReviewResult("main (abc)", "working tree", parity=[report]))
    parity_part, _, rest = markdown.partition("### Pending promotions")
    assert rest, markdown
    assert LLAMA_VERSION.strip('"') in rest.split("###")[0]
    assert "**Pending promotions**" not in parity_part  # shown once, in its own section


def test_the_text_table_of_the_real_stacks_fits_100_columns() -> None:
    report = check_parity("dev", "prod", PROJECT_ROOT)
    text = render_text(report)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "--format json shows every value" in text
    # Paths are shortened in the middle: the field name at the end stays readable.
    # (the status column is as wide as "promotion": the LLM's pending promotion is listed)
    assert "...urrentVersionExpirationDays" in text


def test_short_tables_are_not_shortened() -> None:
    finding_text = render_text(ParityReport("a", "b"))
    assert "shortened" not in finding_text
