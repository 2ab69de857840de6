"""/service — 菜单式服务: the menu of the enterprise's stage, the unknown-stage path, and every rule
(Back, Edit, double tap, redelivery, restart, forged buttons, overlong input, expiry, /cancel, English)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, update
from telegram.ext import Application

from bot.app import build_application
from bot.config import Settings
from bot.storage.db import SessionMaker
from bot.storage.enums import Role, ServiceStatus, Stage
from bot.storage.models import AuditLog, Draft, Enterprise, MenuItem, ServiceRequest, User
from tests.botapi import BotAPI, Chat
from tests.conftest import Clock, chat_with, make_enterprise, make_user
from tests.test_problem import EXPIRED, draft_prefix

App = Application[Any, Any, Any, Any, Any, Any]
NAME = "南湖科技有限公司"
MENUS = {
    Stage.startup: ["证照办理", "政策咨询", "市场信息", "矛盾调解"],
    Stage.growth: ["融资渠道", "项目资金申报"],
    Stage.leading: ["市场优势项目", "政策优势信息"],
}


async def staff_with_enterprise(
    db: SessionMaker, *, stage: Stage | None, locale: str = "zh_CN", name: str = NAME
) -> tuple[User, int]:
    async with db.begin() as session:
        user = await make_user(session, role=Role.instructor, name="赵指导", locale=locale)
        enterprise = await make_enterprise(session, name=name, stage=stage, instructor=user)
    return user, enterprise.id


async def requests(db: SessionMaker) -> list[tuple[ServiceRequest, MenuItem]]:
    async with db() as session:
        rows = await session.execute(
            select(ServiceRequest, MenuItem)
            .join(MenuItem, MenuItem.id == ServiceRequest.menu_item_id)
            .order_by(ServiceRequest.id)
        )
        return [(request, item) for request, item in rows]


async def item_id(db: SessionMaker, code: str) -> int:
    async with db() as session:
        found = await session.scalar(select(MenuItem.id).where(MenuItem.code == code))
    assert found is not None
    return found


def flow_labels(chat: Chat) -> list[str]:
    return [label for row in chat.last.buttons for label, _ in row if label not in ("« 返回", "✖ 取消")]


@pytest.mark.parametrize("stage", list(Stage))
async def test_each_stage_sees_its_own_menu(app: App, api: BotAPI, db: SessionMaker, stage: Stage) -> None:
    user, enterprise_id = await staff_with_enterprise(db, stage=stage)
    chat = chat_with(app, api, user)
    await chat.send("/service")
    assert "申请菜单式服务" in chat.last.text
    await chat.tap(NAME)
    stage_zh = {Stage.startup: "创业型", Stage.growth: "发展型", Stage.leading: "龙头型"}[stage]
    assert f"{stage_zh}企业服务菜单" in chat.last.text and f"{NAME}需要哪项服务" in chat.last.text
    assert flow_labels(chat) == MENUS[stage]
    choice = MENUS[stage][-1]
    await chat.tap(choice)
    assert "请补充说明" in chat.last.text and "2000" in chat.last.text
    await chat.send("联系人：王经理 138<i>0000</i>")
    summary = chat.last
    assert "请核对服务申请" in summary.text and f"企业：{NAME}" in summary.text
    assert f"企业类型：{stage_zh}\n" in summary.text and f"服务项目：{choice}" in summary.text
    assert "备注：联系人：王经理 138<i>0000</i>" in summary.text
    assert "&lt;i&gt;" in api.calls_of("sendMessage")[-1].params["text"]
    await chat.tap("确认")
    assert f"服务申请 S-2026-0001（{choice}）已登记（{NAME}），状态：已申请。" in chat.last.text
    assert chat.last.buttons[0][0] == ("为该企业再申请一项服务", f"ent:{enterprise_id}:service")
    [(request, item)] = await requests(db)
    assert item.name_zh == choice and item.stage is stage
    assert request.enterprise_id == enterprise_id and request.requester_id == user.id
    assert request.status is ServiceStatus.requested and request.note == "联系人：王经理 138<i>0000</i>"
    assert (request.source_chat_id, request.source_message_id) == (user.telegram_id, summary.message_id)
    assert request.ref == "S-2026-0001"
    async with db() as session:
        audit = await session.scalar(select(AuditLog).where(AuditLog.entity == "service_request"))
        stored = await session.get(Enterprise, enterprise_id)
    assert audit is not None and audit.entity_id == request.id and audit.details["menu_item"] == item.code
    assert stored is not None and stored.stage is stage


async def test_an_unknown_stage_is_asked_for_and_stored(app: App, api: BotAPI, db: SessionMaker) -> None:
    user, enterprise_id = await staff_with_enterprise(db, stage=None)
    chat = chat_with(app, api, user)
    await chat.send("/service")
    await chat.tap(NAME)
    assert f"{NAME}尚未登记企业类型" in chat.last.text
    assert flow_labels(chat) == ["创业型", "发展型", "龙头型"]
    await chat.send("发展型")  # text where a button is needed
    assert "请点击下方按钮进行选择" in chat.last.text and "尚未登记企业类型" in chat.last.text
    await chat.tap("龙头型")
    assert flow_labels(chat) == MENUS[Stage.leading]
    await chat.tap("返回")  # changed their mind about the stage
    assert flow_labels(chat) == ["创业型", "发展型", "✓ 龙头型"]
    await chat.tap("发展型")
    assert flow_labels(chat) == MENUS[Stage.growth]
    await chat.tap("融资渠道")
    await chat.tap("无备注")
    assert "企业类型：发展型（确认后保存到企业信息）" in chat.last.text and "备注：无" in chat.last.text
    async with db() as session:
        before = await session.get(Enterprise, enterprise_id)
    assert before is not None and before.stage is None  # nothing is stored before Confirm
    await chat.tap("确认")
    [(request, item)] = await requests(db)
    assert item.code == "growth_financing" and request.note == ""
    async with db() as session:
        stored = await session.get(Enterprise, enterprise_id)
        audit = await session.scalar(select(AuditLog).where(AuditLog.action == "set_stage"))
    assert stored is not None and stored.stage is Stage.growth
    assert audit is not None and audit.entity_id == enterprise_id and audit.actor_id == user.id
    assert audit.details == {"from": None, "to": "growth"}


async def test_inactive_menu_items_are_not_offered(app: App, api: BotAPI, db: SessionMaker) -> None:
    user, _ = await staff_with_enterprise(db, stage=Stage.startup)
    async with db.begin() as session:
        await session.execute(update(MenuItem).where(MenuItem.code == "startup_market").values(active=False))
    try:
        chat = chat_with(app, api, user)
        await chat.send("/service")
        await chat.tap(NAME)
        assert flow_labels(chat) == ["证照办理", "政策咨询", "矛盾调解"]
        await chat.press(draft_prefix(chat) + f"menu.{await item_id(db, 'startup_market')}")
        assert "该服务不在此类型企业的服务菜单中" in chat.last.text
    finally:  # the catalogue is shared by the tests on PostgreSQL
        async with db.begin() as session:
            await session.execute(
                update(MenuItem).where(MenuItem.code == "startup_market").values(active=True)
            )
    assert await requests(db) == []


async def test_forged_buttons_are_refused_and_change_nothing(app: App, api: BotAPI, db: SessionMaker) -> None:
    user, _ = await staff_with_enterprise(db, stage=Stage.startup)
    async with db.begin() as session:
        other = await make_user(session, role=Role.instructor)
        foreign = await make_enterprise(session, name="别人的企业", stage=None, instructor=other)
    chat = chat_with(app, api, user)
    await chat.send("/service")
    await chat.press(draft_prefix(chat) + f"ent.{foreign.id}")
    assert "您不是该企业的包片人员" in chat.last.text and "请点击企业" in chat.last.text
    await chat.tap(NAME)
    growth = await item_id(db, "growth_financing")
    for value in (f"menu.{growth}", "menu.0", "menu.99999999999", "menu.abc", "stage.growth"):
        await chat.press(draft_prefix(chat) + value)
        assert "该服务不在此类型企业的服务菜单中" in chat.last.text, value
        assert flow_labels(chat) == MENUS[Stage.startup]
    await chat.tap("矛盾调解")
    await chat.press(draft_prefix(chat) + "keep")  # no note yet: nothing to keep
    assert "请以文字消息发送" in chat.last.text
    await chat.tap("无备注")
    await chat.press(draft_prefix(chat) + "edit.stage")
    assert "请点击下方按钮进行选择" in chat.last.text
    assert await requests(db) == []
    async with db() as session:
        stored = await session.get(Enterprise, foreign.id)
    assert stored is not None and stored.stage is None
    await chat.tap("确认")
    [(request, item)] = await requests(db)
    assert item.code == "startup_mediation" and request.enterprise_id != foreign.id


async def test_back_and_edit_keep_what_was_entered(app: App, api: BotAPI, db: SessionMaker) -> None:
    user, _ = await staff_with_enterprise(db, stage=Stage.startup)
    chat = chat_with(app, api, user)
    await chat.send("/service")
    await chat.tap(NAME)
    await chat.tap("政策咨询")
    await chat.send("想了解创业补贴")
    await chat.tap("返回")
    assert "当前备注：\n想了解创业补贴" in chat.last.text
    await chat.tap("返回")
    assert "✓ 政策咨询" in flow_labels(chat)
    await chat.tap("✓ 政策咨询")
    await chat.tap("保留当前备注")
    assert "服务项目：政策咨询" in chat.last.text and "备注：想了解创业补贴" in chat.last.text
    await chat.tap("修改")
    await chat.tap("服务项目")
    await chat.tap("证照办理")
    assert "服务项目：证照办理" in chat.last.text and "备注：想了解创业补贴" in chat.last.text
    await chat.tap("修改")
    await chat.tap("备注")
    await chat.send("营业执照经营范围变更")
    assert "请核对服务申请" in chat.last.text and "备注：营业执照经营范围变更" in chat.last.text
    await chat.tap("返回")
    assert "请补充说明" in chat.last.text  # Back from the summary leads to the note, as before
    await chat.tap("保留当前备注")
    await chat.tap("确认")
    [(request, item)] = await requests(db)
    assert item.code == "startup_licences" and request.note == "营业执照经营范围变更"


async def test_wrong_input_and_overlong_note(app: App, api: BotAPI, db: SessionMaker) -> None:
    user, _ = await staff_with_enterprise(db, stage=Stage.growth)
    chat = chat_with(app, api, user)
    await chat.send("/service")
    await chat.tap(NAME)
    await chat.send("融资渠道")
    assert "请点击下方按钮进行选择" in chat.last.text and "发展型企业服务菜单" in chat.last.text
    await chat.send_sticker()
    assert "请点击下方按钮进行选择" in chat.last.text
    await chat.tap("项目资金申报")
    await chat.send_photo()
    assert "请以文字消息发送" in chat.last.text and "请补充说明" in chat.last.text
    await chat.send("备" * 2001)
    assert "2001 个字" in chat.last.text and "2000 字的上限" in chat.last.text
    await chat.send("备" * 2000)
    await chat.tap("确认")
    [(request, _item)] = await requests(db)
    assert request.note == "备" * 2000


async def test_double_tap_redelivery_and_restart(
    app: App, api: BotAPI, db: SessionMaker, settings: Settings, clock: Clock
) -> None:
    user, _ = await staff_with_enterprise(db, stage=None)
    chat = chat_with(app, api, user)
    await chat.send("/service")
    await chat.tap(NAME)
    await chat.tap("创业型")
    restarted = build_application(settings, request=api, clock=clock)
    async with restarted:
        again = Chat(restarted, api, user.telegram_id or 0)
        tapped = await again.tap("市场信息")
        await again.redeliver(tapped)
        noted = await again.send("需要对接本地采购商")
        await again.redeliver(noted)
        summary = again.last
        assert "服务项目：市场信息" in summary.text and "创业型（确认后保存到企业信息）" in summary.text
        [confirm] = [data for row in summary.buttons for label, data in row if "确认" in label]
        assert confirm is not None
        done = await again.tap("确认")
        await again.redeliver(done)
        await again.press(confirm, message_id=summary.message_id)
        assert api.answers()[-1] == EXPIRED
        assert "S-2026-0001" in again.last.text
        await restarted.post_shutdown(restarted)  # type: ignore[misc]
    [(request, item)] = await requests(db)
    assert item.code == "startup_market" and request.note == "需要对接本地采购商"
    async with db() as session:
        audits = await session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "set_stage")
        )
    assert audits == 1


async def test_a_stage_set_meanwhile_to_another_value_refuses_the_request(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    user, enterprise_id = await staff_with_enterprise(db, stage=None)
    chat = chat_with(app, api, user)
    await chat.send("/service")
    await chat.tap(NAME)
    await chat.tap("创业型")
    await chat.tap("证照办理")
    await chat.tap("无备注")
    async with db.begin() as session:  # a supervisor records the stage in the meantime
        await session.execute(
            update(Enterprise).where(Enterprise.id == enterprise_id).values(stage="leading")
        )
    await chat.tap("确认")
    assert "企业类型或服务菜单已发生变化，未保存任何内容" in chat.last.text
    assert await requests(db) == []


async def test_expiry_and_cancel(app: App, api: BotAPI, db: SessionMaker, clock: Clock) -> None:
    user, _ = await staff_with_enterprise(db, stage=Stage.leading)
    chat = chat_with(app, api, user)
    await chat.send("/service")
    await chat.tap(NAME)
    await chat.tap("政策优势信息")
    clock.advance(hours=25)
    await chat.send("备注")
    assert "菜单式服务申请已超过 24 小时未操作" in chat.last.text
    await chat.send("/service")
    await chat.tap(NAME)
    await chat.send("/cancel")
    assert chat.last.text == "已取消，未保存任何内容。"
    assert await requests(db) == []
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(Draft)) == 0


async def test_an_english_user_sees_english(app: App, api: BotAPI, db: SessionMaker) -> None:
    user, _ = await staff_with_enterprise(db, stage=None, locale="en", name="South Lake Tech")
    chat = chat_with(app, api, user, language_code="en")
    await chat.send("/service")
    assert "Request a menu service" in chat.last.text
    await chat.tap("South Lake Tech")
    assert "The stage of South Lake Tech is not recorded yet" in chat.last.text
    await chat.tap("Startup")
    assert "Menu services for Startup enterprises" in chat.last.text
    labels = [label for row in chat.last.buttons for label, _ in row]
    assert labels[:4] == ["Licences", "Policy advice", "Market information", "Dispute mediation"]
    await chat.tap("Dispute mediation")
    await chat.tap("No note")
    assert "Stage: Startup (will be saved for the enterprise)" in chat.last.text
    await chat.tap("Confirm")
    assert (
        "Service request S-2026-0001 (Dispute mediation) is recorded for South Lake Tech." in chat.last.text
    )


async def test_a_supervisor_cannot_request(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        admin = await make_user(session, role=Role.admin)
    chat = chat_with(app, api, admin)
    await chat.send("/service")
    assert "没有此项操作的权限" in chat.last.text


async def test_follow_up_button_goes_straight_to_the_menu(app: App, api: BotAPI, db: SessionMaker) -> None:
    user, enterprise_id = await staff_with_enterprise(db, stage=Stage.growth)
    chat = chat_with(app, api, user)
    await chat.send("/service")
    await chat.tap(NAME)
    await chat.tap("融资渠道")
    await chat.tap("无备注")
    await chat.tap("确认")
    await chat.tap("为该企业上报问题")
    assert f"{NAME} 的问题" in chat.last.text  # /problem for the same enterprise
    await chat.send("/cancel")
    await chat.press(f"ent:{enterprise_id}:service")
    assert "发展型企业服务菜单" in chat.last.text and flow_labels(chat) == MENUS[Stage.growth]
    await chat.tap("项目资金申报")
    await chat.tap("无备注")
    await chat.tap("确认")
    assert "S-2026-0002" in chat.last.text
    assert [item.code for _, item in await requests(db)] == ["growth_financing", "growth_project_funds"]
