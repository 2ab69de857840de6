"""/problem: a liaison reports an enterprise's problem — the journey, the due-date parser, and every rule
(Back, Edit, double tap, redelivery, restart, forged buttons, overlong input, expiry, /cancel, English)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select, update
from telegram.ext import Application

from bot.app import build_application
from bot.config import Settings
from bot.flows.problem import DateError, parse_due_date
from bot.storage.db import SessionMaker
from bot.storage.enums import ProblemCategory, ProblemStatus, Role
from bot.storage.models import Assignment, AuditLog, Draft, Problem, ProblemEvent, User
from bot.storage.problems import history
from tests.botapi import BotAPI, Chat
from tests.conftest import Clock, chat_with, make_enterprise, make_user

App = Application[Any, Any, Any, Any, Any, Any]
EXPIRED = ("此操作已失效。", True)
TODAY = date(2026, 11, 25)  # the test clock's day in Beijing


async def liaison_with_enterprise(
    db: SessionMaker, *, name: str = "东方机械有限公司", locale: str = "zh_CN"
) -> tuple[User, int]:
    async with db.begin() as session:
        user = await make_user(session, role=Role.liaison, name="李明", locale=locale)
        enterprise = await make_enterprise(session, name=name, liaison=user)
    return user, enterprise.id


def draft_prefix(chat: Chat) -> str:
    """``f:<draft id>:<version>.`` of the flow's current screen, to forge button values with."""
    for row in chat.last.buttons:
        for _label, data in row:
            if data and data.startswith("f:"):
                return data.split(".", 1)[0] + "."
    raise AssertionError(f"no flow button on {chat.last.text!r}")


async def problems(db: SessionMaker) -> list[Problem]:
    async with db() as session:
        return list(await session.scalars(select(Problem).order_by(Problem.id)))


async def reach_summary(
    chat: Chat, *, description: str = "厂房扩建缺少用地指标", due: str = "2026-12-31"
) -> None:
    await chat.send("/problem")
    await chat.tap("东方机械有限公司")
    await chat.tap("用地")
    await chat.send(description)
    await chat.send(due)


async def test_a_liaison_reports_a_problem(app: App, api: BotAPI, db: SessionMaker) -> None:
    user, enterprise_id = await liaison_with_enterprise(db)
    chat = chat_with(app, api, user)
    await chat.send("/problem")
    assert "上报问题" in chat.last.text and chat.last.buttons[0][0][0] == "东方机械有限公司"
    await chat.tap("东方机械有限公司")
    assert "请选择问题类别" in chat.last.text
    labels = [label for row in chat.last.buttons for label, _ in row]
    assert labels[:9] == ["用地", "用电", "交通", "劳资", "知识产权", "融资", "证照", "政策", "其他"]
    assert labels[-2:] == ["« 返回", "✖ 取消"]
    await chat.tap("用地")
    assert "请描述问题" in chat.last.text and "2000" in chat.last.text
    await chat.send("厂房扩建缺少<b>用地</b>指标 *急*")
    assert "希望何时前解决" in chat.last.text and "2026-12-25" in chat.last.text
    await chat.send("2026-12-31")
    summary = chat.last
    assert "请核对问题信息" in summary.text
    assert "企业：东方机械有限公司" in summary.text and "类别：用地" in summary.text
    assert "期望办结日期：2026-12-31" in summary.text
    assert "厂房扩建缺少<b>用地</b>指标 *急*" in summary.text  # shown literally
    sent = api.calls_of("sendMessage")[-1].params["text"]
    assert "&lt;b&gt;用地&lt;/b&gt;" in sent
    await chat.tap("确认")
    assert chat.last.message_id == summary.message_id  # the summary became the receipt
    assert "问题 P-2026-0001 已登记（东方机械有限公司），状态：待办" in chat.last.text
    assert [label for row in chat.last.buttons for label, _ in row] == [
        "为该企业再报一个问题",
        "为该企业申请菜单式服务",
    ]
    assert chat.last.buttons[0][0][1] == f"ent:{enterprise_id}:problem"
    [problem] = await problems(db)
    assert problem.enterprise_id == enterprise_id and problem.reporter_id == user.id
    assert problem.category is ProblemCategory.land and problem.status is ProblemStatus.open
    assert problem.description == "厂房扩建缺少<b>用地</b>指标 *急*"
    assert problem.requested_due_date == date(2026, 12, 31) and problem.due_date is None
    assert (problem.source_chat_id, problem.source_message_id) == (user.telegram_id, summary.message_id)
    assert problem.ref == "P-2026-0001"
    async with db() as session:
        events = await history(session, problem_id=problem.id)
        audit = await session.scalar(select(AuditLog).where(AuditLog.entity == "problem"))
        drafts = await session.scalar(select(func.count()).select_from(Draft))
    assert [(e.kind, e.to_status, e.actor_id) for e in events] == [("created", ProblemStatus.open, user.id)]
    assert audit is not None and audit.action == "create" and audit.entity_id == problem.id
    assert drafts == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-31", date(2026, 12, 31)),
        ("2027/1/5", date(2027, 1, 5)),
        ("2027.01.05", date(2027, 1, 5)),
        ("20270105", date(2027, 1, 5)),
        ("２０２６－１２－３１", date(2026, 12, 31)),
        (" 2026 - 12 - 31 ", date(2026, 12, 31)),
        ("2027年3月8日", date(2027, 3, 8)),
        ("12月31日", date(2026, 12, 31)),
        ("12月31号", date(2026, 12, 31)),
        ("1月5日", date(2027, 1, 5)),  # already past this year: the next one
        ("11月25日", TODAY),  # today is fine
        ("2026-11-25", TODAY),
        ("2026-11-24", DateError.past),
        ("2025-12-31", DateError.past),
        ("2026-02-30", DateError.invalid),
        ("2月30日", DateError.invalid),
        ("2026-13-01", DateError.invalid),
        ("2030-01-01", DateError.too_far),
        ("明天", DateError.format),
        ("next friday", DateError.format),
        ("31/12/2026", DateError.format),
        ("2026-12", DateError.format),
        ("", DateError.format),
        ("<script>", DateError.format),
    ],
)
def test_due_date_parser(text: str, expected: date | DateError) -> None:
    assert parse_due_date(text, today=TODAY) == expected


@pytest.mark.parametrize(
    ("tap", "expected"),
    [("一周内", date(2026, 12, 2)), ("一个月内", date(2026, 12, 25)), ("不设期限", None)],
)
async def test_due_date_buttons(
    app: App, api: BotAPI, db: SessionMaker, tap: str, expected: date | None
) -> None:
    user, _ = await liaison_with_enterprise(db)
    chat = chat_with(app, api, user)
    await chat.send("/problem")
    await chat.tap("东方机械有限公司")
    await chat.tap("劳资")
    await chat.send("拖欠工资纠纷")
    await chat.tap(tap)
    assert f"期望办结日期：{expected.isoformat() if expected else '无'}" in chat.last.text
    await chat.tap("确认")
    [problem] = await problems(db)
    assert problem.requested_due_date == expected and problem.category is ProblemCategory.labour


async def test_bad_due_dates_are_refused_with_the_format(app: App, api: BotAPI, db: SessionMaker) -> None:
    user, _ = await liaison_with_enterprise(db)
    chat = chat_with(app, api, user)
    await chat.send("/problem")
    await chat.tap("东方机械有限公司")
    await chat.tap("用电")
    await chat.send("增容申请迟迟未批")
    await chat.send("下周五")
    assert "无法识别该日期" in chat.last.text and "YYYY-MM-DD" in chat.last.text
    assert "2026-12-25" in chat.last.text and "12月25日" in chat.last.text
    assert "希望何时前解决" in chat.last.text  # the step's prompt again, with its buttons
    await chat.send("2026-11-20")
    assert "该日期已经过去" in chat.last.text
    await chat.send("2026-02-30")
    assert "日历上没有这一天" in chat.last.text
    await chat.send("2099-01-01")
    assert "该日期在两年以后" in chat.last.text
    await chat.send_location(39.9, 116.4)
    assert "无法识别该日期" in chat.last.text
    await chat.send("1月15日")
    assert "期望办结日期：2027-01-15" in chat.last.text
    assert await problems(db) == []
    await chat.tap("确认")
    [problem] = await problems(db)
    assert problem.requested_due_date == date(2027, 1, 15)


async def test_wrong_kinds_of_input_get_a_polite_reprompt(app: App, api: BotAPI, db: SessionMaker) -> None:
    user, _ = await liaison_with_enterprise(db)
    chat = chat_with(app, api, user)
    await chat.send("/problem")
    await chat.send_sticker()
    assert "请以文字消息发送" in chat.last.text and "请点击企业" in chat.last.text
    await chat.tap("东方机械有限公司")
    await chat.send("用地")
    assert "请点击下方按钮进行选择" in chat.last.text and "请选择问题类别" in chat.last.text
    await chat.send_photo()
    assert "请点击下方按钮进行选择" in chat.last.text
    await chat.tap("交通")
    await chat.send_sticker()
    assert "请以文字消息发送" in chat.last.text and "请描述问题" in chat.last.text
    await chat.send_photo()
    assert "请以文字消息发送" in chat.last.text
    await chat.send("   ")
    assert "内容不能为空" in chat.last.text
    assert await problems(db) == []


async def test_search_by_name_picks_the_single_match(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        user = await make_user(session, role=Role.instructor)
        for name in ("东方机械有限公司", "西山食品有限公司", "南湖科技有限公司"):
            await make_enterprise(session, name=name, instructor=user)
    chat = chat_with(app, api, user)
    await chat.send("/problem")
    await chat.send("有限")
    assert "搜索“有限”：找到 3 家。" in chat.last.text
    await chat.send("西山")
    assert "西山食品有限公司 的问题" in chat.last.text and "请选择问题类别" in chat.last.text


async def test_overlong_description_is_refused_with_the_limit(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    user, _ = await liaison_with_enterprise(db)
    chat = chat_with(app, api, user)
    await chat.send("/problem")
    await chat.tap("东方机械有限公司")
    await chat.tap("融资")
    await chat.send("难" * 2001)
    assert "2001 个字" in chat.last.text and "2000 字的上限" in chat.last.text
    assert "请描述问题" in chat.last.text
    await chat.send("难" * 2000)
    await chat.tap("不设期限")
    await chat.tap("确认")
    [problem] = await problems(db)
    assert problem.description == "难" * 2000


async def test_back_returns_to_the_previous_step_with_data_kept(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    user, _ = await liaison_with_enterprise(db)
    chat = chat_with(app, api, user)
    await reach_summary(chat, description="原始描述")
    await chat.tap("返回")
    assert "希望何时前解决" in chat.last.text and "当前：2026-12-31" in chat.last.text
    await chat.tap("返回")
    assert "请描述问题" in chat.last.text and "当前描述：\n原始描述" in chat.last.text
    await chat.tap("返回")
    assert "请选择问题类别" in chat.last.text
    assert ("✓ 用地", chat.last.buttons[0][0][1]) == chat.last.buttons[0][0]
    await chat.tap("返回")
    assert "请点击企业" in chat.last.text
    assert "返回" not in str(chat.last.buttons)  # the first step has no Back
    await chat.tap("东方机械有限公司")
    await chat.tap("用地")
    await chat.tap("保留当前描述")
    assert "当前：2026-12-31" in chat.last.text
    await chat.send("2027-01-31")
    assert "原始描述" in chat.last.text and "2027-01-31" in chat.last.text
    await chat.tap("确认")
    [problem] = await problems(db)
    assert problem.description == "原始描述" and problem.requested_due_date == date(2027, 1, 31)


async def test_edit_from_the_summary_changes_one_answer(app: App, api: BotAPI, db: SessionMaker) -> None:
    user, _ = await liaison_with_enterprise(db)
    chat = chat_with(app, api, user)
    await reach_summary(chat)
    await chat.tap("修改")
    assert "要修改哪一项" in chat.last.text
    await chat.tap("类别")
    await chat.tap("融资")
    assert "请核对问题信息" in chat.last.text and "类别：融资" in chat.last.text
    await chat.tap("修改")
    await chat.tap("描述")
    await chat.send("融资难，贷款审批慢")
    assert "请核对问题信息" in chat.last.text and "融资难，贷款审批慢" in chat.last.text
    await chat.tap("修改")
    await chat.tap("期望办结日期")
    await chat.tap("返回")  # changed their mind: back to the Edit menu, then to the summary
    await chat.tap("返回")
    assert "请核对问题信息" in chat.last.text
    await chat.tap("返回")  # Back from the summary still leads to the due date, as before
    assert "希望何时前解决" in chat.last.text
    await chat.tap("一周内")
    await chat.tap("确认")
    [problem] = await problems(db)
    assert problem.category is ProblemCategory.financing and problem.description == "融资难，贷款审批慢"
    assert problem.requested_due_date == date(2026, 12, 2)


async def test_double_tapped_confirm_and_redelivery_create_one_problem(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    user, _ = await liaison_with_enterprise(db)
    chat = chat_with(app, api, user)
    await chat.send("/problem")
    await chat.tap("东方机械有限公司")
    await chat.tap("证照")
    described = await chat.send("营业执照变更")
    shown = len(chat.messages())
    await chat.redeliver(described)  # a webhook retry of the same message
    assert len(chat.messages()) == shown
    await chat.send("12月31日")
    summary = chat.last
    [confirm] = [data for row in summary.buttons for label, data in row if "确认" in label]
    assert confirm is not None
    tapped = await chat.tap("确认")
    await chat.redeliver(tapped)
    assert "P-2026-0001" in chat.last.text
    await chat.press(confirm, message_id=summary.message_id)  # the second tap of a double tap
    assert api.answers()[-1] == EXPIRED
    assert "P-2026-0001" in chat.last.text and len(chat.messages()) == shown + 1
    assert len(await problems(db)) == 1
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(ProblemEvent)) == 1


async def test_a_restart_mid_flow_loses_nothing(
    app: App, api: BotAPI, db: SessionMaker, settings: Settings, clock: Clock
) -> None:
    user, enterprise_id = await liaison_with_enterprise(db)
    chat = chat_with(app, api, user)
    await chat.send("/problem")
    await chat.tap("东方机械有限公司")
    await chat.tap("政策")
    restarted = build_application(settings, request=api, clock=clock)
    async with restarted:
        again = Chat(restarted, api, user.telegram_id or 0)
        await again.send("想了解高新技术企业认定政策")
        assert "希望何时前解决" in again.last.text
        await again.tap("不设期限")
        assert "类别：政策" in again.last.text and "想了解高新技术企业认定政策" in again.last.text
        await again.tap("确认")
        assert "P-2026-0001" in again.last.text
        await restarted.post_shutdown(restarted)  # type: ignore[misc]
    [problem] = await problems(db)
    assert problem.enterprise_id == enterprise_id and problem.category is ProblemCategory.policy


async def test_forged_buttons_are_refused_and_change_nothing(
    app: App, api: BotAPI, db: SessionMaker, caplog: pytest.LogCaptureFixture
) -> None:
    user, _ = await liaison_with_enterprise(db)
    async with db.begin() as session:
        other = await make_user(session, role=Role.liaison)
        foreign = await make_enterprise(session, name="别人的企业", liaison=other)
    chat = chat_with(app, api, user)
    await chat.send("/problem")
    assert "别人的企业" not in chat.last.text
    for value in (f"ent.{foreign.id}", "ent.0", "ent.99999999999999999999", "ent.x", "cat.land"):
        await chat.press(draft_prefix(chat) + value)
        assert "别人的企业" not in chat.last.text
        assert "您不是该企业的包片人员" in chat.last.text or "请以文字消息发送" in chat.last.text, value
        assert "请点击企业" in chat.last.text  # still choosing the enterprise
    await chat.tap("东方机械有限公司")
    for value in ("cat.nuclear", "cat.", "confirm", "due.week"):
        await chat.press(draft_prefix(chat) + value)
        assert "请点击下方按钮进行选择" in chat.last.text and "请选择问题类别" in chat.last.text
    await chat.tap("用地")
    await chat.send("描述")
    await chat.press(draft_prefix(chat) + "due.year")
    assert "请点击下方按钮进行选择" in chat.last.text
    await chat.tap("不设期限")
    await chat.press(draft_prefix(chat) + "edit.enterprise")
    assert "请点击下方按钮进行选择" in chat.last.text and "请核对问题信息" in chat.last.text
    await chat.press("f:1:1.confirm")  # wrong draft or version
    assert api.answers()[-1] == EXPIRED
    assert await problems(db) == []
    logged = [r.getMessage() for r in caplog.records if r.name == "bot.flows.problem"]
    assert any("Choice(value='cat.nuclear')" in line for line in logged), logged
    await chat.tap("确认")
    [problem] = await problems(db)
    assert problem.enterprise_id != foreign.id


async def test_an_enterprise_no_longer_assigned_is_refused_at_confirm(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    user, enterprise_id = await liaison_with_enterprise(db)
    chat = chat_with(app, api, user)
    await reach_summary(chat)
    async with db.begin() as session:
        await session.execute(
            update(Assignment).where(Assignment.enterprise_id == enterprise_id).values(end_date=TODAY)
        )
    await chat.tap("确认")
    assert "您已不再是东方机械有限公司的包片人员，未保存任何内容" in chat.last.text
    assert await problems(db) == []


async def test_an_untouched_flow_expires(app: App, api: BotAPI, db: SessionMaker, clock: Clock) -> None:
    user, _ = await liaison_with_enterprise(db)
    chat = chat_with(app, api, user)
    await chat.send("/problem")
    await chat.tap("东方机械有限公司")
    await chat.tap("用地")
    prompt = chat.last
    clock.advance(hours=25)
    await chat.send("用地指标不足")
    assert "问题上报已超过 24 小时未操作" in chat.last.text
    await chat.tap("« 返回", message=prompt)
    assert api.answers()[-1] == EXPIRED
    assert await problems(db) == []
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(Draft)) == 0


async def test_cancel_at_any_step(app: App, api: BotAPI, db: SessionMaker) -> None:
    user, _ = await liaison_with_enterprise(db)
    chat = chat_with(app, api, user)
    await chat.send("/problem")
    await chat.tap("东方机械有限公司")
    await chat.tap("用地")
    await chat.send("/cancel")
    assert chat.last.text == "已取消，未保存任何内容。"
    await reach_summary(chat)
    await chat.tap("取消")
    assert chat.last.text == "已取消，未保存任何内容。"
    assert await problems(db) == []


async def test_an_english_user_sees_english(app: App, api: BotAPI, db: SessionMaker) -> None:
    user, _ = await liaison_with_enterprise(db, name="Eastern Machinery Ltd", locale="en")
    chat = chat_with(app, api, user, language_code="en")
    await chat.send("/problem")
    assert "Report a problem" in chat.last.text
    await chat.tap("Eastern Machinery Ltd")
    assert "What kind of problem is it?" in chat.last.text
    assert [label for label, _ in chat.last.buttons[1]] == ["Labour", "IP", "Financing"]
    await chat.tap("IP")
    await chat.send("Trademark infringement by a competitor")
    await chat.send("tomorrow")
    assert "Please type it as YYYY-MM-DD, e.g. 2026-12-25" in chat.last.text
    await chat.tap("In 1 month")
    assert "Please check the problem report" in chat.last.text and "Category: IP" in chat.last.text
    await chat.tap("Confirm")
    assert "Problem P-2026-0001 is recorded for Eastern Machinery Ltd. Status: open." in chat.last.text
    [problem] = await problems(db)
    assert problem.category is ProblemCategory.ip and problem.requested_due_date == date(2026, 12, 25)


async def test_a_supervisor_cannot_report(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        supervisor = await make_user(session, role=Role.supervisor)
    chat = chat_with(app, api, supervisor)
    await chat.send("/problem")
    assert "没有此项操作的权限" in chat.last.text


async def test_follow_up_buttons_skip_the_enterprise_step(app: App, api: BotAPI, db: SessionMaker) -> None:
    user, enterprise_id = await liaison_with_enterprise(db)
    chat = chat_with(app, api, user)
    await reach_summary(chat)
    await chat.tap("确认")
    await chat.tap("为该企业再报一个问题")
    assert "东方机械有限公司 的问题" in chat.last.text and "请选择问题类别" in chat.last.text
    assert "返回" not in str(chat.last.buttons)  # the enterprise was given: nothing to go back to
    await chat.tap("其他")
    await chat.send("员工子女入学")
    await chat.tap("不设期限")
    await chat.tap("确认")
    assert "P-2026-0002" in chat.last.text
    first, second = await problems(db)
    assert first.enterprise_id == second.enterprise_id == enterprise_id
    assert second.category is ProblemCategory.other


async def test_an_enterprise_given_by_argument_is_checked_by_the_flow(
    app: App, api: BotAPI, db: SessionMaker, caplog: pytest.LogCaptureFixture
) -> None:
    user, enterprise_id = await liaison_with_enterprise(db)
    async with db.begin() as session:
        other = await make_user(session, role=Role.liaison)
        foreign = await make_enterprise(session, name="别人的企业", liaison=other)
    chat = chat_with(app, api, user)
    await chat.press(f"ent:{foreign.id}:problem")  # forged shortcut: refused before any flow starts
    assert api.answers()[-1] == ("您不是该企业的包片人员，无法对其操作。", True)
    await chat.send("/service")  # another flow is in progress when the shortcut below is pressed
    await chat.press(f"ent:{enterprise_id}:problem")
    assert "继续未完成的" in str(chat.last.buttons)
    async with db.begin() as session:  # meanwhile the enterprise is handed over to someone else
        await session.execute(
            update(Assignment).where(Assignment.enterprise_id == enterprise_id).values(end_date=TODAY)
        )
    await chat.tap("放弃并重新开始")
    assert chat.last.text == "您不是该企业的包片人员，无法对其操作。"
    assert any("refused" in r.getMessage() for r in caplog.records if r.name == "bot.flows.problem")
    assert await problems(db) == []
    async with db() as session:  # no problem draft was started, and the discarded /service one is gone
        assert list(await session.scalars(select(Draft.flow))) == []
