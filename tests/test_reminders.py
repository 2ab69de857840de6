"""Push reminders: who gets what and when, exactly once, within Telegram's limits."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Update, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram.ext import Application

from bot.app import build_application
from bot.config import Settings
from bot.context import Runtime
from bot.handlers.reminders import due_pushes, scan
from bot.storage import outbox
from bot.storage.db import SessionMaker, create_engine, create_sessionmaker
from bot.storage.enums import ProblemCategory, ProblemStatus, Role
from bot.storage.models import Assignment, Notification, Problem, User, Visit
from bot.storage.problems import create_problem
from tests.botapi import BotAPI
from tests.conftest import Clock, chat_with, make_enterprise, make_user

App = Application[Any, Any, Any, Any, Any, Any]


def beijing(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return (
        datetime(y, m, d, hh - 8, mm, tzinfo=UTC)
        if hh >= 8
        else datetime(y, m, d - 1, hh + 16, mm, tzinfo=UTC)
    )


class VirtualTime:
    """Pacing and 429 waits run on this clock, so tests don't sleep for real."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds
        await asyncio.sleep(0)


@pytest.fixture
def runtime(app: App) -> Runtime:
    rt: Runtime = app.bot_data["runtime"]
    vt = VirtualTime()
    rt.monotonic, rt.sleep = vt.monotonic, vt.sleep
    return rt


async def arrange(db: SessionMaker, clock: Clock) -> dict[str, Any]:
    """Two liaisons (one with problems, one without), a supervisor, an admin."""
    async with db.begin() as session:
        busy = await make_user(session, role=Role.liaison, name="忙碌的李")
        idle = await make_user(session, role=Role.liaison, name="清闲的王")
        supervisor = await make_user(session, role=Role.supervisor, name="督导周")
        supervisor.muted = ["digest"]  # the weekly digest has a test of its own
        admin = await make_user(session, role=Role.admin, name="管理员吴")
        ent = await make_enterprise(session, name="甲公司", liaison=busy)
        await make_enterprise(session, name="乙公司", liaison=idle)
        older = await create_problem(
            session,
            enterprise_id=ent.id,
            reporter_id=busy.id,
            category=ProblemCategory.land,
            description="用地",
            requested_due_date=None,
            now=clock() - timedelta(days=10),
        )
        newer = await create_problem(
            session,
            enterprise_id=ent.id,
            reporter_id=busy.id,
            category=ProblemCategory.power,
            description="用电",
            requested_due_date=None,
            now=clock() - timedelta(days=2),
        )
        # Everyone has visited their enterprises recently, so no coverage reminders interfere.
        await _visit_all(session, busy, clock())
        await _visit_all(session, idle, clock())
    return {
        "busy": busy,
        "idle": idle,
        "supervisor": supervisor,
        "admin": admin,
        "older": older,
        "newer": newer,
        "enterprise": ent,
    }


async def _visit_all(session: Any, user: User, now: datetime) -> None:
    for enterprise_id in await session.scalars(
        select(Assignment.enterprise_id).where(Assignment.user_id == user.id)
    ):
        session.add(
            Visit(
                enterprise_id=enterprise_id,
                user_id=user.id,
                visited_at=now - timedelta(days=1),
                topics=["policy"],
                notes="",
            )
        )


def texts_to(api: BotAPI, user: User) -> list[str]:
    assert user.telegram_id is not None
    return [m.text for m in api.messages(user.telegram_id)]


async def test_at_nine_on_a_working_day_each_responsible_user_gets_one_list(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, runtime: Runtime
) -> None:
    clock.current = beijing(2026, 11, 25, 9, 1)  # Wednesday
    people = await arrange(db, clock)
    report = await scan(app.bot, runtime)
    assert report.delivery.sent == 1
    (text,) = texts_to(api, people["busy"])
    assert text.startswith("早上好。您有 2 个待办问题")
    assert text.index(people["older"].ref) < text.index(people["newer"].ref)  # oldest first
    assert "甲公司" in text and "用地" in text and "10 天" in text
    buttons = api.last(people["busy"].telegram_id).buttons
    assert buttons[0] == [
        (f"进展 {people['older'].ref}", f"mp:{people['older'].id}:progress"),
        ("已解决", f"mp:{people['older'].id}:resolve"),
        ("暂缓一天", f"nt:{people['older'].id}:snooze"),
    ]
    assert texts_to(api, people["idle"]) == [] and texts_to(api, people["supervisor"]) == []
    again = await scan(app.bot, runtime)
    assert again.queued == 0 and again.delivery.sent == 0
    clock.advance(hours=3)
    assert (await scan(app.bot, runtime)).delivery.sent == 0  # still the same day
    assert len(texts_to(api, people["busy"])) == 1


@pytest.mark.parametrize(
    "moment",
    [
        beijing(2026, 11, 25, 8, 59),
        beijing(2026, 11, 25, 22, 0),
        beijing(2026, 11, 29, 10, 0),
        beijing(2026, 11, 28, 9, 30),
    ],
)
async def test_nothing_before_nine_at_night_or_at_weekends(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, runtime: Runtime, moment: datetime
) -> None:
    await arrange(db, clock)
    clock.current = moment
    report = await scan(app.bot, runtime)
    assert report.queued == 0 and report.delivery.sent == 0
    assert api.calls_of("sendMessage") == []


async def test_snooze_skips_the_next_day(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, runtime: Runtime
) -> None:
    clock.current = beijing(2026, 11, 25, 9, 0)
    people = await arrange(db, clock)
    await scan(app.bot, runtime)
    chat = chat_with(app, api, people["busy"])
    snooze_button = chat.last.buttons[0][2]
    assert snooze_button[0] == "暂缓一天"
    await chat.press(str(snooze_button[1]), message_id=chat.last.message_id)
    assert "2026-11-27" in (api.answers()[-1][0] or "")
    clock.current = beijing(2026, 11, 26, 9, 0)
    await scan(app.bot, runtime)
    text = texts_to(api, people["busy"])[-1]
    assert "1 个待办问题" in text and people["older"].ref not in text
    clock.current = beijing(2026, 11, 27, 9, 0)
    await scan(app.bot, runtime)
    assert people["older"].ref in texts_to(api, people["busy"])[-1]
    other = chat_with(app, api, people["idle"])
    await other.press(f"nt:{people['newer'].id}:snooze")  # not theirs
    assert api.answers()[-1] == ("这个问题已不再待办，或不是您负责的。", True)


async def test_muted_kinds_are_not_sent(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, runtime: Runtime
) -> None:
    clock.current = beijing(2026, 11, 25, 9, 0)
    people = await arrange(db, clock)
    chat = chat_with(app, api, people["busy"])
    await chat.send("/settings")
    await chat.tap("每日待办问题清单")
    assert "🔕 每日待办问题清单" in str(chat.last.buttons)
    assert (await scan(app.bot, runtime)).delivery.sent == 0
    async with db() as session:
        user = await session.get(User, people["busy"].id)
    assert user is not None and user.muted == ["pending"]
    await chat.tap("每日待办问题清单")
    assert (await scan(app.bot, runtime)).delivery.sent == 1


async def test_overdue_escalation_goes_to_reporter_and_supervisors_every_three_days(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, runtime: Runtime
) -> None:
    clock.current = beijing(2026, 11, 25, 9, 0)
    people = await arrange(db, clock)
    async with db.begin() as session:
        problem = await session.get(Problem, people["older"].id)
        assert problem is not None
        problem.due_date = date(2026, 11, 20)
        problem.status = ProblemStatus.in_progress
    await scan(app.bot, runtime)
    assert any("已逾期 5 天" in t for t in texts_to(api, people["busy"]))
    (escalation,) = texts_to(api, people["supervisor"])
    assert "已逾期 5 天" in escalation and "截止 2026-11-20" in escalation
    sent_days = ["11-25"]
    for day in (26, 27, 28, 29, 30):
        clock.current = beijing(2026, 11, day, 9, 0)
        if (await scan(app.bot, runtime)).delivery.sent and len(texts_to(api, people["supervisor"])) > len(
            sent_days
        ):
            sent_days.append(f"11-{day}")
    assert sent_days == ["11-25", "11-30"]  # 28th was a Saturday, held; then the next working day
    assert "已逾期 10 天" in texts_to(api, people["supervisor"])[-1]


async def test_429_is_honoured_and_the_message_retried(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, runtime: Runtime
) -> None:
    clock.current = beijing(2026, 11, 25, 9, 0)
    people = await arrange(db, clock)
    api.fail("sendMessage", status=429, retry_after=7, times=2)
    report = await scan(app.bot, runtime)
    assert report.delivery.rate_limited == 2 and report.delivery.sent == 1
    assert runtime.monotonic() >= 1000 + 14  # waited retry_after each time
    assert len(texts_to(api, people["busy"])) == 1
    async with db() as session:
        assert await session.scalar(select(Notification.status)) == "sent"


async def test_server_errors_are_retried_later_with_backoff(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, runtime: Runtime
) -> None:
    clock.current = beijing(2026, 11, 25, 9, 0)
    people = await arrange(db, clock)
    api.fail("sendMessage", status=502, times=1)
    report = await scan(app.bot, runtime)
    assert report.delivery.retried == 1 and report.delivery.sent == 0
    async with db() as session:
        row = await session.scalar(select(Notification))
    assert row is not None and row.status == "pending" and row.attempts == 1 and row.send_after > clock()
    clock.advance(minutes=2)
    assert (await scan(app.bot, runtime)).delivery.sent == 1
    assert len(texts_to(api, people["busy"])) == 1


async def test_a_user_who_blocked_the_bot_is_marked_and_admins_told_once(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, runtime: Runtime
) -> None:
    clock.current = beijing(2026, 11, 25, 9, 0)
    people = await arrange(db, clock)
    busy_chat = people["busy"].telegram_id
    api.fail(
        "sendMessage",
        status=403,
        description="Forbidden: bot was blocked by the user",
        times=5,
        chat_id=busy_chat,
    )
    report = await scan(app.bot, runtime)
    assert report.delivery.failed == 1
    (alert,) = texts_to(api, people["admin"])
    assert "忙碌的李" in alert and "屏蔽" in alert
    clock.current = beijing(2026, 11, 26, 9, 0)
    await scan(app.bot, runtime)
    assert len(texts_to(api, people["admin"])) == 1
    async with db() as session:
        user = await session.get(User, people["busy"].id)
        assert user is not None and user.unreachable
        sends = await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.recipient_id == people["busy"].id)
        )
    assert sends == 1  # not queued again while unreachable


async def test_a_restart_between_outbox_write_and_send_sends_once(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, runtime: Runtime, settings: Settings
) -> None:
    clock.current = beijing(2026, 11, 25, 9, 0)
    people = await arrange(db, clock)
    async with db.begin() as session:  # the first process writes the outbox and claims, then dies
        await outbox.enqueue(session, await due_pushes(runtime, session))
    async with db.begin() as session:
        assert len(await outbox.claim(session, now=clock(), lease=timedelta(minutes=2), limit=10)) == 1
    restarted = build_application(settings, request=api, clock=clock)
    async with restarted:
        rt: Runtime = restarted.bot_data["runtime"]
        rt.monotonic, rt.sleep = runtime.monotonic, runtime.sleep
        assert (await scan(restarted.bot, rt)).delivery.sent == 0  # the dead process still holds the lease
        clock.advance(minutes=3)
        assert (await scan(restarted.bot, rt)).delivery.sent == 1
        assert (await scan(restarted.bot, rt)).delivery.sent == 0
        await restarted.post_shutdown(restarted)  # type: ignore[misc]
    assert len(texts_to(api, people["busy"])) == 1


async def test_two_scanners_at_once_send_each_reminder_once(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, runtime: Runtime, settings: Settings
) -> None:
    clock.current = beijing(2026, 11, 25, 9, 0)
    async with db.begin() as session:
        liaisons = [await make_user(session, role=Role.liaison) for _ in range(12)]
        for user in liaisons:
            ent = await make_enterprise(session, liaison=user)
            await create_problem(
                session,
                enterprise_id=ent.id,
                reporter_id=user.id,
                category=ProblemCategory.other,
                description="x",
                requested_due_date=None,
                now=clock() - timedelta(days=1),
            )
            await _visit_all(session, user, clock())
    engine = create_engine(settings.database_url)
    other = Runtime(
        settings=settings,
        engine=engine,
        db=create_sessionmaker(engine),
        clock=clock,
        monotonic=runtime.monotonic,
        sleep=runtime.sleep,
    )
    reports = await asyncio.gather(scan(app.bot, runtime), scan(app.bot, other))
    await engine.dispose()
    assert sum(r.delivery.sent for r in reports) == 12
    for user in liaisons:
        assert len(texts_to(api, user)) == 1


async def test_coverage_gaps_on_monday_with_a_visit_button(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, runtime: Runtime
) -> None:
    async with db.begin() as session:
        liaison = await make_user(session, role=Role.liaison)
        never = await make_enterprise(session, name="从未走访公司", liaison=liaison)
        recent = await make_enterprise(session, name="刚走访公司", liaison=liaison)
        session.add(
            Visit(
                enterprise_id=recent.id,
                user_id=liaison.id,
                visited_at=clock() - timedelta(days=3),
                topics=[],
                notes="",
            )
        )
    clock.current = beijing(2026, 11, 30, 9, 10)  # Monday, before 09:30
    await scan(app.bot, runtime)
    assert texts_to(api, liaison) == []
    clock.current = beijing(2026, 11, 30, 9, 30)
    await scan(app.bot, runtime)
    (text,) = texts_to(api, liaison)
    assert "从未走访公司 — 从未走访" in text and "刚走访公司" not in text
    assert api.last(liaison.telegram_id or 0).buttons == [[("走访 从未走访公司", f"ent:{never.id}:visit")]]
    clock.advance(days=1)
    await scan(app.bot, runtime)
    assert len(texts_to(api, liaison)) == 1  # once a week


async def test_admin_remind_dry_run_then_send(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, runtime: Runtime
) -> None:
    clock.current = beijing(2026, 11, 25, 22, 0)  # quiet hours: nothing due by the schedule
    people = await arrange(db, clock)
    chat = chat_with(app, api, people["admin"])
    await chat.send("/remind")
    assert "按计划现在应发送的提醒：0 条" in chat.last.text and "每日待办问题清单: 1" in chat.last.text
    assert texts_to(api, people["busy"]) == []
    await chat.tap("立即发送")
    assert "已发送 1 条" in chat.last.text
    assert len(texts_to(api, people["busy"])) == 1
    liaison = chat_with(app, api, people["busy"])
    await liaison.send("/remind")
    assert "没有此项操作的权限" in liaison.last.text
    await liaison.press("nt:0:send")
    assert api.answers()[-1] == ("此操作已失效。", True)


async def test_weekly_digest_on_monday_with_chart_for_supervisors(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, runtime: Runtime
) -> None:
    async with db.begin() as session:
        supervisor = await make_user(session, role=Role.supervisor, name="督导郑")
        english = await make_user(session, role=Role.supervisor, name="Supervisor E", locale="en")
        liaison = await make_user(session, role=Role.liaison)
        enterprise = await make_enterprise(session, liaison=liaison)
        # Sunday 23:30 in Beijing belongs to the week that ends then (2026-W48).
        session.add(
            Visit(
                enterprise_id=enterprise.id,
                user_id=liaison.id,
                visited_at=beijing(2026, 11, 29, 23, 30),
                topics=["policy"],
                notes="",
            )
        )
    clock.current = beijing(2026, 11, 29, 10, 0)  # Sunday: held
    await scan(app.bot, runtime)
    assert api.calls_of("sendPhoto") == []
    clock.current = beijing(2026, 11, 30, 9, 0)  # Monday 09:00
    await scan(app.bot, runtime)
    photos = api.calls_of("sendPhoto")
    assert len(photos) == 2 and all(p.files for p in photos)
    png = next(iter(photos[0].files.values()))[1]
    assert png.startswith(b"\x89PNG")
    (text,) = texts_to(api, supervisor)[1:]
    assert text.startswith("每周统计摘要") and "走访：1" in text
    assert (
        texts_to(api, english)[-1].startswith("Weekly digest") and "Visits: 1" in texts_to(api, english)[-1]
    )
    assert not [t for t in texts_to(api, liaison) if "统计" in t]
    clock.advance(hours=5)
    await scan(app.bot, runtime)
    assert len(api.calls_of("sendPhoto")) == 2  # once a week


async def test_returned_problem_goes_through_the_outbox_and_a_blocked_reporter_is_flagged(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, runtime: Runtime
) -> None:
    clock.current = clock.current.replace(microsecond=987654)  # a real clock: the period must still fit
    people = await arrange(db, clock)
    supervisor = chat_with(app, api, people["supervisor"])
    api.fail(
        "sendMessage",
        status=403,
        description="Forbidden: bot was blocked by the user",
        times=1,
        chat_id=people["busy"].telegram_id,
    )
    await supervisor.press(f"pb:{people['older'].id}:ret.open")
    await supervisor.send("资料不全，请补充用地面积")
    await supervisor.tap("确认退回修改")
    async with db() as session:
        problem = await session.get(Problem, people["older"].id)
        row = await session.scalar(select(Notification).where(Notification.kind == "returned"))
        reporter = await session.get(User, people["busy"].id)
    assert problem is not None and problem.status is ProblemStatus.returned
    assert row is not None and row.status == "failed" and reporter is not None and reporter.unreachable
    assert "忙碌的李" in texts_to(api, people["admin"])[-1]


async def test_a_row_claimed_meanwhile_by_another_scanner_is_not_claimed_again(
    app: App, db: SessionMaker, clock: Clock
) -> None:
    """Two scanners choose the same rows; the other claims them between this one's choice and its claim.
    On SQLite choosing takes no lock, so the claim must check again; on PostgreSQL the choice locks the rows
    and the other scanner skips them. Either way each row is claimed once."""
    now, lease = clock(), timedelta(minutes=5)
    async with db.begin() as session:
        user = await make_user(session, role=Role.liaison)
        pushes = [outbox.Push("pending", user.id, f"p{i}", "2026-11-25", {}, now) for i in range(3)]
        await outbox.enqueue(session, pushes)
    taken: list[outbox.Claimed] = []

    class ClaimedMeanwhile:
        """This scanner's session; the other scanner claims and commits right before this one's UPDATE."""

        def __init__(self, session: AsyncSession) -> None:
            self.session = session

        def __getattr__(self, name: str) -> Any:
            return getattr(self.session, name)

        async def _other_first(self, statement: Any) -> None:
            if isinstance(statement, Update) and not taken:
                async with db.begin() as other:
                    taken.extend(await outbox.claim(other, now=now, lease=lease, limit=10))

        async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
            await self._other_first(statement)
            return await self.session.execute(statement, *args, **kwargs)

        async def scalars(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
            await self._other_first(statement)
            return await self.session.scalars(statement, *args, **kwargs)

    async with db.begin() as session:
        proxy: Any = ClaimedMeanwhile(session)
        mine = await outbox.claim(proxy, now=now, lease=lease, limit=10)
    assert (
        sorted(c.id for c in mine + taken) == sorted({c.id for c in mine + taken}) and len(mine + taken) == 3
    )
