"""``mlstack history <stack>``: Pulumi's update history, tied to the git commits it ran from.

The engine records, with every update, the environment it ran in: ``git.head``
(the commit), ``git.headName`` (the ref, ``refs/heads/main``), ``git.dirty``,
and the CI system (``ci.system``, ``ci.build.url``, ``ci.pr.number``...). This
module reads the history through the Automation API (``pulumi stack history
--json``, paged) or from a saved copy of that JSON, and turns it into
:class:`Update` records sorted newest first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlstack.errors import MlstackError, UsageError

GIT_HEAD = "git.head"
GIT_HEAD_NAME = "git.headName"
GIT_DIRTY = "git.dirty"
CI_SYSTEM = "ci.system"
CI_BUILD_URL = "ci.build.url"
CI_PR_NUMBER = "ci.pr.number"
EXEC_KIND = "exec.kind"
SUCCEEDED = "succeeded"
UPDATE_KIND = "update"
PAGE_SIZE = 100
MAX_PAGES = 100


class HistoryError(MlstackError):
    """The history could not be read or parsed."""


@dataclass(frozen=True)
class Update:
    """One entry of a stack's history (an update, preview, refresh or destroy)."""

    version: int
    kind: str
    result: str
    message: str
    start_time: datetime | None
    end_time: datetime | None
    environment: Mapping[str, str] = field(default_factory=dict)
    resource_changes: Mapping[str, int] = field(default_factory=dict)

    @property
    def commit(self) -> str | None:
        """The commit the program ran from (``git.head``), if it ran in a git checkout."""
        return self.environment.get(GIT_HEAD) or None

    @property
    def branch(self) -> str | None:
        """The branch (or tag) the checkout was on, without ``refs/heads/``."""
        ref = self.environment.get(GIT_HEAD_NAME) or ""
        return ref.removeprefix("refs/heads/") or None

    @property
    def dirty(self) -> bool:
        """Whether the checkout had uncommitted changes (the commit does not reproduce it)."""
        return self.environment.get(GIT_DIRTY) == "true"

    @property
    def succeeded(self) -> bool:
        return self.result == SUCCEEDED

    @property
    def is_update(self) -> bool:
        return self.kind == UPDATE_KIND

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "kind": self.kind,
            "result": self.result,
            "startTime": _iso(self.start_time),
            "endTime": _iso(self.end_time),
            "commit": self.commit,
            "branch": self.branch,
            "dirty": self.dirty,
            "ci": {
                "system": self.environment.get(CI_SYSTEM),
                "buildUrl": self.environment.get(CI_BUILD_URL),
                "prNumber": self.environment.get(CI_PR_NUMBER),
            },
            "execKind": self.environment.get(EXEC_KIND),
            "message": self.message,
            "resourceChanges": dict(self.resource_changes),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise HistoryError(f"unreadable time {value!r} in the stack history") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_entry(entry: Mapping[str, Any]) -> Update:
    """One item of ``pulumi stack history --json`` (camelCase keys) as an :class:`Update`."""
    try:
        version = entry["version"]
        kind = entry["kind"]
    except KeyError as exc:
        raise HistoryError(f"history entry without {exc.args[0]!r}: {dict(entry)}") from None
    if not isinstance(version, int) or isinstance(version, bool):
        raise HistoryError(f"history entry with a non-integer version: {version!r}")
    environment = entry.get("environment") or {}
    changes = entry.get("resourceChanges") or {}
    return Update(
        version=version,
        kind=str(kind),
        result=str(entry.get("result") or "in-progress"),
        message=str(entry.get("message") or ""),
        start_time=_parse_time(entry.get("startTime")),
        end_time=_parse_time(entry.get("endTime")),
        environment={str(k): str(v) for k, v in environment.items()},
        resource_changes={str(k): int(v) for k, v in changes.items()},
    )


def parse_history(entries: Iterable[Mapping[str, Any]]) -> list[Update]:
    """Parse and sort newest first; versions must be unique."""
    updates = [parse_entry(e) for e in entries]
    versions = [u.version for u in updates]
    if len(set(versions)) != len(versions):
        raise HistoryError("the stack history repeats a version")
    return sorted(updates, key=lambda u: u.version, reverse=True)


def read_history_file(path: Path) -> list[Update]:
    """A saved ``pulumi stack history --json`` (for offline use and CI artifacts)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read history file {path}: {exc}") from exc
    if not isinstance(data, list):
        raise UsageError(f"history file {path}: expected a JSON list of updates")
    return parse_history(data)


def _summary_to_entry(summary: Any) -> dict[str, Any]:
    """An Automation API ``UpdateSummary`` back into the CLI's JSON shape."""
    return {
        "version": summary.version,
        "kind": summary.kind,
        "result": summary.result,
        "message": summary.message,
        "startTime": summary.start_time,
        "endTime": summary.end_time,
        "environment": dict(summary.environment or {}),
        "resourceChanges": dict(summary.resource_changes or {}),
    }


def load_history(stack: str, root: Path, env: Mapping[str, str] | None = None) -> list[Update]:
    """The whole history of ``stack`` through the Automation API (needs the Pulumi CLI)."""
    from pulumi.automation import CommandError

    from mlstack.delivery.pulumi_cli import find_pulumi

    cli = find_pulumi(f"reading the history of stack {stack!r}")
    try:
        handle = cli.select_stack(stack, root, env)
        entries: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            batch = handle.history(page_size=PAGE_SIZE, page=page, show_secrets=False)
            entries += [_summary_to_entry(s) for s in batch]
            if len(batch) < PAGE_SIZE:
                break
    except CommandError as exc:
        last = str(exc).strip().splitlines()
        raise HistoryError(
            f"pulumi could not read the history of stack {stack!r}: {last[-1] if last else exc}"
        ) from exc
    return parse_history(entries)


def render_table(updates: Sequence[Update], bakes: Mapping[int, str] | None = None) -> str:
    """A fixed-width table: version, time, kind, result, commit, branch, message; with
    ``bakes`` (version -> ``passed``/``failed``, from the bake ledger) a BAKE column
    (``-`` = never baked)."""
    headers: tuple[str, ...] = ("VERSION", "STARTED (UTC)", "KIND", "RESULT", "COMMIT", "BRANCH")
    if bakes is not None:
        headers += ("BAKE",)
    headers += ("MESSAGE",)
    rows = [
        (
            str(u.version),
            u.start_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if u.start_time else "-",
            u.kind,
            u.result,
            (u.commit[:12] + ("*" if u.dirty else "")) if u.commit else "-",
            u.branch or "-",
            *(() if bakes is None else ((bakes.get(u.version) or "-") if u.is_update else "",)),
            _one_line(u.message, 60),
        )
        for u in updates
    ]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    if any(u.dirty for u in updates):
        lines.append("* ran from a checkout with uncommitted changes")
    return "\n".join(lines)


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."
