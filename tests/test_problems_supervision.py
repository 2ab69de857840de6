"""/pending, /overdue and the problem card: a supervisor follows a liaison's problem from report to close
(assign, return for correction, the liaison's correction, close), with filters, paging, overdue days, double
taps, stale cards, forged callback data, refused liaisons, unreachable reporters and a restart mid-action."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from telegram.ext import Application

from bot.app import build_application
from bot.config import Settings
from bot.storage.db import SessionMaker
from bot.storage.enums import ProblemCategory, ProblemStatus, Role
from bot.storage.models import Draft, Problem, ProblemEvent, User
from bot.storage.problems import add_event, create_problem
from tests.botapi import BotAPI, Chat
from tests.conftest import Clock, chat_with, make_enterprise, make_user

App = Application[Any, Any, Any, Any, Any, Any]
EXPIRED = ("此操作已失效。", True)
REFUSED = ("抱歉，您没有此项操作的权限。", True)
S = ProblemStatus


@dataclass
class World:
    supervisor: User
    liaison: User
    enterprise_id: int


async def world(
    db: SessionMaker, *, supervisor_locale: str = "zh_CN", liaison_locale: str = "zh_CN"
) -> World:
    async with db.begin() as session:
        supervisor = await make_user(session, role=Role.supervisor, name="王督导", locale=supervisor_locale)
        liaison = await make_user(
            session, role=Role.liaison, name="李明", department="发改局", locale=liaison_locale
        )
        enterprise = await make_enterprise(session, name="东方机械有限公司", liaison=liaison)
    return World(supervisor, liaison, enterprise.id)


async def new_problem(
    db: SessionMaker,
    w: World,
    at: datetime,
    *,
    category: ProblemCategory = ProblemCategory.land,
    description: str = "厂房扩建缺少用地指标",
    department: str | None = None,
    due: date | None = None,
    enterprise_id: int | None = None,
) -> int:
    async with db.begin() as session:
        problem = await create_problem(
            session,
            enterprise_id=enterprise_id or w.enterprise_id,
            reporter_id=w.liaison.id,
            category=category,
            description=description,
            requested_due_date=None,
            now=at,
        )
        problem.department, problem.due_date = department, due
    return problem.id


async def get_problem(db: SessionMaker, problem_id: int) -> Problem:
    async with db() as session:
        problem = await session.get(Problem, problem_id)
    assert problem is not None
    return problem


async def events(db: SessionMaker, problem_id: int) -> list[ProblemEvent]:
    async with db() as session:
        rows = await session.scalars(
            select(ProblemEvent).where(ProblemEvent.problem_id == problem_id).order_by(ProblemEvent.id)
        )
        return list(rows)


async def count(db: SessionMaker, model: Any) -> int:
    async with db() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


def labels(chat: Chat) -> list[str]:
    return [label for row in chat.last.buttons for label, _ in row]


def data_of(chat: Chat, label: str) -> str:
    hits = [data for row in chat.last.buttons for text, data in row if label in text]
    assert len(hits) == 1 and hits[0] is not None, (label, chat.last.buttons)
    return hits[0]


# -- the journey -----------------------------------------------------------------------------------------
async def test_a_supervisor_follows_a_problem_from_report_to_close(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    liaison, supervisor = chat_with(app, api, w.liaison), chat_with(app, api, w.supervisor)
    # the liaison reports it (/problem flow)
    await liaison.send("/problem")
    await liaison.tap("东方机械有限公司")
    await liaison.tap("用地")
    await liaison.send("厂房扩建缺少用地指标")
    await liaison.send("2026-12-31")
    await liaison.tap("确认")
    assert "P-2026-0001" in liaison.last.text
    [problem] = await all_problems(db)

    # the supervisor sees it in /pending and opens the card
    clock.advance(hours=1)
    await supervisor.send("/pending")
    text = supervisor.last.text
    assert "待办问题：共 1 条 · 第 1/1 页" in text and "类别：全部 · 责任部门：全部" in text
    assert "1. P-2026-0001 东方机械有限公司" in text and "用地 · 待办 · 未指定部门 · 2026-11-25 报告" in text
    assert supervisor.last.buttons[0] == [("1. P-2026-0001 东方机械有限公司", f"pb:{problem.id}:view")]
    await supervisor.tap("P-2026-0001")
    card = supervisor.last.text
    assert card.startswith("P-2026-0001 · 待办")
    for line in (
        "企业：东方机械有限公司",
        "类别：用地",
        "报告人：李明（2026-11-25 12:00）",
        "责任部门：未指定",
        "办结时限：未定",
        "报告人期望办结：2026-12-31",
        "问题描述：厂房扩建缺少用地指标",
        "处理记录\n• 2026-11-25 12:00 李明: 报告了问题",
    ):
        assert line in card, (line, card)
    assert labels(supervisor) == ["指定责任部门和时限", "标记为处理中", "退回修改", "关闭", "🔄 刷新"]

    # assign a department and a due date: the reporter is told
    await supervisor.tap("指定责任部门和时限")
    assert "由哪个部门负责" in supervisor.last.text
    assert "发改局" in labels(supervisor)  # the liaisons' departments are offered
    await supervisor.send("住建局")
    assert "责任部门：住建局" in supervisor.last.text and "办结时限是哪天" in supervisor.last.text
    assert labels(supervisor)[:4] == [
        "按报告人期望（2026-12-31）",
        "一周内（2026-12-02）",
        "两周内（2026-12-09）",
        "一个月内（2026-12-25）",
    ]
    await supervisor.send("2026-11-01")
    assert "已经过去" in supervisor.last.text  # a past day is refused
    await supervisor.tap("一周内")
    assert "交由住建局负责，办结时限 2026-12-02？将通知报告人。" in supervisor.last.text
    await supervisor.tap("确认指定")
    text = supervisor.last.text
    assert text.startswith("✔ 已交由住建局负责，办结时限 2026-12-02，并已通知报告人。")
    assert "P-2026-0001 · 处理中" in text and "责任部门：住建局" in text and "办结时限：2026-12-02" in text
    assert "• 2026-11-25 13:00 王督导: 指定了责任部门和办结时限 — 住建局 · 2026-12-02" in text
    assert (
        liaison.last.text
        == "📌 您报告的问题 P-2026-0001（东方机械有限公司）已交由住建局负责，办结时限 2026-12-02。"
    )

    # return it for correction: the reporter gets the reason and the button into /my
    clock.advance(hours=1)
    await supervisor.tap("退回修改")
    assert "退回修改的原因是什么" in supervisor.last.text
    await supervisor.send("请补充<地块>编号")
    assert "确认退回修改？\n原因：请补充<地块>编号" in supervisor.last.text
    await supervisor.tap("确认退回修改")
    assert "✔ 已退回修改，并已通知报告人。" in supervisor.last.text
    assert "P-2026-0001 · 退回修改" in supervisor.last.text
    assert labels(supervisor) == ["关闭", "🔄 刷新"]  # waiting for the reporter
    notice = liaison.last
    assert notice.text == (
        "↩ 您报告的问题 P-2026-0001（东方机械有限公司）被王督导退回修改。\n"
        "原因：请补充<地块>编号\n请修改后重新提交。"
    )
    assert notice.buttons == [[("✏ 去修改", f"mp:{problem.id}:correct")]]
    sent = api.calls_of("sendMessage")[-1].params
    assert sent["chat_id"] == w.liaison.telegram_id and "&lt;地块&gt;" in sent["text"]
    assert (await get_problem(db, problem.id)).status is S.returned

    # the liaison corrects it from the notification
    clock.advance(hours=1)
    await liaison.tap("去修改", message=notice)
    assert "请补充<地块>编号" in liaison.last.text
    await liaison.send("厂房扩建缺少用地指标，地块编号 A-12")
    await liaison.tap("提交修改")
    assert (await get_problem(db, problem.id)).status is S.open

    # the supervisor finds it pending again and closes it with a reason
    clock.advance(hours=1)
    await supervisor.send("/pending")
    assert "待办问题：共 1 条" in supervisor.last.text and "P-2026-0001" in supervisor.last.text
    await supervisor.tap("P-2026-0001")
    assert "问题描述：厂房扩建缺少用地指标，地块编号 A-12" in supervisor.last.text
    await supervisor.tap("关闭")
    await supervisor.send("企业已自行解决，无需跟进")
    await supervisor.tap("确认关闭")
    closed = supervisor.last.text
    assert "✔ 已关闭（未解决），并已通知报告人。" in closed and "P-2026-0001 · 已关闭" in closed
    assert labels(supervisor) == ["重新打开", "🔄 刷新"]
    assert liaison.last.text == (
        "您报告的问题 P-2026-0001（东方机械有限公司）已被王督导关闭（未解决）。\n"
        "原因：企业已自行解决，无需跟进"
    )
    history = closed.split("处理记录\n", 1)[1].splitlines()
    assert history == [
        "• 2026-11-25 12:00 李明: 报告了问题",
        "• 2026-11-25 13:00 王督导: 指定了责任部门和办结时限 — 住建局 · 2026-12-02",
        "• 2026-11-25 14:00 王督导: 退回修改 — 请补充<地块>编号",
        "• 2026-11-25 15:00 李明: 已修改 — 厂房扩建缺少用地指标，地块编号 A-12",
        "• 2026-11-25 16:00 王督导: 未解决即关闭 — 企业已自行解决，无需跟进",
    ]
    rows = await events(db, problem.id)
    assert [(e.kind, e.from_status, e.to_status, e.actor_id) for e in rows] == [
        ("created", None, S.open, w.liaison.id),
        ("assigned", S.open, S.in_progress, w.supervisor.id),
        ("returned", S.in_progress, S.returned, w.supervisor.id),
        ("corrected", S.returned, S.open, w.liaison.id),
        ("closed", S.open, S.closed, w.supervisor.id),
    ]
    assert [e.created_at.hour for e in rows] == [4, 5, 6, 7, 8]  # UTC
    final = await get_problem(db, problem.id)
    assert (final.status, final.department, final.due_date) == (S.closed, "住建局", date(2026, 12, 2))
    await supervisor.send("/pending")
    assert "待办问题：共 0 条" in supervisor.last.text and "没有待办问题" in supervisor.last.text
    assert await count(db, Draft) == 0


async def all_problems(db: SessionMaker) -> list[Problem]:
    async with db() as session:
        return list(await session.scalars(select(Problem).order_by(Problem.id)))


# -- lists: paging, filters, overdue -------------------------------------------------------------------
async def test_pending_pages_oldest_first_and_filters_by_category_and_department(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    start = clock() - timedelta(days=20)
    ids = []
    for i in range(11):
        category = ProblemCategory.power if i % 3 == 0 else ProblemCategory.land
        department = "发改局" if i % 2 == 0 else ("住建局" if i % 5 == 1 else None)
        ids.append(
            await new_problem(db, w, start + timedelta(days=i), category=category, department=department)
        )
    async with db.begin() as session:  # resolved and closed ones are not pending
        for problem_id in ids[9:]:
            problem = await session.get(Problem, problem_id)
            assert problem is not None
            problem.status = S.resolved if problem_id == ids[9] else S.closed
    chat = chat_with(app, api, w.supervisor)
    await chat.send("/pending")
    assert "待办问题：共 9 条 · 第 1/2 页" in chat.last.text
    assert [row[0][1] for row in chat.last.buttons[:8]] == [f"pb:{i}:view" for i in ids[:8]]
    assert "按时间从早到晚排列" in chat.last.text
    first_message = chat.last.message_id
    await chat.tap("下一页")
    assert chat.last.message_id == first_message  # edited in place
    assert "第 2/2 页" in chat.last.text and f"pb:{ids[8]}:view" == chat.last.buttons[0][0][1]
    assert "9. P-2026-" in chat.last.text
    await chat.tap("上一页")
    assert "第 1/2 页" in chat.last.text

    # category filter
    await chat.tap("类别：全部")
    assert chat.last.text == "显示哪个类别？"
    assert labels(chat)[:3] == ["全部（9）", "用地（6）", "用电（3）"]
    await chat.tap("用电（3）")
    assert "待办问题：共 3 条" in chat.last.text and "类别：用电 · 责任部门：全部" in chat.last.text
    assert [row[0][1] for row in chat.last.buttons[:3]] == [f"pb:{i}:view" for i in (ids[0], ids[3], ids[6])]

    # department filter, on top of the category
    await chat.tap("部门：全部")
    assert chat.last.text == "显示哪个责任部门？"
    assert labels(chat)[:3] == ["全部（3）", "未指定部门（1）", "发改局（2）"]
    await chat.tap("发改局")
    assert "待办问题：共 2 条" in chat.last.text and "类别：用电 · 责任部门：发改局" in chat.last.text
    assert [row[0][1] for row in chat.last.buttons[:2]] == [f"pb:{i}:view" for i in (ids[0], ids[6])]
    await chat.tap("清除筛选")
    assert "待办问题：共 9 条" in chat.last.text

    # unassigned only
    await chat.tap("部门：全部")
    await chat.tap("未指定部门")
    assert "待办问题：共 3 条" in chat.last.text and "责任部门：未指定" in chat.last.text
    assert [row[0][1] for row in chat.last.buttons[:3]] == [f"pb:{i}:view" for i in (ids[3], ids[5], ids[7])]

    # every button fits Telegram's 64 bytes (the double refuses longer ones) and parses back
    for sent in api.calls_of("sendMessage") + api.calls_of("editMessageText"):
        for row in (sent.params.get("reply_markup") or {}).get("inline_keyboard", []):
            for b in row:
                assert len(b["callback_data"].encode()) <= 64


async def test_overdue_lists_days_overdue_in_beijing_days(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    late = await new_problem(db, w, clock() - timedelta(days=3), department="发改局", due=date(2026, 12, 2))
    later = await new_problem(db, w, clock() - timedelta(days=9), department="住建局", due=date(2026, 12, 4))
    await new_problem(db, w, clock(), department="住建局", due=date(2026, 12, 31))
    done = await new_problem(db, w, clock(), department="住建局", due=date(2026, 11, 30))
    async with db.begin() as session:
        problem = await session.get(Problem, done)
        assert problem is not None
        problem.status = S.resolved
    chat = chat_with(app, api, w.supervisor)
    await chat.send("/overdue")
    assert "逾期问题：共 0 条" in chat.last.text and "没有逾期问题。" in chat.last.text
    # 2026-12-02 23:30 in Beijing: the due day itself is not overdue yet
    clock.current = datetime(2026, 12, 2, 15, 30, tzinfo=clock.current.tzinfo)
    await chat.send("/overdue")
    assert "逾期问题：共 0 条" in chat.last.text
    # 00:10 on 12-03 in Beijing (still 12-02 in UTC): one day overdue
    clock.advance(minutes=40)
    await chat.send("/overdue")
    assert "逾期问题：共 1 条" in chat.last.text and "逾期 1 天（时限 2026-12-02）" in chat.last.text
    clock.advance(days=4)  # 12-07
    await chat.send("/overdue")
    text = chat.last.text
    assert "逾期问题：共 2 条" in text
    # the longest overdue first
    assert text.index("逾期 5 天（时限 2026-12-02）") < text.index("逾期 3 天（时限 2026-12-04）")
    assert [row[0][1] for row in chat.last.buttons[:2]] == [f"pb:{late}:view", f"pb:{later}:view"]
    await chat.tap("P-2026-0001")
    assert "办结时限：2026-12-02（已逾期 5 天）" in chat.last.text
    # pending shows it too, marked
    await chat.send("/pending")
    assert "2026-11-22 报告，已逾期 5 天" in chat.last.text
    await chat.tap("只看逾期")
    assert "逾期问题：共 2 条" in chat.last.text
    await chat.tap("部门：全部")
    await chat.tap("住建局")
    assert "逾期问题：共 1 条" in chat.last.text and f"pb:{later}:view" == chat.last.buttons[0][0][1]


# -- idempotency and stale cards -----------------------------------------------------------------------
async def test_a_double_tap_or_a_stale_card_changes_nothing_twice(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, w, clock())
    chat = chat_with(app, api, w.supervisor)
    await chat.press(f"pb:{problem_id}:view")
    card = chat.last
    await chat.tap("标记为处理中", message=card)
    assert "将该问题标记为“处理中”" in chat.last.text
    skip = data_of(chat, "跳过")
    await chat.press(skip)
    assert chat.last.text.startswith("✔ 已完成：该问题现为“处理中”。")
    await chat.press(skip)  # the flow's button again
    assert api.answers()[-1] == EXPIRED
    await chat.tap("标记为处理中", message=card)  # the stale card
    assert api.answers()[-1] == ("状态已变：该问题现为“处理中”，本次操作未执行。", True)
    refreshed = api.find(w.supervisor.telegram_id or 0, card.message_id)
    assert refreshed is not None and "P-2026-0001 · 处理中" in refreshed.text  # the card was redrawn
    assert [e.kind for e in await events(db, problem_id)] == ["created", "in_progress"]
    assert await count(db, Draft) == 0


async def test_a_quick_double_tap_on_an_action_starts_it_once(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, w, clock())
    chat = chat_with(app, api, w.supervisor)
    await chat.press(f"pb:{problem_id}:view")
    card = chat.last
    await chat.tap("关闭", message=card)
    prompt = chat.last
    await chat.tap("关闭", message=card)
    assert api.answers()[-1] == ("已经开始了，请回答上面的问题。", False)
    assert chat.last.message_id == prompt.message_id  # no second prompt, no "continue or discard?"
    await chat.send("重复上报")
    await chat.tap("确认关闭")
    await chat.tap("关闭", message=card)
    assert api.answers()[-1] == ("状态已变：该问题现为“已关闭”，本次操作未执行。", True)
    assert [e.kind for e in await events(db, problem_id)] == ["created", "closed"]


async def test_a_change_made_meanwhile_by_someone_else_wins(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    async with db.begin() as session:
        other = await make_user(session, role=Role.admin, name="赵管理")
    problem_id = await new_problem(db, w, clock())
    first, second = chat_with(app, api, w.supervisor), chat_with(app, api, other)
    await first.press(f"pb:{problem_id}:view")
    await first.tap("退回修改")
    await first.send("请补充材料")
    await second.press(f"pb:{problem_id}:view")
    await second.tap("关闭")
    await second.send("重复上报")
    await second.tap("确认关闭")
    await first.tap("确认退回修改")
    assert first.last.text.startswith("✔ 状态已变：该问题现为“已关闭”，本次操作未执行。")
    assert "P-2026-0001 · 已关闭" in first.last.text
    assert [e.kind for e in await events(db, problem_id)] == ["created", "closed"]
    liaison_texts = api.texts(w.liaison.telegram_id or 0)
    assert len(liaison_texts) == 1 and "关闭" in liaison_texts[0]  # told once, of the close only


@pytest.mark.parametrize(
    "forged",
    [
        "pb:{id}:st.open.closed",  # not a change the card offers
        "pb:{id}:st.open.resolved",
        "pb:{id}:ret.closed",
        "pb:{id}:cl.resolved",
        "pb:{id}:as.returned",
        "pb:{id}:delete",
        "pb:{id}:as.bogus",
        "pb:{id}:st.open",
        "pb:999999:view",  # no such problem
        "pb:999999:cl.open",
        "pb:99999999999:view",  # beyond 32 bits
        "pb:0:view",
        "pb:{id}",  # no action: the card
        "pb:x:view",
        "pl:0:zz.-.-",
        "pl:0:pl.nosuch.-",
        "pl:0:pl.-.deadbeef",  # a department no problem was ever assigned to
        "pl:0:pl.-.XYZ",
        "pl:99999:pl.-.-",
    ],
)
async def test_forged_callback_data_is_refused_and_changes_nothing(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, forged: str
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, w, clock())
    chat = chat_with(app, api, w.supervisor)
    await chat.send("/pending")
    before = chat.last.text
    await chat.press(forged.format(id=problem_id))
    if forged == "pb:{id}":
        assert "P-2026-0001 · 待办" in chat.last.text  # an honest "open the card"
    else:
        assert api.answers()[-1] == EXPIRED
        assert chat.last.text == before
    assert [e.kind for e in await events(db, problem_id)] == ["created"]
    assert (await get_problem(db, problem_id)).status is S.open
    assert await count(db, Draft) == 0


async def test_a_wrong_expected_status_is_answered_as_already_changed(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, w, clock())
    chat = chat_with(app, api, w.supervisor)
    for data in (f"pb:{problem_id}:cl.in_progress", f"pb:{problem_id}:st.closed.open"):
        await chat.press(data)
        assert api.answers()[-1] == ("状态已变：该问题现为“待办”，本次操作未执行。", True)
    assert [e.kind for e in await events(db, problem_id)] == ["created"]
    assert await count(db, Draft) == 0


async def test_a_liaison_cannot_see_lists_or_act_on_problems(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, w, clock())
    chat = chat_with(app, api, w.liaison)
    for command in ("/pending", "/overdue"):
        await chat.send(command)
        assert chat.last.text == "抱歉，您没有此项操作的权限。"
    for data in (
        f"pb:{problem_id}:view",
        f"pb:{problem_id}:cl.open",
        f"pb:{problem_id}:ret.open",
        f"pb:{problem_id}:st.open.in_progress",
        "pl:0:pl.-.-",
        "pl:1:ol.-.u",
    ):
        await chat.press(data)
        assert api.answers()[-1] == REFUSED
    assert "P-2026-0001" not in "".join(chat.texts())
    assert [e.kind for e in await events(db, problem_id)] == ["created"]
    assert await count(db, Draft) == 0


# -- notifications -------------------------------------------------------------------------------------
async def test_an_unreachable_reporter_does_not_undo_the_return(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, w, clock())
    api.fail("sendMessage", status=403, chat_id=w.liaison.telegram_id)
    chat = chat_with(app, api, w.supervisor)
    await chat.press(f"pb:{problem_id}:view")
    await chat.tap("退回修改")
    await chat.send("请补充材料")
    with caplog.at_level(logging.WARNING, logger="bot.handlers.problems"):
        await chat.tap("确认退回修改")
    assert "blocked the bot" in caplog.text
    assert (await get_problem(db, problem_id)).status is S.returned
    assert "P-2026-0001 · 退回修改" in chat.last.text
    assert api.texts(w.liaison.telegram_id or 0) == []


async def test_the_reporter_is_told_in_their_own_language(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db, supervisor_locale="en", liaison_locale="en")
    async with db.begin() as session:
        enterprise = await make_enterprise(session, name="<b>Acme</b> & Co", liaison=w.liaison)
    problem_id = await new_problem(db, w, clock(), enterprise_id=enterprise.id, description="a <i>b</i>")
    chat = chat_with(app, api, w.supervisor, language_code="en")
    await chat.send("/pending")
    assert "Pending problems: 1 · page 1/1" in chat.last.text and "<b>Acme</b> & Co" in chat.last.text
    await chat.tap("P-2026-0001")
    assert "Enterprise: <b>Acme</b> & Co" in chat.last.text and "Description: a <i>b</i>" in chat.last.text
    await chat.tap("Return for correction")
    await chat.send("Which <plot>?")
    await chat.tap("✔ Return for correction")
    notice = api.last(w.liaison.telegram_id or 0)
    assert notice.text == (
        "↩ Your problem P-2026-0001 (<b>Acme</b> & Co) was returned for correction by 王督导.\n"
        "Reason: Which <plot>?\nPlease correct it."
    )
    assert notice.buttons == [[("✏ Correct it", f"mp:{problem_id}:correct")]]


async def test_a_chinese_reporter_of_an_english_supervisor_reads_chinese(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db, supervisor_locale="en")
    problem_id = await new_problem(db, w, clock())
    chat = chat_with(app, api, w.supervisor, language_code="en")
    await chat.press(f"pb:{problem_id}:view")
    await chat.tap("Assign department and due date")
    await chat.tap("发改局")
    await chat.send("2027年1月15日")
    await chat.tap("✔ Assign")
    assert chat.last.text.startswith("✔ Assigned to 发改局, due 2027-01-15; the reporter is told now.")
    assert api.last(w.liaison.telegram_id or 0).text.startswith("📌 您报告的问题 P-2026-0001")


# -- robustness ----------------------------------------------------------------------------------------
async def test_a_restart_in_the_middle_of_a_return_loses_nothing(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, settings: Settings
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, w, clock())
    chat = chat_with(app, api, w.supervisor)
    await chat.press(f"pb:{problem_id}:view")
    await chat.tap("退回修改")
    restarted = build_application(settings, request=api, clock=clock)
    async with restarted:
        again = Chat(restarted, api, w.supervisor.telegram_id or 0)
        await again.send("地块编号不对")
        await again.tap("确认退回修改")
        await restarted.post_shutdown(restarted)  # type: ignore[misc]
    assert (await get_problem(db, problem_id)).status is S.returned
    assert "地块编号不对" in api.last(w.liaison.telegram_id or 0).text


async def test_a_long_history_keeps_the_card_within_one_message(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, w, clock(), description="很长的描述" * 400)
    async with db.begin() as session:
        problem = await session.get(Problem, problem_id)
        assert problem is not None
        for i in range(60):
            add_event(
                session, problem, actor_id=w.liaison.id, kind="progress", now=clock(), note=f"进展{i}" * 100
            )
    chat = chat_with(app, api, w.supervisor)
    await chat.press(f"pb:{problem_id}:view")
    text = chat.last.text
    assert len(text) <= 4096 and "条较早记录未显示" in text and "进展59" in text
    assert "报告了问题" not in text  # the oldest events gave way to the newest


async def test_reopening_a_closed_problem_with_a_note(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, w, clock())
    async with db.begin() as session:
        problem = await session.get(Problem, problem_id)
        assert problem is not None
        problem.status = S.closed
    chat = chat_with(app, api, w.supervisor)
    await chat.press(f"pb:{problem_id}:view")
    await chat.tap("重新打开")
    assert "重新打开该问题（状态变为“待办”）" in chat.last.text
    await chat.send("企业再次反映")
    assert chat.last.text.startswith("✔ 已完成：该问题现为“待办”。")
    assert "王督导: 重新打开 — 企业再次反映" in chat.last.text
    [_, reopened] = await events(db, problem_id)
    assert (reopened.kind, reopened.from_status, reopened.to_status, reopened.note) == (
        "reopened",
        S.closed,
        S.open,
        "企业再次反映",
    )
