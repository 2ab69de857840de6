"""Joining with an invite, roles on every update, /help, /lang, /cancel and the admin's /users."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from telegram.ext import Application

from bot.storage.db import SessionMaker
from bot.storage.enums import Role
from bot.storage.models import AuditLog, Invite, User
from tests.botapi import BotAPI, Chat
from tests.conftest import Clock, chat_with, make_user

App = Application[Any, Any, Any, Any, Any, Any]
REFUSAL_ZH = "请向管理员索取邀请链接"


async def invite_from_chat(
    app: App, api: BotAPI, db: SessionMaker, *, role_label: str, name: str, unit: str | None
) -> str:
    async with db.begin() as session:
        admin = await make_user(session, role=Role.admin, name="管理员甲")
    chat = chat_with(app, api, admin)
    await chat.send("/invite")
    await chat.tap(role_label)
    await chat.send(name)
    if unit is not None:
        await chat.send(unit)
    await chat.tap("生成邀请链接")
    text = chat.last.text
    assert "https://t.me/liaison_test_bot?start=" in text, text
    return text.split("?start=")[1].split()[0]


async def test_admin_invites_a_liaison_who_joins_and_sees_the_chinese_menu(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    token = await invite_from_chat(app, api, db, role_label="党建联络员", name="李明", unit="发改局")
    liaison = Chat(app, api, 555001, first_name="李明")
    await liaison.send(f"/start {token}")
    welcome = liaison.last.text
    assert "欢迎" in welcome and "李明" in welcome and "党建联络员" in welcome
    assert "/help" in welcome and "/invite" not in welcome  # a liaison's commands only
    async with db() as session:
        user = await session.scalar(select(User).where(User.telegram_id == 555001))
    assert (
        user is not None and user.role is Role.liaison and user.department == "发改局" and user.name == "李明"
    )
    scope = '{"chat_id": 555001, "type": "chat"}'
    menu = api.commands[(scope, "")]
    assert [c["command"] for c in menu] == [
        "visit",
        "problem",
        "service",
        "my",
        "stats",
        "enterprise",
        "settings",
        "help",
        "lang",
        "cancel",
    ]
    assert menu[0]["description"] == "记录走访（驻点式服务）"


async def test_a_token_works_once(app: App, api: BotAPI, db: SessionMaker) -> None:
    token = await invite_from_chat(app, api, db, role_label="督导", name="王督导", unit=None)
    first, second = Chat(app, api, 555002), Chat(app, api, 555003)
    await first.send(f"/start {token}")
    await second.send(f"/start {token}")
    assert "已被使用或已过期" in second.last.text
    async with db() as session:
        joined = await session.scalar(select(User).where(User.name == "王督导"))
        assert joined is not None and joined.telegram_id == 555002 and joined.role is Role.supervisor
        assert (
            await session.scalar(select(func.count()).select_from(User).where(User.telegram_id == 555003))
            == 0
        )


async def test_an_expired_token_is_refused(app: App, api: BotAPI, db: SessionMaker, clock: Clock) -> None:
    token = await invite_from_chat(app, api, db, role_label="党建指导员", name="赵指导", unit="东城社区")
    clock.advance(days=7, seconds=1)
    chat = Chat(app, api, 555004)
    await chat.send(f"/start {token}")
    assert "已被使用或已过期" in chat.last.text
    async with db() as session:
        user = await session.scalar(select(User).where(User.name == "赵指导"))
    assert user is not None and user.telegram_id is None


@pytest.mark.parametrize(
    "payload",
    [
        "x",
        "abcdefghijklmnopqrstuvwxyz012345",
        "A" * 1000,
        "'; DROP TABLE users; --",
        "%' OR '1'='1",
        "../../etc",
    ],
)
async def test_bad_tokens_are_refused_and_change_nothing(
    app: App, api: BotAPI, db: SessionMaker, payload: str
) -> None:
    chat = Chat(app, api, 555005)
    await chat.send(f"/start {payload}")
    assert REFUSAL_ZH in chat.last.text or "已被使用或已过期" in chat.last.text
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 0


async def test_a_stranger_can_do_nothing_but_is_told_politely(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    chat = Chat(app, api, 555006, language_code="zh-hans")
    for text in ("/help", "你好", "/invite", "/start"):
        await chat.send(text)
        assert REFUSAL_ZH in chat.last.text
    await chat.press("usr:1:deactivate_yes")
    assert api.answers()[-1] == ("本机器人供区非公党建工作人员使用。请向管理员索取邀请链接。", True)
    english = Chat(app, api, 555007, language_code="en")
    await english.send("/help")
    assert "Please ask your administrator for an invite link" in english.last.text


async def test_a_registered_user_is_told_so(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        user = await make_user(session, role=Role.liaison)
    chat = chat_with(app, api, user)
    await chat.send("/start sometokenthatislongenough")
    assert "您已经注册过了" in chat.last.text


async def test_a_deactivated_user_is_refused(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        user = await make_user(session, role=Role.supervisor, active=False)
    chat = chat_with(app, api, user)
    await chat.send("/help")
    assert "您的账号已被停用" in chat.last.text


async def test_lang_switches_to_english_and_is_kept(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        user = await make_user(session, role=Role.admin)
    chat = chat_with(app, api, user)
    await chat.send("/lang")
    await chat.tap("English")
    assert chat.last.text.startswith("Language set to English.")
    await chat.send("/help")
    assert "/invite — Invite a new user" in chat.last.text
    async with db() as session:
        stored = await session.get(User, user.id)
    assert stored is not None and stored.locale == "en"
    menu = api.commands[(f'{{"chat_id": {user.telegram_id}, "type": "chat"}}', "")]
    assert {"command": "users", "description": "List or deactivate users"} in menu
    await chat.send("/lang")
    await chat.tap("中文")
    assert chat.last.text.startswith("语言已设置为中文。")


async def test_roles_are_checked_on_the_server(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        liaison = await make_user(session, role=Role.liaison)
        other = await make_user(session, role=Role.instructor)
    chat = chat_with(app, api, liaison)
    await chat.send("/invite")
    assert "没有此项操作的权限" in chat.last.text
    await chat.send("/users")
    assert "没有此项操作的权限" in chat.last.text
    await chat.press(f"usr:{other.id}:deactivate_yes")
    assert api.answers()[-1] == ("抱歉，您没有此项操作的权限。", True)
    for forged in ("usr:abc", "zzz:1:x", "usr:1:<b>", "f:1", "", "usr:" + "9" * 70):
        await chat.press(forged)
        assert api.answers()[-1] == ("此操作已失效。", True)
    async with db() as session:
        stored = await session.get(User, other.id)
    assert stored is not None and stored.active


async def test_admin_deactivates_a_user_once(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        admin = await make_user(session, role=Role.admin, name="管理员乙")
        target = await make_user(session, role=Role.liaison, name="钱六")
    chat = chat_with(app, api, admin)
    await chat.send("/users")
    assert "钱六" in chat.last.text and "已加入" in chat.last.text
    await chat.tap("停用 钱六")
    confirm = chat.last
    await chat.tap("确定停用")
    assert "钱六 已被停用" in chat.last.text
    await chat.tap("确定停用", message=confirm) if confirm.buttons else await chat.press(
        f"usr:{target.id}:deactivate_yes"
    )
    assert api.answers()[-1] == ("该用户已被停用。", True)
    async with db() as session:
        stored = await session.get(User, target.id)
        audits = await session.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "deactivate", AuditLog.entity_id == target.id)
        )
    assert stored is not None and not stored.active and audits == 1
    target_chat = chat_with(app, api, target)
    await target_chat.send("/help")
    assert "您的账号已被停用" in target_chat.last.text


async def test_cancel_and_unknown_commands_always_answer(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        user = await make_user(session, role=Role.instructor)
    chat = chat_with(app, api, user)
    await chat.send("/cancel")
    assert chat.last.text == "当前没有可取消的操作。"
    await chat.send("/nosuchthing")
    assert "没有这个命令" in chat.last.text
    await chat.send("随便说点什么")
    assert "发送 /help" in chat.last.text


async def test_invite_flow_survives_a_restart_and_validates_input(
    app: App, api: BotAPI, db: SessionMaker, settings: Any, clock: Clock
) -> None:
    from bot.app import build_application

    async with db.begin() as session:
        admin = await make_user(session, role=Role.admin)
    chat = chat_with(app, api, admin)
    await chat.send("/invite")
    await chat.tap("党建联络员")
    await chat.send("名" * 51)
    assert "51 个字" in chat.last.text and "50" in chat.last.text
    await chat.send_sticker()
    assert "请以文字消息发送" in chat.last.text
    await chat.send("<b>孙七</b>")
    restarted = build_application(settings, request=api, clock=clock)
    async with restarted:
        chat2 = Chat(restarted, api, admin.telegram_id or 0)
        await chat2.send("民政局")
        assert "&lt;b&gt;孙七&lt;/b&gt;" in api.calls_of("sendMessage")[-1].params["text"]
        await chat2.tap("生成邀请链接")
        assert "?start=" in chat2.last.text
        await restarted.post_shutdown(restarted)  # type: ignore[misc]
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(Invite)) == 1
        invited = await session.scalar(select(User).where(User.name == "<b>孙七</b>"))
    assert invited is not None and invited.department == "民政局"
