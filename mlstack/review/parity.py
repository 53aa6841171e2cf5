"""``mlstack parity dev prod``: same shape, differences only in declared environment knobs.

Two checks:

* **shape**, on the synthesized graphs: the same component tree (component type
  and name, without the stack) and, under every component, the same set of
  resource types. Counts may differ (three NAT gateways in prod, one in dev),
  kinds may not.
* **config**, on the validated ``StackConfig`` models, walked field by field: a
  leaf whose values differ is allowed only when its field is a knob
  (``stacks.schema.base.knob``, ``x-env-knob`` in the JSON Schema). For a nested
  model the markers of its own fields decide (a knob on a section does not
  free everything below it). Lists of models are matched by ``name`` when their
  items have one, else by position; a different set of items is a difference of
  the list field itself.

``build()`` is a pure function of the config, so resource value differences all
follow from config differences and are not compared again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from mlstack.synth import ResourceGraph
from stacks.schema.base import ENV_KNOB_KEY

Kind = Literal["component", "resource-type", "config"]
ROOT_PATH = "mlstack:"
TOP_LEVEL = "(stack)"


@dataclass(frozen=True)
class ParityFinding:
    """One difference between the two stacks; ``allowed`` for knob differences."""

    kind: Kind
    path: str
    left: Any
    right: Any
    allowed: bool
    message: str = ""


@dataclass
class ParityReport:
    left: str
    right: str
    findings: list[ParityFinding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Stacks that could not be loaded or synthesized (parity then fails)."""

    @property
    def violations(self) -> list[ParityFinding]:
        return [f for f in self.findings if not f.allowed]

    @property
    def knob_differences(self) -> list[ParityFinding]:
        return [f for f in self.findings if f.allowed]

    @property
    def ok(self) -> bool:
        return not self.violations and not self.errors

    def summary(self) -> str:
        if self.errors:
            return f"could not compare: {'; '.join(e.splitlines()[0] for e in self.errors)}"
        return (
            f"{len(self.violations)} violation(s), "
            f"{len(self.knob_differences)} allowed knob difference(s)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "left": self.left,
            "right": self.right,
            "ok": self.ok,
            "errors": self.errors,
            "findings": [
                {
                    "kind": f.kind,
                    "path": f.path,
                    "left": _plain(f.left),
                    "right": _plain(f.right),
                    "allowed": f.allowed,
                    "message": f.message,
                }
                for f in self.findings
            ],
        }


# --------------------------------------------------------------------------- config


def is_knob(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, Mapping) and bool(extra.get(ENV_KNOB_KEY))


def _join(path: str, key: str) -> str:
    return f"{path}{key}" if path.endswith(":") else f"{path}.{key}"


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "[secret]"
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _keyed(items: Sequence[BaseModel]) -> dict[str, BaseModel] | None:
    names = [getattr(item, "name", None) for item in items]
    if all(isinstance(n, str) for n in names) and len(set(names)) == len(names):
        return {str(n): item for n, item in zip(names, items, strict=True)}
    return None


def _compare_models(
    left: list[BaseModel], right: list[BaseModel], path: str, knob: bool
) -> list[ParityFinding]:
    left_keyed, right_keyed = _keyed(left), _keyed(right)
    found: list[ParityFinding] = []
    if left_keyed is not None and right_keyed is not None:
        if set(left_keyed) != set(right_keyed):
            message = "items differ: " + ", ".join(
                f"{n} only in {'left' if n in left_keyed else 'right'}"
                for n in sorted(set(left_keyed) ^ set(right_keyed))
            )
            return [
                ParityFinding(
                    "config", path, sorted(left_keyed), sorted(right_keyed), knob, message
                )
            ]
        for name, item in left_keyed.items():
            found += _compare_value(item, right_keyed[name], f"{path}[name={name}]", knob)
        return found
    if len(left) != len(right):
        return [
            ParityFinding("config", path, left, right, knob, f"{len(left)} vs {len(right)} items")
        ]
    for index, (a, b) in enumerate(zip(left, right, strict=True)):
        found += _compare_value(a, b, f"{path}[{index}]", knob)
    return found


def _compare_value(left: Any, right: Any, path: str, knob: bool) -> list[ParityFinding]:
    if left == right:
        return []
    if isinstance(left, BaseModel) and isinstance(right, BaseModel) and type(left) is type(right):
        return compare_configs(left, right, path)
    if isinstance(left, list) and isinstance(right, list):
        items: list[Any] = [*left, *right]
        if items and all(isinstance(v, BaseModel) for v in items):
            return _compare_models(list(left), list(right), path, knob)
    message = "environment knob" if knob else "fixed field differs (not a knob)"
    return [ParityFinding("config", path, left, right, knob, message)]


def compare_configs(
    left: BaseModel, right: BaseModel, path: str = ROOT_PATH
) -> list[ParityFinding]:
    """Every config leaf that differs, flagged allowed when its field is a knob."""
    found: list[ParityFinding] = []
    for name, info in type(left).model_fields.items():
        key = info.alias or name
        found += _compare_value(
            getattr(left, name), getattr(right, name), _join(path, key), is_knob(info)
        )
    return found


# --------------------------------------------------------------------------- shape


def _logical(urn: str | None) -> str:
    """A URN without its stack: ``<qualified type>::<name>`` (top level for None/stack)."""
    if not urn:
        return TOP_LEVEL
    parts = urn.split("::")
    if len(parts) < 4 or parts[2].endswith("pulumi:pulumi:Stack"):
        return TOP_LEVEL
    return f"{parts[2]}::{parts[3]}"


def _shape(graph: ResourceGraph) -> tuple[set[str], dict[str, set[str]]]:
    urns = {n.urn for n in graph.resources}
    components = {_logical(n.urn) for n in graph.resources if not n.custom}
    types: dict[str, set[str]] = {}
    for node in graph.resources:
        if not node.custom:
            continue
        parent = node.parent if node.parent in urns else None
        types.setdefault(_logical(parent), set()).add(node.type)
    return components, types


def compare_shapes(left: ResourceGraph, right: ResourceGraph) -> list[ParityFinding]:
    """Component tree and resource types per component that differ (always violations)."""
    left_components, left_types = _shape(left)
    right_components, right_types = _shape(right)
    found: list[ParityFinding] = []
    for component in sorted(left_components ^ right_components):
        present_left = component in left_components
        found.append(
            ParityFinding(
                "component",
                component,
                "present" if present_left else "missing",
                "missing" if present_left else "present",
                False,
                f"component only in {left.stack if present_left else right.stack}",
            )
        )
    for parent in sorted(set(left_types) | set(right_types)):
        if parent not in left_components | right_components and parent != TOP_LEVEL:
            continue
        if parent in left_components ^ right_components:
            continue  # already reported as a missing component
        a, b = left_types.get(parent, set()), right_types.get(parent, set())
        for type_token in sorted(a ^ b):
            found.append(
                ParityFinding(
                    "resource-type",
                    f"{parent} > {type_token}",
                    "present" if type_token in a else "missing",
                    "present" if type_token in b else "missing",
                    False,
                    f"resource type only in {left.stack if type_token in a else right.stack}",
                )
            )
    return found


def compare(
    left_name: str,
    right_name: str,
    *,
    left_config: BaseModel,
    right_config: BaseModel,
    left_graph: ResourceGraph,
    right_graph: ResourceGraph,
) -> ParityReport:
    """Parity of two loaded and synthesized stacks."""
    report = ParityReport(left_name, right_name)
    report.findings += compare_shapes(left_graph, right_graph)
    report.findings += compare_configs(left_config, right_config)
    return report


def check_parity(left: str, right: str, root: Any) -> ParityReport:
    """Load, validate and synthesize both stacks under ``root``, then compare them."""
    from mlstack.synth import synth_config
    from stacks.config import ConfigError, load_config_file

    report = ParityReport(left, right)
    loaded: dict[str, tuple[BaseModel, ResourceGraph]] = {}
    for stack in (left, right):
        try:
            config = load_config_file(stack, root)
            loaded[stack] = (config, synth_config(config, stack))
        except ConfigError as exc:
            report.errors.append(f"{stack}: {exc}")
        except Exception as exc:
            report.errors.append(f"{stack}: {type(exc).__name__}: {exc}")
    if report.errors:
        return report
    (lc, lg), (rc, rg) = loaded[left], loaded[right]
    return compare(left, right, left_config=lc, right_config=rc, left_graph=lg, right_graph=rg)


# --------------------------------------------------------------------------- rendering


def _cell(value: Any, limit: int = 60) -> str:
    text = json.dumps(_plain(value), sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_text(report: ParityReport, show_knobs: bool = True) -> str:
    lines = [f"parity {report.left} vs {report.right}: {report.summary()}"]
    lines += [f"  error: {e}" for e in report.errors]
    rows = [
        ("status", "kind", "path", report.left, report.right),
        *[
            (
                "VIOLATION" if not f.allowed else "knob",
                f.kind,
                f.path,
                _cell(f.left),
                _cell(f.right),
            )
            for f in sorted(report.findings, key=lambda f: (f.allowed, f.kind, f.path))
            if show_knobs or not f.allowed
        ],
    ]
    if len(rows) > 1:
        widths = _fit_widths(rows, TEXT_WIDTH)
        clipped = any(len(c) > w for row in rows for c, w in zip(row, widths, strict=True))
        for row in rows:
            cells = [
                _clip(c, w, middle=i == 2) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append(
                "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
            )
        if clipped:
            lines.append(f"  (shortened to {TEXT_WIDTH} columns; --format json shows every value)")
    return "\n".join(lines) + "\n"


TEXT_WIDTH = 100
"""The text table fits a 100-column terminal; long paths and values are shortened."""


def _fit_widths(rows: list[tuple[str, ...]], total: int) -> list[int]:
    """Column widths (status, kind, path, left, right) whose row fits ``total`` columns."""
    natural = [max(len(r[i]) for r in rows) for i in range(5)]
    room = total - 2 - 2 * 4 - natural[0] - natural[1]
    values = max(natural[3], natural[4])
    path = min(natural[2], max(room - 2 * min(values, 16), room // 2))
    value = max(4, (room - path) // 2)
    return [natural[0], natural[1], path, min(natural[3], value), min(natural[4], value)]


def _clip(text: str, width: int, *, middle: bool = False) -> str:
    """``text`` shortened to ``width`` with ``...`` (in the middle for key paths, whose
    end names the field)."""
    if len(text) <= width:
        return text
    if middle:
        head = (width - 3) // 3
        return text[:head] + "..." + text[len(text) - (width - 3 - head) :]
    return text[: width - 3] + "..."


def render_markdown(report: ParityReport) -> str:
    icon = "✅" if report.ok else "❌"
    lines = [f"{icon} **{report.left}** vs **{report.right}**: {report.summary()}", ""]
    for error in report.errors:
        lines += ["```", error, "```"]
    if report.violations:
        lines += [
            f"| kind | path | {report.left} | {report.right} | why |",
            "|---|---|---|---|---|",
        ]
        for f in report.violations:
            lines.append(
                f"| {f.kind} | `{f.path}` | `{_cell(f.left)}` | `{_cell(f.right)}` | {f.message} |"
            )
        lines.append("")
    knobs = report.knob_differences
    if knobs:
        lines.append(
            f"<details><summary>{len(knobs)} allowed knob difference(s)</summary>\n\n"
            f"| path | {report.left} | {report.right} |\n|---|---|---|"
        )
        for f in knobs:
            lines.append(f"| `{f.path}` | `{_cell(f.left)}` | `{_cell(f.right)}` |")
        lines.append("\n</details>\n")
    return "\n".join(lines) + "\n"
