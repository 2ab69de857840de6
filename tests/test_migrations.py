"""The migrations create exactly the schema the models describe, and the bot refuses a database behind."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.engine import Connection

from bot.config import Settings
from bot.storage.db import create_engine, create_sessionmaker
from bot.storage.migrate import SchemaOutdated, ensure_current, head_revision, upgrade
from bot.storage.models import Base, MenuItem


async def test_migrations_match_the_models(settings: Settings) -> None:
    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    engine = create_engine(settings.database_url)
    async with engine.connect() as connection:
        differences = await connection.run_sync(diff)
    await engine.dispose()
    assert differences == []


async def test_menu_catalogue_is_seeded_by_stage(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    async with create_sessionmaker(engine)() as session:
        items = (await session.scalars(select(MenuItem).order_by(MenuItem.stage, MenuItem.position))).all()
    await engine.dispose()
    by_stage: dict[str, list[str]] = {}
    for item in items:
        by_stage.setdefault(item.stage.value, []).append(item.name_zh)
    assert by_stage == {
        "startup": ["证照办理", "政策咨询", "市场信息", "矛盾调解"],
        "growth": ["融资渠道", "项目资金申报"],
        "leading": ["市场优势项目", "政策优势信息"],
    }


async def test_a_database_behind_is_refused_until_upgraded(tmp_path: Any) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/old.db")
    try:
        with pytest.raises(SchemaOutdated, match="python -m bot db upgrade"):
            await ensure_current(engine)
        await upgrade(engine)
        assert await ensure_current(engine) == head_revision()
    finally:
        await engine.dispose()
