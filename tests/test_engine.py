"""The flow engine's own promises, beyond any one flow."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from telegram.ext import Application

from bot.storage.db import SessionMaker
from bot.storage.enums import Role
from bot.storage.models import Draft
from tests.botapi import BotAPI
from tests.conftest import chat_with, make_enterprise, make_user

App = Application[Any, Any, Any, Any, Any, Any]


async def test_discarding_an_unfinished_flow_starts_the_new_one_clean(
    app: App, api: BotAPI, db: SessionMaker
) -> None:
    async with db.begin() as session:
        liaison = await make_user(session, role=Role.liaison)
        await make_enterprise(session, name="甲公司", liaison=liaison)
        await make_enterprise(session, name="乙公司", liaison=liaison)
    chat = chat_with(app, api, liaison)
    await chat.send("/visit")
    await chat.tap("甲公司")
    await chat.send("/problem")
    assert "未完成的走访记录" in chat.last.text
    await chat.tap("放弃并重新开始")
    labels = [label for row in chat.last.buttons for label, _ in row]
    assert (
        "甲公司" in labels and "乙公司" in labels and "« 返回" not in labels
    )  # nothing of the visit's trail
    await chat.tap("乙公司")
    await chat.tap("用电")
    assert chat.last.text.startswith("乙公司 的问题") and "请描述问题" in chat.last.text
    async with db() as session:
        drafts = (await session.execute(select(Draft.flow, func.count()).group_by(Draft.flow))).all()
    assert drafts == [("problem", 1)]


async def test_discarding_for_a_refused_flow_still_discards(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        liaison = await make_user(session, role=Role.liaison)
        await make_enterprise(session, name="甲公司", liaison=liaison)
        other = await make_enterprise(session, name="别人的公司")
    chat = chat_with(app, api, liaison)
    await chat.send("/visit")
    await chat.press(f"ent:{other.id}:problem")  # not theirs: refused
    assert api.answers()[-1][1] is True
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(Draft)) == 1  # the visit is untouched
