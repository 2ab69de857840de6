"""Engine and session factory; SQLite gets WAL, foreign keys and a busy timeout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SessionMaker = async_sessionmaker[AsyncSession]


class Sessions(Protocol):
    """What handlers open sessions with: `async with db() as s` to read, `async with db.begin() as s` to
    write (committed at the end of the block). Both `SessionMaker` and `UnitOfWork` provide it."""

    def __call__(self) -> AbstractAsyncContextManager[AsyncSession]: ...

    def begin(self) -> AbstractAsyncContextManager[AsyncSession]: ...


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if parsed.get_driver_name() == "aiosqlite":  # one hop into aiosqlite's thread per statement
            from bot.storage import sqlite_driver

            kwargs.setdefault("module", sqlite_driver.dbapi)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # JIT compilation costs ~150 ms on the reports' cheap-but-"expensive-looking" queries and never pays off
    # for this workload.
    connect_args = {"server_settings": {"jit": "off"}, **kwargs.pop("connect_args", {})}
    return create_async_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def create_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    return async_sessionmaker(engine, expire_on_commit=False)


class UnitOfWork:
    """One session for everything one update does.

    The guard's who-is-asking lookup and the handler's reads and writes share one connection checkout (on
    PostgreSQL one pre-ping) and, until a block commits, one transaction: BEGIN, the user, the handler's
    statements, COMMIT. Each block still behaves like a session of its own: a `begin()` block commits
    when it ends, any block rolls back when it raises, and objects are detached at the end of every block
    (so a later `SELECT … FOR UPDATE` reloads them instead of reusing what an earlier block saw).

    A read block leaves the transaction open for the next block; `close` ends it with the update.
    Something that needs a transaction of its own (e.g. a REPEATABLE READ snapshot) opens a fresh session
    from the `SessionMaker` instead.
    """

    def __init__(self, maker: SessionMaker) -> None:
        self._maker = maker
        self._session: AsyncSession | None = None

    def _shared(self) -> AsyncSession:
        if self._session is None:
            self._session = self._maker()
        return self._session

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncSession]:
        session = self._shared()
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        finally:
            session.expunge_all()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        session = self._shared()
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        finally:
            session.expunge_all()

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
