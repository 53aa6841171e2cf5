"""``mlstack coldstart <stack>``: each model's start-up, estimated offline, phase by phase.

From zero (a new GPU node, empty caches) and from a warm node with a cache hit; every
phase shows the numbers it used and the source of its assumption
(``components.serving.startup_estimate``, ``docs/cold-start.md``). The PR review shows
the models whose estimate a change alters (:func:`review_section`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.serving.startup_estimate import Phase, StartupEstimate
from stacks.config import ConfigError, StackConfig, load_config_file
from stacks.startup import MeasuredSizes, startup_estimates


@dataclass(frozen=True)
class ModelStartup:
    """One model's estimate next to its configured budget."""

    model: str
    budget_seconds: int
    estimate: StartupEstimate

    @property
    def within_budget(self) -> bool:
        return self.estimate.cold_seconds <= self.budget_seconds


def model_startups(
    cfg: StackConfig, measured: dict[str, MeasuredSizes] | None = None
) -> list[ModelStartup]:
    """Every model of the stack that has a pool and fits it, in config order; sizes from
    ``measured`` (``mlstack.coldstart_live``) where given, else from config."""
    estimates = startup_estimates(list(cfg.models), list(cfg.gpu_pools), measured)
    return [
        ModelStartup(m.name, m.startup_budget_seconds, estimates[m.name])
        for m in cfg.models
        if m.name in estimates
    ]


def _minutes(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _phase_lines(phases: tuple[Phase, ...], sources: dict[str, int]) -> list[str]:
    lines = []
    for p in phases:
        refs = "".join(f"[{sources.setdefault(src, len(sources) + 1)}]" for src in p.sources)
        lines.append(f"    {p.name:<14} {_minutes(p.seconds):>7}  {p.basis} {refs}".rstrip())
    return lines


def render_text(stack: str, startups: list[ModelStartup], notes: Sequence[str] = ()) -> str:
    """Human-readable report: per model, the cold and warm phases and the budget; the
    assumptions' sources numbered once at the end; ``notes``: sizes --live could not read."""
    sources: dict[str, int] = {}
    lines = [f"{stack}: start-up estimates (docs/cold-start.md explains every assumption)"]
    if not startups:
        lines.append("  no models")
    for s in startups:
        verdict = "within budget" if s.within_budget else "OVER BUDGET"
        lines.append(
            f"  {s.model}: from zero {_minutes(s.estimate.cold_seconds)}, warm node "
            f"{_minutes(s.estimate.warm_seconds)}; budget {_minutes(s.budget_seconds)} "
            f"({verdict})"
        )
        lines.append("   from zero (new node, empty cache):")
        lines += _phase_lines(s.estimate.cold, sources)
        lines.append(
            "   warm node, cache hit:"
            if s.estimate.warm_cache_hit
            else "   warm node, image cached (per-pod model cache: weights fetched again):"
        )
        lines += _phase_lines(s.estimate.warm, sources)
    if sources:
        lines.append("sources:")
        lines += [f"  [{n}] {src}" for src, n in sources.items()]
    if notes:
        lines.append("not read live (config sizes used):")
        lines += [f"  - {note}" for note in notes]
    return "\n".join(lines) + "\n"


def _phase_json(p: Phase) -> dict[str, Any]:
    return {"phase": p.name, "seconds": round(p.seconds, 1), "basis": p.basis, "sources": p.sources}


def to_json(stack: str, startups: list[ModelStartup], notes: Sequence[str] = ()) -> str:
    """Machine-readable report (CI, dashboards)."""
    return json.dumps(
        {
            "stack": stack,
            "notes": list(notes),
            "models": [
                {
                    "model": s.model,
                    "budgetSeconds": s.budget_seconds,
                    "withinBudget": s.within_budget,
                    "coldSeconds": s.estimate.cold_seconds,
                    "warmSeconds": s.estimate.warm_seconds,
                    "cold": [_phase_json(p) for p in s.estimate.cold],
                    "warm": [_phase_json(p) for p in s.estimate.warm],
                }
                for s in startups
            ],
        },
        indent=2,
    )


def review_section(stack: str, base: list[ModelStartup] | None, head: list[ModelStartup]) -> str:
    """Markdown lines for the PR review: models whose estimate or budget changed (empty
    when nothing changed). ``base`` None: the base config could not be read."""
    before = {s.model: s for s in base or []}
    rows: list[str] = []
    for s in head:
        old = before.get(s.model)
        key = (s.estimate.cold_seconds, s.estimate.warm_seconds, s.budget_seconds)
        if old is not None and key == (
            old.estimate.cold_seconds,
            old.estimate.warm_seconds,
            old.budget_seconds,
        ):
            continue
        was = (
            "new"
            if old is None
            else f"{_minutes(old.estimate.cold_seconds)} / {_minutes(old.estimate.warm_seconds)}"
        )
        rows.append(
            f"| {s.model} | {was} | {_minutes(s.estimate.cold_seconds)} / "
            f"{_minutes(s.estimate.warm_seconds)} | {_minutes(s.budget_seconds)} |"
        )
    rows += [f"| {m} | removed | | |" for m in before if m not in {s.model for s in head}]
    if not rows:
        return ""
    header = [
        f"#### Start-up estimates: {stack}",
        "",
        "| model | base (from zero / warm) | head (from zero / warm) | budget |",
        "|---|---|---|---|",
    ]
    note = "" if base is not None else "\n_base config not readable: every model shown as new_\n"
    return "\n".join(header + rows) + "\n" + note


def review_markdown(root: Path, base_sha: str, stacks: Sequence[str]) -> str:
    """The review's start-up section: per stack, the models whose estimate or budget the
    change alters (base stack files read with ``git show`` and estimated with the head's
    code). Empty when nothing changed or no stack file is readable at head."""
    from mlstack.review import gitrefs

    sections: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlstack-coldstart-") as tmp:
        gitrefs.stack_files_at(root, base_sha, stacks, Path(tmp))
        for stack in stacks:
            try:
                head = model_startups(load_config_file(stack, root))
            except ConfigError:
                continue  # the diff section reports a head that does not load
            try:
                base: list[ModelStartup] | None = model_startups(load_config_file(stack, Path(tmp)))
            except (ConfigError, FileNotFoundError):
                base = None
            section = review_section(stack, base, head)
            if section:
                sections.append(section)
    return "\n".join(sections)
