"""Fixtures: a real database (a fresh SQLite file; PostgreSQL too when TEST_DATABASE_URL is set), the real
Application wired to the Bot API double, a controllable clock, and row factories."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from telegram.ext import Application

from bot.app import build_application
from bot.config import Settings
from bot.services.credit_code import credit_code_check_char
from bot.storage.db import SessionMaker, create_engine, create_sessionmaker
from bot.storage.enums import PartyOrg, Role, Stage
from bot.storage.migrate import upgrade
from bot.storage.models import Assignment, Base, Enterprise, User
from tests.botapi import BotAPI, Chat

T = TypeVar("T")
PG_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
BEIJING_NOON = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # Wednesday 12:00 in Asia/Shanghai


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run async work from synchronous code on a loop of its own, in a thread (pytest-asyncio's loop is
    left alone)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()


async def _execute(url: str, *statements: str, autocommit: bool = False) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT") if autocommit else create_engine(url)
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))
    await engine.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per run; each test gets a copy (fast, and runs the real migrations)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite+aiosqlite:///{path}"
    run_sync(_migrate(url))
    run_sync(_execute(url, "PRAGMA wal_checkpoint(TRUNCATE)"))
    return path


@pytest.fixture(scope="session")
def _postgres_database() -> Iterator[str]:
    """A database of its own for this test run, migrated once and dropped at the end."""
    assert PG_URL, "TEST_DATABASE_URL is not set"
    name = f"test_{uuid.uuid4().hex[:12]}"
    run_sync(_execute(PG_URL, f'CREATE DATABASE "{name}"', autocommit=True))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        run_sync(_migrate(url))
        yield url
    finally:
        run_sync(_execute(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', autocommit=True))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "bot.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("_postgres_database")
    # Empty every table but the schema version and the seeded menu catalogue.
    tables = [t.name for t in Base.metadata.sorted_tables if t.name != "menu_items"]
    run_sync(_execute(url, f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    return url


@dataclass
class Clock:
    """The bot's clock in tests: starts at a working-day noon in Beijing; move it with `advance`."""

    current: datetime = BEIJING_NOON

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(_env_file=None, telegram_bot_token="123:TEST", database_url=database_url)


@pytest.fixture
def api() -> BotAPI:
    return BotAPI()


@pytest.fixture
async def app(
    settings: Settings, api: BotAPI, clock: Clock
) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    application = build_application(settings, request=api, clock=clock)
    async with application:
        await application.post_init(application)  # type: ignore[misc]
        yield application
        await application.post_shutdown(application)  # type: ignore[misc]


@pytest.fixture
async def db(app: Application[Any, Any, Any, Any, Any, Any]) -> SessionMaker:
    """The same database the app uses, for arranging rows and asserting what landed."""
    sessions: SessionMaker = app.bot_data["runtime"].db
    return sessions


@pytest.fixture
async def separate_db(settings: Settings) -> AsyncIterator[SessionMaker]:
    engine = create_engine(settings.database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


# -- factories -----------------------------------------------------------------------------------
_serial = iter(range(1, 10**9))


def credit_code(n: int | None = None) -> str:
    body = f"91110105{(n if n is not None else next(_serial)):09d}"
    return body + credit_code_check_char(body)


async def make_user(
    session: AsyncSession,
    *,
    role: Role = Role.liaison,
    name: str | None = None,
    telegram_id: int | None = None,
    department: str | None = None,
    community: str | None = None,
    locale: str | None = "zh_CN",
    active: bool = True,
) -> User:
    n = next(_serial)
    user = User(
        name=name or f"用户{n}",
        role=role,
        telegram_id=telegram_id if telegram_id is not None else 100000 + n,
        department=department or ("发改局" if role is Role.liaison else None),
        community=community or ("东城社区" if role is Role.instructor else None),
        locale=locale,
        active=active,
        joined_at=BEIJING_NOON,
    )
    session.add(user)
    await session.flush()
    return user


async def make_enterprise(
    session: AsyncSession,
    *,
    name: str | None = None,
    stage: Stage | None = Stage.startup,
    community: str = "东城社区",
    party_org: PartyOrg = PartyOrg.none,
    liaison: User | None = None,
    instructor: User | None = None,
    since: date = date(2026, 1, 1),
) -> Enterprise:
    n = next(_serial)
    enterprise = Enterprise(
        name=name or f"测试企业{n}有限公司",
        credit_code=credit_code(n),
        stage=stage,
        community=community,
        party_org=party_org,
    )
    session.add(enterprise)
    await session.flush()
    for user in (liaison, instructor):
        if user is not None:
            session.add(
                Assignment(enterprise_id=enterprise.id, user_id=user.id, role=user.role, start_date=since)
            )
    await session.flush()
    return enterprise


def chat_with(
    app: Application[Any, Any, Any, Any, Any, Any],
    api: BotAPI,
    user: User | int,
    *,
    language_code: str | None = "zh-hans",
) -> Chat:
    user_id = user if isinstance(user, int) else user.telegram_id
    assert user_id is not None
    return Chat(app, api, user_id, language_code=language_code)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI's `main()` configures the root logger; give the next test pytest's handlers back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
