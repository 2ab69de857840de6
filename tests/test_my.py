"""/my: one's own work — the overview and its sections, progress, resolution with funds, the answer to a
return for correction, editing and withdrawing a visit within the edit window, service requests, and the
rules (only the author acts, forged and stale buttons, double taps, restart mid-flow, HTML, English)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from telegram.ext import Application

from bot.app import build_application
from bot.config import Settings
from bot.storage.db import SessionMaker
from bot.storage.enums import ProblemCategory, ProblemStatus, Role, ServiceStatus, Stage, VisitTopic
from bot.storage.models import AuditLog, MenuItem, Problem, ProblemEvent, ServiceRequest, User, Visit
from bot.storage.problems import change_status, create_problem
from tests.botapi import BotAPI, Chat
from tests.conftest import Clock, chat_with, make_enterprise, make_user

App = Application[Any, Any, Any, Any, Any, Any]
EXPIRED = ("此操作已失效。", True)
NOT_REPORTER = ("只有该问题的上报人可以进行此操作。", True)
NOT_AUTHOR = ("只有该走访的记录人可以进行此操作。", True)


@dataclass
class World:
    liaison: User
    other: User
    supervisor: User
    enterprise_id: int
    other_enterprise_id: int


async def world(db: SessionMaker, *, locale: str = "zh_CN") -> World:
    async with db.begin() as session:
        liaison = await make_user(session, role=Role.liaison, name="李明", locale=locale)
        other = await make_user(session, role=Role.liaison, name="王芳")
        supervisor = await make_user(session, role=Role.supervisor, name="赵督导")
        mine = await make_enterprise(session, name="东方机械有限公司", liaison=liaison)
        theirs = await make_enterprise(session, name="西城商贸有限公司", liaison=other)
    return World(liaison, other, supervisor, mine.id, theirs.id)


async def new_problem(
    db: SessionMaker,
    *,
    reporter: User,
    enterprise_id: int,
    at: datetime,
    description: str = "厂房扩建缺少用地指标",
    category: ProblemCategory = ProblemCategory.land,
) -> int:
    async with db.begin() as session:
        problem = await create_problem(
            session,
            enterprise_id=enterprise_id,
            reporter_id=reporter.id,
            category=category,
            description=description,
            requested_due_date=None,
            now=at,
        )
        await session.flush()
        return problem.id


async def return_problem(
    db: SessionMaker, *, problem_id: int, supervisor: User, at: datetime, reason: str
) -> None:
    async with db.begin() as session:
        problem = await session.get(Problem, problem_id)
        assert problem is not None
        change_status(
            session,
            problem,
            to=ProblemStatus.returned,
            actor_id=supervisor.id,
            now=at,
            note=reason,
            kind="returned",
        )


async def new_visit(
    db: SessionMaker, *, user: User, enterprise_id: int, at: datetime, notes: str = "宣讲了稳岗政策"
) -> int:
    async with db.begin() as session:
        visit = Visit(
            enterprise_id=enterprise_id,
            user_id=user.id,
            visited_at=at,
            topics=[VisitTopic.policy.value],
            notes=notes,
            created_at=at,
            updated_at=at,
        )
        session.add(visit)
        await session.flush()
        return visit.id


async def new_service(db: SessionMaker, *, user: User, enterprise_id: int, at: datetime) -> int:
    async with db.begin() as session:
        item = await session.scalar(
            select(MenuItem).where(MenuItem.stage == Stage.startup).order_by(MenuItem.position).limit(1)
        )
        assert item is not None
        request = ServiceRequest(
            enterprise_id=enterprise_id,
            requester_id=user.id,
            menu_item_id=item.id,
            note="需要办理食品经营许可证",
            created_at=at,
            updated_at=at,
        )
        session.add(request)
        await session.flush()
        return request.id


def button_data(chat: Chat, label: str) -> str:
    """The callback data of the latest message's button containing `label` (to tap it again later)."""
    [data] = [data for row in chat.last.buttons for text, data in row if label in text]
    assert data is not None
    return data


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


async def get_visit(db: SessionMaker, visit_id: int) -> Visit:
    async with db() as session:
        visit = await session.get(Visit, visit_id)
    assert visit is not None
    return visit


async def audits(db: SessionMaker, *, entity: str, entity_id: int) -> list[AuditLog]:
    async with db() as session:
        rows = await session.scalars(
            select(AuditLog)
            .where(AuditLog.entity == entity, AuditLog.entity_id == entity_id)
            .order_by(AuditLog.id)
        )
        return list(rows)


# -- the overview --------------------------------------------------------------------------------------
async def test_the_overview_and_its_sections_show_only_my_work(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    now = clock()
    async with db.begin() as session:
        liaison = await session.get(User, w.liaison.id)
        assert liaison is not None
        never = await make_enterprise(session, name="北辰科技有限公司", liaison=liaison)
    # 23:30 on Sunday 22 November in Beijing is still the 22nd there (15:30 UTC).
    await new_visit(
        db, user=w.liaison, enterprise_id=w.enterprise_id, at=datetime(2026, 11, 22, 15, 30, tzinfo=UTC)
    )
    withdrawn = await new_visit(
        db, user=w.liaison, enterprise_id=w.enterprise_id, at=now - timedelta(hours=1)
    )
    async with db.begin() as session:
        visit = await session.get(Visit, withdrawn)
        assert visit is not None
        visit.withdrawn_at = now
    await new_visit(db, user=w.other, enterprise_id=w.other_enterprise_id, at=now)
    open_id = await new_problem(
        db, reporter=w.liaison, enterprise_id=w.enterprise_id, at=now - timedelta(days=3)
    )
    returned_id = await new_problem(
        db,
        reporter=w.liaison,
        enterprise_id=never.id,
        at=now - timedelta(days=1),
        category=ProblemCategory.power,
    )
    await return_problem(db, problem_id=returned_id, supervisor=w.supervisor, at=now, reason="请补充联系人")
    await new_problem(db, reporter=w.other, enterprise_id=w.other_enterprise_id, at=now)
    service_id = await new_service(
        db, user=w.liaison, enterprise_id=w.enterprise_id, at=now - timedelta(days=2)
    )

    chat = chat_with(app, api, w.liaison)
    await chat.send("/my")
    text = chat.last.text
    assert "我的工作" in text and "李明" in text
    assert "包片企业：2 家，其中 1 家超过 30 天未走访" in text
    assert "待办问题：2 个，其中 1 个被退回修改" in text
    assert "办理中的服务申请：1 个" in text
    assert "近 30 天走访：1 次" in text  # the withdrawn visit and the other liaison's do not count
    returned_ref = (await get_problem(db, returned_id)).ref
    assert any(f"修改 {returned_ref}" in label for row in chat.last.buttons for label, _ in row)

    await chat.tap("我的企业")
    text = chat.last.text
    assert text.index("北辰科技有限公司") < text.index("东方机械有限公司")  # never visited comes first
    assert "从未走访" in text
    assert "最近走访 2026-11-22（3 天）" in text  # local date, the withdrawn visit of today ignored
    assert "待办问题 1 · 服务 1" in text and "西城商贸" not in text

    await chat.tap("« 我的工作")
    await chat.tap("我的问题")
    text = chat.last.text
    open_ref = (await get_problem(db, open_id)).ref
    assert text.index(returned_ref) < text.index(open_ref)  # the one waiting for me first
    assert f"{open_ref} · 东方机械有限公司 · 用地 · 待办 · 3 天" in text
    assert f"⚠ {returned_ref} · 北辰科技有限公司 · 用电 · 退回修改 · 1 天" in text

    await chat.tap("« 我的工作")
    await chat.tap("我的服务")
    async with db() as session:
        service = await session.get(ServiceRequest, service_id)
    assert service is not None and service.ref in chat.last.text and "已申请" in chat.last.text

    await chat.tap("« 我的工作")
    await chat.tap("我的走访")
    text = chat.last.text
    assert "2026-11-22 · 东方机械有限公司 · 可修改至 2026-11-29" in text  # 23:30 + 7 days
    assert text.count("V-2026-") == 1


async def test_enterprises_are_paged(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        liaison = await make_user(session, role=Role.liaison)
        for n in range(10):
            await make_enterprise(session, name=f"企业{n:02d}有限公司", liaison=liaison)
    chat = chat_with(app, api, liaison)
    await chat.send("/my")
    await chat.tap("我的企业")
    assert "（第 1/2 页）" in chat.last.text and "企业00" in chat.last.text and "企业09" not in chat.last.text
    await chat.tap("下一页 ›")
    assert "（第 2/2 页）" in chat.last.text and "企业09" in chat.last.text and "企业00" not in chat.last.text
    await chat.tap("‹ 上一页")
    assert "企业00" in chat.last.text


async def test_an_english_user_sees_english_and_html_stays_literal(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    async with db.begin() as session:
        liaison = await make_user(session, role=Role.liaison, name="<b>Li</b>", locale="en")
        enterprise = await make_enterprise(session, name="<i>Acme</i> & Co", liaison=liaison)
    problem_id = await new_problem(
        db, reporter=liaison, enterprise_id=enterprise.id, at=clock(), description="<script>x</script>"
    )
    chat = chat_with(app, api, liaison, language_code="en")
    await chat.send("/my")
    assert chat.last.text.startswith("My work — <b>Li</b>")
    assert "Enterprises: 1, 1 not visited for 30+ days" in chat.last.text
    await chat.tap("My enterprises")
    assert "<i>Acme</i> & Co" in chat.last.text and "never visited" in chat.last.text
    await chat.press(f"mp:{problem_id}:view")
    assert "Description: <script>x</script>" in chat.last.text and "Open" in chat.last.text
    await chat.tap("Add progress")
    await chat.send("<b>called</b> the power company")
    assert "Progress recorded" in chat.last.text and "In progress" in chat.last.text
    assert (await events(db, problem_id))[-1].note == "<b>called</b> the power company"


# -- progress ------------------------------------------------------------------------------------------
async def test_progress_is_recorded_and_moves_an_open_problem_to_in_progress(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, reporter=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    chat = chat_with(app, api, w.liaison)
    await chat.send("/my")
    await chat.tap("我的问题")
    await chat.tap("用地 · 待办")
    assert "问题描述：厂房扩建缺少用地指标" in chat.last.text and "上报" in chat.last.text
    await chat.tap("添加进展")
    assert "的进展：请发送已开展的工作" in chat.last.text
    await chat.send_sticker()
    assert "请以文字消息发送" in chat.last.text
    await chat.send("已协调自然资源局现场踏勘")
    assert "已记录" in chat.last.text and "当前状态：处理中" in chat.last.text
    problem = await get_problem(db, problem_id)
    assert problem.status is ProblemStatus.in_progress
    last = (await events(db, problem_id))[-1]
    assert (last.kind, last.from_status, last.to_status, last.note, last.actor_id) == (
        "progress",
        ProblemStatus.open,
        ProblemStatus.in_progress,
        "已协调自然资源局现场踏勘",
        w.liaison.id,
    )
    # a second note on an in-progress problem: an event, the status stays
    await chat.press(f"mp:{problem_id}:progress")
    await chat.send("已拿到用地预审意见")
    history = await events(db, problem_id)
    assert [e.kind for e in history] == ["created", "progress", "progress"]
    assert (
        history[-1].to_status is None
        and (await get_problem(db, problem_id)).status is ProblemStatus.in_progress
    )
    # the card shows the history
    await chat.press(f"mp:{problem_id}:view")
    assert "最近记录" in chat.last.text and "进展：已拿到用地预审意见" in chat.last.text


# -- resolve -------------------------------------------------------------------------------------------
async def start_resolve(chat: Chat, problem_id: int, resolution: str = "已落实用地指标") -> None:
    await chat.press(f"mp:{problem_id}:resolve")
    assert "请发送解决情况" in chat.last.text
    await chat.send(resolution)
    assert "帮扶资金（单位：万元）" in chat.last.text


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("12.5", Decimal("12.50")),
        ("12.50", Decimal("12.50")),
        ("１２.５", Decimal("12.50")),
        ("0", Decimal("0")),
    ],
)
async def test_resolve_with_accepted_funds(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, typed: str, stored: Decimal
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, reporter=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    chat = chat_with(app, api, w.liaison)
    await start_resolve(chat, problem_id)
    await chat.send(typed)
    assert "确定将" in chat.last.text and f"帮扶资金：{stored:.2f} 万元" in chat.last.text
    await chat.tap("确认已解决")
    assert f"已标记为已解决。帮扶资金：{stored:.2f} 万元。" in chat.last.text
    problem = await get_problem(db, problem_id)
    assert problem.status is ProblemStatus.resolved and problem.funds_wan == stored
    assert problem.resolution == "已落实用地指标" and problem.resolved_at == clock()
    assert [e.kind for e in await events(db, problem_id)] == ["created", "resolved"]


@pytest.mark.parametrize(
    ("typed", "refusal"),
    [
        ("abc", "“abc”不是有效金额。请发送不小于 0 的数字，单位万元，最多两位小数"),
        ("-1", "“-1”不是有效金额"),
        ("1e9", "“1e9”不是有效金额"),
        ("1.234", "“1.234”超过两位小数"),
        ("123456789012", "数额过大"),
    ],
)
async def test_resolve_refuses_bad_funds_with_an_explanation(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, typed: str, refusal: str
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, reporter=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    chat = chat_with(app, api, w.liaison)
    await start_resolve(chat, problem_id)
    await chat.send(typed)
    assert refusal in chat.last.text and "帮扶资金（单位：万元）" in chat.last.text  # asked again
    problem = await get_problem(db, problem_id)
    assert problem.status is ProblemStatus.open and problem.funds_wan is None
    await chat.tap("无帮扶资金")
    assert "帮扶资金：无" in chat.last.text
    await chat.tap("确认已解决")
    problem = await get_problem(db, problem_id)
    assert problem.status is ProblemStatus.resolved and problem.funds_wan is None


async def test_overlong_resolution_is_refused_with_the_limit(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, reporter=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    chat = chat_with(app, api, w.liaison)
    await chat.press(f"mp:{problem_id}:resolve")
    await chat.send("字" * 2001)
    assert "2001 个字" in chat.last.text and "2000" in chat.last.text
    assert "请发送解决情况" in chat.last.text


async def test_a_double_tapped_resolve_confirm_resolves_once(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, reporter=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    chat = chat_with(app, api, w.liaison)
    await start_resolve(chat, problem_id)
    await chat.send("3")
    confirm = button_data(chat, "确认已解决")
    tap = await chat.press(confirm)
    await chat.press(confirm)
    assert api.answers()[-1] == EXPIRED
    await chat.redeliver(tap)
    assert [e.kind for e in await events(db, problem_id)] == ["created", "resolved"]
    # and a later tap on the card's old "resolve" button finds it already resolved
    await chat.press(f"mp:{problem_id}:resolve")
    assert api.answers()[-1] == ("此操作已失效：该问题已是“已解决”状态。", True)
    assert (await get_problem(db, problem_id)).funds_wan == Decimal("3")


async def test_resolving_what_a_supervisor_closed_meanwhile_changes_nothing(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, reporter=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    chat = chat_with(app, api, w.liaison)
    await start_resolve(chat, problem_id)
    await chat.send("5")
    async with db.begin() as session:
        problem = await session.get(Problem, problem_id)
        assert problem is not None
        change_status(
            session, problem, to=ProblemStatus.closed, actor_id=w.supervisor.id, now=clock(), note="重复"
        )
    await chat.tap("确认已解决")
    assert "此操作已失效：该问题已是“已关闭”状态。" in chat.last.text
    problem = await get_problem(db, problem_id)
    assert problem.status is ProblemStatus.closed and problem.funds_wan is None and problem.resolution is None


async def test_a_restart_mid_resolve_continues_where_it_was(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, settings: Settings
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, reporter=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    chat = chat_with(app, api, w.liaison)
    await start_resolve(chat, problem_id, resolution="电力公司已增容")
    restarted = build_application(settings, request=api, clock=clock)
    async with restarted:
        again = Chat(restarted, api, w.liaison.telegram_id or 0)
        await again.send("8")
        assert "电力公司已增容" in again.last.text and "8.00 万元" in again.last.text
        await again.tap("确认已解决")
        await restarted.post_shutdown(restarted)  # type: ignore[misc]
    problem = await get_problem(db, problem_id)
    assert problem.status is ProblemStatus.resolved and problem.funds_wan == Decimal("8")
    assert problem.resolution == "电力公司已增容"


# -- returned for correction ---------------------------------------------------------------------------
async def test_a_returned_problem_is_corrected_from_the_notification_button(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, reporter=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    clock.advance(hours=2)
    await return_problem(
        db, problem_id=problem_id, supervisor=w.supervisor, at=clock(), reason="请补充<地块>编号"
    )
    chat = chat_with(app, api, w.liaison)
    await chat.press(f"mp:{problem_id}:correct")  # the button on the supervisor's notification
    text = chat.last.text
    assert (
        "被退回修改" in text
        and "退回原因：请补充<地块>编号" in text
        and "当前描述：厂房扩建缺少用地指标" in text
    )
    await chat.send("厂房扩建缺少用地指标，地块编号 A-12")
    assert "确定提交" in chat.last.text
    await chat.tap("提交修改")
    assert "的修改已提交，问题重新变为待办" in chat.last.text
    problem = await get_problem(db, problem_id)
    assert (
        problem.status is ProblemStatus.open and problem.description == "厂房扩建缺少用地指标，地块编号 A-12"
    )
    last = (await events(db, problem_id))[-1]
    assert (last.kind, last.from_status, last.to_status, last.note, last.actor_id) == (
        "corrected",
        ProblemStatus.returned,
        ProblemStatus.open,
        "厂房扩建缺少用地指标，地块编号 A-12",
        w.liaison.id,
    )
    [audit] = await audits(db, entity="problem", entity_id=problem_id)
    assert audit.details == {
        "before": {"description": "厂房扩建缺少用地指标"},
        "after": {"description": "厂房扩建缺少用地指标，地块编号 A-12"},
    }
    # the notification's button again: already answered
    await chat.press(f"mp:{problem_id}:correct")
    assert api.answers()[-1] == ("此操作已失效：该问题为“待办”状态，并未被退回修改。", True)
    assert len(await events(db, problem_id)) == 3


async def test_the_card_of_a_returned_problem_offers_the_correction(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, reporter=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    await return_problem(db, problem_id=problem_id, supervisor=w.supervisor, at=clock(), reason="描述不清")
    chat = chat_with(app, api, w.liaison)
    await chat.send("/my")
    await chat.tap("我的问题")
    await chat.tap("退回修改")
    assert "⚠ 退回修改，原因：描述不清" in chat.last.text
    labels = [label for row in chat.last.buttons for label, _ in row]
    assert "✏ 修改并重新提交" in labels and "✔ 标记已解决" not in labels
    await chat.tap("修改并重新提交")
    assert "退回原因：描述不清" in chat.last.text
    await chat.send("新的描述")
    await chat.tap("提交修改")
    assert (await get_problem(db, problem_id)).status is ProblemStatus.open


# -- visits --------------------------------------------------------------------------------------------
async def test_a_visit_is_edited_and_withdrawn_within_the_window_with_an_audit_trail(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    visit_id = await new_visit(
        db, user=w.liaison, enterprise_id=w.enterprise_id, at=clock() - timedelta(days=2)
    )
    chat = chat_with(app, api, w.liaison)
    await chat.send("/my")
    await chat.tap("我的走访")
    await chat.tap("东方机械")
    assert "走访内容：政策宣传" in chat.last.text and "可修改或撤回至 2026-11-30" in chat.last.text
    await chat.tap("✏ 修改")
    assert "修改走访" in chat.last.text
    await chat.tap("修改走访内容")
    await chat.tap("问题收集")
    await chat.tap("政策宣传")  # deselect
    await chat.tap("完成")
    await chat.tap("修改走访记录")
    await chat.send("<b>补充</b>：企业反映用电紧张")
    assert "走访内容：问题收集" in chat.last.text and "<b>补充</b>" in chat.last.text
    await chat.tap("保存修改")
    assert "已更新" in chat.last.text
    visit = await get_visit(db, visit_id)
    assert visit.topics == ["problems"] and visit.notes == "<b>补充</b>：企业反映用电紧张"
    [edit] = await audits(db, entity="visit", entity_id=visit_id)
    assert edit.action == "visit.edit" and edit.actor_id == w.liaison.id
    assert edit.details == {
        "before": {"topics": ["policy"], "notes": "宣讲了稳岗政策"},
        "after": {"topics": ["problems"], "notes": "<b>补充</b>：企业反映用电紧张"},
    }

    await chat.tap("查看")
    await chat.tap("↩ 撤回")
    assert "确定撤回走访" in chat.last.text
    confirm = button_data(chat, "确定撤回")
    await chat.press(confirm)
    assert "已撤回，不再计入任何统计" in chat.last.text
    await chat.press(confirm)  # a second tap
    assert api.answers()[-1] == ("该走访已撤回。", True)
    visit = await get_visit(db, visit_id)
    assert visit.withdrawn_at == clock()
    trail = await audits(db, entity="visit", entity_id=visit_id)
    assert [a.action for a in trail] == ["visit.edit", "visit.withdraw"]
    assert trail[1].details["before"] == {"withdrawn_at": None}
    await chat.send("/my")
    assert "近 30 天走访：0 次" in chat.last.text


async def test_a_visit_is_final_after_the_edit_window(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    visit_id = await new_visit(db, user=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    clock.advance(days=8)
    chat = chat_with(app, api, w.liaison)
    await chat.press(f"vs:{visit_id}:view")
    assert "已超过 7 天修改期限" in chat.last.text
    assert [label for row in chat.last.buttons for label, _ in row] == ["« 我的走访"]
    for action in ("edit", "withdraw", "withdraw_yes"):
        await chat.press(f"vs:{visit_id}:{action}")
        assert api.answers()[-1] == ("走访记录只能在提交后 7 天内修改或撤回，此条已超过期限。", True)
    visit = await get_visit(db, visit_id)
    assert visit.withdrawn_at is None and visit.notes == "宣讲了稳岗政策"
    assert await audits(db, entity="visit", entity_id=visit_id) == []


async def test_the_edit_window_is_checked_again_when_saving(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    visit_id = await new_visit(
        db, user=w.liaison, enterprise_id=w.enterprise_id, at=clock() - timedelta(days=7) + timedelta(hours=1)
    )
    chat = chat_with(app, api, w.liaison)
    await chat.press(f"vs:{visit_id}:edit")
    await chat.tap("修改走访记录")
    await chat.send("晚了一步的修改")
    clock.advance(hours=2)
    await chat.tap("保存修改")
    assert "此条已超过期限" in chat.last.text
    assert (await get_visit(db, visit_id)).notes == "宣讲了稳岗政策"
    assert await audits(db, entity="visit", entity_id=visit_id) == []


# -- only the author -----------------------------------------------------------------------------------
async def test_forged_buttons_on_someone_elses_records_change_nothing(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, reporter=w.other, enterprise_id=w.other_enterprise_id, at=clock())
    returned_id = await new_problem(db, reporter=w.other, enterprise_id=w.other_enterprise_id, at=clock())
    await return_problem(db, problem_id=returned_id, supervisor=w.supervisor, at=clock(), reason="补充")
    visit_id = await new_visit(db, user=w.other, enterprise_id=w.other_enterprise_id, at=clock())
    service_id = await new_service(db, user=w.other, enterprise_id=w.other_enterprise_id, at=clock())
    chat = chat_with(app, api, w.liaison)
    for action in ("view", "progress", "resolve"):
        await chat.press(f"mp:{problem_id}:{action}")
        assert api.answers()[-1] == NOT_REPORTER
    await chat.press(f"mp:{returned_id}:correct")
    assert api.answers()[-1] == NOT_REPORTER
    for action in ("view", "edit", "withdraw", "withdraw_yes"):
        await chat.press(f"vs:{visit_id}:{action}")
        assert api.answers()[-1] == NOT_AUTHOR
    await chat.press(f"sv:{service_id}:view")
    assert api.answers()[-1] == ("只有申请人可以在这里查看此服务申请。", True)
    await chat.press(f"sv:{service_id}:withdraw_yes")
    assert api.answers()[-1] == ("只有申请人可以撤回此服务申请。", True)
    for forged in (
        "mp:999999:view",
        "mp:999999:resolve",
        f"mp:{problem_id}:delete",
        "vs:999999:edit",
        f"vs:{visit_id}:purge",
        "sv:999999:view",
        f"sv:{service_id}:delivered",
        "my:0:secret",
    ):
        await chat.press(forged)
        assert api.answers()[-1] == EXPIRED, forged
    assert chat.messages() == []  # no card or flow was shown
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(AuditLog)) == 0
        assert await session.scalar(select(func.count()).select_from(ProblemEvent)) == 3
        assert await session.scalar(select(func.count()).select_from(ServiceRequest)) == 1
    assert (await get_problem(db, problem_id)).status is ProblemStatus.open
    assert (await get_problem(db, returned_id)).status is ProblemStatus.returned
    assert (await get_visit(db, visit_id)).withdrawn_at is None


async def test_a_supervisor_cannot_use_the_authors_buttons(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, reporter=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    chat = chat_with(app, api, w.supervisor)
    await chat.send("/my")
    assert "没有此项操作的权限" in chat.last.text
    await chat.press(f"mp:{problem_id}:resolve")
    assert api.answers()[-1] == ("抱歉，您没有此项操作的权限。", True)
    assert (await get_problem(db, problem_id)).status is ProblemStatus.open


# -- service requests ----------------------------------------------------------------------------------
async def test_a_service_request_is_viewed_and_withdrawn_once(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    service_id = await new_service(db, user=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    async with db() as session:
        request = await session.get(ServiceRequest, service_id)
        assert request is not None
        ref = request.ref
    chat = chat_with(app, api, w.liaison)
    await chat.send("/my")
    await chat.tap("我的服务")
    await chat.tap(ref)
    assert "已申请" in chat.last.text and "备注：需要办理食品经营许可证" in chat.last.text
    await chat.tap("撤回申请")
    confirm = button_data(chat, "确定撤回")
    await chat.press(confirm)
    assert f"服务申请 {ref} 已撤回" in chat.last.text
    await chat.press(confirm)
    assert api.answers()[-1] == ("该申请已撤回。", True)
    async with db() as session:
        assert await session.get(ServiceRequest, service_id) is None
    [audit] = await audits(db, entity="service_request", entity_id=service_id)
    assert audit.action == "service.withdraw" and audit.details["before"]["ref"] == ref


async def test_a_started_service_request_cannot_be_withdrawn_and_a_supervisor_may_view_it(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    service_id = await new_service(db, user=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    async with db.begin() as session:
        request = await session.get(ServiceRequest, service_id)
        assert request is not None
        request.status = ServiceStatus.in_progress
    chat = chat_with(app, api, w.liaison)
    await chat.press(f"sv:{service_id}:view")
    assert "处理中" in chat.last.text and "撤回申请" not in str(chat.last.buttons)
    await chat.press(f"sv:{service_id}:withdraw_yes")
    assert api.answers()[-1] == ("此操作已失效：该申请已是“处理中”状态。", True)
    supervisor = chat_with(app, api, w.supervisor)
    await supervisor.press(f"sv:{service_id}:view")
    assert "东方机械有限公司" in supervisor.last.text
    await supervisor.press(f"sv:{service_id}:withdraw_yes")
    assert api.answers()[-1] == ("抱歉，您没有此项操作的权限。", True)
    async with db() as session:
        assert await session.get(ServiceRequest, service_id) is not None


async def test_a_redelivered_progress_message_is_recorded_once(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, reporter=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    chat = chat_with(app, api, w.liaison)
    await chat.press(f"mp:{problem_id}:progress")
    update = await chat.send("已约谈企业负责人")
    await chat.redeliver(update)
    assert [e.kind for e in await events(db, problem_id)] == ["created", "progress"]


async def test_an_untouched_correction_expires_and_changes_nothing(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, reporter=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    await return_problem(db, problem_id=problem_id, supervisor=w.supervisor, at=clock(), reason="补充材料")
    chat = chat_with(app, api, w.liaison)
    await chat.press(f"mp:{problem_id}:correct")
    clock.advance(hours=25)
    await chat.send("修改后的描述")
    assert "问题修改已超过 24 小时未操作，已失效" in chat.last.text
    problem = await get_problem(db, problem_id)
    assert problem.status is ProblemStatus.returned and problem.description == "厂房扩建缺少用地指标"
    await chat.press(f"mp:{problem_id}:correct")  # the notification's button still works afterwards
    assert "退回原因：补充材料" in chat.last.text


async def test_cancel_leaves_the_problem_as_it_was(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    problem_id = await new_problem(db, reporter=w.liaison, enterprise_id=w.enterprise_id, at=clock())
    chat = chat_with(app, api, w.liaison)
    await start_resolve(chat, problem_id)
    await chat.send("/cancel")
    assert "已取消" in chat.last.text
    await chat.send("12")
    assert "发送 /help" in chat.last.text
    assert (await get_problem(db, problem_id)).status is ProblemStatus.open
