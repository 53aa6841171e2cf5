"""Preflight results: one line per check (ok / FAIL / skipped), grouped, or JSON for CI."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

DOCS = "docs/operations.md"
"""Where every check and its fix is explained (section "Preflight checks")."""

GROUPS = ("identity", "eks", "amis", "certificates", "models", "capacity", "prerequisites")
"""Report order of the check groups."""


class Status(StrEnum):
    ok = "ok"
    fail = "FAIL"
    skipped = "skipped"


@dataclass(frozen=True)
class Check:
    """One check's verdict. ``id`` is stable (``<group>.<what>[<item>]``); tests and docs use it."""

    group: str
    id: str
    status: Status
    detail: str
    fix: str = ""
    """How to fix a FAIL (one line), or why a check was skipped."""

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "id": self.id,
            "status": str(self.status),
            "detail": self.detail,
            "fix": self.fix,
        }


def ok(group: str, check_id: str, detail: str) -> Check:
    return Check(group, check_id, Status.ok, detail)


def fail(group: str, check_id: str, detail: str, fix: str) -> Check:
    return Check(group, check_id, Status.fail, detail, fix)


def skipped(group: str, check_id: str, why: str) -> Check:
    return Check(group, check_id, Status.skipped, why)


@dataclass
class Report:
    """Every check of one stack, plus who ran it where."""

    stack: str
    region: str
    account: str | None
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status is Status.fail]

    @property
    def ok(self) -> bool:
        return not self.failed

    def counts(self) -> dict[str, int]:
        return {s.value: sum(1 for c in self.checks if c.status is s) for s in Status}

    def summary(self) -> str:
        counts = self.counts()
        return f"{counts['ok']} ok, {counts['FAIL']} FAIL, {counts['skipped']} skipped"

    def grouped(self) -> list[tuple[str, list[Check]]]:
        order = {g: i for i, g in enumerate(GROUPS)}
        groups = sorted({c.group for c in self.checks}, key=lambda g: (order.get(g, 99), g))
        return [(g, [c for c in self.checks if c.group == g]) for g in groups]

    def render_text(self) -> str:
        who = f"account {self.account}" if self.account else "account unknown"
        lines = [f"preflight {self.stack} ({who}, {self.region})"]
        for group, checks in self.grouped():
            lines.append(group)
            for check in checks:
                line = f"  {check.status.value:<7} {check.id}: {check.detail}"
                if check.status is Status.fail and check.fix:
                    line += f"\n          fix: {check.fix}"
                lines.append(line)
        verdict = "FAIL" if self.failed else "ok"
        lines.append(f"preflight {self.stack}: {verdict} ({self.summary()}); checks: {DOCS}")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "region": self.region,
            "account": self.account,
            "ok": self.ok,
            "summary": self.counts(),
            "docs": DOCS,
            "checks": [c.to_json() for c in self.checks],
        }

    def render_json(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"
