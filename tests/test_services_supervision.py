"""/services and the service request card: a supervisor moves a liaison's menu-service request on (in
progress, delivered with a note, declined with a reason), the requester is told at once, every move is in
the audit log and /stats counts the delivery; double taps, stale cards, forged callback data, a liaison
trying supervisor actions, a muted requester, a restart mid-action and English."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from telegram.ext import Application

from bot.app import build_application
from bot.config import Settings
from bot.storage.db import SessionMaker
from bot.storage.enums import Role, ServiceStatus, Stage
from bot.storage.models import AuditLog, Draft, MenuItem, Notification, ServiceRequest, User
from bot.storage.services import create_service_request
from tests.botapi import BotAPI, Chat
from tests.conftest import Clock, chat_with, make_enterprise, make_user

App = Application[Any, Any, Any, Any, Any, Any]
EXPIRED = ("此操作已失效。", True)
REFUSED = ("抱歉，您没有此项操作的权限。", True)
SS = ServiceStatus
NAME = "东方机械有限公司"
SUPERVISOR_BUTTONS = ["标记为处理中", "标记为已完成", "不予受理", "🔄 刷新", "« 待办服务申请"]


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
        enterprise = await make_enterprise(session, name=NAME, stage=Stage.startup, liaison=liaison)
    return World(supervisor, liaison, enterprise.id)


async def new_request(
    db: SessionMaker, w: World, at: datetime, *, code: str = "startup_licences", note: str = ""
) -> int:
    async with db.begin() as session:
        item = await session.scalar(select(MenuItem).where(MenuItem.code == code))
        assert item is not None
        request = await create_service_request(
            session,
            enterprise_id=w.enterprise_id,
            requester_id=w.liaison.id,
            menu_item_id=item.id,
            note=note,
            now=at,
        )
    return request.id


async def get_request(db: SessionMaker, request_id: int) -> ServiceRequest:
    async with db() as session:
        request = await session.get(ServiceRequest, request_id)
    assert request is not None
    return request


async def audits(db: SessionMaker, request_id: int) -> list[AuditLog]:
    async with db() as session:
        rows = await session.scalars(
            select(AuditLog)
            .where(AuditLog.entity == "service_request", AuditLog.entity_id == request_id)
            .order_by(AuditLog.id)
        )
        return list(rows)


async def pushes(db: SessionMaker) -> list[Notification]:
    async with db() as session:
        return list(
            await session.scalars(
                select(Notification).where(Notification.kind == "service").order_by(Notification.id)
            )
        )


async def count(db: SessionMaker, model: Any) -> int:
    async with db() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


def labels(chat: Chat) -> list[str]:
    return [label for row in chat.last.buttons for label, _ in row]


def data_of(chat: Chat, label: str) -> str:
    hits = [data for row in chat.last.buttons for text, data in row if label in text]
    assert len(hits) == 1 and hits[0] is not None, (label, chat.last.buttons)
    return hits[0]


def told(api: BotAPI, user: User) -> list[str]:
    return api.texts(user.telegram_id or 0)


# -- the journey -----------------------------------------------------------------------------------------
async def test_a_supervisor_moves_a_request_from_requested_to_delivered(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    liaison, supervisor = chat_with(app, api, w.liaison), chat_with(app, api, w.supervisor)
    # the liaison requests the service (/service flow)
    await liaison.send("/service")
    await liaison.tap(NAME)
    await liaison.tap("证照办理")
    await liaison.send("需要办理食品经营许可证")
    await liaison.tap("确认")
    assert "服务申请 S-2026-0001（证照办理）已登记" in liaison.last.text
    async with db() as session:
        request_id = await session.scalar(select(ServiceRequest.id))
    assert request_id is not None

    # the supervisor sees it in /services and opens the card
    clock.advance(hours=1)
    await supervisor.send("/services")
    text = supervisor.last.text
    assert text.startswith("待办服务申请：共 1 项 · 第 1/1 页\n按时间从早到晚排列。点击申请查看详情。")
    assert f"1. S-2026-0001 {NAME}\n    证照办理 · 已申请 · 李明 · 2026-11-25 申请（今天）" in text
    assert supervisor.last.buttons == [[(f"1. S-2026-0001 {NAME}", f"sv:{request_id}:view")]]
    await supervisor.tap("S-2026-0001")
    card = supervisor.last
    assert card.text == (
        f"S-2026-0001 · 证照办理 · 已申请\n企业：{NAME}\n申请时间：2026-11-25（今天）\n"
        "备注：需要办理食品经营许可证\n申请人：李明（发改局）\n\n处理记录\n"
        "• 2026-11-25 12:00 李明: 申请了服务"
    )
    assert labels(supervisor) == SUPERVISOR_BUTTONS
    assert [data for row in card.buttons for _, data in row][:3] == [
        f"sv:{request_id}:ip.requested",
        f"sv:{request_id}:dl.requested",
        f"sv:{request_id}:dc.requested",
    ]

    # mark it in progress: one tap, the card is redrawn in place, the requester is told at once
    await supervisor.tap("标记为处理中", message=card)
    assert api.answers()[-1] == ("已完成：该申请现为“处理中”，并已通知申请人。", False)
    assert supervisor.last.message_id == card.message_id
    assert supervisor.last.text.startswith("S-2026-0001 · 证照办理 · 处理中")
    assert "• 2026-11-25 13:00 王督导: 标记为处理中" in supervisor.last.text
    assert labels(supervisor) == ["标记为已完成", "不予受理", "🔄 刷新", "« 待办服务申请"]
    assert liaison.last.text == f"🛠 您的服务申请 S-2026-0001（证照办理，{NAME}）已开始办理（王督导）。"
    assert (await get_request(db, request_id)).status is SS.in_progress

    # mark it delivered with a note
    clock.advance(hours=1)
    await supervisor.tap("标记为已完成")
    assert "S-2026-0001 · 证照办理 · 东方机械有限公司" in supervisor.last.text
    assert "标记为“已完成”。请填写给申请人的说明" in supervisor.last.text and "2000" in supervisor.last.text
    await supervisor.send("已协助办理<食品>经营许可证")
    done = supervisor.last.text
    assert done.startswith(
        "✔ 已完成：该申请现为“已完成”，并已通知申请人。\n\nS-2026-0001 · 证照办理 · 已完成"
    )
    assert "完成时间：2026-11-25" in done
    assert done.endswith(
        "• 2026-11-25 12:00 李明: 申请了服务\n"
        "• 2026-11-25 13:00 王督导: 标记为处理中\n"
        "• 2026-11-25 14:00 王督导: 标记为已完成 — 已协助办理<食品>经营许可证"
    )
    assert labels(supervisor) == ["🔄 刷新", "« 待办服务申请"]
    assert liaison.last.text == (
        f"✅ 您的服务申请 S-2026-0001（证照办理，{NAME}）已由王督导标记为已完成。\n"
        "说明：已协助办理<食品>经营许可证"
    )
    sent = api.calls_of("sendMessage")[-1].params
    assert sent["chat_id"] == w.liaison.telegram_id and "&lt;食品&gt;" in sent["text"]

    # what landed in the database
    request = await get_request(db, request_id)
    assert request.status is SS.delivered and request.delivered_at == clock()
    rows = await audits(db, request_id)
    assert [(a.action, a.actor_id) for a in rows] == [
        ("create", w.liaison.id),
        ("service.in_progress", w.supervisor.id),
        ("service.delivered", w.supervisor.id),
    ]
    assert rows[1].details == {
        "before": {"status": "requested"},
        "after": {"status": "in_progress"},
        "note": None,
    }
    assert rows[2].details == {
        "before": {"status": "in_progress"},
        "after": {"status": "delivered", "delivered_at": clock().isoformat()},
        "note": "已协助办理<食品>经营许可证",
    }
    notices = await pushes(db)
    assert [(n.recipient_id, n.subject, n.status) for n in notices] == [
        (w.liaison.id, f"service:{request_id}", "sent"),
        (w.liaison.id, f"service:{request_id}", "sent"),
    ]
    assert await count(db, Draft) == 0

    # it is no longer pending; the week's statistics count it; the requester's /my shows it delivered
    await supervisor.send("/services")
    assert (
        "待办服务申请：共 0 项" in supervisor.last.text
        and "没有待办的服务申请，干得好！" in supervisor.last.text
    )
    await supervisor.send("/stats")
    stats = [text for text in supervisor.texts() if "服务：申请" in text][-1]
    assert "服务：申请 1（+1）· 办结 1（+1）" in stats
    await liaison.send("/my")
    await liaison.tap("我的服务")
    await liaison.tap("S-2026-0001")
    assert liaison.last.text.startswith("S-2026-0001 · 证照办理 · 已完成")
    assert "完成时间：2026-11-25" in liaison.last.text and labels(liaison) == ["« 我的服务"]


async def test_a_request_is_declined_with_a_reason(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    request_id = await new_request(db, w, clock() - timedelta(days=1), code="startup_mediation")
    chat = chat_with(app, api, w.supervisor)
    await chat.press(f"sv:{request_id}:view")
    assert chat.last.text.startswith("S-2026-0001 · 矛盾调解 · 已申请") and "（1 天）" in chat.last.text
    await chat.tap("不予受理")
    assert "不予受理的原因是什么？" in chat.last.text
    assert "跳过" not in str(chat.last.buttons)  # a reason is required
    await chat.send_sticker()
    assert chat.last.text.startswith("请以文字消息发送。")
    await chat.send("太长" * 1001)
    assert "2002" in chat.last.text and "2000" in chat.last.text
    await chat.send("不属于菜单服务范围，请联系<司法所>")
    assert chat.last.text.endswith("确认不予受理？\n原因：不属于菜单服务范围，请联系<司法所>")
    await chat.tap("确认不予受理")
    text = chat.last.text
    assert text.startswith(
        "✔ 已完成：该申请现为“未受理”，并已通知申请人。\n\nS-2026-0001 · 矛盾调解 · 未受理"
    )
    assert text.endswith("王督导: 不予受理 — 不属于菜单服务范围，请联系<司法所>")
    assert labels(chat) == ["🔄 刷新", "« 待办服务申请"]
    assert told(api, w.liaison) == [
        f"您的服务申请 S-2026-0001（矛盾调解，{NAME}）未被受理（王督导）。\n"
        "原因：不属于菜单服务范围，请联系<司法所>"
    ]
    request = await get_request(db, request_id)
    assert request.status is SS.declined and request.delivered_at is None
    [audit] = await audits(db, request_id)
    assert audit.action == "service.declined" and audit.actor_id == w.supervisor.id
    assert audit.details == {
        "before": {"status": "requested"},
        "after": {"status": "declined"},
        "note": "不属于菜单服务范围，请联系<司法所>",
    }
    await chat.send("/stats")
    assert "服务：申请 1（+1）· 办结 0（±0）" in [t for t in chat.texts() if "服务：申请" in t][-1]


async def test_the_list_pages_oldest_first_and_only_pending(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    ids = [await new_request(db, w, clock() - timedelta(days=20 - i)) for i in range(11)]
    async with db.begin() as session:
        for request_id, status in ((ids[0], SS.delivered), (ids[1], SS.declined), (ids[2], SS.in_progress)):
            request = await session.get(ServiceRequest, request_id)
            assert request is not None
            request.status = status
    chat = chat_with(app, api, w.supervisor)
    await chat.send("/services")
    assert "待办服务申请：共 9 项 · 第 1/2 页" in chat.last.text
    assert [row[0][1] for row in chat.last.buttons[:8]] == [f"sv:{i}:view" for i in ids[2:10]]
    assert (
        "1. S-2026-0003" in chat.last.text
        and "证照办理 · 处理中 · 李明 · 2026-11-07 申请（18 天）" in chat.last.text
    )
    assert labels(chat)[-1] == "下一页 ›"
    first = chat.last.message_id
    await chat.tap("下一页")
    assert chat.last.message_id == first  # edited in place
    assert "第 2/2 页" in chat.last.text and "9. S-2026-0011" in chat.last.text
    assert chat.last.buttons[0] == [(f"9. S-2026-0011 {NAME}", f"sv:{ids[10]}:view")]
    assert labels(chat)[-1] == "‹ 上一页"
    # the list shrank since page 2 was drawn: the last page there is
    async with db.begin() as session:
        request = await session.get(ServiceRequest, ids[10])
        assert request is not None
        request.status = SS.delivered
    await chat.press("sv:1:list")
    assert "待办服务申请：共 8 项 · 第 1/1 页" in chat.last.text
    # the card's way back to the list
    await chat.press(f"sv:{ids[3]}:view")
    await chat.tap("« 待办服务申请")
    assert "待办服务申请：共 8 项" in chat.last.text


# -- idempotency and stale cards -------------------------------------------------------------------------
async def test_a_double_tap_a_redelivery_or_a_stale_card_changes_nothing_twice(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    clock.current = clock.current.replace(microsecond=123456)  # a real clock's timestamps
    request_id = await new_request(db, w, clock())
    async with db.begin() as session:
        admin = await make_user(session, role=Role.admin, name="赵管理")
    chat, other = chat_with(app, api, w.supervisor), chat_with(app, api, admin)
    await chat.press(f"sv:{request_id}:view")
    card = chat.last
    await other.press(f"sv:{request_id}:view")
    stale = other.last
    update = await chat.tap("标记为处理中", message=card)
    await chat.redeliver(update)  # the same update again (a webhook retry)
    assert api.answers()[-1] == ("状态已变：该申请现为“处理中”，本次操作未执行。", True)
    await chat.press(f"sv:{request_id}:ip.requested")  # a second tap
    assert api.answers()[-1] == ("状态已变：该申请现为“处理中”，本次操作未执行。", True)
    # another supervisor's card still shows "requested": every action there is stale
    assert "S-2026-0001 · 证照办理 · 已申请" in stale.text
    for data in [data for row in stale.buttons for _, data in row][:3]:
        assert data is not None
        await other.press(data, message_id=stale.message_id)
        assert api.answers()[-1] == ("状态已变：该申请现为“处理中”，本次操作未执行。", True)
    assert "S-2026-0001 · 证照办理 · 处理中" in stale.text  # the card was redrawn
    assert [a.action for a in await audits(db, request_id)] == ["service.in_progress"]
    assert len(told(api, w.liaison)) == 1
    [notice] = await pushes(db)
    assert len(notice.period) <= 30  # fits the column (PostgreSQL refuses longer values)
    assert await count(db, Draft) == 0

    # delivered: the flow's Skip button pressed twice, then the card's button again
    await chat.tap("标记为已完成")
    skip = data_of(chat, "跳过")
    await chat.press(skip)
    assert chat.last.text.startswith("✔ 已完成：该申请现为“已完成”，并已通知申请人。")
    await chat.press(skip)
    assert api.answers()[-1] == EXPIRED
    await chat.press(f"sv:{request_id}:dl.in_progress")
    assert api.answers()[-1] == ("状态已变：该申请现为“已完成”，本次操作未执行。", True)
    assert [a.action for a in await audits(db, request_id)] == ["service.in_progress", "service.delivered"]
    assert (await audits(db, request_id))[1].details["note"] is None
    assert len(told(api, w.liaison)) == 2 and "说明" not in told(api, w.liaison)[-1]
    assert await count(db, Draft) == 0


async def test_a_quick_double_tap_starts_the_action_once(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    request_id = await new_request(db, w, clock())
    chat = chat_with(app, api, w.supervisor)
    await chat.press(f"sv:{request_id}:view")
    card = chat.last
    await chat.tap("不予受理", message=card)
    prompt = chat.last
    await chat.tap("不予受理", message=card)
    assert api.answers()[-1] == ("已经开始了，请回答上面的问题。", False)
    assert chat.last.message_id == prompt.message_id  # no second prompt, no "continue or discard?"
    await chat.send("重复申请")
    await chat.tap("确认不予受理")
    await chat.tap("不予受理", message=card)
    assert api.answers()[-1] == ("状态已变：该申请现为“未受理”，本次操作未执行。", True)
    assert [a.action for a in await audits(db, request_id)] == ["service.declined"]


async def test_a_change_made_meanwhile_wins_over_an_open_conversation(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    request_id = await new_request(db, w, clock())
    async with db.begin() as session:
        admin = await make_user(session, role=Role.admin, name="赵管理")
    first, second = chat_with(app, api, w.supervisor), chat_with(app, api, admin)
    await first.press(f"sv:{request_id}:view")
    await first.tap("不予受理")
    await first.send("不符合条件")
    await second.press(f"sv:{request_id}:view")
    await second.tap("标记为已完成")
    await second.send("已办结")
    await first.tap("确认不予受理")
    assert first.last.text.startswith("✔ 状态已变：该申请现为“已完成”，本次操作未执行。")
    assert "S-2026-0001 · 证照办理 · 已完成" in first.last.text
    request = await get_request(db, request_id)
    assert request.status is SS.delivered
    assert [(a.action, a.actor_id) for a in await audits(db, request_id)] == [("service.delivered", admin.id)]
    assert len(told(api, w.liaison)) == 1 and "赵管理" in told(api, w.liaison)[0]


async def test_a_request_withdrawn_meanwhile_cannot_be_declined(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    request_id = await new_request(db, w, clock())
    supervisor, liaison = chat_with(app, api, w.supervisor), chat_with(app, api, w.liaison)
    await supervisor.press(f"sv:{request_id}:view")
    card = supervisor.last
    await supervisor.tap("不予受理")
    await supervisor.send("不符合条件")
    await liaison.press(f"sv:{request_id}:withdraw_yes")
    assert "已撤回" in liaison.last.text
    await supervisor.tap("确认不予受理")
    assert supervisor.last.text == "此操作已失效。"
    await supervisor.tap("标记为处理中", message=card)
    assert api.answers()[-1] == EXPIRED
    assert [a.action for a in await audits(db, request_id)] == ["service.withdraw"]
    assert told(api, w.liaison) == [liaison.last.text]  # nothing but their own withdrawal


# -- forged callback data and roles ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "forged",
    [
        "sv:999999:view",  # no such request
        "sv:999999:ref",
        "sv:999999:ip.requested",
        "sv:999999:dl.requested",
        "sv:999999:dc.in_progress",
        "sv:0:view",
        "sv:99999999999:view",  # beyond 32 bits
        "sv:{id}:ip.in_progress",  # not a move the card offers
        "sv:{id}:dl.delivered",
        "sv:{id}:dc.declined",
        "sv:{id}:ip.delivered",
        "sv:{id}:dl.bogus",
        "sv:{id}:delivered",
        "sv:{id}:dl",
        "sv:{id}:withdraw_yes",  # the requester's action
        "sv:99999:list",
        "sv:x:view",
    ],
)
async def test_forged_callback_data_is_refused_and_changes_nothing(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, forged: str
) -> None:
    w = await world(db)
    request_id = await new_request(db, w, clock())
    chat = chat_with(app, api, w.supervisor)
    await chat.send("/services")
    before = chat.last.text
    await chat.press(forged.format(id=request_id))
    assert api.answers()[-1] in (EXPIRED, REFUSED)
    assert chat.last.text == before
    assert (await get_request(db, request_id)).status is SS.requested
    assert await audits(db, request_id) == []
    assert await count(db, Draft) == 0
    assert told(api, w.liaison) == []


async def test_a_wrong_expected_status_is_answered_as_already_changed(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    request_id = await new_request(db, w, clock())
    chat = chat_with(app, api, w.supervisor)
    for data in (f"sv:{request_id}:dl.in_progress", f"sv:{request_id}:dc.in_progress"):
        await chat.press(data)
        assert api.answers()[-1] == ("状态已变：该申请现为“已申请”，本次操作未执行。", True)
    assert (await get_request(db, request_id)).status is SS.requested
    assert await audits(db, request_id) == [] and await count(db, Draft) == 0


async def test_a_liaison_cannot_list_or_move_requests(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    request_id = await new_request(db, w, clock())
    chat = chat_with(app, api, w.liaison)
    await chat.send("/services")
    assert chat.last.text == "抱歉，您没有此项操作的权限。"
    for data in (
        f"sv:{request_id}:ip.requested",
        f"sv:{request_id}:dl.requested",
        f"sv:{request_id}:dc.requested",
        f"sv:{request_id}:ref",
        "sv:0:list",
    ):
        await chat.press(data)
        assert api.answers()[-1] == REFUSED, data
    # their own card is still the requester's one: no supervisor actions
    await chat.press(f"sv:{request_id}:view")
    assert chat.last.text.startswith("S-2026-0001 · 证照办理 · 已申请")
    assert labels(chat) == ["↩ 撤回申请", "« 我的服务"]
    assert (await get_request(db, request_id)).status is SS.requested
    assert await audits(db, request_id) == [] and await count(db, Draft) == 0


async def test_a_supervisor_demoted_mid_conversation_cannot_finish_the_action(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    request_id = await new_request(db, w, clock())
    chat = chat_with(app, api, w.supervisor)
    await chat.press(f"sv:{request_id}:view")
    await chat.tap("不予受理")
    await chat.send("不符合条件")
    async with db.begin() as session:
        supervisor = await session.get(User, w.supervisor.id)
        assert supervisor is not None
        supervisor.role = Role.liaison
    await chat.tap("确认不予受理")
    assert chat.last.text == "抱歉，您没有此项操作的权限。"
    assert (await get_request(db, request_id)).status is SS.requested
    assert await audits(db, request_id) == [] and told(api, w.liaison) == []


# -- the requester's side --------------------------------------------------------------------------------
async def test_a_requester_who_muted_these_messages_is_not_told(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db)
    request_id = await new_request(db, w, clock())
    liaison = chat_with(app, api, w.liaison)
    await liaison.send("/settings")
    await liaison.tap("服务申请的办理进展")
    assert "🔕 服务申请的办理进展" in str(liaison.last.buttons)
    before = len(liaison.texts())
    chat = chat_with(app, api, w.supervisor)
    await chat.press(f"sv:{request_id}:view")
    await chat.tap("标记为处理中")
    assert api.answers()[-1] == ("已完成：该申请现为“处理中”。", False)
    await chat.tap("标记为已完成")
    await chat.tap("跳过")
    assert chat.last.text.startswith("✔ 已完成：该申请现为“已完成”。\n\n")
    assert len(liaison.texts()) == before and await pushes(db) == []
    assert (await get_request(db, request_id)).status is SS.delivered


async def test_an_english_supervisor_reads_english_and_the_requester_their_own_language(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    w = await world(db, supervisor_locale="en")
    async with db.begin() as session:
        english = await make_user(
            session, role=Role.instructor, name="Ann", community="西城社区", locale="en"
        )
        enterprise = await make_enterprise(session, name="<b>Acme</b> & Co", instructor=english)
        item = await session.scalar(select(MenuItem).where(MenuItem.code == "startup_policy"))
        assert item is not None
        theirs = await create_service_request(
            session,
            enterprise_id=enterprise.id,
            requester_id=english.id,
            menu_item_id=item.id,
            note="",
            now=clock(),
        )
    mine = await new_request(db, w, clock())
    chat = chat_with(app, api, w.supervisor, language_code="en")
    await chat.send("/services")
    assert chat.last.text.startswith("Pending service requests: 2 · page 1/1")
    assert "Oldest first. Tap a request to open its card." in chat.last.text
    assert "Licences · Requested · 李明 · requested 2026-11-25 (today)" in chat.last.text
    assert "Policy advice · Requested · Ann" in chat.last.text and "<b>Acme</b> & Co" in chat.last.text
    await chat.press(f"sv:{theirs.id}:view")
    assert chat.last.text.startswith("S-2026-0001 · Policy advice · Requested\nEnterprise: <b>Acme</b> & Co")
    assert chat.last.text.endswith("\nRequested by: Ann (西城社区)")  # made outside the bot: no history
    assert labels(chat) == [
        "Mark in progress",
        "Mark delivered",
        "Decline",
        "🔄 Refresh",
        "« Pending services",
    ]
    await chat.tap("Mark in progress")
    assert api.answers()[-1] == ("Done: the request is now “In progress”; the requester is told now.", False)
    assert told(api, english) == [
        "🛠 Your service request S-2026-0001 (Policy advice, <b>Acme</b> & Co) is now in progress (王督导)."
    ]
    await chat.tap("Decline")
    assert "Why is it declined?" in chat.last.text
    await chat.send("Out of scope")
    await chat.tap("✔ Decline")
    assert chat.last.text.startswith("✔ Done: the request is now “Declined”; the requester is told now.")
    assert told(api, english)[-1] == (
        "Your service request S-2026-0001 (Policy advice, <b>Acme</b> & Co) was declined by 王督导.\n"
        "Reason: Out of scope"
    )
    # the Chinese requester of the other request reads Chinese
    await chat.press(f"sv:{mine}:view")
    await chat.tap("Mark delivered")
    await chat.send("Done <fast>")
    assert told(api, w.liaison) == [
        f"✅ 您的服务申请 S-2026-0002（证照办理，{NAME}）已由王督导标记为已完成。\n说明：Done <fast>"
    ]


async def test_a_restart_in_the_middle_of_a_decline_loses_nothing(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock, settings: Settings
) -> None:
    w = await world(db)
    request_id = await new_request(db, w, clock())
    chat = chat_with(app, api, w.supervisor)
    await chat.press(f"sv:{request_id}:view")
    await chat.tap("不予受理")
    restarted = build_application(settings, request=api, clock=clock)
    async with restarted:
        again = Chat(restarted, api, w.supervisor.telegram_id or 0)
        await again.send("企业已自行解决")
        await again.tap("确认不予受理")
        await restarted.post_shutdown(restarted)  # type: ignore[misc]
    assert (await get_request(db, request_id)).status is SS.declined
    assert "企业已自行解决" in api.last(w.liaison.telegram_id or 0).text
