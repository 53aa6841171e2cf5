"""``mlstack review --base <ref>``: diff, parity, policy and cost for every stack, one report.

The working tree is synthesized once, in this process; the base revision in a
temporary worktree, in parallel. The report is Markdown for a PR comment, no
longer than ``max_chars`` (the diff section gets what the other sections leave).
The review fails (``ok`` False) when a stack does not synthesize at head, parity
finds a violation, or a mandatory policy rule fails or errors. A stack failing at
base only is reported and does not fail the review: the PR may be its fix.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mlstack import coldstart
from mlstack.errors import UsageError
from mlstack.review import cost, gitrefs, parity, policy_check
from mlstack.review.diff import WORKING_TREE, StackDiff, diff_outcomes, render_markdown
from mlstack.review.plans import graph_from_plan

DEFAULT_MAX_CHARS = 60000


@dataclass
class ReviewResult:
    base_label: str
    head_label: str
    diffs: list[StackDiff] = field(default_factory=list)
    parity: list[parity.ParityReport] = field(default_factory=list)
    policy: list[policy_check.PolicyReport] = field(default_factory=list)
    markdown: str = ""
    startup: str = ""
    """Markdown: models whose start-up estimate or budget the change alters."""

    @property
    def problems(self) -> list[str]:
        found = [f"{d.stack}: head failed to synthesize" for d in self.diffs if d.head_error]
        found += [f"{d.stack}: refused: {hazard}" for d in self.diffs for hazard in d.hazards]
        found += [f"parity {p.left} vs {p.right}: {p.summary()}" for p in self.parity if not p.ok]
        found += [
            f"policy {p.stack}: {len(p.blocking)} blocking rule(s)" for p in self.policy if not p.ok
        ]
        return found

    @property
    def ok(self) -> bool:
        return not self.problems


def list_stacks(root: Path) -> list[str]:
    """Stacks with a ``Pulumi.<stack>.yaml`` in ``root``."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def parity_pairs(stacks: list[str]) -> list[tuple[str, str]]:
    """dev vs prod when both exist, else the first stack against each other one."""
    if "dev" in stacks and "prod" in stacks:
        return [("dev", "prod")]
    return [(stacks[0], other) for other in stacks[1:]]


def run_review(
    root: Path,
    base_ref: str,
    stacks: list[str] | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> ReviewResult:
    """Run every check; raises :class:`gitrefs.GitError` for an unusable base ref."""
    from stacks.config import ConfigError, load_config_file

    root = root.resolve()
    stacks = stacks or list_stacks(root)
    unknown = [s for s in stacks if not (root / f"Pulumi.{s}.yaml").is_file()]
    if unknown or not stacks:
        have = ", ".join(list_stacks(root)) or "none"
        raise UsageError(f"no stack file for {', '.join(unknown) or 'any stack'} (stacks: {have})")
    base_sha = gitrefs.resolve_ref(root, base_ref)
    if gitrefs.same_code_as(root, base_sha):
        base_plans = gitrefs.stack_file_plans(root, base_sha, stacks)
        head_plans = gitrefs.plans_in_process(root, stacks)
    else:
        with ThreadPoolExecutor(max_workers=1) as pool:
            base_job = pool.submit(gitrefs.plans_at, root, base_sha, stacks)
            head_plans = gitrefs.plans_in_process(root, stacks)
            base_plans = base_job.result()[1]
    result = ReviewResult(f"{base_ref} ({gitrefs.short(base_sha)})", WORKING_TREE)
    result.diffs = [
        diff_outcomes(s, base_plans[s], head_plans[s], result.base_label, result.head_label)
        for s in stacks
    ]
    graphs = {s: graph_from_plan(o.plan) for s, o in head_plans.items() if o.plan and not o.note}
    result.policy = [policy_check.check_policy(graphs[s]) for s in stacks if s in graphs]
    for left, right in parity_pairs(stacks) if len(stacks) > 1 else []:
        if left not in graphs or right not in graphs:
            missing = [s for s in (left, right) if s not in graphs]
            result.parity.append(
                parity.ParityReport(left, right, errors=[f"{', '.join(missing)}: no plan at head"])
            )
            continue
        try:
            configs = (load_config_file(left, root), load_config_file(right, root))
        except ConfigError as exc:
            result.parity.append(parity.ParityReport(left, right, errors=[str(exc)]))
            continue
        lower = next(
            (s for s, c in zip((left, right), configs, strict=True) if not c.is_prod), left
        )
        result.parity.append(
            parity.compare(
                left,
                right,
                left_config=configs[0],
                right_config=configs[1],
                left_graph=graphs[left],
                right_graph=graphs[right],
                evidence=parity.evidence_for(Path(root), lower),
            )
        )
    result.startup = coldstart.review_markdown(root, base_sha, stacks)
    result.markdown = render_report(result, max_chars)
    return result


def _overview(result: ReviewResult) -> list[str]:
    lines = ["| check | stack | result |", "|---|---|---|"]
    for d in result.diffs:
        icon = "❌" if d.head_error else "⚠️" if d.base_error else "✅"
        lines.append(f"| diff | `{d.stack}` | {icon} {d.summary()} |")
    for p in result.parity:
        lines.append(
            f"| parity | `{p.left}` vs `{p.right}` | {'✅' if p.ok else '❌'} {p.summary()} |"
        )
    for r in result.policy:
        icon = "✅" if r.ok else "❌"
        lines.append(f"| policy | `{r.stack}` | {icon} {policy_check.summary_line(r)} |")
    for d in result.diffs:
        if d.cost_head or d.cost_base:
            lines.append(f"| cost | `{d.stack}` | {d.cost_summary()} |")
    return lines


def render_report(result: ReviewResult, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The whole review as Markdown, at most ``max_chars`` long."""
    verdict = "✅ ready for review" if result.ok else "❌ " + "; ".join(result.problems)
    parts = [
        f"## mlstack review: {result.base_label} -> {result.head_label}",
        "",
        verdict,
        "",
        *_overview(result),
        "",
    ]
    if result.policy:
        parts += ["### Policy", ""]
        parts += [policy_check.render_markdown(r) for r in result.policy]
    if result.parity:
        parts += ["### Parity", ""]
        parts += [parity.render_markdown(p, promotions=False) for p in result.parity]
    promotions = [line for p in result.parity for line in parity.render_promotions_markdown(p)]
    if promotions:
        parts += ["### Pending promotions", "", *promotions]
    costs = [d.cost_head for d in result.diffs if d.cost_head is not None]
    if costs:
        parts += ["### Cost (head)", ""]
        for estimate_ in costs:
            parts += [
                f"<details><summary>{estimate_.stack}: {cost.money(estimate_.total_min)} - "
                f"{cost.money(estimate_.total_max)} per month</summary>",
                "",
                cost.render_markdown(estimate_),
                "</details>",
                "",
            ]
    if result.startup:
        parts += ["### Start-up estimates (mlstack coldstart)", "", result.startup]
    head = "\n".join(parts)
    remaining = max_chars - len(head) - 2
    if remaining < 2000:
        head = head[: max(0, max_chars - 2200)].rsplit("\n", 1)[0] + "\n\n_(report shortened)_\n"
        remaining = max_chars - len(head) - 2
    return head + "\n" + render_markdown(result.diffs, remaining, title="### Changes") + "\n"
