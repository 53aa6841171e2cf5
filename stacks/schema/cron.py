"""Cron expressions as KEDA's cron scaler and Karpenter's disruption budgets read them.

Both parse with robfig/cron's standard parser: five fields (minute hour day-of-month
month day-of-week), numbers, ``*``, ``a-b``, ``/step``, lists, month and weekday names;
day-of-week 0-6 (Sunday = 0; ``7`` is out of range there). Karpenter also takes the
descriptors ``@hourly``, ``@daily``... . Each field is range-checked by croniter (a
maintained parser, pinned in constraints.txt); what robfig does not know (``L``, ``W``,
``#``, ``?`` aside, a day-of-week 7) is refused before KEDA or Karpenter would.

:func:`windows` turns a wake window (start/end crons in a time zone) into the UTC
intervals it is active in over a reference period, the way KEDA decides: active from
a start until the first end after it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

FIELDS = ("minute", "hour", "day of month", "month", "day of week")
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_ROBFIG_UNKNOWN = re.compile(r"[LW#]")
_FIELD_CHARS = re.compile(r"^[0-9A-Za-z*/,?\-]+$")

REFERENCE_PERIODS = (
    (datetime(2026, 1, 5, tzinfo=UTC), timedelta(days=28)),
    (datetime(2026, 7, 6, tzinfo=UTC), timedelta(days=28)),
)
"""Four weeks in winter and four in summer (both sides of daylight saving time)."""
_MAX_FIRINGS = 20000


def cron_problem(expression: str, *, allow_descriptors: bool = False) -> str | None:
    """Why ``expression`` is not a 5-field cron expression robfig/cron accepts, or None."""
    text = expression.strip()
    if allow_descriptors and text in DESCRIPTORS:
        return None
    fields = text.split()
    example = "'0 8 * * 1-5' (minute hour day-of-month month day-of-week)"
    if len(fields) != len(FIELDS):
        allowed = f" or one of {', '.join(DESCRIPTORS)}" if allow_descriptors else ""
        return f"needs 5 fields, got {len(fields)}; e.g. {example}{allowed}"
    for name, field in zip(FIELDS, fields, strict=True):
        if not _FIELD_CHARS.match(field) or _ROBFIG_UNKNOWN.search(field.upper()):
            return f"{name} field {field!r}: use numbers, *, a-b, /step, lists or names"
    dow = fields[4]
    if any(part == "7" or part.startswith("7-") or part.endswith("-7") for part in _parts(dow)):
        return f"day of week field {dow!r}: allowed 0-6 (Sunday is 0) or sun-sat"
    try:
        parsed = croniter(text, datetime(2026, 1, 1, tzinfo=UTC))
    except (CroniterBadCronError, CroniterError, ValueError, KeyError) as exc:
        return f"{_field_of(exc, fields)}not a valid cron expression ({exc})"
    try:
        parsed.get_next(datetime)
    except CroniterBadDateError:
        return "never fires (no such date, e.g. February 30)"
    return None


def _parts(field: str) -> list[str]:
    return [part.split("/", 1)[0] for part in field.split(",")]


def _field_of(exc: Exception, fields: list[str]) -> str:
    """Name the first field that fails on its own (for a clearer message)."""
    for position, field in enumerate(fields):
        probe = ["*"] * len(FIELDS)
        probe[position] = field
        try:
            croniter(" ".join(probe), datetime(2026, 1, 1, tzinfo=UTC))
        except (CroniterBadCronError, CroniterError, ValueError, KeyError):
            return f"{FIELDS[position]} field {field!r}: "
    del exc
    return ""


@cache
def reference_windows(start: str, end: str, timezone: str) -> tuple[tuple[datetime, datetime], ...]:
    """:func:`windows` over :data:`REFERENCE_PERIODS`, computed once per expression."""
    return tuple(windows(start, end, timezone))


def windows(
    start: str,
    end: str,
    timezone: str,
    periods: Sequence[tuple[datetime, timedelta]] = REFERENCE_PERIODS,
) -> Iterator[tuple[datetime, datetime]]:
    """UTC intervals [start, first end after it) within ``periods``."""
    zone = ZoneInfo(timezone)
    for begin, length in periods:
        stop = begin + length
        # Start a week early: a window opened before the period may still be open in it.
        starts = croniter(start, (begin - timedelta(days=7)).astimezone(zone))
        for _ in range(_MAX_FIRINGS):
            opened: datetime = starts.get_next(datetime)
            if opened >= stop:
                break
            try:
                closed: datetime = croniter(end, opened).get_next(datetime)
            except CroniterBadDateError:
                closed = stop
            lo, hi = max(opened, begin), min(closed, stop)
            if lo < hi:
                yield lo.astimezone(UTC), hi.astimezone(UTC)
