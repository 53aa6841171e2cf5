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

**Promotion semantics** (``mlstack:models`` and ``mlstack:gpuPools``, when exactly one
of the two stacks is ``environment: prod``; the other is the *lower* stage):

* an item (model or pool) only in the lower stack is a **pending promotion**:
  listed, not a violation (try it in dev first, then promote);
* an item only in prod is a violation unless the prod entry carries
  ``hotfix: <reason>``;
* a model whose ``artifactVersion`` differs: the lower stack's version is a pending
  promotion, *provided* prod's version is one the lower stack ran (evidence:
  a passed bake record of the lower stack whose commit pins it, when a bake ledger
  is reachable; else any commit of the lower stack file in git history pins it).
  Without a ledger (offline: "never baked" cannot be known) a lower-stage version
  that is *newer* in the same version scheme (natural order: ``2025-06-02`` after
  ``2025-05-12``, ``v10`` after ``v9``) is also a pending promotion, marked
  unverified. Otherwise prod runs a version the lower stack never ran: a violation
  unless the prod entry carries ``hotfix: <reason>``.

Matched items (by ``name``) are always compared field by field, whatever else
differs (a changed fixed field of a shared model is reported even when the model
lists differ).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from mlstack.synth import ResourceGraph
from stacks.schema.base import ENV_KNOB_KEY

Kind = Literal["component", "resource-type", "config", "promotion", "hotfix"]
PROMOTABLE = ("mlstack:models", "mlstack:gpuPools")
"""Root list fields compared with the promotion semantics (module docstring)."""
VERSION_FIELD = "artifact_version"
HOTFIX_FIELD = "hotfix"
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
        return [f for f in self.findings if f.allowed and f.kind == "config"]

    @property
    def pending_promotions(self) -> list[ParityFinding]:
        return [f for f in self.findings if f.kind == "promotion"]

    @property
    def hotfixes(self) -> list[ParityFinding]:
        return [f for f in self.findings if f.kind == "hotfix"]

    @property
    def ok(self) -> bool:
        return not self.violations and not self.errors

    def summary(self) -> str:
        if self.errors:
            return f"could not compare: {'; '.join(e.splitlines()[0] for e in self.errors)}"
        text = (
            f"{len(self.violations)} violation(s), "
            f"{len(self.knob_differences)} allowed knob difference(s)"
        )
        if self.pending_promotions:
            text += f", {len(self.pending_promotions)} pending promotion(s)"
        if self.hotfixes:
            text += f", {len(self.hotfixes)} hotfix(es)"
        return text

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
            found.append(
                ParityFinding(
                    "config", path, sorted(left_keyed), sorted(right_keyed), knob, message
                )
            )
        # Items both sides have are compared field by field whatever else differs.
        for name, item in left_keyed.items():
            if name in right_keyed:
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


COMPONENT_OF: Mapping[str, str] = {
    "mlstack:models": "mlstack:serving:InferenceService::model-{}",
    "mlstack:gpuPools": "mlstack:compute:GpuNodePool::gpu-{}",
}
"""The component a model / GPU pool entry becomes (exempt from the shape check when the
entry is on one side only: the config comparison judges it)."""


def compare_shapes(
    left: ResourceGraph, right: ResourceGraph, exempt: frozenset[str] = frozenset()
) -> list[ParityFinding]:
    """Component tree and resource types per component that differ (always violations),
    except the components in ``exempt`` and everything under them."""
    left_components, left_types = _shape(left)
    right_components, right_types = _shape(right)
    found: list[ParityFinding] = []
    for component in sorted((left_components ^ right_components) - exempt):
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
            continue  # already reported as a missing component (or exempt)
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


# --------------------------------------------------------------------------- promotions


class Evidence(Protocol):
    """Which artifact versions the lower stack ran (see module docstring)."""

    @property
    def source(self) -> str: ...

    def ran(self, model: str, version: str) -> bool: ...


@dataclass(frozen=True)
class PinnedVersions:
    """(model, version) pairs the lower stack ran, and where that was learnt.
    ``baked``: the pairs come from passed bakes (strong evidence), not from git."""

    pairs: frozenset[tuple[str, str]]
    source: str
    baked: bool = False

    def ran(self, model: str, version: str) -> bool:
        return (model, version) in self.pairs


def _models_in(text: str) -> set[tuple[str, str]]:
    import yaml

    from stacks.stack_yaml import load_stack_yaml

    try:
        document = load_stack_yaml(text) or {}
    except yaml.YAMLError:
        return set()
    models = ((document.get("config") or {}) if isinstance(document, dict) else {}).get(
        "mlstack:models"
    )
    found: set[tuple[str, str]] = set()
    for entry in models if isinstance(models, list) else []:
        if isinstance(entry, dict) and entry.get("name") and entry.get("artifactVersion"):
            found.add((str(entry["name"]), str(entry["artifactVersion"])))
    return found


def _stack_file_at(root: Path, commit: str, stack: str) -> str | None:
    import subprocess

    done = subprocess.run(
        ["git", "show", f"{commit}:Pulumi.{stack}.yaml"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 else None


GIT_HISTORY_LIMIT = 500


def evidence_from_git(root: Path, stack: str) -> PinnedVersions:
    """Every version any commit of ``Pulumi.<stack>.yaml`` pinned (and the working tree)."""
    import subprocess

    done = subprocess.run(
        ["git", "log", f"-{GIT_HISTORY_LIMIT}", "--format=%H", "--", f"Pulumi.{stack}.yaml"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    pairs: set[tuple[str, str]] = set()
    for commit in done.stdout.split() if done.returncode == 0 else []:
        text = _stack_file_at(root, commit, stack)
        pairs |= _models_in(text) if text else set()
    current = root / f"Pulumi.{stack}.yaml"
    if current.is_file():
        pairs |= _models_in(current.read_text(encoding="utf-8"))
    return PinnedVersions(frozenset(pairs), f"git history of Pulumi.{stack}.yaml")


def evidence_from_ledger(root: Path, stack: str, ledger: Any) -> PinnedVersions:
    """Versions pinned by commits of ``stack``'s updates whose bake passed (and that no
    record of the same update failed)."""
    records = ledger.records(stack)
    failed = {(r.version, r.commit) for r in records if r.verdict == "failed"}
    commits = {
        r.commit
        for r in records
        if r.verdict == "passed" and r.commit and (r.version, r.commit) not in failed
    }
    pairs: set[tuple[str, str]] = set()
    for commit in sorted(commits):
        text = _stack_file_at(root, commit, stack)
        pairs |= _models_in(text) if text else set()
    return PinnedVersions(
        frozenset(pairs), f"passed bakes of stack {stack} ({ledger.url})", baked=True
    )


def evidence_for(root: Path, stack: str) -> PinnedVersions:
    """From the bake ledger when one is configured and readable, else from git."""
    from mlstack.delivery.verdicts import default_ledger
    from mlstack.errors import MlstackError

    ledger = default_ledger("mlstack")
    if ledger is not None:
        try:
            return evidence_from_ledger(root, stack, ledger)
        except MlstackError:
            pass
    return evidence_from_git(root, stack)


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order of artifact versions (``2025-06-02`` > ``2025-05-12``, ``v10`` > ``v9``)."""
    import re

    return tuple(
        (0, int(part)) if part.isdigit() else (1, part)
        for part in re.findall(r"\d+|[A-Za-z]+", version)
    )


def _newer(a: str, b: str) -> bool:
    """Whether ``a`` sorts after ``b`` when both have the same form (else False)."""
    ka, kb = version_key(a), version_key(b)
    same_form = len(ka) == len(kb) and all(x[0] == y[0] for x, y in zip(ka, kb, strict=True))
    same_words = all(x == y for x, y in zip(ka, kb, strict=True) if x[0] == 1)
    return same_form and same_words and ka > kb


def _stage(left: BaseModel, right: BaseModel) -> tuple[str, str] | None:
    """("left"|"right" lower, the other) when exactly one side is prod."""
    environments = (getattr(left, "environment", None), getattr(right, "environment", None))
    if environments.count("prod") != 1:
        return None
    return ("right", "left") if environments[0] == "prod" else ("left", "right")


def _named(items: Any) -> dict[str, BaseModel]:
    return {str(getattr(i, "name", "")): i for i in items or []}


def _kind_of(path: str) -> str:
    return "model" if path == "mlstack:models" else "GPU pool"


def compare_promotable(
    path: str,
    left_items: Sequence[BaseModel],
    right_items: Sequence[BaseModel],
    *,
    lower: str,
    names: tuple[str, str],
    evidence: Evidence | None,
) -> list[ParityFinding]:
    """Models or GPU pools with the promotion semantics (module docstring)."""
    sides = {"left": _named(left_items), "right": _named(right_items)}
    higher = "right" if lower == "left" else "left"
    low, high = sides[lower], sides[higher]
    low_name, high_name = (names[0], names[1]) if lower == "left" else (names[1], names[0])
    what = _kind_of(path)
    found: list[ParityFinding] = []

    def finding(  # noqa: PLR0917 (one call per finding shape)
        kind: Kind, where: str, allowed: bool, message: str, lv: Any, hv: Any
    ) -> None:
        left_value, right_value = (lv, hv) if lower == "left" else (hv, lv)
        found.append(ParityFinding(kind, where, left_value, right_value, allowed, message))

    for name in sorted(set(low) - set(high)):
        finding(
            "promotion",
            f"{path}[name={name}]",
            True,
            f"pending promotion: {what} {name} is in {low_name} only",
            "present",
            "missing",
        )
    for name in sorted(set(high) - set(low)):
        reason = getattr(high[name], HOTFIX_FIELD, None)
        if reason:
            finding(
                "hotfix",
                f"{path}[name={name}]",
                True,
                f"{what} {name} runs in {high_name} only: hotfix: {reason}",
                "missing",
                "present",
            )
        else:
            finding(
                "config",
                f"{path}[name={name}]",
                False,
                f"{what} {name} is in {high_name} but not in {low_name}: add it to "
                f"{low_name} first (then promote), or give the {high_name} entry "
                "`hotfix: <reason>`",
                "missing",
                "present",
            )
    for name in sorted(set(low) & set(high)):
        item_path = f"{path}[name={name}]"
        a, b = sides["left"][name], sides["right"][name]
        for f in compare_configs(a, b, item_path):
            if f.path != f"{item_path}.artifactVersion":
                found.append(f)
                continue
            low_version = str(getattr(low[name], VERSION_FIELD))
            high_version = str(getattr(high[name], VERSION_FIELD))
            reason = getattr(high[name], HOTFIX_FIELD, None)
            if evidence is not None and evidence.ran(name, high_version):
                finding(
                    "promotion",
                    f.path,
                    True,
                    f"pending promotion: {name} {low_version} (in {low_name}; {high_name} runs "
                    f"{high_version}, which {low_name} ran: {evidence.source})",
                    low_version,
                    high_version,
                )
            elif not getattr(evidence, "baked", False) and _newer(low_version, high_version):
                # Offline (no bake ledger): "never baked" cannot be known; dev's version
                # being newer in the same version scheme is taken as dev being ahead.
                finding(
                    "promotion",
                    f.path,
                    True,
                    f"pending promotion: {name} {low_version} (in {low_name}, newer than "
                    f"{high_name}'s {high_version}; unverified: no bake ledger was read"
                    + (f", {high_version} is not in the {evidence.source})" if evidence else ")"),
                    low_version,
                    high_version,
                )
            elif reason:
                finding(
                    "hotfix",
                    f.path,
                    True,
                    f"{high_name} runs {name} {high_version}, not run in {low_name}: "
                    f"hotfix: {reason}",
                    low_version,
                    high_version,
                )
            else:
                source = evidence.source if evidence is not None else "no evidence available"
                finding(
                    "config",
                    f.path,
                    False,
                    f"{high_name} runs {name} {high_version}, which {low_name} never ran "
                    f"({source}): promote a version {low_name} baked, or give the "
                    f"{high_name} entry `hotfix: <reason>`",
                    low_version,
                    high_version,
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
    evidence: Evidence | None = None,
) -> ParityReport:
    """Parity of two loaded and synthesized stacks. ``evidence``: which artifact versions
    the lower stack ran (:func:`evidence_for`); None counts as no evidence."""
    report = ParityReport(left_name, right_name)
    stage = _stage(left_config, right_config)
    config_findings = compare_configs(left_config, right_config)
    if stage is None:
        report.findings += compare_shapes(left_graph, right_graph)
        report.findings += config_findings
        return report
    exempt: set[str] = set()
    for path, template in COMPONENT_OF.items():
        key = path.removeprefix(ROOT_PATH)
        attribute = next(
            n for n, i in type(left_config).model_fields.items() if (i.alias or n) == key
        )
        one_side = set(_named(getattr(left_config, attribute))) ^ set(
            _named(getattr(right_config, attribute))
        )
        exempt |= {template.format(name) for name in one_side}
    report.findings += compare_shapes(left_graph, right_graph, frozenset(exempt))
    report.findings += [
        f for f in config_findings if not any(f.path.startswith(p) for p in PROMOTABLE)
    ]
    for path in PROMOTABLE:
        attribute = next(
            name
            for name, info in type(left_config).model_fields.items()
            if (info.alias or name) == path.removeprefix(ROOT_PATH)
        )
        report.findings += compare_promotable(
            path,
            getattr(left_config, attribute),
            getattr(right_config, attribute),
            lower=stage[0],
            names=(left_name, right_name),
            evidence=evidence,
        )
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
    stage = _stage(lc, rc)
    evidence = None
    if stage is not None:
        evidence = evidence_for(Path(root), left if stage[0] == "left" else right)
    return compare(
        left,
        right,
        left_config=lc,
        right_config=rc,
        left_graph=lg,
        right_graph=rg,
        evidence=evidence,
    )


# --------------------------------------------------------------------------- rendering


def _cell(value: Any, limit: int = 60) -> str:
    text = json.dumps(_plain(value), sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _status(f: ParityFinding) -> str:
    if not f.allowed:
        return "VIOLATION"
    return f.kind if f.kind in ("promotion", "hotfix") else "knob"


def render_text(report: ParityReport, show_knobs: bool = True) -> str:
    lines = [f"parity {report.left} vs {report.right}: {report.summary()}"]
    lines += [f"  error: {e}" for e in report.errors]
    rows = [
        ("status", "kind", "path", report.left, report.right),
        *[
            (
                _status(f),
                "config" if f.kind in ("promotion", "hotfix") else f.kind,
                f.path,
                _cell(f.left),
                _cell(f.right),
            )
            for f in sorted(
                report.findings,
                key=lambda f: (f.allowed, f.kind not in ("promotion", "hotfix"), f.kind, f.path),
            )
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


def render_markdown(report: ParityReport, promotions: bool = True) -> str:
    """Violations, (pending promotions unless the caller shows them apart) and knobs."""
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
    if promotions:
        lines += render_promotions_markdown(report)
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


def render_promotions_markdown(report: ParityReport) -> list[str]:
    """Pending promotions and hotfixes as their own table (empty list when none)."""
    items = report.pending_promotions + report.hotfixes
    if not items:
        return []
    lines = [
        f"**Pending promotions** ({report.left} -> {report.right}): "
        f"{len(report.pending_promotions)}, hotfixes: {len(report.hotfixes)}",
        "",
        f"| | path | {report.left} | {report.right} | note |",
        "|---|---|---|---|---|",
    ]
    for f in items:
        mark = "⏳" if f.kind == "promotion" else "🩹"
        lines.append(
            f"| {mark} | `{f.path}` | `{_cell(f.left)}` | `{_cell(f.right)}` | {f.message} |"
        )
    return [*lines, ""]
