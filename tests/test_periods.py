"""Reporting periods: parsing, ISO weeks (W53 years), months, UTC bounds in Asia/Shanghai, comparison
ranges and the 8-week trend; and what a user is told when the period makes no sense."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from telegram.ext import Application

from bot.services.periods import (
    Period,
    PeriodError,
    PeriodKind,
    elapsed_part,
    local_midnight,
    local_today,
    parse_period,
    period_containing,
    trend_weeks,
)
from bot.storage.db import SessionMaker
from bot.storage.enums import Role
from tests.botapi import BotAPI
from tests.conftest import chat_with, make_user

App = Application[Any, Any, Any, Any, Any, Any]
TZ = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 11, 25)  # Wednesday of 2026-W48
W, M = PeriodKind.week, PeriodKind.month


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, Period(W, 2026, 48)),
        ("", Period(W, 2026, 48)),
        ("this", Period(W, 2026, 48)),
        ("THIS", Period(W, 2026, 48)),
        ("本周", Period(W, 2026, 48)),
        ("last", Period(W, 2026, 47)),
        ("上周", Period(W, 2026, 47)),
        ("month", Period(M, 2026, 11)),
        ("本月", Period(M, 2026, 11)),
        ("lastmonth", Period(M, 2026, 10)),
        ("上月", Period(M, 2026, 10)),
        ("2026-W47", Period(W, 2026, 47)),
        ("2026-w47", Period(W, 2026, 47)),
        ("2026W47", Period(W, 2026, 47)),
        ("W47", Period(W, 2026, 47)),
        (" 2026-W05 ", Period(W, 2026, 5)),
        ("w2026-47", Period(W, 2026, 47)),
        ("2026-11", Period(M, 2026, 11)),
        ("2026-1", Period(M, 2026, 1)),
        ("m2026-11", Period(M, 2026, 11)),
        ("2026-W53", Period(W, 2026, 53)),
        ("2020-W53", Period(W, 2020, 53)),
        ("２０２６－１１", Period(M, 2026, 11)),  # typed with a Chinese input method
        ("２０２６－Ｗ４７", Period(W, 2026, 47)),
    ],
)
def test_parse_period(text: str | None, expected: Period) -> None:
    assert parse_period(text, today=TODAY) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2025-W53", "week"),  # 2025 has 52 ISO weeks
        ("2026-W54", "week"),
        ("2026-W00", "week"),
        ("2026-13", "format"),
        ("2026-00", "format"),
        ("1999-W10", "range"),
        ("2101-01", "range"),
        ("next", "format"),
        ("2026/11", "format"),
        ("<b>x</b>", "format"),
        ("'; DROP TABLE visits; --", "format"),
        ("2026-１３", "format"),
    ],
)
def test_garbage_is_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(PeriodError) as caught:
        parse_period(text, today=TODAY)
    assert caught.value.reason == reason


def test_iso_weeks_run_monday_to_sunday_and_straddle_years() -> None:
    w53 = Period(W, 2026, 53)
    assert (w53.start, w53.last_day) == (date(2026, 12, 28), date(2027, 1, 3))
    assert period_containing(date(2027, 1, 1)) == w53  # a Friday of the new year still in 2026-W53
    assert parse_period("this", today=date(2027, 1, 3)) == w53
    assert parse_period("this", today=date(2027, 1, 4)) == Period(W, 2027, 1)
    assert parse_period("last", today=date(2027, 1, 4)) == w53
    assert Period(W, 2027, 1).previous() == w53 and w53.next() == Period(W, 2027, 1)
    assert Period(W, 2026, 1).start == date(2025, 12, 29)  # week 1 can begin in December
    assert parse_period("last", today=date(2026, 1, 1)) == Period(W, 2025, 52)


def test_months() -> None:
    december = Period(M, 2026, 12)
    assert (december.start, december.end) == (date(2026, 12, 1), date(2027, 1, 1))
    assert december.next() == Period(M, 2027, 1) and Period(M, 2027, 1).previous() == december
    assert Period(M, 2028, 2).last_day == date(2028, 2, 29)
    assert (december.code, december.iso) == ("m2026-12", "2026-12")
    assert (Period(W, 2026, 5).code, Period(W, 2026, 5).iso) == ("w2026-05", "2026-W05")
    assert parse_period(Period(W, 2026, 5).code, today=TODAY) == Period(W, 2026, 5)


def test_utc_bounds_are_local_midnights() -> None:
    start, end = Period(W, 2026, 47).utc_bounds(TZ)
    assert start == datetime(2026, 11, 15, 16, 0, tzinfo=UTC)  # Monday 00:00 in Beijing
    assert end == datetime(2026, 11, 22, 16, 0, tzinfo=UTC)
    sunday_2330 = datetime(2026, 11, 22, 23, 30, tzinfo=TZ)
    monday_0010 = datetime(2026, 11, 23, 0, 10, tzinfo=TZ)
    assert start <= sunday_2330 < end
    assert not monday_0010 < end
    assert sunday_2330.astimezone(UTC) == datetime(2026, 11, 22, 15, 30, tzinfo=UTC)
    assert local_today(datetime(2026, 11, 22, 16, 10, tzinfo=UTC), TZ) == date(2026, 11, 23)
    october = Period(M, 2026, 10).utc_bounds(TZ)
    assert october == (datetime(2026, 9, 30, 16, tzinfo=UTC), datetime(2026, 10, 31, 16, tzinfo=UTC))
    assert local_midnight(date(2026, 1, 1), ZoneInfo("UTC")) == datetime(2026, 1, 1, tzinfo=UTC)


def test_comparison_range_is_the_elapsed_part_while_running() -> None:
    now = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # Wednesday noon in Beijing
    this = Period(W, 2026, 48)
    start, end = elapsed_part(this, this.previous(), now, TZ)
    assert start == datetime(2026, 11, 15, 16, tzinfo=UTC)
    assert end == datetime(2026, 11, 18, 4, tzinfo=UTC)  # last Wednesday noon
    assert elapsed_part(Period(W, 2026, 47), Period(W, 2026, 46), now, TZ) == Period(W, 2026, 46).utc_bounds(
        TZ
    )
    # a 31-day month compared with a 30-day one is cut at the end of the shorter one
    late = datetime(2026, 12, 31, 4, tzinfo=UTC)
    assert (
        elapsed_part(Period(M, 2026, 12), Period(M, 2026, 11), late, TZ)[1]
        == Period(M, 2026, 11).utc_bounds(TZ)[1]
    )


def test_trend_is_eight_weeks_ending_with_the_period() -> None:
    weeks = trend_weeks(Period(W, 2027, 2), today=date(2027, 1, 13))
    assert [w.iso for w in weeks] == [
        "2026-W48",
        "2026-W49",
        "2026-W50",
        "2026-W51",
        "2026-W52",
        "2026-W53",
        "2027-W01",
        "2027-W02",
    ]
    # a running month ends its trend with the current week, not with the month's last week
    assert trend_weeks(Period(M, 2026, 11), today=TODAY)[-1] == Period(W, 2026, 48)
    assert trend_weeks(Period(M, 2026, 10), today=TODAY)[-1] == period_containing(date(2026, 10, 31))


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/stats tomorrow", "没有看懂"),
        ("/stats 2025-W53", "没有2025-W53这一周"),
        ("/stats 1990-01", "2000"),
        ("/stats 2027-W10", "尚未开始"),
        ("/stats <script>", "&lt;script&gt;"),
    ],
)
async def test_a_bad_period_is_explained_politely(
    app: App, api: BotAPI, db: SessionMaker, command: str, expected: str
) -> None:
    async with db.begin() as session:
        user = await make_user(session, role=Role.supervisor)
    chat = chat_with(app, api, user)
    await chat.send(command)
    message = api.calls_of("sendMessage")[-1].params["text"]
    assert expected in message, message
    assert not api.calls_of("sendPhoto")


def test_weeks_across_a_daylight_saving_change() -> None:
    """Another district's time zone: the week of the 2026-10-25 switch in Berlin lasts 169 hours."""
    berlin = ZoneInfo("Europe/Berlin")
    start, end = Period(W, 2026, 43).utc_bounds(berlin)
    assert start == datetime(2026, 10, 18, 22, 0, tzinfo=UTC)  # Monday 00:00 CEST (UTC+2)
    assert end == datetime(2026, 10, 25, 23, 0, tzinfo=UTC)  # next Monday 00:00 CET (UTC+1)
    assert (end - start).total_seconds() == 169 * 3600
