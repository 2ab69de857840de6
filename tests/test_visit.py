"""/visit — logging a visit (驻点式服务), as field staff live it: checkpoint follow-ups, topics, notes,
location, photos, party-organisation update, confirm; and every way it can go wrong."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from telegram.ext import Application

from bot.app import build_application
from bot.config import Settings
from bot.flows.visit import distance_m
from bot.storage.db import SessionMaker
from bot.storage.enums import PartyOrg, ProblemCategory, ProblemStatus, Role, Stage
from bot.storage.models import (
    Assignment,
    Attachment,
    AuditLog,
    Draft,
    Enterprise,
    MenuItem,
    Problem,
    ProblemEvent,
    ServiceRequest,
    User,
    Visit,
)
from bot.storage.problems import create_problem
from tests.botapi import BotAPI, Chat
from tests.conftest import Clock, chat_with, make_enterprise, make_user

App = Application[Any, Any, Any, Any, Any, Any]
EXPIRED = ("此操作已失效。", True)
NOT_ASSIGNED = "您不是该企业的包片人员，无法对其操作。"
HOME = (39.9087, 116.3975)  # the enterprise's coordinates on file


@dataclass
class Field:
    liaison: User
    enterprise: Enterprise
    problem: Problem
    service: ServiceRequest


async def count(db: SessionMaker, model: Any, *where: Any) -> int:
    async with db() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def field_with_open_items(db: SessionMaker, clock: Clock, *, role: Role = Role.liaison) -> Field:
    """A liaison's enterprise (with coordinates) that has an open problem (12 days old), a resolved one
    and a pending service request (3 days old)."""
    async with db.begin() as session:
        liaison = await make_user(session, role=role, name="李明")
        enterprise = await make_enterprise(
            session, name="星辰科技有限公司", stage=Stage.startup, liaison=liaison
        )
        enterprise.latitude, enterprise.longitude = HOME
        problem = await create_problem(
            session,
            enterprise_id=enterprise.id,
            reporter_id=liaison.id,
            category=ProblemCategory.land,
            description="厂房用地指标紧张",
            requested_due_date=None,
            now=clock.current - timedelta(days=12),
        )
        resolved = await create_problem(
            session,
            enterprise_id=enterprise.id,
            reporter_id=liaison.id,
            category=ProblemCategory.power,
            description="早已解决的用电问题",
            requested_due_date=None,
            now=clock.current - timedelta(days=30),
        )
        resolved.status = ProblemStatus.resolved
        item = await session.scalar(
            select(MenuItem).where(MenuItem.stage == Stage.startup).order_by(MenuItem.position)
        )
        assert item is not None
        service = ServiceRequest(
            enterprise_id=enterprise.id,
            requester_id=liaison.id,
            menu_item_id=item.id,
            note="",
            created_at=clock.current - timedelta(days=3),
            updated_at=clock.current - timedelta(days=3),
        )
        session.add(service)
        await session.flush()
    return Field(liaison, enterprise, problem, service)


async def plain_enterprise(db: SessionMaker, *, name: str = "青松食品有限公司") -> tuple[User, Enterprise]:
    """A liaison with one enterprise that has nothing open and no coordinates."""
    async with db.begin() as session:
        liaison = await make_user(session, role=Role.liaison, name="王芳")
        enterprise = await make_enterprise(session, name=name, liaison=liaison)
    return liaison, enterprise


async def to_summary(chat: Chat, enterprise_name: str, notes: str = "宣讲了最新惠企政策") -> None:
    """The shortest way through: enterprise → one topic → notes → skip the optional steps."""
    await chat.send("/visit")
    await chat.tap(enterprise_name)
    if "继续 ›" in str(chat.last.buttons):
        await chat.tap("继续 ›")
    await chat.tap("政策宣传")
    await chat.tap("完成 ›")
    await chat.send(notes)
    await chat.tap("跳过 ›")
    await chat.tap("跳过 ›")
    await chat.tap("无变化 ›")
    assert "请核对走访信息并确认" in chat.last.text, chat.last.text


def flow_prefix(chat: Chat) -> str:
    """``f:<draft id>:<version>.`` of the buttons on screen, for forging choices the bot never offered."""
    data = next(d for row in chat.last.buttons for _label, d in row if d and d.startswith("f:"))
    return data.split(".")[0] + "."


async def album(chat: Chat, group: str, *names: str) -> None:
    for name in names:
        size = {"file_id": f"file-{name}", "file_unique_id": f"uniq-{name}", "width": 1280, "height": 960}
        await chat.send_raw(photo=[size], media_group_id=group)


# -- the journey ------------------------------------------------------------------------------------------
async def test_a_visit_follows_up_open_items_and_records_everything(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    field = await field_with_open_items(db, clock)
    chat = chat_with(app, api, field.liaison)
    await chat.send("/visit")
    assert "您走访了哪家企业" in chat.last.text
    await chat.tap("星辰科技有限公司")

    checkpoint = chat.last.text
    assert "以下事项尚未办结" in checkpoint
    assert "P-2026-0001 · 待办 · 12 天" in checkpoint and "厂房用地指标紧张" in checkpoint
    assert "S-2026-0001" in checkpoint and "3 天" in checkpoint and "已申请" in checkpoint
    assert "早已解决" not in checkpoint  # resolved problems are not followed up

    await chat.tap("P-2026-0001")
    assert "P-2026-0001 的进展：厂房用地指标紧张" in chat.last.text
    await chat.tap("同时标记为处理中")
    assert any("☑ 同时标记为处理中" in label for row in chat.last.buttons for label, _d in row)
    await chat.send("已协调自然资源局，<下周>会商")
    assert "✅ P-2026-0001" in chat.last.text
    await chat.tap("S-2026-0001")
    await chat.send("材料已补齐")
    await chat.tap("继续 ›")

    assert "本次走访涉及哪些内容" in chat.last.text
    topics_message = chat.last.message_id
    await chat.tap("政策宣传")
    await chat.tap("党组织组建")
    await chat.tap("其他")
    await chat.tap("✓ 其他")  # toggled off again
    assert chat.last.message_id == topics_message  # toggled in place, no new messages
    labels = [label for row in chat.last.buttons for label, _d in row]
    assert "✓ 政策宣传" in labels and "✓ 党组织组建" in labels and "其他" in labels
    await chat.tap("完成 ›")

    assert "请发送走访记录" in chat.last.text and "2000" in chat.last.text
    await chat.send("<b>座谈</b> 企业希望 *加快* 审批")
    assert "发送您的位置" in chat.last.text
    await chat.send_location(HOME[0] + 0.001, HOME[1])
    assert "发送走访照片" in chat.last.text
    await chat.send_photo("file-a", "uniq-a")
    assert "已收到 1 张照片" in chat.last.text
    await chat.tap("完成 ›")

    assert "登记的党组织情况：未组建，党员 0 人" in chat.last.text
    await chat.tap("单独组建")
    assert "目前有多少名党员" in chat.last.text
    await chat.send("１２")

    summary = chat.last.text
    metres = distance_m((HOME[0] + 0.001, HOME[1]), HOME)
    assert 100 < metres < 120
    assert "走访内容：政策宣传、党组织组建" in summary
    assert "走访记录：<b>座谈</b> 企业希望 *加快* 审批" in summary  # shown literally
    assert "&lt;b&gt;座谈&lt;/b&gt;" in api.calls_of("sendMessage")[-1].params["text"]
    assert f"位置：已记录，距企业 {metres} 米" in summary
    assert "照片：1 张" in summary
    assert "党组织情况：未组建 → 单独组建；党员 0 → 12 人" in summary
    assert "P-2026-0001：已协调自然资源局，<下周>会商（→ 处理中）" in summary
    assert "S-2026-0001：材料已补齐" in summary

    await chat.tap("✔ 确认")
    done = chat.last
    assert "✅ 走访已保存，编号 V-2026-0001：星辰科技有限公司，2026-11-25。" in done.text
    assert "已更新该企业的党组织情况" in done.text
    assert "已记录进展：\n• P-2026-0001（已转为处理中）\n• S-2026-0001\n" in done.text
    assert done.buttons == [
        [("反映问题", f"ent:{field.enterprise.id}:problem")],
        [("申请菜单式服务", f"ent:{field.enterprise.id}:service")],
    ]

    async with db() as session:
        visit = await session.scalar(select(Visit))
        assert visit is not None
        assert visit.enterprise_id == field.enterprise.id and visit.user_id == field.liaison.id
        assert visit.topics == ["policy", "party_building"]
        assert visit.notes == "<b>座谈</b> 企业希望 *加快* 审批"
        assert visit.latitude == HOME[0] + 0.001 and visit.longitude == HOME[1]
        assert visit.distance_m == metres
        assert visit.party_org is PartyOrg.standalone and visit.party_members == 12
        assert visit.visited_at == clock.current and visit.withdrawn_at is None
        assert (
            visit.source_chat_id == field.liaison.telegram_id and visit.source_message_id == done.message_id
        )
        photos = list(await session.scalars(select(Attachment).where(Attachment.visit_id == visit.id)))
        assert [(p.file_id, p.file_unique_id) for p in photos] == [("file-a", "uniq-a")]
        enterprise = await session.get(Enterprise, field.enterprise.id)
        assert enterprise is not None
        assert enterprise.party_org is PartyOrg.standalone and enterprise.party_members == 12
        problem = await session.get(Problem, field.problem.id)
        assert problem is not None and problem.status is ProblemStatus.in_progress
        events = list(
            await session.scalars(
                select(ProblemEvent).where(ProblemEvent.problem_id == problem.id).order_by(ProblemEvent.id)
            )
        )
        assert [(e.kind, e.note, e.to_status) for e in events] == [
            ("created", None, ProblemStatus.open),
            ("progress", "已协调自然资源局，<下周>会商", None),
            ("in_progress", None, ProblemStatus.in_progress),
        ]
        assert all(e.actor_id == field.liaison.id for e in events[1:])
        audits = {(a.action, a.entity, a.entity_id) for a in await session.scalars(select(AuditLog))}
        assert ("create", "visit", visit.id) in audits
        assert ("party_org", "enterprise", field.enterprise.id) in audits
        assert ("progress", "service_request", field.service.id) in audits
        assert await session.scalar(select(func.count()).select_from(Draft)) == 0


async def test_an_instructor_visits_an_enterprise_without_open_items_or_coordinates(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    async with db.begin() as session:
        instructor = await make_user(session, role=Role.instructor, name="赵指导")
        enterprise = await make_enterprise(session, name="青松食品有限公司", instructor=instructor)
    chat = chat_with(app, api, instructor)
    await chat.send("/visit")
    await chat.tap("青松食品有限公司")
    assert "该企业目前没有待跟进的问题或服务申请" in chat.last.text  # said, then straight on
    assert "本次走访涉及哪些内容" in chat.last.text
    await chat.tap("服务对接")
    await chat.tap("完成 ›")
    await chat.send("对接了融资需求")
    await chat.send_location(31.2, 121.5)
    await chat.tap("跳过 ›")
    await chat.tap("无变化 ›")
    assert "位置：已记录（企业未登记坐标）" in chat.last.text
    assert "党组织情况：无变化" in chat.last.text and "照片：0 张" in chat.last.text
    await chat.tap("✔ 确认")
    assert "V-2026-0001" in chat.last.text
    async with db() as session:
        visit = await session.scalar(select(Visit))
        stored = await session.get(Enterprise, enterprise.id)
    assert visit is not None and visit.latitude == 31.2 and visit.distance_m is None
    assert visit.party_org is None and visit.party_members is None and visit.topics == ["services"]
    assert stored is not None and stored.party_org is PartyOrg.none


async def test_edit_from_the_summary_and_back_go_where_expected(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    field = await field_with_open_items(db, clock)
    chat = chat_with(app, api, field.liaison)
    await chat.send("/visit")
    await chat.tap("星辰科技有限公司")
    await chat.tap("继续 ›")
    await chat.tap("« 返回")
    assert "以下事项尚未办结" in chat.last.text
    await chat.tap("« 返回")
    assert "您走访了哪家企业" in chat.last.text
    await chat.tap("星辰科技有限公司")
    await chat.tap("继续 ›")
    await chat.tap("政策宣传")
    await chat.tap("完成 ›")
    await chat.tap("« 返回")
    assert "本次走访涉及哪些内容" in chat.last.text and "✓ 政策宣传" in str(chat.last.buttons)
    await chat.tap("« 返回")
    assert "以下事项尚未办结" in chat.last.text  # the checkpoint, not the enterprise list
    await chat.tap("继续 ›")
    await chat.tap("完成 ›")
    await chat.send("第一次记录")
    await chat.tap("跳过 ›")
    await chat.tap("跳过 ›")
    await chat.tap("无变化 ›")
    await chat.tap("✎ 修改")
    await chat.tap("走访记录")
    assert "当前记录：第一次记录" in chat.last.text
    await chat.send("修改后的记录")
    assert "走访记录：修改后的记录" in chat.last.text  # straight back to the summary
    await chat.tap("✎ 修改")
    await chat.tap("走访内容")
    await chat.tap("问题收集")
    await chat.tap("完成 ›")
    assert "走访内容：政策宣传、问题收集" in chat.last.text
    await chat.tap("✎ 修改")
    await chat.tap("跟进事项")
    await chat.tap("P-2026-0001")
    await chat.send("补充一条进展")
    await chat.tap("继续 ›")
    assert "P-2026-0001：补充一条进展" in chat.last.text
    await chat.tap("« 返回")  # Back from the summary still leads to the step before it
    assert "是否有变化" in chat.last.text
    await chat.tap("无变化 ›")
    await chat.tap("✔ 确认")
    async with db() as session:
        visit = await session.scalar(select(Visit))
        problem = await session.get(Problem, field.problem.id)
    assert visit is not None and visit.notes == "修改后的记录" and visit.topics == ["policy", "problems"]
    assert problem is not None and problem.status is ProblemStatus.open  # progress only, no status change
    assert await count(db, ProblemEvent, ProblemEvent.kind == "progress") == 1


# -- choosing the enterprise ------------------------------------------------------------------------------
async def test_paging_search_and_someone_elses_enterprise(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        liaison = await make_user(session, role=Role.liaison)
        other = await make_user(session, role=Role.liaison)
        for n in range(10):
            await make_enterprise(session, name=f"测试企业{n:02d}有限公司", liaison=liaison)
        await make_enterprise(session, name="远方集团有限公司", liaison=other)
        mine = await make_enterprise(session, name="金桥物流有限公司", liaison=liaison)
    chat = chat_with(app, api, liaison)
    await chat.send("/visit")
    names = [label for row in chat.last.buttons for label, _d in row]
    assert names[:8] == [f"测试企业{n:02d}有限公司" for n in range(8)] and "下一页 ›" in names
    assert not any("远方" in name or "金桥" in name for name in names)
    await chat.tap("下一页 ›")
    names = [label for row in chat.last.buttons for label, _d in row]
    assert "测试企业08有限公司" in names and "金桥物流有限公司" in names and "‹ 上一页" in names
    assert "远方集团有限公司" not in names

    await chat.send("远方")  # someone else's enterprise cannot be found
    assert "搜索“远方”：找到 0 家" in chat.last.text
    await chat.send("测试企业0")
    assert "搜索“测试企业0”：找到 10 家" in chat.last.text
    await chat.send("金桥")  # a single match is chosen at once
    assert "🏢 金桥物流有限公司" in chat.last.text and "本次走访涉及哪些内容" in chat.last.text
    async with db() as session:
        draft = await session.scalar(select(Draft))
    assert draft is not None and draft.step == "topics" and draft.data["enterprise_id"] == mine.id


async def test_visit_with_a_search_term(app: App, api: BotAPI, db: SessionMaker) -> None:
    liaison, _enterprise = await plain_enterprise(db)
    async with db.begin() as session:
        await make_enterprise(session, name="青山机械有限公司", liaison=liaison)
    chat = chat_with(app, api, liaison)
    await chat.send("/visit 青")
    assert "搜索“青”：找到 2 家" in chat.last.text


async def test_forged_choices_and_shortcuts_are_refused(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    field = await field_with_open_items(db, clock)
    async with db.begin() as session:
        other = await make_user(session, role=Role.liaison)
        theirs = await make_enterprise(session, name="远方集团有限公司", liaison=other)
        their_problem = await create_problem(
            session,
            enterprise_id=theirs.id,
            reporter_id=other.id,
            category=ProblemCategory.ip,
            description="别人的问题",
            requested_due_date=None,
            now=clock.current,
        )
    chat = chat_with(app, api, field.liaison)
    await chat.press(f"ent:{theirs.id}:visit")
    assert api.answers()[-1] == (NOT_ASSIGNED, True)
    await chat.press(f"ent:{field.enterprise.id}:dance")
    assert api.answers()[-1] == EXPIRED
    await chat.press("ent:99999999999:visit")
    assert api.answers()[-1] == EXPIRED
    assert await count(db, Draft) == 0

    await chat.send("/visit")
    for forged in (f"ent.{theirs.id}", "ent.99999999999", "ent.0", "ent.abc"):
        await chat.press(flow_prefix(chat) + forged)
        assert NOT_ASSIGNED in chat.last.text, forged
    async with db() as session:
        draft = await session.scalar(select(Draft))
    assert draft is not None and draft.step == "enterprise" and "enterprise_id" not in draft.data

    await chat.tap("星辰科技有限公司")
    assert "以下事项尚未办结" in chat.last.text
    for forged in (f"fp.{their_problem.id}", f"fs.{field.service.id + 1000}"):
        await chat.press(flow_prefix(chat) + forged)
        assert "该事项已不再处于待办状态" in chat.last.text, forged
    for forged in ("fp.99999999999", "fp.-1", "t.policy"):
        await chat.press(flow_prefix(chat) + forged)
        assert "请点击某一项记录进展" in chat.last.text, forged
    await chat.tap("继续 ›")
    await chat.press(flow_prefix(chat) + "t.nonsense")
    assert "请点击本次走访涉及的内容" in chat.last.text
    await chat.press(f"f:{draft.id}:1.t.policy")  # a button of an earlier screen
    assert api.answers()[-1] == EXPIRED
    assert await count(db, Visit) == 0 and await count(db, ProblemEvent, ProblemEvent.kind == "progress") == 0


async def test_the_shortcut_after_confirm_starts_a_problem_report_for_the_same_enterprise(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    liaison, enterprise = await plain_enterprise(db)
    chat = chat_with(app, api, liaison)
    await to_summary(chat, "青松食品有限公司")
    await chat.tap("✔ 确认")
    await chat.tap("反映问题")
    async with db() as session:
        draft = await session.scalar(select(Draft))
    assert draft is not None and draft.flow == "problem"
    assert enterprise.name in chat.last.text or str(enterprise.id) in str(draft.data)
    assert "您走访了哪家企业" not in chat.last.text and "请点击企业" not in chat.last.text


# -- restart-safe, exactly once ---------------------------------------------------------------------------
async def test_the_visit_survives_a_restart(
    app: App, api: BotAPI, db: SessionMaker, settings: Settings, clock: Clock
) -> None:
    field = await field_with_open_items(db, clock)
    chat = chat_with(app, api, field.liaison)
    await chat.send("/visit")
    await chat.tap("星辰科技有限公司")
    await chat.tap("P-2026-0001")
    await chat.send("重启前的进展")
    await chat.tap("继续 ›")
    await chat.tap("问题收集")
    await chat.tap("完成 ›")
    restarted = build_application(settings, request=api, clock=clock)
    async with restarted:
        chat2 = Chat(restarted, api, field.liaison.telegram_id or 0)
        await chat2.send("重启后发送的记录")
        assert "发送您的位置" in chat2.last.text
        await chat2.tap("跳过 ›")
        await chat2.tap("跳过 ›")
        await chat2.tap("无变化 ›")
        assert "P-2026-0001：重启前的进展" in chat2.last.text
        await chat2.tap("✔ 确认")
        assert "V-2026-0001" in chat2.last.text
        await restarted.post_shutdown(restarted)  # type: ignore[misc]
    async with db() as session:
        visit = await session.scalar(select(Visit))
    assert visit is not None and visit.notes == "重启后发送的记录" and visit.topics == ["problems"]
    assert await count(db, ProblemEvent, ProblemEvent.kind == "progress") == 1


async def test_a_double_tapped_confirm_saves_one_visit(app: App, api: BotAPI, db: SessionMaker) -> None:
    liaison, _enterprise = await plain_enterprise(db)
    chat = chat_with(app, api, liaison)
    await to_summary(chat, "青松食品有限公司")
    summary = chat.last
    confirm = next(d for row in summary.buttons for label, d in row if label == "✔ 确认")
    assert confirm is not None
    first = await chat.press(confirm, message_id=summary.message_id)
    assert "V-2026-0001" in chat.last.text
    await chat.press(confirm, message_id=summary.message_id)
    assert api.answers()[-1] == EXPIRED
    await chat.redeliver(first)
    assert await count(db, Visit) == 1 and await count(db, AuditLog, AuditLog.entity == "visit") == 1


async def test_a_redelivered_message_changes_nothing(app: App, api: BotAPI, db: SessionMaker) -> None:
    liaison, _enterprise = await plain_enterprise(db)
    chat = chat_with(app, api, liaison)
    await chat.send("/visit")
    await chat.tap("青松食品有限公司")
    await chat.tap("政策宣传")
    await chat.tap("完成 ›")
    notes = await chat.send("第一版记录")
    async with db() as session:
        before = await session.scalar(select(Draft))
    assert before is not None and before.step == "location"
    sent = len(chat.messages())
    await chat.redeliver(notes)
    assert len(chat.messages()) == sent
    async with db() as session:
        after = await session.scalar(select(Draft))
    assert after is not None
    assert (after.step, after.version, after.data) == (before.step, before.version, before.data)
    assert after.data["notes"] == "第一版记录"


# -- wrong input ------------------------------------------------------------------------------------------
async def test_wrong_input_is_re_prompted_politely(app: App, api: BotAPI, db: SessionMaker) -> None:
    liaison, _enterprise = await plain_enterprise(db)
    chat = chat_with(app, api, liaison)
    await chat.send("/visit")
    await chat.tap("青松食品有限公司")
    await chat.send_photo()  # a photo where buttons are expected
    assert "请点击本次走访涉及的内容" in chat.last.text and "本次走访涉及哪些内容" in chat.last.text
    await chat.tap("完成 ›")  # nothing chosen yet
    assert "请至少选择一项走访内容" in chat.last.text
    await chat.tap("其他")
    await chat.tap("完成 ›")
    await chat.send_sticker()  # a sticker where text is expected
    assert "请以文字消息发送" in chat.last.text
    await chat.send("长" * 2001)
    assert "内容共 2001 个字，超过了 2000 字的上限" in chat.last.text
    await chat.send("长" * 2000)
    assert "发送您的位置" in chat.last.text
    await chat.send("我在企业门口")  # text where a location is expected
    assert "请发送位置（📎 → 位置），或点“跳过”" in chat.last.text
    await chat.send_sticker()
    assert "请发送位置" in chat.last.text
    await chat.send_location(39.0, 116.0)
    await chat.send("这是照片")  # text where photos are expected
    assert "请发送照片" in chat.last.text
    await chat.tap("跳过 ›")
    await chat.send("5")  # text where buttons are expected
    assert "请点击下方按钮进行选择" in chat.last.text
    await chat.tap("联合组建")
    for bad in ("abc", "-1", "100001", "1.5", "1e3"):
        await chat.send(bad)
        assert "须为 0 到 100000 之间的整数" in chat.last.text, bad
    await chat.send("100000")
    assert "党员 0 → 100000 人" in chat.last.text
    await chat.send("随手一条")  # text on the summary
    assert "请点击下方按钮进行选择" in chat.last.text
    async with db() as session:
        visit_count = await session.scalar(select(func.count()).select_from(Visit))
    assert visit_count == 0


async def test_photos_at_most_five_duplicates_ignored_and_an_album_prompts_once(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    liaison, _enterprise = await plain_enterprise(db)
    chat = chat_with(app, api, liaison)
    await chat.send("/visit")
    await chat.tap("青松食品有限公司")
    await chat.tap("政策宣传")
    await chat.tap("完成 ›")
    await chat.send("记录")
    await chat.tap("跳过 ›")
    sent = len(chat.messages())
    await album(chat, "album-1", "a", "b", "c")
    assert len(chat.messages()) == sent + 1  # one prompt for the whole album
    assert "已收到照片" in chat.last.text
    await chat.send_photo("file-b", "uniq-b")  # the same photo again
    assert "这张照片已经添加过了" in chat.last.text
    await chat.send_photo("file-d", "uniq-d")
    assert "已收到 4 张照片" in chat.last.text
    sent = len(chat.messages())
    await album(chat, "album-2", "e", "f", "g")  # one fits, two do not
    assert len(chat.messages()) == sent + 1
    await chat.send_photo("file-h", "uniq-h")  # a sixth, on its own
    assert "每次走访最多保存 5 张照片，这张未添加" in chat.last.text
    await chat.tap("完成 ›")  # the album's prompt buttons stay valid
    await chat.tap("无变化 ›")
    assert "照片：5 张（另有 2 张未保存：最多 5 张）" in chat.last.text
    await chat.tap("✔ 确认")
    async with db() as session:
        photos = list(await session.scalars(select(Attachment).order_by(Attachment.id)))
    assert [p.file_unique_id for p in photos] == ["uniq-a", "uniq-b", "uniq-c", "uniq-d", "uniq-e"]
    assert [p.file_id for p in photos] == ["file-a", "file-b", "file-c", "file-d", "file-e"]


async def test_an_album_at_the_wrong_step_is_answered_once(app: App, api: BotAPI, db: SessionMaker) -> None:
    liaison, _enterprise = await plain_enterprise(db)
    chat = chat_with(app, api, liaison)
    await chat.send("/visit")
    await chat.tap("青松食品有限公司")
    await chat.tap("政策宣传")
    await chat.tap("完成 ›")
    sent = len(chat.messages())
    await album(chat, "album-x", "a", "b", "c")
    assert len(chat.messages()) == sent + 1 and "请以文字消息发送" in chat.last.text
    await chat.send("记录")
    assert "发送您的位置" in chat.last.text


# -- leaving ----------------------------------------------------------------------------------------------
async def test_cancel_mid_flow_saves_nothing(app: App, api: BotAPI, db: SessionMaker, clock: Clock) -> None:
    field = await field_with_open_items(db, clock)
    chat = chat_with(app, api, field.liaison)
    await chat.send("/visit")
    await chat.tap("星辰科技有限公司")
    await chat.tap("P-2026-0001")
    await chat.tap("同时标记为处理中")
    await chat.send("一条进展")
    await chat.tap("继续 ›")
    await chat.tap("政策宣传")
    await chat.tap("完成 ›")
    await chat.send("/cancel")
    assert chat.last.text == "已取消，未保存任何内容。"
    await chat.send("/visit")
    await chat.tap("星辰科技有限公司")
    await chat.tap("✖ 取消")
    assert chat.last.text == "已取消，未保存任何内容。"
    async with db() as session:
        problem = await session.get(Problem, field.problem.id)
    assert problem is not None and problem.status is ProblemStatus.open
    assert await count(db, Visit) == 0 and await count(db, Draft) == 0
    assert await count(db, ProblemEvent, ProblemEvent.kind != "created") == 0
    assert await count(db, AuditLog) == 0


async def test_an_untouched_visit_expires_after_24_hours(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    liaison, _enterprise = await plain_enterprise(db)
    chat = chat_with(app, api, liaison)
    await to_summary(chat, "青松食品有限公司")
    summary = chat.last
    clock.advance(hours=25)
    await chat.tap("✔ 确认", message=summary)
    assert "您未完成的走访记录已超过 24 小时未操作，已失效，未保存任何内容" in chat.last.text
    assert await count(db, Visit) == 0 and await count(db, Draft) == 0
    await chat.send("记录")
    assert "发送 /help" in chat.last.text


@pytest.mark.parametrize("details", [False, True], ids=["plain", "with-location-and-party"])
async def test_unassigned_before_confirm_saves_nothing(
    app: App, api: BotAPI, db: SessionMaker, details: bool
) -> None:
    """Plain: the visit's INSERT checks the assignment itself. With a location and a party-organisation
    change the enterprise is read first (its coordinates and party organisation), and that read refuses."""
    liaison, enterprise = await plain_enterprise(db)
    chat = chat_with(app, api, liaison)
    if details:
        await chat.send("/visit")
        await chat.tap("青松食品有限公司")
        await chat.tap("政策宣传")
        await chat.tap("完成 ›")
        await chat.send("宣讲了最新惠企政策")
        await chat.send_location(HOME[0], HOME[1])
        await chat.tap("跳过 ›")
        await chat.tap("单独组建")
        await chat.send("3")
        assert "请核对走访信息并确认" in chat.last.text and "位置：已记录" in chat.last.text
    else:
        await to_summary(chat, "青松食品有限公司")
    async with db.begin() as session:
        assignment = await session.scalar(select(Assignment).where(Assignment.enterprise_id == enterprise.id))
        assert assignment is not None
        assignment.end_date = date(2026, 11, 25)
    await chat.tap("✔ 确认")
    assert "您已不再是该企业的包片人员，此次走访未保存" in chat.last.text
    assert await count(db, Visit) == 0 and await count(db, AuditLog) == 0 and await count(db, Draft) == 0
    async with db() as session:
        unchanged = await session.get(Enterprise, enterprise.id)
    assert unchanged is not None and unchanged.party_members == enterprise.party_members


async def test_a_second_visit_while_one_is_unfinished_asks_first(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    liaison, _enterprise = await plain_enterprise(db)
    chat = chat_with(app, api, liaison)
    await chat.send("/visit")
    await chat.tap("青松食品有限公司")
    await chat.send("/visit")
    assert "您有一项未完成的走访记录" in chat.last.text
    await chat.tap("继续未完成的")
    assert "本次走访涉及哪些内容" in chat.last.text


# -- language ---------------------------------------------------------------------------------------------
async def test_an_english_user_sees_english(app: App, api: BotAPI, db: SessionMaker, clock: Clock) -> None:
    async with db.begin() as session:
        liaison = await make_user(session, role=Role.liaison, locale="en")
        await make_enterprise(session, name="Evergreen Foods Ltd", liaison=liaison)
    chat = chat_with(app, api, liaison, language_code="en")
    await chat.send("/visit")
    assert "Which enterprise did you visit?" in chat.last.text
    await chat.tap("Evergreen Foods Ltd")
    assert "Nothing is open at this enterprise" in chat.last.text
    await chat.tap("Policy explanation")
    await chat.tap("Done ›")
    await chat.send("Talked about <subsidies>")
    await chat.tap("Skip ›")
    await chat.tap("Skip ›")
    await chat.tap("Affiliated")
    await chat.tap("Keep 0")
    summary = chat.last.text
    assert "Topics: Policy explanation" in summary and "Notes: Talked about <subsidies>" in summary
    assert "Party organisation: No party organisation yet → Affiliated" in summary
    await chat.tap("✔ Confirm")
    assert "Visit saved as V-2026-0001: Evergreen Foods Ltd, 2026-11-25." in chat.last.text
    assert [label for row in chat.last.buttons for label, _d in row] == [
        "Report a problem",
        "Request a menu service",
    ]
