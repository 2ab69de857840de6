"""The database work of one update: with the user remembered (bot.storage.identity), a read is one
connection checkout and a confirm one checkout and one commit; a failing step leaves nothing behind."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram.ext import Application

from bot.flows import visit as visit_flow
from bot.storage.db import SessionMaker
from bot.storage.enums import Role
from bot.storage.models import AuditLog, Draft, Visit
from tests.botapi import BotAPI
from tests.conftest import chat_with, make_enterprise, make_user

App = Application[Any, Any, Any, Any, Any, Any]


@contextmanager
def database_work(app: App) -> Iterator[Counter[str]]:
    """Connection checkouts, commits and rollbacks of the bot's engine meanwhile."""
    engine: AsyncEngine = app.bot_data["runtime"].engine
    seen: Counter[str] = Counter()
    listeners = {
        (engine.sync_engine.pool, "checkout"): lambda *_a: seen.update(["checkout"]),
        (engine.sync_engine, "commit"): lambda *_a: seen.update(["commit"]),
        (engine.sync_engine, "rollback"): lambda *_a: seen.update(["rollback"]),
    }
    for (target, name), listener in listeners.items():
        event.listen(target, name, listener)
    try:
        yield seen
    finally:
        for (target, name), listener in listeners.items():
            event.remove(target, name, listener)


async def walk_to_the_summary(app: App, api: BotAPI, db: SessionMaker) -> Any:
    async with db.begin() as session:
        liaison = await make_user(session, role=Role.liaison)
        await make_enterprise(session, name="青松食品有限公司", liaison=liaison)
    chat = chat_with(app, api, liaison)
    await chat.send("/visit")
    await chat.tap("青松食品有限公司")
    await chat.tap("服务对接")
    await chat.tap("完成 ›")
    await chat.send("对接了融资需求")
    await chat.tap("跳过 ›")
    await chat.tap("跳过 ›")
    await chat.tap("无变化 ›")
    return chat


async def test_a_confirm_is_one_checkout_and_one_commit(app: App, api: BotAPI, db: SessionMaker) -> None:
    chat = await walk_to_the_summary(app, api, db)
    with database_work(app) as seen:
        await chat.tap("✔ 确认")
    assert "V-2026-0001" in chat.last.text
    assert seen["checkout"] == 1 and seen["commit"] == 1


async def test_a_confirm_is_four_statements(app: App, api: BotAPI, db: SessionMaker) -> None:
    """Lock the draft, insert the visit (its INSERT checks the assignment), its audit row, drop the draft:
    no separate permission query, no ORM flush of anything else, no UPDATE of a draft being deleted."""
    chat = await walk_to_the_summary(app, api, db)
    engine: AsyncEngine = app.bot_data["runtime"].engine
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()[:3]))

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        await chat.tap("✔ 确认")
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert "V-2026-0001" in chat.last.text
    assert [s.split(" (")[0] for s in statements] == [
        "SELECT drafts.id, drafts.user_id,",
        "INSERT INTO visits",
        "INSERT INTO audit_log",
        "DELETE FROM drafts",
    ]


async def test_a_read_is_one_checkout(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        liaison = await make_user(session, role=Role.liaison, name="孙联络")
    chat = chat_with(app, api, liaison)
    await chat.send("/help")
    with database_work(app) as seen:
        await chat.send("/my")
    assert "孙联络" in chat.last.text
    assert seen["checkout"] == 1 and seen["commit"] == 0


async def test_a_failing_step_rolls_back_everything_it_did(
    app: App, api: BotAPI, db: SessionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await walk_to_the_summary(app, api, db)

    async def audit_fails(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the audit log is unavailable")

    monkeypatch.setattr(visit_flow, "record", audit_fails)  # after the visit row was inserted
    summary = chat.last
    await chat.tap("✔ 确认")
    text, alert = api.answers()[-1]
    assert text is not None and "您的数据没有丢失" in text and alert
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(Visit)) == 0
        assert await session.scalar(select(func.count()).select_from(AuditLog)) == 0
        assert await session.scalar(select(func.count()).select_from(Draft)) == 1  # the visit can be retried
    monkeypatch.undo()
    await chat.tap("✔ 确认", message=summary)  # the same button again: the draft is still there
    assert "走访已保存" in chat.last.text  # (PostgreSQL's sequence does not roll back: V-2026-0002 there)
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(Visit)) == 1
