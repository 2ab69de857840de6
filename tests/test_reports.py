"""Supervision reports: /stats (text, chart, periods, navigation), /enterprise, /liaison, /coverage, /trends.

Every figure is checked against tests/oracle.py (plain SQL with explicit UTC bounds) on generated data that
crosses week and month boundaries in Beijing time, with reassignments, status changes and withdrawn visits;
journeys check what the user sees and that staff never see other people's enterprises.
"""

from __future__ import annotations

import dataclasses
import io
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from matplotlib.image import imread
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram.ext import Application

from bot.handlers.reports import chunks
from bot.services.periods import Period, PeriodKind
from bot.services.stats import coverage_report, liaison_report, stats_report, trends_report
from bot.storage.db import SessionMaker
from bot.storage.enums import PartyOrg, ProblemCategory, ProblemStatus, Role, ServiceStatus, Stage
from bot.storage.models import Assignment, Enterprise, MenuItem, Problem, ServiceRequest, User, Visit
from bot.storage.problems import change_status, create_problem, get_problem_for_update
from tests import oracle
from tests.botapi import BotAPI
from tests.conftest import BEIJING_NOON, Clock, chat_with, credit_code, make_enterprise, make_user

App = Application[Any, Any, Any, Any, Any, Any]
TZ = ZoneInfo("Asia/Shanghai")
PNG = b"\x89PNG\r\n\x1a\n"
DEPARTMENTS = ["发改局", "商务局", "市场监管局"]
COMMUNITIES = ["东城社区", "西城社区", "南湖社区", None]
SUNDAY_2330 = datetime(2026, 11, 22, 23, 30, tzinfo=TZ)  # last minutes of 2026-W47 in Beijing (15:30 UTC)
MONDAY_0010 = datetime(2026, 11, 23, 0, 10, tzinfo=TZ)  # first minutes of 2026-W48 (16:10 UTC on Sunday)
OCT_LAST = datetime(2026, 10, 31, 23, 59, tzinfo=TZ)  # still October in Beijing, 15:59 UTC
NOV_FIRST = datetime(2026, 11, 1, 0, 0, tzinfo=TZ)  # November in Beijing, still October 31 in UTC


def local(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=TZ).astimezone(UTC)


# -- arranging --------------------------------------------------------------------------------------------
@dataclass
class District:
    supervisor: User
    liaisons: list[User]
    instructors: list[User]
    enterprises: list[Enterprise]
    reassigned: Enterprise  # liaison moved from 发改局 to 商务局 this month
    orphan: Enterprise  # its only assignment ended: no current liaison, no department
    menu_item_id: int
    owners: dict[int, list[User]] = field(default_factory=dict)


async def _menu_item(session: AsyncSession) -> int:
    found = await session.scalar(select(MenuItem.id).order_by(MenuItem.id).limit(1))
    assert found is not None
    return found


async def make_district(session: AsyncSession, *, seed: int = 7, visits: int = 450) -> District:
    """~40 enterprises in 3 departments and 4 communities (one "unknown"), two months of visits, problems
    and services at random times, plus the edge cases by hand."""
    rng = random.Random(seed)
    supervisor = await make_user(session, role=Role.supervisor, name="王督导")
    liaisons = [
        await make_user(session, role=Role.liaison, name=name, department=dept)
        for name, dept in (
            ("张三", "发改局"),
            ("李四", "商务局"),
            ("王五", "市场监管局"),
            ("张三丰", "发改局"),
        )
    ]
    instructors = [
        await make_user(session, role=Role.instructor, name=name, community=community)
        for name, community in (("赵指导", "东城社区"), ("钱指导", "西城社区"))
    ]
    menu_item_id = await _menu_item(session)
    enterprises: list[Enterprise] = []
    owners: dict[int, list[User]] = {}
    for i in range(40):
        liaison = liaisons[i % 4] if i % 9 != 8 else None
        instructor = instructors[i % 2] if i % 3 == 0 else None
        community = COMMUNITIES[i % 4]
        enterprise = Enterprise(
            name=f"企业{i:02d}{'科技' if i % 2 else '制造'}有限公司",
            credit_code=credit_code(900000 + i + seed * 1000),
            stage=list(Stage)[i % 3],
            community=community,
            party_org=list(PartyOrg)[i % 4],
            party_members=i % 7,
        )
        session.add(enterprise)
        await session.flush()
        for user in (liaison, instructor):
            if user is not None:
                session.add(
                    Assignment(
                        enterprise_id=enterprise.id,
                        user_id=user.id,
                        role=user.role,
                        start_date=date(2026, 1, 1),
                    )
                )
        enterprises.append(enterprise)
        owners[enterprise.id] = [u for u in (liaison, instructor) if u is not None]
    # reassignment: enterprise 0 was 张三's (发改局) until 2026-11-10, now 李四's (商务局)
    reassigned = enterprises[0]
    current = await session.scalar(
        select(Assignment).where(Assignment.enterprise_id == reassigned.id, Assignment.role == Role.liaison)
    )
    assert current is not None
    current.end_date = date(2026, 11, 10)
    await session.flush()
    session.add(
        Assignment(
            enterprise_id=reassigned.id,
            user_id=liaisons[1].id,
            role=Role.liaison,
            start_date=date(2026, 11, 10),
        )
    )
    owners[reassigned.id] = [liaisons[1], *owners[reassigned.id][1:]]
    # an enterprise whose only assignment ended: no current liaison (no department), not "assigned"
    orphan = enterprises[8]
    session.add(
        Assignment(
            enterprise_id=orphan.id,
            user_id=liaisons[2].id,
            role=Role.liaison,
            start_date=date(2026, 1, 1),
            end_date=date(2026, 10, 1),
        )
    )
    owners[orphan.id] = [liaisons[2]]
    await session.flush()

    first, now = local(2026, 9, 20, 0, 0), BEIJING_NOON
    span = int((now - first).total_seconds())

    def moment() -> datetime:
        return first + timedelta(seconds=rng.randrange(span))

    for _ in range(visits):
        enterprise = rng.choice(enterprises)
        visitor = rng.choice(owners[enterprise.id] or [liaisons[3]])
        at = moment()
        session.add(
            Visit(
                enterprise_id=enterprise.id,
                user_id=visitor.id,
                visited_at=at,
                topics=["policy"],
                withdrawn_at=at + timedelta(hours=1) if rng.random() < 0.1 else None,
                created_at=at,
            )
        )
    # the edges, by hand: Sunday 23:30 / Monday 00:10 in Beijing; October 31 23:59 / November 1 00:00
    for at in (SUNDAY_2330, MONDAY_0010, OCT_LAST, NOV_FIRST):
        session.add(
            Visit(
                enterprise_id=enterprises[5].id,
                user_id=liaisons[1].id,
                visited_at=at.astimezone(UTC),
                topics=[],
            )
        )
    session.add(  # withdrawn at the edge: never counts
        Visit(
            enterprise_id=enterprises[5].id,
            user_id=liaisons[1].id,
            visited_at=SUNDAY_2330.astimezone(UTC),
            withdrawn_at=BEIJING_NOON,
        )
    )
    for i in range(140):
        enterprise = rng.choice(enterprises)
        created = moment()
        status = rng.choice(list(ProblemStatus))
        resolved_at = None
        if status is ProblemStatus.resolved:
            resolved_at = min(created + timedelta(hours=rng.randrange(1, 24 * 20)), now)
        due = (
            (created + timedelta(days=rng.randrange(3, 40))).astimezone(TZ).date()
            if rng.random() < 0.8
            else None
        )
        session.add(
            Problem(
                enterprise_id=enterprise.id,
                reporter_id=(owners[enterprise.id] or [liaisons[0]])[0].id,
                category=list(ProblemCategory)[i % 9 if i % 3 else 0],
                description=f"问题{i}",
                status=status,
                due_date=due,
                funds_wan=Decimal(rng.randrange(0, 100000)) / 100
                if status is ProblemStatus.resolved
                else None,
                created_at=created,
                updated_at=created,
                resolved_at=resolved_at,
            )
        )
    for _ in range(70):
        enterprise = rng.choice(enterprises)
        created = moment()
        service_status = rng.choice(list(ServiceStatus))
        delivered_at = (
            min(created + timedelta(days=rng.randrange(0, 15)), now)
            if service_status is ServiceStatus.delivered
            else None
        )
        session.add(
            ServiceRequest(
                enterprise_id=enterprise.id,
                requester_id=(owners[enterprise.id] or [liaisons[0]])[0].id,
                menu_item_id=menu_item_id,
                status=service_status,
                created_at=created,
                updated_at=created,
                delivered_at=delivered_at,
            )
        )
    await session.flush()
    return District(supervisor, liaisons, instructors, enterprises, reassigned, orphan, menu_item_id, owners)


# -- comparing with the oracle -----------------------------------------------------------------------------
def _bounds(period: Period) -> tuple[datetime, datetime]:
    if period.kind is PeriodKind.week:
        return oracle.week_bounds(period.year, period.number)
    return oracle.month_bounds(period.year, period.number)


def _previous_bounds(period: Period, now: datetime) -> tuple[datetime, datetime]:
    """Written out independently: the previous week/month, cut at the same elapsed time while running."""
    start, end = _bounds(period)
    if period.kind is PeriodKind.week:
        prev = (start - timedelta(days=7), start)
    else:
        last_month_day = (start.astimezone(TZ) - timedelta(days=1)).date()
        prev = oracle.month_bounds(last_month_day.year, last_month_day.month)
    if now < end:
        return prev[0], min(prev[0] + (now - start), prev[1])
    return prev


def _trend_bounds(period: Period, today: date) -> list[tuple[datetime, datetime]]:
    last = min(period.end - timedelta(days=1), today)
    monday = last - timedelta(days=last.weekday())
    weeks = []
    for k in range(7, -1, -1):
        d = monday - timedelta(weeks=k)
        weeks.append(oracle.week_bounds(*d.isocalendar()[:2]))
    return weeks


async def assert_stats_match_oracle(
    session: AsyncSession, period: Period, *, now: datetime = BEIJING_NOON, scope: int | None = None
) -> None:
    report = await stats_report(session, period=period, now=now, tz=TZ, scope_user_id=scope)
    today = now.astimezone(TZ).date()
    expected = await oracle.stats(
        session,
        period=_bounds(period),
        previous=_previous_bounds(period, now),
        weeks=_trend_bounds(period, today),
        today=today,
        scope=scope,
    )
    assert dataclasses.asdict(report.total) == expected.total, period
    assert {k: dataclasses.asdict(f) for k, f in report.by_department} == expected.department, period
    assert {k: dataclasses.asdict(f) for k, f in report.by_community} == expected.community, period
    assert dataclasses.asdict(report.previous) == {
        k: v
        for k, v in expected.previous.items()
        if k in {f.name for f in dataclasses.fields(report.previous)}
    }, period
    assert [n for _, n in report.trend] == expected.trend, period


PERIODS = [
    Period(PeriodKind.week, 2026, 39),
    Period(PeriodKind.week, 2026, 44),  # October 26 – November 1: crosses the month boundary
    Period(PeriodKind.week, 2026, 45),
    Period(PeriodKind.week, 2026, 47),
    Period(PeriodKind.week, 2026, 48),  # running: compared with the same point of W47
    Period(PeriodKind.month, 2026, 9),
    Period(PeriodKind.month, 2026, 10),
    Period(PeriodKind.month, 2026, 11),  # running
    Period(PeriodKind.week, 2026, 53),  # in the future of the data: all zeros, no error
]


async def test_every_figure_matches_the_oracle(db: SessionMaker) -> None:
    async with db.begin() as session:
        district = await make_district(session)
    async with db() as session:
        for period in PERIODS:
            await assert_stats_match_oracle(session, period)
        # a later clock: W48 is over, the month is still running
        await assert_stats_match_oracle(
            session, Period(PeriodKind.week, 2026, 48), now=local(2026, 11, 30, 9)
        )
        for staff in (*district.liaisons, *district.instructors):
            for period in (Period(PeriodKind.week, 2026, 47), Period(PeriodKind.month, 2026, 10)):
                await assert_stats_match_oracle(session, period, scope=staff.id)


async def test_figures_in_a_time_zone_with_daylight_saving(db: SessionMaker) -> None:
    """The bounds follow the configured zone, also across a DST switch (Berlin, 2026-10-25)."""
    async with db.begin() as session:
        await make_district(session, seed=11)
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    async with db() as session:
        for week in (43, 44):
            report = await stats_report(
                session, period=Period(PeriodKind.week, 2026, week), now=now, tz=berlin, scope_user_id=None
            )
            start, end = oracle.week_bounds(2026, week, tz="Europe/Berlin")
            for grouping, got in (
                ("total", {"all": report.total}),
                ("department", dict(report.by_department)),
                ("community", dict(report.by_community)),
            ):
                expected = await oracle.figures(
                    session, start=start, end=end, today=date(2026, 11, 25), grouping=grouping
                )
                assert {k: dataclasses.asdict(f) for k, f in got.items()} == expected, (week, grouping)


async def test_the_edges_of_weeks_and_months_in_beijing_time(db: SessionMaker) -> None:
    async with db.begin() as session:
        supervisor = await make_user(session, role=Role.supervisor)
        liaison = await make_user(session, role=Role.liaison, department="商务局")
        enterprise = await make_enterprise(session, liaison=liaison)
        for at in (SUNDAY_2330, MONDAY_0010, OCT_LAST, NOV_FIRST):
            session.add(Visit(enterprise_id=enterprise.id, user_id=liaison.id, visited_at=at.astimezone(UTC)))
    del supervisor
    async with db() as session:

        async def visits(period: Period) -> int:
            report = await stats_report(session, period=period, now=BEIJING_NOON, tz=TZ, scope_user_id=None)
            return report.total.visits

        assert await visits(Period(PeriodKind.week, 2026, 47)) == 1  # Sunday 23:30 (15:30 UTC)
        assert await visits(Period(PeriodKind.week, 2026, 48)) == 1  # Monday 00:10 (Sunday 16:10 UTC)
        assert await visits(Period(PeriodKind.week, 2026, 44)) == 2  # Oct 26 – Nov 1 holds both month edges
        assert await visits(Period(PeriodKind.month, 2026, 10)) == 1
        assert await visits(Period(PeriodKind.month, 2026, 11)) == 3


async def test_department_follows_the_current_liaison_and_status_changes_count(db: SessionMaker) -> None:
    async with db.begin() as session:
        supervisor = await make_user(session, role=Role.supervisor)
        old = await make_user(session, role=Role.liaison, department="发改局")
        new = await make_user(session, role=Role.liaison, department="商务局")
        enterprise = await make_enterprise(session, liaison=old)
        session.add(Visit(enterprise_id=enterprise.id, user_id=old.id, visited_at=local(2026, 11, 17)))
        problem = await create_problem(
            session,
            enterprise_id=enterprise.id,
            reporter_id=old.id,
            category=ProblemCategory.land,
            description="用地审批慢",
            requested_due_date=None,
            now=local(2026, 11, 16),
        )
    w47 = Period(PeriodKind.week, 2026, 47)
    async with db.begin() as session:
        report = await stats_report(session, period=w47, now=BEIJING_NOON, tz=TZ, scope_user_id=None)
        assert [(k, f.visits, f.reported) for k, f in report.by_department] == [("发改局", 1, 1)]
        # reassigned to 商务局: last week's visit now counts for 商务局
        current = await session.scalar(select(Assignment).where(Assignment.enterprise_id == enterprise.id))
        assert current is not None
        current.end_date = date(2026, 11, 24)
        await session.flush()
        session.add(
            Assignment(
                enterprise_id=enterprise.id, user_id=new.id, role=Role.liaison, start_date=date(2026, 11, 24)
            )
        )
        found = await get_problem_for_update(session, problem_id=problem.id)
        assert found is not None
        change_status(
            session, found, to=ProblemStatus.resolved, actor_id=supervisor.id, now=local(2026, 11, 18)
        )
        found.funds_wan = Decimal("12.50")
    async with db.begin() as session:
        report = await stats_report(session, period=w47, now=BEIJING_NOON, tz=TZ, scope_user_id=None)
        assert [(k, f.visits, f.resolved, f.funds) for k, f in report.by_department] == [
            ("商务局", 1, 1, Decimal("12.50"))
        ]
        await assert_stats_match_oracle(session, w47)
        # reopened: no longer resolved in W47, nor its funds
        found = await get_problem_for_update(session, problem_id=problem.id)
        assert found is not None
        change_status(
            session, found, to=ProblemStatus.in_progress, actor_id=supervisor.id, now=local(2026, 11, 24)
        )
    async with db() as session:
        report = await stats_report(session, period=w47, now=BEIJING_NOON, tz=TZ, scope_user_id=None)
        assert (report.total.resolved, report.total.funds, report.total.reported) == (0, Decimal("0.00"), 1)
        await assert_stats_match_oracle(session, w47)


# -- /stats journeys ------------------------------------------------------------------------------------
def _png_of_last_photo(api: BotAPI) -> bytes:
    photo = api.calls_of("sendPhoto")[-1]
    assert photo.ok
    ((_filename, content),) = photo.files.values()
    return content


async def test_supervisor_gets_text_and_a_chart_for_last_week(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    async with db.begin() as session:
        district = await make_district(session)
    async with db() as session:
        report = await stats_report(
            session, period=Period(PeriodKind.week, 2026, 47), now=BEIJING_NOON, tz=TZ, scope_user_id=None
        )
    chat = chat_with(app, api, district.supervisor)
    await chat.send("/stats last")
    png = _png_of_last_photo(api)
    assert png.startswith(PNG)
    pixels = imread(io.BytesIO(png), format="png")
    assert pixels.shape[1] == 1080 and pixels.shape[0] > 600
    text = chat.last.text
    assert "2026年第47周" in text and "2026-11-16 至 2026-11-22" in text
    assert f"走访：{report.total.visits}（" in text
    assert f"问题：新报 {report.total.reported}（" in text
    assert "按部门" in text and "按社区" in text and "发改局" in text and "（未分社区）" in text
    assert "括号内为与上周相比的变化" in text
    labels = [label for row in chat.last.buttons for label, _data in row]
    assert labels == ["‹ 上一周", "下一周 ›", "按月查看"]
    # previous week, by button: a new chart and text
    photos = len(api.calls_of("sendPhoto"))
    await chat.tap("上一周")
    assert len(api.calls_of("sendPhoto")) == photos + 1
    assert "2026年第46周" in chat.last.text
    assert api.answers()[-1] == (None, False)
    await chat.tap("按月查看")
    assert "2026年11月" in chat.last.text


async def test_the_running_week_is_compared_with_the_same_point_last_week(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    async with db.begin() as session:
        supervisor = await make_user(session, role=Role.supervisor)
        liaison = await make_user(session, role=Role.liaison)
        enterprise = await make_enterprise(session, liaison=liaison)
        for at in (local(2026, 11, 17), local(2026, 11, 20), local(2026, 11, 24)):  # Tue, Fri; this Tue
            session.add(Visit(enterprise_id=enterprise.id, user_id=liaison.id, visited_at=at))
    chat = chat_with(app, api, supervisor)
    await chat.send("/stats")
    text = chat.last.text
    assert "2026年第48周" in text and "截至 2026-11-25" in text
    assert "与上周同期相比" in text
    assert "走访：1（±0）" in text  # last Tuesday counts, last Friday is after "the same point"
    assert [label for row in chat.last.buttons for label, _ in row] == ["‹ 上一周", "按月查看"]  # no future


async def test_the_current_week_turns_at_midnight_beijing_time(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    async with db.begin() as session:
        supervisor = await make_user(session, role=Role.supervisor)
    chat = chat_with(app, api, supervisor)
    clock.advance(days=4, hours=11, minutes=59)  # Sunday 23:59 in Beijing, 15:59 UTC
    await chat.send("/stats")
    assert "2026年第48周" in chat.last.text and "本周暂无走访" in chat.last.text
    clock.advance(minutes=2)  # Monday 00:01 in Beijing, still Sunday in UTC
    await chat.send("/stats")
    assert "2026年第49周（2026-11-30 至 2026-12-06）" in chat.last.text
    await chat.send("/stats last")
    assert "2026年第48周" in chat.last.text


async def test_an_empty_period_is_said_plainly(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        supervisor = await make_user(session, role=Role.supervisor)
        liaison = await make_user(session, role=Role.liaison)
        enterprise = await make_enterprise(session, liaison=liaison)
        session.add(  # a visit long ago: the 8-week trend is empty too, so no chart at all
            Visit(enterprise_id=enterprise.id, user_id=liaison.id, visited_at=local(2026, 3, 3))
        )
        session.add(  # withdrawn this week: still nothing to report
            Visit(
                enterprise_id=enterprise.id,
                user_id=liaison.id,
                visited_at=local(2026, 11, 24),
                withdrawn_at=local(2026, 11, 24, 12),
            )
        )
        problem = await create_problem(
            session,
            enterprise_id=enterprise.id,
            reporter_id=liaison.id,
            category=ProblemCategory.power,
            description="停电",
            requested_due_date=None,
            now=local(2026, 3, 3),
        )
        problem.due_date = date(2026, 4, 1)
    chat = chat_with(app, api, supervisor)
    await chat.send("/stats")
    assert not api.calls_of("sendPhoto")
    text = chat.last.text
    assert "本周暂无走访、问题或服务记录。" in text
    assert "截至今日逾期问题：1 个。" in text
    assert "按部门" not in text and "：0（" not in text
    await chat.send("/stats 2026-03")
    assert _png_of_last_photo(api).startswith(PNG)
    assert "走访：1（+1）" in chat.last.text
    await chat.send("/stats 2026-W30")
    assert "2026年第30周暂无走访、问题或服务记录。" in chat.last.text


async def test_english_stats(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        district = await make_district(session, visits=60)
        district.supervisor.locale = "en"
    chat = chat_with(app, api, district.supervisor, language_code="en")
    await chat.send("/stats 2026-11")
    text = chat.last.text
    assert text.startswith("Statistics, 2026-11 (2026-11-01 – 2026-11-30)")
    assert "Visits: " in text and "By department" in text
    assert [label for row in chat.last.buttons for label, _ in row] == ["‹ Previous month", "By week"]


async def test_forged_or_stale_stats_buttons_change_nothing(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        supervisor = await make_user(session, role=Role.supervisor)
    chat = chat_with(app, api, supervisor)
    await chat.send("/stats")
    sent = len(api.calls_of("sendMessage"))
    for data in (
        "st:0:w2026-99",
        "st:0:w2027-10",
        "st:0:x2026-47",
        "st:5:w2026-47",
        "st:0:m2026-13",
        "st:0:",
    ):
        await chat.press(data)
        assert api.answers()[-1] == ("此操作已失效。", True), data
    assert len(api.calls_of("sendMessage")) == sent


# -- staff see only their own -----------------------------------------------------------------------------
async def test_a_liaison_gets_only_their_own_figures(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        district = await make_district(session)
    zhang = district.liaisons[0]
    own = len([e for e, people in district.owners.items() if zhang in people and e != district.orphan.id])
    async with db() as session:
        report = await stats_report(
            session, period=Period(PeriodKind.week, 2026, 47), now=BEIJING_NOON, tz=TZ, scope_user_id=zhang.id
        )
        await assert_stats_match_oracle(session, Period(PeriodKind.week, 2026, 47), scope=zhang.id)
    assert report.total.assigned == own
    assert {k for k, _ in report.by_department} <= {"发改局"}
    chat = chat_with(app, api, zhang)
    await chat.send("/stats last")
    text = chat.last.text
    assert "我负责企业的统计" in text
    assert f"走访：{report.total.visits}（" in text
    assert "商务局" not in text and "市场监管局" not in text
    # a liaison's buttons lead to their own figures again; nothing forged can widen the scope
    await chat.tap("上一周")
    assert "我负责企业的统计" in chat.last.text and "商务局" not in chat.last.text


async def test_staff_without_enterprises_are_told_so(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        instructor = await make_user(session, role=Role.instructor)
    chat = chat_with(app, api, instructor)
    await chat.send("/stats")
    assert "您目前还没有包片企业" in chat.last.text
    assert not api.calls_of("sendPhoto")


async def test_a_liaison_cannot_open_another_liaisons_enterprise(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    async with db.begin() as session:
        mine_owner = await make_user(session, role=Role.liaison, name="甲")
        other = await make_user(session, role=Role.liaison, name="乙")
        mine = await make_enterprise(session, name="甲方科技有限公司", liaison=mine_owner)
        theirs = await make_enterprise(session, name="乙方科技有限公司", liaison=other)
    chat = chat_with(app, api, mine_owner)
    await chat.send("/enterprise 乙方")
    assert chat.last.text == "您负责的企业中没有与“乙方”匹配的。"
    await chat.send(f"/enterprise {theirs.credit_code}")
    assert "没有与" in chat.last.text
    full_width = mine.credit_code.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    await chat.send(f"/enterprise {full_width}")  # typed with a Chinese input method
    assert "甲方科技有限公司" in chat.last.text
    await chat.send("/enterprise 科技")  # only their own is found, and shown directly
    assert "甲方科技有限公司" in chat.last.text and "乙方" not in chat.last.text
    sent = len(api.calls_of("sendMessage"))
    await chat.press(f"st:{theirs.id}:ent")  # forged
    assert api.answers()[-1] == ("抱歉，您没有此项操作的权限。", True)
    await chat.press("st:999999:ent")
    assert api.answers()[-1] == ("抱歉，您没有此项操作的权限。", True)
    assert len(api.calls_of("sendMessage")) == sent
    await chat.press(f"st:{mine.id}:ent")
    assert "甲方科技有限公司" in chat.last.text
    # and no supervisor reports, by command or by forged button
    for command in ("/liaison 乙", "/coverage", "/trends", "/pending"):
        await chat.send(command)
        assert chat.last.text == "抱歉，您没有此项操作的权限。", command
    await chat.press(f"st:{other.id}:lia")
    assert api.answers()[-1] == ("抱歉，您没有此项操作的权限。", True)


# -- /enterprise ------------------------------------------------------------------------------------------
async def test_enterprise_card_for_a_supervisor(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        supervisor = await make_user(session, role=Role.supervisor)
        liaison = await make_user(session, role=Role.liaison, name="张<三>", department="发改局")
        instructor = await make_user(session, role=Role.instructor, name="赵指导", community="东城社区")
        enterprise = await make_enterprise(
            session,
            name="华兴<科技>有限公司",
            stage=Stage.growth,
            party_org=PartyOrg.joint,
            liaison=liaison,
            instructor=instructor,
        )
        enterprise.party_members = 12
        await make_enterprise(session, name="华兴制造有限公司")
        for day in range(1, 8):
            session.add(
                Visit(
                    enterprise_id=enterprise.id,
                    user_id=liaison.id,
                    visited_at=local(2026, 11, day),
                    topics=["policy", "party_building"],
                    withdrawn_at=local(2026, 11, 8) if day == 7 else None,
                )
            )
        for i, status in enumerate([ProblemStatus.resolved, ProblemStatus.open, ProblemStatus.closed]):
            problem = await create_problem(
                session,
                enterprise_id=enterprise.id,
                reporter_id=liaison.id,
                category=ProblemCategory.financing,
                description=f"融资问题{i} <b>",
                requested_due_date=None,
                now=local(2026, 11, 10 + i),
            )
            problem.status = status
        session.add(
            ServiceRequest(
                enterprise_id=enterprise.id,
                requester_id=liaison.id,
                menu_item_id=await _menu_item(session),
                status=ServiceStatus.delivered,
                created_at=local(2026, 11, 3),
                delivered_at=local(2026, 11, 9),
            )
        )
    chat = chat_with(app, api, supervisor)
    await chat.send("/enterprise 华兴")
    assert "2 家企业与“华兴”匹配" in chat.last.text
    await chat.tap("华兴<科技>有限公司")
    text = chat.last.text
    assert text.startswith("华兴<科技>有限公司")  # escaped in HTML, shown as is
    assert "阶段：发展型 · 社区：东城社区" in text
    assert "党组织：联合组建 · 党员 12 人" in text
    assert "联络员：张<三>（发改局） · 指导员：赵指导（东城社区）" in text
    assert "走访记录（共 6 次）" in text
    visit_lines = [line for line in text.splitlines() if line.startswith("• 2026-11-")]
    assert [line[2:12] for line in visit_lines] == [f"2026-11-0{d}" for d in (6, 5, 4, 3, 2)]
    assert "政策宣传" in visit_lines[0]
    problem_lines = [line for line in text.splitlines() if line.startswith("• P-")]
    assert "待办" in problem_lines[0] and "融资问题1 <b>" in problem_lines[0]  # pending first
    assert "问题（未办结 1 个，共 3 个）" in text
    assert "服务（共 1 项）" in text and "已完成" in text
    assert chat.last.buttons == []  # supervisors get no field shortcuts
    await chat.send("/enterprise 不存在的企业")
    assert chat.last.text == "没有与“不存在的企业”匹配的企业。"
    await chat.send("/enterprise")
    assert "/enterprise 华兴" in chat.last.text


async def test_many_matches_are_capped(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        supervisor = await make_user(session, role=Role.supervisor)
        for i in range(11):
            await make_enterprise(session, name=f"同名{i:02d}有限公司")
    chat = chat_with(app, api, supervisor)
    await chat.send("/enterprise 同名")
    assert "11 家企业" in chat.last.text and "仅显示前 8 个结果" in chat.last.text
    assert len(chat.last.buttons) == 8
    await chat.send("/enterprise " + "长" * 51)
    assert "最多 50 个字" in chat.last.text


# -- /liaison ---------------------------------------------------------------------------------------------
async def test_liaison_activity_matches_the_oracle(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        district = await make_district(session)
    zhang = district.liaisons[0]
    w47 = Period(PeriodKind.week, 2026, 47)
    async with db() as session:
        for person in (*district.liaisons, *district.instructors):
            report = await liaison_report(
                session, user=person, period=w47, now=BEIJING_NOON, tz=TZ, stale_limit=10
            )
            expected = await oracle.liaison(
                session, user_id=person.id, start=_bounds(w47)[0], end=_bounds(w47)[1], now=BEIJING_NOON
            )
            a = report.activity
            assert {
                "visits": a.visits,
                "enterprises_visited": a.enterprises_visited,
                "assigned": a.assigned,
                "stale_count": a.stale_count,
                "open_problems": {s.value: n for s, n in a.open_problems.items()},
                "open_services": a.open_services,
                "problems_reported": a.problems_reported,
            } == expected
        report = await liaison_report(
            session, user=zhang, period=w47, now=BEIJING_NOON, tz=TZ, stale_limit=10
        )
    chat = chat_with(app, api, district.supervisor)
    await chat.send("/liaison 张三")  # matches 张三 and 张三丰
    assert "2 人与“张三”匹配" in chat.last.text
    await chat.tap("张三（党建联络员，发改局）")
    assert "本周" not in chat.last.text and "2026年第48周" in chat.last.text
    await chat.tap("上一周")
    text = chat.last.text
    assert text.startswith("张三（党建联络员，发改局）")
    assert f"走访 {report.activity.visits} 次" in text
    assert f"包片企业：{report.activity.assigned} 家" in text
    assert f"30 天以上未走访：{report.activity.stale_count} 家" in text
    assert "最近活动：" in text
    await chat.send("/liaison 张三丰 2026-10")
    assert "张三丰" in chat.last.text and "2026年10月" in chat.last.text
    await chat.send("/liaison 无此人")
    assert chat.last.text == "没有名为“无此人”的联络员或指导员。"
    await chat.send("/liaison")
    assert "/liaison 张三 last" in chat.last.text
    for forged in ("st:999999:lia", f"st:{district.supervisor.id}:lia", f"st:{zhang.id}:lia.w2027-10"):
        await chat.press(forged)  # unknown, not staff, a future period
        assert api.answers()[-1] == ("此操作已失效。", True), forged


# -- /coverage and /trends ---------------------------------------------------------------------------------
async def test_coverage_matches_the_oracle(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        district = await make_district(session)
    async with db() as session:
        report = await coverage_report(session, now=BEIJING_NOON, limit=30)
        expected = await oracle.coverage(session, now=BEIJING_NOON, limit=30)
    got_org = {(c.community, s.value): n for c in report.communities for s, n in c.party_org.items()}
    assert got_org == expected.party_org
    assert {c.community: c.assigned for c in report.communities if c.assigned} == expected.assigned
    assert {c.community: c.visited_30 for c in report.communities if c.visited_30} == expected.visited_30
    assert {c.community: c.visited_90 for c in report.communities if c.visited_90} == expected.visited_90
    assert report.unvisited_count == expected.unvisited_count
    assert [(e.id, e.last_visit) for e in report.unvisited] == expected.unvisited
    organised = sum(n for (_c, org), n in expected.party_org.items() if org != "none")
    total = sum(expected.party_org.values())
    chat = chat_with(app, api, district.supervisor)
    await chat.send("/coverage")
    text = chat.last.text
    assert f"党组织覆盖率：{organised / total * 100:.1f}%（{organised}/{total}）" in text
    assert "单独组建" in text and "联合组建" in text and "挂靠" in text and "未组建" in text
    assert "30 天内" in text and "90 天内" in text


async def test_coverage_lists_long_unvisited_enterprises_within_telegram_limits(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    async with db.begin() as session:
        supervisor = await make_user(session, role=Role.supervisor)
        liaison = await make_user(session, role=Role.liaison)
        for i in range(120):
            enterprise = await make_enterprise(
                session,
                name=f"很长的企业名称用于测试消息长度限制第{i:03d}号有限责任公司",
                community=f"第{i:03d}社区",
                liaison=liaison,
            )
            if i % 12:  # 10 never visited, the others in January
                session.add(
                    Visit(
                        enterprise_id=enterprise.id, user_id=liaison.id, visited_at=local(2026, 1, 1 + i % 28)
                    )
                )
    chat = chat_with(app, api, supervisor)
    await chat.send("/coverage")
    texts = [c.params["text"] for c in api.calls_of("sendMessage")]
    assert all(len(t) <= 4096 for t in texts)
    joined = "\n".join(chat.texts())
    assert "90 天以上未走访或从未走访的包片企业：120 家" in joined
    assert "…另有 90 项" in joined  # 30 listed
    listed = [line for line in joined.splitlines() if line.startswith("• 很长的企业名称")]
    assert len(listed) == 30
    assert all("— 从未走访" in line for line in listed[:10])  # never visited first, then the oldest
    assert all("— 最近走访 2026-01-0" in line for line in listed[10:])
    assert "…另有 80 项" in joined  # 40 of 120 communities listed


async def test_trends_match_the_oracle(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        district = await make_district(session)
    async with db() as session:
        report = await trends_report(session, now=BEIJING_NOON)
        expected = await oracle.trends(session, now=BEIJING_NOON)
    assert {
        (c.category.value, c.community): (c.problems, c.enterprises) for c in report.combinations
    } == expected
    top = report.recurring[0]
    chat = chat_with(app, api, district.supervisor)
    await chat.send("/trends")
    text = chat.last.text
    assert f"近 90 天的问题：{sum(n for n, _ in expected.values())} 个" in text
    community = top.community or "（未分社区）"
    assert re.search(
        rf"1\. .+ × {re.escape(community)}：{top.problems} 个问题，涉及 {top.enterprises} 家企业", text
    )


async def test_trends_without_problems(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        supervisor = await make_user(session, role=Role.supervisor)
    chat = chat_with(app, api, supervisor)
    await chat.send("/trends")
    assert "近 90 天没有报告问题。" in chat.last.text
    await chat.send("/coverage")
    assert "尚未登记任何企业。" in chat.last.text


async def test_reports_write_nothing(app: App, api: BotAPI, db: SessionMaker) -> None:
    """Sanity: nothing a report does writes to the database."""
    async with db.begin() as session:
        district = await make_district(session, visits=50)
    async with db() as session:
        before = [
            await session.scalar(select(func.count()).select_from(t))
            for t in (Visit, Problem, ServiceRequest, Assignment)
        ]
    chat = chat_with(app, api, district.supervisor)
    for command in ("/stats", "/stats last", "/coverage", "/trends", "/liaison 李四", "/enterprise 企业0"):
        await chat.send(command)
    async with db() as session:
        after = [
            await session.scalar(select(func.count()).select_from(t))
            for t in (Visit, Problem, ServiceRequest, Assignment)
        ]
    assert before == after


async def test_the_reports_in_english(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        district = await make_district(session, visits=120)
        district.supervisor.locale = "en"
    chat = chat_with(app, api, district.supervisor, language_code="en")
    await chat.send("/coverage")
    assert "Party-organisation coverage: " in chat.last.text and "Joint organisation" in chat.last.text
    await chat.send("/trends")
    assert chat.last.text.startswith("Problems of the last 90 days: ")
    await chat.send("/liaison 李四 last")
    assert "Week 47 of 2026 (2026-11-16 – 2026-11-22): " in chat.last.text
    await chat.send("/enterprise 企业05")
    assert "Visits (" in chat.last.text and "Credit code: " in chat.last.text
    await chat.send("/stats 2026-W99")
    assert chat.last.text == "There is no week 2026-W99: a year has 52 or 53 ISO weeks."


def test_long_texts_are_split_between_lines() -> None:
    lines = [f"<b>{i:04d}</b> " + "字" * 90 for i in range(200)]
    parts = chunks(lines)
    assert all(len(p) <= 4096 for p in parts) and len(parts) > 4
    assert "\n".join(parts).splitlines() == lines  # nothing lost, no line (or tag) cut in two
    assert chunks(["x" * 5000]) == ["x" * 4095 + "…"]
