"""``mlstack policy <stack>``: the CrossGuard rules of ``policy/`` over the offline synth graph."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mlstack.review.plans import policy_stack
from mlstack.synth import ResourceGraph
from policy.core import Rule, RuleResult, run_rules
from policy.rules import RULES

_ORDER = {"error": 0, "fail": 1, "pass": 2, "n/a": 3}
_SEVERITY = {"critical": 0, "high": 1, "medium": 2, "low": 3}


@dataclass(frozen=True)
class PolicyReport:
    """Every rule's result for one stack."""

    stack: str
    environment: str
    results: list[RuleResult]

    @property
    def blocking(self) -> list[RuleResult]:
        """Mandatory failures and rule errors (CI fails on these)."""
        return [r for r in self.results if r.blocking]

    @property
    def ok(self) -> bool:
        return not self.blocking

    def counts(self) -> dict[str, int]:
        found = Counter(r.status for r in self.results)
        return {status: found.get(status, 0) for status in ("pass", "fail", "error", "n/a")}

    def sorted_results(self) -> list[RuleResult]:
        return sorted(
            self.results,
            key=lambda r: (
                _ORDER[r.status],
                r.rule.enforcement != "mandatory",
                _SEVERITY[r.rule.severity],
                r.rule.id,
            ),
        )


def check_policy(graph: ResourceGraph, rules: Sequence[Rule] = RULES) -> PolicyReport:
    """Run ``rules`` over a synthesized graph."""
    return PolicyReport(graph.stack, graph.environment, run_rules(policy_stack(graph), rules))


def summary_line(report: PolicyReport) -> str:
    c = report.counts()
    mandatory_fails = sum(
        1 for r in report.results if r.status == "fail" and r.rule.enforcement == "mandatory"
    )
    advisory_fails = c["fail"] - mandatory_fails
    return (
        f"{len(report.results)} rules: {c['pass']} pass, {mandatory_fails} mandatory fail, "
        f"{advisory_fails} advisory fail, {c['error']} error, {c['n/a']} n/a"
    )


def render_text(report: PolicyReport, verbose: bool = False) -> str:
    lines = [f"policy {report.stack} ({report.environment}): {summary_line(report)}"]
    for result in report.sorted_results():
        if result.status in ("pass", "n/a") and not verbose:
            continue
        rule = result.rule
        tag = result.status.upper()
        extra = f" ({result.detail})" if result.detail else ""
        lines.append(f"  {tag:<5} {rule.id} [{rule.enforcement}, {rule.severity}]{extra}")
        for violation in result.violations:
            lines.append(f"        - {violation.message}")
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: PolicyReport) -> str:
    """A table of every rule that did not pass, then a one-line count of the rest."""
    lines = [f"**{report.stack}**: {summary_line(report)}", ""]
    failing = [r for r in report.sorted_results() if r.status in ("fail", "error")]
    if failing:
        lines += ["| status | rule | level | severity | details |", "|---|---|---|---|---|"]
        for result in failing:
            details = (
                "; ".join(v.message for v in result.violations[:10])
                if result.status == "fail"
                else f"rule error: {result.detail}"
            )
            more = len(result.violations) - 10
            if more > 0:
                details += f"; ... {more} more"
            icon = "❌" if result.blocking else "⚠️"
            lines.append(
                f"| {icon} {result.status} | `{result.rule.id}` | {result.rule.enforcement} | "
                f"{result.rule.severity} | {_md_escape(details)} |"
            )
        lines.append("")
    return "\n".join(lines)


def to_json(reports: Iterable[PolicyReport]) -> str:
    return json.dumps(
        [
            {
                "stack": rep.stack,
                "environment": rep.environment,
                "ok": rep.ok,
                "counts": rep.counts(),
                "rules": [
                    {
                        "id": r.rule.id,
                        "severity": r.rule.severity,
                        "enforcement": r.rule.enforcement,
                        "status": r.status,
                        "detail": r.detail,
                        "violations": [{"urn": v.urn, "message": v.message} for v in r.violations],
                    }
                    for r in rep.sorted_results()
                ],
            }
            for rep in reports
        ],
        indent=2,
    )
