"""The SQLite adapter that runs each statement as one call into aiosqlite's worker thread
(bot/storage/sqlite_driver.py) behaves like SQLAlchemy's stock aiosqlite adapter: every behaviour test
runs against both, through `create_engine` (the stock one by passing SQLAlchemy's own DBAPI module)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage import sqlite_driver
from bot.storage.db import create_engine

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), unique=True, nullable=False),
    Column("weight", Float),
    Column("blob", LargeBinary),
    Column("flag", Boolean),
    Column("day", Date),
    Column("at", DateTime),
)
ROW = {
    "name": "甲",
    "weight": 1.5,
    "blob": b"\x00\xff",
    "flag": True,
    "day": date(2026, 1, 2),
    "at": datetime(2026, 1, 2, 3, 4, 5, 6),
}


@pytest.fixture(params=["fast", "stock"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}"
    if request.param == "fast":
        engine = create_engine(url)
        assert engine.dialect.dbapi is sqlite_driver.dbapi
    else:
        engine = create_engine(url, module=AsyncAdapt_aiosqlite_dbapi(aiosqlite, sqlite3))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Calls into aiosqlite's worker thread, by the name of the function sent there."""
    counted: Counter[str] = Counter()
    original: Any = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        counted[getattr(fn, "__name__", "?")] += 1
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    yield counted


def test_sqlite_urls_keep_their_name_and_dialect(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    assert engine.url.drivername == "sqlite+aiosqlite"
    assert (engine.dialect.name, engine.dialect.driver) == ("sqlite", "aiosqlite")
    assert engine.dialect.dbapi is sqlite_driver.dbapi


async def test_rows_and_types_round_trip(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(things), [ROW])
        await conn.execute(insert(things).values(name="乙"))
    async with engine.connect() as conn:
        result = await conn.execute(select(things).order_by(things.c.id))
        assert list(result.keys()) == ["id", "name", "weight", "blob", "flag", "day", "at"]
        assert [row._asdict() for row in result] == [
            {"id": 1, **ROW},
            {"id": 2, "name": "乙", "weight": None, "blob": None, "flag": None, "day": None, "at": None},
        ]
        raw = await conn.exec_driver_sql("SELECT id, name, weight FROM things WHERE id = ?", (1,))
        assert raw.cursor is not None and [d[0] for d in raw.cursor.description] == ["id", "name", "weight"]
        assert [tuple(row) for row in raw] == [(1, "甲", 1.5)]
        assert (await conn.execute(select(things).where(things.c.id == 99))).all() == []
        assert (await conn.scalar(text("SELECT count(*) FROM things"))) == 2


async def test_inserted_ids_from_lastrowid_and_returning(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        one = await conn.execute(insert(things).values(name="a"))
        assert one.inserted_primary_key == (1,)  # from cursor.lastrowid
        assert one.lastrowid == 1 and one.rowcount == 1
        many = await conn.execute(
            insert(things).returning(things.c.id, things.c.name, sort_by_parameter_order=True),
            [{"name": n} for n in "bcd"],
        )
        assert many.all() == [(2, "b"), (3, "c"), (4, "d")]
        changed = await conn.execute(
            update(things).where(things.c.id > 2).values(weight=2.0).returning(things.c.id)
        )
        assert sorted(changed.scalars()) == [3, 4]


async def test_rowcount_of_update_delete_and_executemany(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(things), [{"name": n} for n in "abcde"])
        assert (await conn.execute(update(things).where(things.c.id <= 3).values(flag=True))).rowcount == 3
        assert (await conn.execute(update(things).where(things.c.id > 99).values(flag=True))).rowcount == 0
        by_id = update(things).where(things.c.id == bindparam("b_id")).values(weight=bindparam("b_w"))
        batch = await conn.execute(by_id, [{"b_id": 1, "b_w": 1.0}, {"b_id": 2, "b_w": 2.0}])
        assert batch.rowcount == 2
        assert (await conn.execute(delete(things).where(things.c.id >= 4))).rowcount == 2
    async with engine.connect() as conn:
        assert (await conn.execute(select(things.c.id, things.c.weight).order_by(things.c.id))).all() == [
            (1, 1.0),
            (2, 2.0),
            (3, None),
        ]


async def test_a_unique_violation_is_an_integrity_error_and_rolls_back(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(things).values(name="a"))
    with pytest.raises(IntegrityError) as raised:
        async with engine.begin() as conn:
            await conn.execute(insert(things).values(name="b"))
            await conn.execute(insert(things).values(name="a"))
    assert isinstance(raised.value.orig, sqlite3.IntegrityError)
    assert "UNIQUE constraint failed: things.name" in str(raised.value)
    with pytest.raises(IntegrityError):  # executemany too
        async with engine.begin() as conn:
            await conn.execute(insert(things), [{"name": "c"}, {"name": "c"}])
    async with engine.connect() as conn:  # the connection is still usable; nothing else was kept
        assert (await conn.execute(select(things.c.name))).scalars().all() == ["a"]


async def test_a_locked_database_is_an_operational_error(engine: AsyncEngine) -> None:
    async with engine.connect() as holder, engine.connect() as other:
        await holder.execute(insert(things).values(name="a"))  # holds the write lock until rolled back
        await other.exec_driver_sql("PRAGMA busy_timeout=0")
        with pytest.raises(OperationalError, match="database is locked") as raised:
            await other.execute(insert(things).values(name="b"))
        assert isinstance(raised.value.orig, sqlite3.OperationalError)
        assert not raised.value.connection_invalidated
        await other.rollback()
        await holder.rollback()
        await other.execute(insert(things).values(name="b"))
        assert (await other.execute(select(things.c.name))).scalars().all() == ["b"]


async def test_a_closed_driver_connection_is_a_disconnect(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.close()
        with pytest.raises(OperationalError) as raised:
            await conn.execute(select(things))
        assert raised.value.connection_invalidated
    async with engine.connect() as conn:  # the pool replaced it
        assert (await conn.execute(select(things))).all() == []


async def test_a_streamed_query_fetches_in_batches(engine: AsyncEngine, hops: Counter[str]) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(things), [{"name": f"n{i}"} for i in range(2500)])
    async with engine.connect() as conn:
        result = await conn.stream(select(things.c.id).order_by(things.c.id).execution_options(yield_per=500))
        hops.clear()
        batches = [[row.id for row in rows] async for rows in result.partitions(500)]
    assert [len(b) for b in batches] == [500] * 5
    assert [i for b in batches for i in b] == list(range(1, 2501))
    assert hops["fetchmany"] >= 5  # a server-side cursor: one batch per call, never all rows at once
    assert hops["fetchall"] == 0


async def test_one_call_into_the_worker_thread_per_statement(tmp_path: Path, hops: Counter[str]) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hops.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with engine.connect() as conn:
            hops.clear()
            await conn.execute(select(things).where(things.c.id == 1))
            assert hops == {"execute_statement": 1}
            hops.clear()
            await conn.execute(insert(things).values(name="a"))
            await conn.execute(insert(things).returning(things.c.id), [{"name": "b"}, {"name": "c"}])
            await conn.execute(update(things).values(flag=True))
            await conn.commit()
            assert hops == {"execute_statement": 3, "commit": 1}
    finally:
        await engine.dispose()


def test_a_missing_aiosqlite_hook_fails_the_import() -> None:
    code = "import aiosqlite; del aiosqlite.Connection._execute; import bot.storage.sqlite_driver"
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[1],
    )
    assert run.returncode != 0
    assert "ImportError: aiosqlite.core.Connection has no _execute" in run.stderr
