"""``mlstack diff``: what changes in each stack between two revisions, offline.

Both sides are plan JSON documents (``mlstack.plan`` contract). Resources are
matched by URN: present only in head = create, only in base = delete, in both
with different inputs or options = update, or replace when a changed property is
listed in :mod:`mlstack.review.replacements`. Property changes are reported at
nested paths (``vpcConfig.publicAccessCidrs[0]``), list elements are aligned
(an insertion is one added element, not a cascade), and JSON documents held in
strings (IAM policies) are compared as documents (``assumeRolePolicy{json}...``).
Values redacted as ``[secret]`` on both sides compare equal: a changed secret
does not show.

Renderers: :func:`render_text` (terminal, optional ANSI colour), :func:`render_json`
(everything, untruncated) and :func:`render_markdown` (PR comment: a summary per
stack, one collapsible section per component; when over ``max_chars`` the
biggest changes stay, whole resources are left out and counted).
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlstack.errors import UsageError
from mlstack.review import gitrefs, traffic_hazards
from mlstack.review.cost import CostEstimate, UnpricedRegionError, delta, estimate, money
from mlstack.review.plans import STACK_COMPONENT, component_names, graph_from_plan
from mlstack.review.replacements import forces_replacement

Action = Literal["create", "update", "replace", "delete"]
ACTIONS: tuple[Action, ...] = ("create", "update", "replace", "delete")
SYMBOL: dict[str, str] = {"create": "+", "update": "~", "replace": "±", "delete": "-"}
_PRIORITY = {"replace": 0, "delete": 1, "create": 2, "update": 3}
_OPTIONS = (
    ("protect", False),
    ("retainOnDelete", False),
    ("ignoreChanges", []),
    ("provider", None),
)
WORKING_TREE = "working tree"


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class PropertyChange:
    """One changed value. ``old``/``new`` are None for adds/removes of that side."""

    path: str
    kind: Literal["add", "remove", "change"]
    old: Any = None
    new: Any = None
    replaces: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "kind": self.kind}
        if self.kind != "add":
            out["old"] = self.old
        if self.kind != "remove":
            out["new"] = self.new
        if self.replaces:
            out["forcesReplacement"] = True
        return out


@dataclass(frozen=True)
class ResourceChange:
    """A created, updated, replaced or deleted resource."""

    urn: str
    type: str
    name: str
    component: str
    action: Action
    changes: tuple[PropertyChange, ...] = ()
    inputs: Mapping[str, Any] = field(default_factory=dict)
    """All inputs of a created (head) or deleted (base) resource."""
    custom: bool = True

    @property
    def weight(self) -> int:
        """Rough size, used to keep the biggest changes when output must shrink."""
        return len(self.changes) if self.changes else max(1, len(self.inputs))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "component": self.component,
            "action": self.action,
        }
        if self.action in ("update", "replace"):
            out["changes"] = [c.to_json() for c in self.changes]
        else:
            out["inputs"] = dict(self.inputs)
        return out


@dataclass
class StackDiff:
    """The changes of one stack between base and head, and what each side cost."""

    stack: str
    changes: list[ResourceChange] = field(default_factory=list)
    base_ref: str | None = None
    head_ref: str | None = None
    base_error: str | None = None
    head_error: str | None = None
    base_note: str | None = None
    head_note: str | None = None
    base_resources: int | None = None
    head_resources: int | None = None
    cost_base: CostEstimate | None = None
    cost_head: CostEstimate | None = None
    cost_error: str | None = None
    """Why a side could not be priced (its region has no prices)."""
    hazards: list[str] = field(default_factory=list)
    """Changes one update cannot apply safely (:mod:`mlstack.review.traffic_hazards`)."""

    @property
    def ok(self) -> bool:
        return self.base_error is None and self.head_error is None

    def counts(self) -> dict[str, int]:
        found = Counter(c.action for c in self.changes)
        return {action: found.get(action, 0) for action in ACTIONS}

    def by_component(self) -> dict[str, list[ResourceChange]]:
        groups: dict[str, list[ResourceChange]] = {}
        for change in self.changes:
            groups.setdefault(change.component, []).append(change)
        return dict(sorted(groups.items(), key=lambda kv: (kv[0] == STACK_COMPONENT, kv[0])))

    def summary(self) -> str:
        if not self.ok:
            side = "base" if self.base_error else "head"
            return f"{side} failed to synthesize"
        c = self.counts()
        if not self.changes:
            return "no changes"
        text = f"+{c['create']} ~{c['update']} ±{c['replace']} -{c['delete']}"
        components = sum(1 for change in self.changes if not change.custom)
        # `mlstack plan` counts cloud resources only; say how many of these are components.
        return text + (f" (incl. {components} components)" if components else "")

    def cost_summary(self) -> str:
        if self.cost_error:
            return f"n/a: {self.cost_error}"
        if self.cost_base is None and self.cost_head is None:
            return ""
        if self.cost_base is None or self.cost_head is None:
            known = self.cost_head or self.cost_base
            assert known is not None
            side = "head" if self.cost_head else "base"
            return f"{side} {money(known.total_min)}-{money(known.total_max)}/month"
        b, h = self.cost_base, self.cost_head
        return (
            f"min {money(b.total_min)} -> {money(h.total_min)} ({delta(b.total_min, h.total_min)})"
            f", max {money(b.total_max)} -> {money(h.total_max)} "
            f"({delta(b.total_max, h.total_max)}) per month"
        )

    def model_cost_changes(self) -> list[str]:
        """Models added, removed, or whose replicas or cost changed, with the cost delta."""
        if self.cost_base is None or self.cost_head is None:
            return []
        before = {m.model: m for m in self.cost_base.models}
        after = {m.model: m for m in self.cost_head.models}
        lines: list[str] = []
        for name in sorted(set(before) | set(after)):
            b, h = before.get(name), after.get(name)
            if h is not None and b is None:
                lines.append(
                    f"+ model {name} ({h.min_replicas}-{h.max_replicas} replicas): "
                    f"min {delta(0.0, h.monthly_min)}, max {delta(0.0, h.monthly_max)}"
                )
            elif b is not None and h is None:
                lines.append(
                    f"- model {name} ({b.min_replicas}-{b.max_replicas} replicas): "
                    f"min {delta(b.monthly_min, 0.0)}, max {delta(b.monthly_max, 0.0)}"
                )
            elif b is not None and h is not None:
                same_replicas = (b.min_replicas, b.max_replicas) == (h.min_replicas, h.max_replicas)
                same_cost = (round(b.monthly_min, 2), round(b.monthly_max, 2)) == (
                    round(h.monthly_min, 2),
                    round(h.monthly_max, 2),
                )
                if same_replicas and same_cost:
                    continue
                lines.append(
                    f"~ model {name} replicas {b.min_replicas}-{b.max_replicas} -> "
                    f"{h.min_replicas}-{h.max_replicas}: min {money(b.monthly_min)} -> "
                    f"{money(h.monthly_min)} ({delta(b.monthly_min, h.monthly_min)}), max "
                    f"{money(b.monthly_max)} -> {money(h.monthly_max)} "
                    f"({delta(b.monthly_max, h.monthly_max)})"
                )
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "modelCostChanges": self.model_cost_changes(),
            "base": {
                "ref": self.base_ref,
                "error": self.base_error,
                "note": self.base_note,
                "resources": self.base_resources,
                "cost": self.cost_base.to_json() if self.cost_base else None,
            },
            "head": {
                "ref": self.head_ref,
                "error": self.head_error,
                "note": self.head_note,
                "resources": self.head_resources,
                "cost": self.cost_head.to_json() if self.cost_head else None,
            },
            "counts": self.counts(),
            "hazards": list(self.hazards),
            "changes": [c.to_json() for c in self.changes],
        }


# --------------------------------------------------------------------------- value diff


def _key_path(path: str, key: str) -> str:
    if key.replace("_", "a").isalnum() and not key[:1].isdigit():
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _json_document(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict | list) else None
    return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def diff_values(old: Any, new: Any, path: str = "") -> list[PropertyChange]:
    """Every difference between two JSON values, at nested paths."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        changes: list[PropertyChange] = []
        for key in sorted(set(old) | set(new), key=str):
            sub = _key_path(path, str(key))
            if key not in new:
                changes.append(PropertyChange(sub, "remove", old=old[key]))
            elif key not in old:
                changes.append(PropertyChange(sub, "add", new=new[key]))
            else:
                changes += diff_values(old[key], new[key], sub)
        return changes
    if isinstance(old, list) and isinstance(new, list):
        return _diff_lists(old, new, path)
    if old == new:
        return []
    old_doc, new_doc = _json_document(old), _json_document(new)
    if old_doc is not None and new_doc is not None:
        return diff_values(old_doc, new_doc, f"{path}{{json}}")
    return [PropertyChange(path, "change", old=old, new=new)]


def _diff_lists(old: list[Any], new: list[Any], path: str) -> list[PropertyChange]:
    matcher = difflib.SequenceMatcher(
        a=[_canonical(v) for v in old], b=[_canonical(v) for v in new], autojunk=False
    )
    changes: list[PropertyChange] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(paired):
            changes += diff_values(old[i1 + k], new[j1 + k], f"{path}[{j1 + k}]")
        for i in range(i1 + paired, i2):
            changes.append(PropertyChange(f"{path}[{i}]", "remove", old=old[i]))
        for j in range(j1 + paired, j2):
            changes.append(PropertyChange(f"{path}[{j}]", "add", new=new[j]))
    return changes


def _option_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[PropertyChange]:
    changes: list[PropertyChange] = []
    for key, default in _OPTIONS:
        before, after = old.get(key, default), new.get(key, default)
        if before != after:
            changes.append(PropertyChange(f"opts.{key}", "change", old=before, new=after))
    return changes


# --------------------------------------------------------------------------- graph diff


def _resources(plan: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    return {str(r["urn"]): r for r in (plan or {}).get("resources", [])}


def _count(plan: Mapping[str, Any] | None) -> int | None:
    if plan is None:
        return None
    return sum(1 for r in plan.get("resources", []) if r.get("custom", True))


def _cost_or_error(plan: Mapping[str, Any] | None) -> tuple[CostEstimate | None, str | None]:
    """The estimate of a plan, or why there is none (a region without prices: ``mlstack
    cost`` fails on it; the diff still shows the changes and says why cost is missing)."""
    if plan is None or not plan.get("region"):
        return None, None
    try:
        return estimate(graph_from_plan(plan)), None
    except UnpricedRegionError as exc:
        return None, str(exc)


def _whole(raw: Mapping[str, Any], component: str, action: Action) -> ResourceChange:
    """A created or deleted resource, with all its inputs."""
    return ResourceChange(
        str(raw["urn"]),
        str(raw["type"]),
        str(raw["name"]),
        component,
        action,
        inputs=raw.get("inputs") or {},
        custom=bool(raw.get("custom", True)),
    )


def diff_graphs(base: dict[str, Any], head: dict[str, Any]) -> StackDiff:
    """Compare two plan JSON documents of the same stack."""
    old, new = _resources(base), _resources(head)
    old_components = component_names(list(old.values()))
    new_components = component_names(list(new.values()))
    # As the engine: by URN, then by the new resource's aliases (traffic_hazards.matches).
    previous = traffic_hazards.matches(base, head)
    renamed = set(previous.values()) - set(new)
    changes: list[ResourceChange] = []
    for urn in sorted(set(old) | set(new)):
        if urn in renamed:
            continue
        if urn not in previous and urn in new:
            changes.append(_whole(new[urn], new_components[urn], "create"))
            continue
        if urn not in new:
            changes.append(_whole(old[urn], old_components[urn], "delete"))
            continue
        before, after = old[previous[urn]], new[urn]
        props = diff_values(before.get("inputs") or {}, after.get("inputs") or {})
        props = [
            PropertyChange(c.path, c.kind, c.old, c.new, forces_replacement(after["type"], c.path))
            for c in props
        ]
        props += _option_changes(before, after)
        if props:
            action: Action = "replace" if any(c.replaces for c in props) else "update"
            changes.append(
                ResourceChange(
                    urn,
                    after["type"],
                    after["name"],
                    new_components[urn],
                    action,
                    tuple(props),
                    custom=bool(after.get("custom", True)),
                )
            )
    stack = str(head.get("stack") or base.get("stack") or "")
    (cost_base, base_error), (cost_head, head_error) = _cost_or_error(base), _cost_or_error(head)
    return StackDiff(
        stack=stack,
        changes=changes,
        hazards=[h.render() for h in traffic_hazards.check_traffic(base, head)],
        base_resources=_count(base),
        head_resources=_count(head),
        cost_base=cost_base,
        cost_head=cost_head,
        cost_error=head_error or base_error,
    )


def diff_outcomes(
    stack: str,
    base: gitrefs.PlanOutcome,
    head: gitrefs.PlanOutcome,
    base_ref: str | None,
    head_ref: str | None,
) -> StackDiff:
    """A :class:`StackDiff` from two plan outcomes; a failed side is reported, the other shown."""
    if base.plan is not None and head.plan is not None:
        result = diff_graphs(base.plan, head.plan)
        result.stack = stack
    else:
        (cost_base, base_error) = _cost_or_error(base.plan)
        (cost_head, head_error) = _cost_or_error(head.plan)
        result = StackDiff(
            stack=stack,
            base_resources=_count(base.plan),
            head_resources=_count(head.plan),
            cost_base=cost_base,
            cost_head=cost_head,
            cost_error=head_error or base_error,
        )
    result.base_ref, result.head_ref = base_ref, head_ref
    result.base_error, result.head_error = base.error, head.error
    result.base_note, result.head_note = base.note, head.note
    return result


def _require_known_stacks(
    stacks: Sequence[str], root: Path, base_sha: str, head_sha: str | None
) -> None:
    """A stack must have a stack file on at least one side (a typo has none)."""

    def known(stack: str) -> bool:
        if head_sha is None and (root / f"Pulumi.{stack}.yaml").is_file():
            return True
        return any(gitrefs.stack_exists_at(root, sha, stack) for sha in (base_sha, head_sha) if sha)

    unknown = [s for s in stacks if not known(s)]
    if unknown:
        here = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))
        raise UsageError(
            f"unknown stack(s) {', '.join(unknown)}: no Pulumi.<stack>.yaml at the base or "
            f"the head; stacks here: {', '.join(here) or 'none'}"
        )


def diff_revisions(
    stacks: list[str], base_ref: str, head_ref: str | None, root: Path
) -> list[StackDiff]:
    """Diff ``stacks`` between ``base_ref`` and ``head_ref`` (None: the working tree).

    Each revision is synthesized with its own code in a temporary worktree; the
    working tree is synthesized in this process when ``root`` is the project whose
    code is running, else in a subprocess (and the base too, in this process, when
    only stack files changed since). Raises :class:`gitrefs.GitError` for a ref git
    cannot resolve.
    """
    root = root.resolve()
    base_sha = gitrefs.resolve_ref(root, base_ref)
    head_sha = gitrefs.resolve_ref(root, head_ref) if head_ref is not None else None
    _require_known_stacks(stacks, root, base_sha, head_sha)
    if head_sha is None and gitrefs.same_code_as(root, base_sha):
        base_plans = gitrefs.stack_file_plans(root, base_sha, stacks)
        head_plans = gitrefs.plans_in_process(root, stacks)
    else:
        with ThreadPoolExecutor(max_workers=2) as pool:
            base_job = pool.submit(gitrefs.plans_at, root, base_sha, stacks)
            if head_sha is None:
                head_plans = gitrefs.plans_in_process(root, stacks)
            else:
                head_plans = pool.submit(gitrefs.plans_at, root, head_sha, stacks).result()[1]
            base_plans = base_job.result()[1]
    base_label = f"{base_ref} ({gitrefs.short(base_sha)})"
    head_label = f"{head_ref} ({gitrefs.short(head_sha)})" if head_sha else WORKING_TREE
    return [diff_outcomes(s, base_plans[s], head_plans[s], base_label, head_label) for s in stacks]


# --------------------------------------------------------------------------- rendering


def show(value: Any, limit: int | None = None) -> str:
    """A value as compact JSON (``limit``: abbreviate longer text, markdown only)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    if limit is not None and len(text) > limit:
        return f"{text[:limit]}... ({len(text)} chars)"
    return text


def _change_lines(change: ResourceChange, limit: int | None = None) -> list[tuple[str, str]]:
    """(marker, text) lines for a resource: marker one of + - ~ for colouring."""
    lines: list[tuple[str, str]] = []
    if change.action in ("create", "delete"):
        mark = "+" if change.action == "create" else "-"
        for key in sorted(change.inputs):
            lines.append((mark, f"{key}: {show(change.inputs[key], limit)}"))
        return lines
    for prop in change.changes:
        flag = "  # forces replacement" if prop.replaces else ""
        if prop.kind == "add":
            lines.append(("+", f"{prop.path}: {show(prop.new, limit)}{flag}"))
        elif prop.kind == "remove":
            lines.append(("-", f"{prop.path}: {show(prop.old, limit)}{flag}"))
        else:
            lines.append(("-", f"{prop.path}: {show(prop.old, limit)}"))
            lines.append(("+", f"{prop.path}: {show(prop.new, limit)}{flag}"))
    return lines


_ANSI = {"+": "\033[32m", "-": "\033[31m", "~": "\033[33m", "±": "\033[35m", "bold": "\033[1m"}
_RESET = "\033[0m"


def _paint(text: str, key: str, color: bool) -> str:
    return f"{_ANSI[key]}{text}{_RESET}" if color else text


def _sides(d: StackDiff) -> str:
    return f"{d.base_ref or 'base'} -> {d.head_ref or 'head'}"


def render_text(diffs: Sequence[StackDiff], color: bool) -> str:
    """Terminal output: per stack, per component, every changed property."""
    out: list[str] = []
    for d in diffs:
        out.append(_paint(f"stack {d.stack}: {d.summary()}  ({_sides(d)})", "bold", color))
        cost = d.cost_summary()
        if cost:
            out.append(f"  cost: {cost}")
        out += [f"    {line}" for line in d.model_cost_changes()]
        for side, error, note in (
            ("base", d.base_error, d.base_note),
            ("head", d.head_error, d.head_note),
        ):
            if error:
                out.append(_paint(f"  {side} failed: ", "-", color) + error.replace("\n", "\n    "))
            if note:
                out.append(f"  {side}: {note}")
        for hazard in d.hazards:
            out.append(_paint(f"  refused: {hazard}", "-", color))
        if not d.ok:
            counts = f"base {d.base_resources}, head {d.head_resources}"
            out.append(f"  resources: {counts.replace('None', 'n/a')}")
        for component, changes in d.by_component().items():
            out.append(f"  {component}")
            for change in changes:
                symbol = SYMBOL[change.action]
                title = f"{symbol} {change.type} {change.name} ({change.action})"
                out.append("    " + _paint(title, symbol, color))
                for mark, text in _change_lines(change):
                    out.append("        " + _paint(f"{mark} {text}", mark, color))
        out.append("")
    return "\n".join(out)


def render_json(diffs: Sequence[StackDiff]) -> str:
    """Everything, untruncated (the artifact CI keeps next to the Markdown comment)."""
    return json.dumps({"stacks": [d.to_json() for d in diffs]}, indent=2, sort_keys=False) + "\n"


_VALUE_LIMIT_MD = 1000


def _md_block(change: ResourceChange) -> str:
    symbol = SYMBOL[change.action]
    lines = [f"**{symbol} {change.action}** `{change.type}` **{change.name}**"]
    body = _change_lines(change, _VALUE_LIMIT_MD)
    if body:
        fence = "```"
        lines.append(f"{fence}diff")
        lines += [f"{mark} {text}".replace(fence, "'''") for mark, text in body]
        lines.append(fence)
    return "\n".join(lines) + "\n"


def _md_summary_table(diffs: Sequence[StackDiff]) -> list[str]:
    lines = [
        "| stack | create | update | replace | delete | cost/month (base -> head) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for d in diffs:
        c = d.counts()
        if d.ok:
            cells = f"{c['create']} | {c['update']} | {c['replace']} | {c['delete']}"
        else:
            side = "base" if d.base_error else "head"
            cells = f"{side} failed | | |"
        lines.append(f"| `{d.stack}` | {cells} | {d.cost_summary() or 'n/a'} |")
    return lines


def _md_stack_header(d: StackDiff) -> str:
    lines = [f"### `{d.stack}`: {d.summary()}", "", f"{_sides(d)}"]
    cost = d.cost_summary()
    if cost:
        lines.append(f"Cost: {cost}.")
    models = d.model_cost_changes()
    if models:
        lines += ["", "Models:", *[f"- `{line}`" for line in models]]
    for side, error, note in (
        ("base", d.base_error, d.base_note),
        ("head", d.head_error, d.head_note),
    ):
        if error:
            lines += ["", f"**{side} failed to synthesize**:", "```", error.strip(), "```"]
        if note:
            lines.append(f"{side}: {note}.")
    if d.hazards:
        lines += ["", "**Refused** (one update cannot apply this safely):"]
        lines += [f"- {hazard}" for hazard in d.hazards]
    if not d.ok:
        lines.append(
            f"Resources: base {d.base_resources if d.base_resources is not None else 'n/a'}, "
            f"head {d.head_resources if d.head_resources is not None else 'n/a'}."
        )
    return "\n".join(lines) + "\n"


def _md_component(component: str, shown: list[ResourceChange], total: list[ResourceChange]) -> str:
    counts = Counter(c.action for c in total)
    summary = ", ".join(f"{counts[a]} {a}" for a in ACTIONS if counts[a])
    hidden = len(total) - len(shown)
    parts = [f"<details><summary><b>{component}</b>: {summary}</summary>", ""]
    parts += [_md_block(c) for c in shown]
    if hidden:
        parts.append(
            f"_{hidden} more resource change(s) in {component} not shown (size limit); "
            "see `mlstack diff --format json`._\n"
        )
    parts.append("</details>\n")
    return "\n".join(parts)


def _render_md(diffs: Sequence[StackDiff], shown: set[tuple[int, str]], title: str) -> str:
    parts = [title, "", *_md_summary_table(diffs), ""]
    for index, d in enumerate(diffs):
        parts.append(_md_stack_header(d))
        for component, changes in d.by_component().items():
            visible = [c for c in changes if (index, c.urn) in shown]
            parts.append(_md_component(component, visible, changes))
    return "\n".join(parts)


def render_markdown(
    diffs: Sequence[StackDiff], max_chars: int = 60000, title: str = "## mlstack diff"
) -> str:
    """A PR comment no longer than ``max_chars``.

    The summary table, each stack's header and every component's summary always
    appear; resource blocks are added biggest-first (replacements, deletions,
    creations, then updates, each by size) while they fit, never cut in the
    middle; the rest are counted per component.
    """
    order = sorted(
        ((i, c) for i, d in enumerate(diffs) for c in d.changes),
        key=lambda ic: (_PRIORITY[ic[1].action], -ic[1].weight, ic[1].urn),
    )
    shown: set[tuple[int, str]] = set()
    skeleton = _render_md(diffs, shown, title)
    if len(skeleton) > max_chars:
        cut = skeleton[: max(0, max_chars - 200)].rsplit("\n", 1)[0]
        note = f"\n\n_Output truncated: the summary alone exceeds {max_chars} characters._\n"
        return cut + note
    budget = max_chars - len(skeleton)
    for index, change in order:
        size = len(_md_block(change)) + 1
        if size <= budget:
            shown.add((index, change.urn))
            budget -= size
    text = _render_md(diffs, shown, title)
    while len(text) > max_chars and shown:
        # Estimate was short (hidden-count notes): drop the smallest shown block.
        smallest = min(
            shown,
            key=lambda key: len(
                _md_block(next(c for c in diffs[key[0]].changes if c.urn == key[1]))
            ),
        )
        shown.discard(smallest)
        text = _render_md(diffs, shown, title)
    return text


def diffs_ok(diffs: Iterable[StackDiff]) -> bool:
    return all(d.ok for d in diffs)
