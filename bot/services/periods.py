"""Reporting periods: ISO weeks (Monday–Sunday) and calendar months in the district's time zone.

A period is a range of local days [start, end); `utc_bounds` turns it into the aware UTC instants that
SQL compares stored UTC times with, so a visit at 23:30 on a Sunday in Beijing (15:30 UTC) belongs to
that week and one at 00:10 on the Monday (16:10 UTC on Sunday) to the next.

Accepted spellings (case-insensitive): ``this`` / ``本周`` (the current week, also the default),
``last`` / ``上周``, ``month`` / ``本月``, ``lastmonth`` / ``上月``, ``2026-W47`` (also ``2026W47``,
``W47`` for this year), ``2026-11`` (full-width digits too) — and the compact codes used in buttons,
``w2026-47`` / ``m2026-11``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

MIN_YEAR, MAX_YEAR = 2000, 2100
TREND_WEEKS = 8

_WEEK = re.compile(r"(?:(\d{4})-?)?w(\d{1,2})", re.ASCII)
_WEEK_CODE = re.compile(r"w(\d{4})-(\d{1,2})", re.ASCII)
_MONTH = re.compile(r"m?(\d{4})-(\d{1,2})", re.ASCII)
_ALIASES = {
    "this": "this",
    "thisweek": "this",
    "week": "this",
    "本周": "this",
    "last": "last",
    "lastweek": "last",
    "上周": "last",
    "month": "month",
    "thismonth": "month",
    "本月": "month",
    "lastmonth": "lastmonth",
    "上月": "lastmonth",
}


class PeriodKind(StrEnum):
    week = "week"
    month = "month"


class PeriodError(ValueError):
    """The text is not a period this bot understands (``reason``: ``format``, ``week`` or ``range``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Period:
    """One ISO week or calendar month: local days [start, end)."""

    kind: PeriodKind
    year: int  # the ISO year for weeks
    number: int  # ISO week number or month

    @property
    def start(self) -> date:
        if self.kind is PeriodKind.week:
            return date.fromisocalendar(self.year, self.number, 1)
        return date(self.year, self.number, 1)

    @property
    def end(self) -> date:
        """The first local day after the period."""
        if self.kind is PeriodKind.week:
            return self.start + timedelta(days=7)
        return date(self.year + self.number // 12, self.number % 12 + 1, 1)

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    @property
    def code(self) -> str:
        """Compact form for callback data: ``w2026-47`` or ``m2026-11``."""
        return f"{self.kind.value[0]}{self.year}-{self.number:02d}"

    @property
    def iso(self) -> str:
        """Human form as typed: ``2026-W47`` or ``2026-11``."""
        if self.kind is PeriodKind.week:
            return f"{self.year}-W{self.number:02d}"
        return f"{self.year}-{self.number:02d}"

    def utc_bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        return local_midnight(self.start, tz), local_midnight(self.end, tz)

    def previous(self) -> Period:
        return period_containing(self.start - timedelta(days=1), self.kind)

    def next(self) -> Period:
        return period_containing(self.end, self.kind)

    def contains(self, day: date) -> bool:
        return self.start <= day < self.end


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` begins in ``tz``."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def local_today(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


def period_containing(day: date, kind: PeriodKind = PeriodKind.week) -> Period:
    if kind is PeriodKind.week:
        iso = day.isocalendar()
        return Period(PeriodKind.week, iso.year, iso.week)
    return Period(PeriodKind.month, day.year, day.month)


def _week(year: int, week: int) -> Period:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError("range")
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise PeriodError("week") from None
    return Period(PeriodKind.week, year, week)


def _month(year: int, month: int) -> Period:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError("range")
    if not 1 <= month <= 12:
        raise PeriodError("format")
    return Period(PeriodKind.month, year, month)


def parse_period(text: str | None, *, today: date) -> Period:
    """The period ``text`` names (default: the current ISO week); raises PeriodError."""
    value = "".join(unicodedata.normalize("NFKC", text or "this").split()).lower()  # full-width too
    alias = _ALIASES.get(value or "this")
    if alias == "this":
        return period_containing(today)
    if alias == "last":
        return period_containing(today).previous()
    if alias == "month":
        return period_containing(today, PeriodKind.month)
    if alias == "lastmonth":
        return period_containing(today, PeriodKind.month).previous()
    if m := _WEEK_CODE.fullmatch(value):
        return _week(int(m[1]), int(m[2]))
    if m := _WEEK.fullmatch(value):
        return _week(int(m[1]) if m[1] else today.isocalendar().year, int(m[2]))
    if m := _MONTH.fullmatch(value):
        return _month(int(m[1]), int(m[2]))
    raise PeriodError("format")


def elapsed_part(period: Period, previous: Period, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC bounds of ``previous`` cut to the time already elapsed of ``period`` (for "vs. the same point
    last week" while ``period`` is in progress); the whole of ``previous`` when ``period`` is over."""
    start, end = period.utc_bounds(tz)
    prev_start, prev_end = previous.utc_bounds(tz)
    if now >= end:
        return prev_start, prev_end
    cut = prev_start + max(now - start, timedelta(0))
    return prev_start, min(cut, prev_end)


def trend_weeks(period: Period, *, today: date) -> list[Period]:
    """The ``TREND_WEEKS`` ISO weeks ending with the period's last week (not beyond the current week)."""
    last = period_containing(min(period.last_day, today))
    weeks = [last]
    for _ in range(TREND_WEEKS - 1):
        weeks.append(weeks[-1].previous())
    return weeks[::-1]
