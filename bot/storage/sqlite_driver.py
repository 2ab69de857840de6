"""SQLAlchemy's aiosqlite adapter with one hop into aiosqlite's worker thread per statement.

Stock `sqlite+aiosqlite` runs every statement as 3–4 calls into the connection's worker thread — create
a cursor, execute, fetch the rows, close the cursor — and each call is a thread hand-off (queue put, GIL
switch, `call_soon_threadsafe`, event-loop wake-up) of ~50–100 µs: more than the SQL itself for the bot's
small statements. Here the cursor adapter runs those four steps as one function on the worker thread and
keeps what SQLAlchemy reads afterwards (description, rowcount, lastrowid, the rows) in a snapshot. Errors
come out of the same `execute` wrapper as before, so SQLAlchemy translates them as before
(`sqlite3.IntegrityError` → `sqlalchemy.exc.IntegrityError`, "database is locked" → `OperationalError`).
Commit and rollback stay one hop each; server-side cursors (`stream`, `yield_per`) keep the stock adapter,
which fetches batch by batch.

`create_engine` hands `dbapi` to `create_async_engine(module=...)` for `sqlite+aiosqlite` URLs: the
dialect, URLs, pool and everything else stay SQLAlchemy's own.

Private hooks, relied on for aiosqlite >= 0.22, < 0.23 (tested with 0.22.1) and SQLAlchemy >= 2.0.44,
< 2.2 (tested with 2.1.9): aiosqlite's `Connection._execute(fn, *args)` (queue a function for the worker
thread, await its result) and `Connection._conn` (the sqlite3 connection; SQLAlchemy's own adapter uses it
too); SQLAlchemy's cursor-adapter hooks `_make_new_cursor`, `_aenter_cursor`, `_execute_async`,
`_executemany_async` and `_awaitable_cursor_close`. Importing this module (which `create_engine` does for
SQLite) fails if any of them is missing, rather than silently running the slow or a broken path.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)

_HOOKS = {
    aiosqlite.Connection: "_execute _conn",
    AsyncAdapt_aiosqlite_cursor: "_make_new_cursor _aenter_cursor _execute_async _executemany_async "
    "_awaitable_cursor_close",
}
for _owner, _names in _HOOKS.items():
    for _hook in _names.split():
        if not hasattr(_owner, _hook):
            raise ImportError(
                f"{_owner.__module__}.{_owner.__qualname__} has no {_hook}: bot/storage/sqlite_driver.py "
                "needs it (written for aiosqlite 0.22 and SQLAlchemy 2.1)"
            )


class _Done:
    """A finished sqlite3 cursor's attributes, read on the worker thread (the cursor is closed there)."""

    __slots__ = ("arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, description: Any = None, rowcount: int = -1, lastrowid: int | None = None) -> None:
        self.description = description
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        self.arraysize = 1

    def close(self) -> None:
        pass


def execute_statement(
    conn: sqlite3.Connection, operation: str, parameters: Any, many: bool
) -> tuple[_Done, list[Any]]:
    """Runs on aiosqlite's worker thread: cursor, execute, fetch (if the statement returns rows), close."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description and not many else []
        return _Done(cursor.description, cursor.rowcount, cursor.lastrowid), rows
    finally:
        cursor.close()


class _Cursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()
    _awaitable_cursor_close = False  # nothing left to close: the sqlite3 cursor closes on the worker thread

    def _make_new_cursor(self, connection: Any) -> Any:
        return _Done()  # no hop: the real cursor is made, used and closed in `execute_statement`

    def _aenter_cursor(self, cursor: Any) -> Any:
        return cursor

    async def _run(self, operation: Any, parameters: Any, many: bool) -> None:
        aio: Any = self._connection  # aiosqlite.Connection; `_execute` is untyped
        async with self._adapt_connection._execute_mutex:
            done, rows = await aio._execute(execute_statement, aio._conn, operation, parameters, many)
        self._cursor = cast(Any, done)
        self._rows = collections.deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._run(operation, parameters, False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Sequence[Any]) -> None:
        await self._run(operation, seq_of_parameters, True)


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _Cursor  # server-side cursors: SQLAlchemy's, unchanged


class _DBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> _Connection:
        stock = super().connect(*arg, **kw)  # opens the aiosqlite connection (daemon worker thread)
        return _Connection(self, stock._connection)


dbapi = _DBAPI(aiosqlite, sqlite3)
"""The DBAPI module for `create_async_engine(..., module=dbapi)` with a `sqlite+aiosqlite` URL."""
