"""Who is asking is remembered between updates (bot.storage.identity), never longer than it is true for
changes made through the bot, and at most IDENTITY_CACHE_SECONDS for changes made elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram.ext import Application

from bot.app import build_application
from bot.config import Settings
from bot.storage.db import SessionMaker, create_engine
from bot.storage.enums import Role
from bot.storage.models import User
from bot.storage.users import set_locale
from tests.botapi import BotAPI
from tests.conftest import Clock, chat_with, make_user

App = Application[Any, Any, Any, Any, Any, Any]
DEACTIVATED = "您的账号已被停用"
HELP = "/visit"  # a line of a liaison's /help


@contextmanager
def statements(app: App) -> Iterator[list[str]]:
    """The SQL the bot's own engine runs meanwhile."""
    seen: list[str] = []
    engine: AsyncEngine = app.bot_data["runtime"].engine

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def deactivate_elsewhere(settings: Settings, user_id: int) -> None:
    """What the `users deactivate` command line or a second bot process does: a plain write on a
    connection of its own, no ORM session of this process involved."""
    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(update(User).where(User.id == user_id).values(active=False))
    finally:
        await engine.dispose()


def looks_up_users(seen: list[str]) -> bool:
    return any("FROM users" in s and "telegram_id" in s for s in seen)


async def test_a_user_seen_moments_ago_is_not_looked_up_again(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    async with db.begin() as session:
        user = await make_user(session, role=Role.liaison)
    chat = chat_with(app, api, user)
    with statements(app) as first:
        await chat.send("/help")
    with statements(app) as second:
        await chat.send("/help")
    assert HELP in chat.last.text
    assert looks_up_users(first) and not looks_up_users(second)


async def test_a_user_deactivated_through_the_bot_is_refused_at_once(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    async with db.begin() as session:
        admin = await make_user(session, role=Role.admin)
        target = await make_user(session, role=Role.liaison, name="钱六")
    target_chat = chat_with(app, api, target)
    await target_chat.send("/help")
    assert HELP in target_chat.last.text  # the bot now remembers 钱六 as an active liaison
    admin_chat = chat_with(app, api, admin)
    await admin_chat.send("/users")
    await admin_chat.tap("停用 钱六")
    await admin_chat.tap("确定停用")
    assert "钱六 已被停用" in admin_chat.last.text
    await target_chat.send("/help")
    assert DEACTIVATED in target_chat.last.text


async def test_a_role_changed_in_this_process_applies_at_once(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    async with db.begin() as session:
        user = await make_user(session, role=Role.liaison)
    chat = chat_with(app, api, user)
    await chat.send("/pending")
    assert "没有此项操作的权限" in chat.last.text
    async with db.begin() as session:
        stored = await session.get(User, user.id)
        assert stored is not None
        stored.role = Role.supervisor
    await chat.send("/pending")
    assert "没有此项操作的权限" not in chat.last.text


async def test_a_change_made_elsewhere_applies_within_the_cache_time(
    app: App, api: BotAPI, db: SessionMaker, settings: Settings, clock: Clock
) -> None:
    assert settings.identity_cache_seconds == 30
    async with db.begin() as session:
        user = await make_user(session, role=Role.liaison)
    chat = chat_with(app, api, user)
    await chat.send("/help")
    await deactivate_elsewhere(settings, user.id)
    clock.advance(seconds=29)
    await chat.send("/help")
    assert HELP in chat.last.text  # the documented window: up to IDENTITY_CACHE_SECONDS
    clock.advance(seconds=1)
    await chat.send("/help")
    assert DEACTIVATED in chat.last.text


async def test_with_the_cache_off_every_update_looks_the_user_up(
    settings: Settings, api: BotAPI, clock: Clock
) -> None:
    off = settings.model_copy(update={"identity_cache_seconds": 0})
    application = build_application(off, request=api, clock=clock)
    async with application:
        await application.post_init(application)  # type: ignore[misc]
        sessions: SessionMaker = application.bot_data["runtime"].db
        async with sessions.begin() as session:
            user = await make_user(session, role=Role.liaison)
        chat = chat_with(application, api, user)
        await chat.send("/help")
        with statements(application) as seen:
            await chat.send("/help")
        assert looks_up_users(seen)
        await deactivate_elsewhere(off, user.id)
        await chat.send("/help")
        assert DEACTIVATED in chat.last.text
        await application.post_shutdown(application)  # type: ignore[misc]


async def test_a_core_update_of_users_applies_at_once(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        user = await make_user(session, role=Role.liaison, locale="zh_CN")
    chat = chat_with(app, api, user)
    await chat.send("/help")
    assert HELP in chat.last.text and "走访" in chat.last.text
    async with db.begin() as session:  # an UPDATE statement, not an object flushed
        await set_locale(session, user_id=user.id, locale="en")
    await chat.send("/help")
    assert "Log a visit" in chat.last.text


async def test_a_user_read_while_a_deactivation_commits_is_not_remembered_as_active(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    async with db.begin() as session:
        user = await make_user(session, role=Role.liaison)
    chat = chat_with(app, api, user)
    await chat.send("/help")
    async with db.begin() as session:
        stored = await session.get(User, user.id)
        assert stored is not None
        stored.active = False
        await session.flush()
        await chat.send("/help")  # meanwhile: reads the row as it still is (active) before the commit
        assert HELP in chat.last.text
    await chat.send("/help")
    assert DEACTIVATED in chat.last.text
