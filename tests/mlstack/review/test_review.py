"""``mlstack review`` and the review CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlstack.cli import main
from mlstack.review import policy_check
from mlstack.review.diff import diff_graphs
from mlstack.review.parity import ParityFinding, ParityReport
from mlstack.review.review import ReviewResult, parity_pairs, render_report
from mlstack.synth import ResourceGraph
from stacks.config import PROJECT_ROOT
from tests.mlstack.review.conftest import Repo
from tests.mlstack.review.plans import plan, res


@pytest.mark.slow
def test_review_command_writes_one_report_for_all_stacks(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "review.md"
    code = main(["review", "--base", repo.first, "--out", str(out), "--root", str(repo.root)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = out.read_text()
    assert report.startswith(f"## mlstack review: {repo.first} ({repo.first[:12]}) -> working tree")
    assert "✅ ready for review" in report
    for section in ("### Policy", "### Parity", "### Cost (head)", "### Changes"):
        assert section in report
    assert "| diff | `dev` | ✅ +0 ~0 ±1 -0 |" in report
    assert "| diff | `prod` | ✅ no changes |" in report
    assert "**± replace** `aws:eks/nodeGroup:NodeGroup` **cluster-system-nodes**" in report
    assert "dev: +0 ~0 ±1 -0; cost min" in printed


def _result(graph: ResourceGraph) -> ReviewResult:
    base = plan(*[res("aws:iam/role:Role", f"r{i}", {"description": "d" * 300}) for i in range(5)])
    head = plan(
        *[res("aws:iam/role:Role", f"r{i}", {"description": "e" * 300}) for i in range(300)]
    )
    result = ReviewResult("main (abc)", "working tree", diffs=[diff_graphs(base, head)])
    result.policy = [policy_check.check_policy(graph)]
    result.parity = [ParityReport("dev", "prod")]
    return result


@pytest.mark.parametrize("limit", [6000, 30000, 60000])
def test_report_respects_its_size_limit(dev_graph: ResourceGraph, limit: int) -> None:
    text = render_report(_result(dev_graph), limit)
    assert len(text) <= limit
    assert "### Policy" in text and "### Changes" in text
    assert "not shown (size limit)" in text


def test_review_fails_on_parity_violations_and_blocking_rules(dev_graph: ResourceGraph) -> None:
    result = _result(dev_graph)
    assert result.ok
    result.parity = [
        ParityReport("dev", "prod", [ParityFinding("config", "mlstack:x", 1, 2, False)])
    ]
    assert result.problems == ["parity dev vs prod: 1 violation(s), 0 allowed knob difference(s)"]
    assert "❌ parity dev vs prod" in render_report(result)


def test_parity_pairs() -> None:
    assert parity_pairs(["dev", "prod", "staging"]) == [("dev", "prod")]
    assert parity_pairs(["a", "b", "c"]) == [("a", "b"), ("a", "c")]


# --------------------------------------------------------------------------- CLI


def test_parity_command_passes_on_the_real_stacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parity", "dev", "prod", "--root", str(PROJECT_ROOT)]) == 0
    assert "parity dev vs prod: 0 violation(s)" in capsys.readouterr().out


def test_policy_command_passes_on_dev_and_lists_rules_in_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["policy", "dev", "--format", "json", "--root", str(PROJECT_ROOT)]) == 0
    [report] = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert len(report["rules"]) >= 20


def test_policy_command_fails_on_a_mandatory_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prod = (PROJECT_ROOT / "Pulumi.prod.yaml").read_text()
    flow_logs = "    flowLogs:\n      enabled: true\n"
    assert flow_logs in prod
    (tmp_path / "Pulumi.prod.yaml").write_text(
        prod.replace(flow_logs, "    flowLogs:\n      enabled: false\n")
    )
    assert main(["policy", "prod", "--root", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "FAIL  vpc-flow-logs [mandatory, medium]" in captured.out
    assert "blocking policy results (prod: 1)" in captured.err


def test_cost_command_prints_json_per_stack(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["cost", "dev", "prod", "--format", "json", "--nat-gb-per-month", "100"]
    assert main([*args, "--root", str(PROJECT_ROOT)]) == 0
    estimates = json.loads(capsys.readouterr().out)
    assert [e["stack"] for e in estimates] == ["dev", "prod"]
    assert all(e["totalMax"] > e["totalMin"] > 0 for e in estimates)


def test_diff_command_needs_a_base(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "dev"]) == 2
    assert "--base" in capsys.readouterr().err


def test_review_of_an_unknown_stack_is_a_usage_error(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["review", "--base", "main", "--stack", "staging", "--root", str(repo.root)]
    assert main(args) == 2
    assert "no stack file for staging (stacks: dev, prod)" in capsys.readouterr().err
