"""Benchmark: this bot's update path against the framework's own floor, on SQLite and PostgreSQL.

In one run, on one machine and one database:

- three floors on the same PTB Application type (``bot.logs.TracedApplication``, wired to the Bot API double
  of tests/botapi.py): (a) an echo handler, no database; (b) the same plus one primary-key SELECT through
  SQLAlchemy's async session; (c) the same plus one INSERT transaction. And, for reference, (a′) an echo of
  a button press (answerCallbackQuery + editMessageText), the Telegram side of a confirm.
- the bot's real update path (``bot.app.build_application``): the read step ``/my``, the write step (the
  Confirm button of a visit, each on a draft prepared at the summary outside the timed region) and whole
  ``/visit`` flows (every update from /visit to Confirm).

For each: updates per second, p50/p99 in-process latency (around ``await app.process_update(update)``) and
the ratio to its floor, the series run in interleaved rounds so that the machine's load affects them alike;
then the SQL statements, transactions, connection checkouts and database round trips of one update of each
step; the idle memory of an initialised bot (in a subprocess); and a soak: 200 simulated users running
/visit and /problem flows concurrently through ``app.update_queue`` of a started Application, as in
production, with double taps and redelivered updates, checked for lost and duplicated records.
``--profile`` also samples the read and write steps with py-spy and sums where the wall-clock time goes.

    .venv/bin/python -m bench.flows [--iterations 1000] [--soak-seconds 60] [--skip-soak] [--profile]
    .venv/bin/python -m bench.flows --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/flows_bench

SQLite: a fresh file bench/out/flows.db. PostgreSQL: the database (its name must contain "bench") is created
afresh through an admin connection (``--admin-database``, default ``test``) and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import itertools
import json
import logging
import math
import os
import platform
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import aiosqlite.core
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Message, Update
from telegram.constants import ParseMode
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    filters,
)
from telegram.request import RequestData

from bot.app import build_application
from bot.config import Settings
from bot.context import BotContext, Runtime
from bot.i18n import gettext_for
from bot.logs import TracedApplication
from bot.services.credit_code import credit_code_check_char
from bot.storage.db import SessionMaker, create_engine, create_sessionmaker
from bot.storage.enums import PartyOrg, ProblemCategory, ProblemStatus, Role, Stage
from bot.storage.migrate import upgrade
from bot.storage.models import Assignment, AuditLog, Draft, Enterprise, Problem, User, Visit
from tests.botapi import BotAPI, Chat, Sent, text_fields

App = Application[Any, Any, Any, Any, Any, Any]

# Saturday 12:00 in Beijing: the reminder job runs during the soak as in production, but holds scheduled
# pushes (weekend), so every message in a simulated user's chat is a reply to that user.
NOW = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
TOKEN = "1:BENCH"
TG_BASE = 880_000_000  # telegram_id = TG_BASE + users.id
SOAK_USERS = 200
FLOW_USERS = 10
READ_TARGET, WRITE_TARGET, MEMORY_TARGET_MB = 1.5, 2.0, 120.0
REPLY_TIMEOUT = 60.0  # seconds a simulated user waits for a reply before counting the update as lost
TRACES = 5  # updates of each kind traced (statements of the first, median times)
REF = re.compile(r"\b([VP])-\d{4}-(\d{4,})\b")
OUT = Path(__file__).parent / "out"
ONE_BUTTON = InlineKeyboardMarkup([[InlineKeyboardButton("echo", callback_data="echo")]])


# -- results ------------------------------------------------------------------------------------------------
@dataclass
class Measurement:
    name: str
    latencies: list[float]  # seconds per update
    elapsed: float  # wall time of the whole timed loop

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile in milliseconds."""
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] * 1000

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.latencies) * 1000


@dataclass
class Trace:
    """What one update did to the database."""

    statements: list[str] = field(default_factory=list)
    transactions: int = 0
    commits: int = 0
    rollbacks: int = 0
    checkouts: int = 0
    trips: Counter[str] = field(default_factory=Counter)  # round trips to the database, by kind
    sql_seconds: float = 0.0  # inside cursor.execute (with the fetch, the hop to the driver and back)
    seconds: float = 0.0  # the whole update, with the tracing's own overhead

    def add(self, other: Trace) -> None:
        self.statements += other.statements
        self.transactions += other.transactions
        self.commits += other.commits
        self.rollbacks += other.rollbacks
        self.checkouts += other.checkouts
        self.trips.update(other.trips)
        self.sql_seconds += other.sql_seconds
        self.seconds += other.seconds

    @property
    def round_trips(self) -> int:
        return self.trips.total()


@dataclass
class Seeded:
    """Who is who in the bench database."""

    reader: int  # a typical liaison with 20 enterprises, visits and pending problems: /my
    confirmers: list[int]  # one per write-step update (warm-up included), each with one quiet enterprise
    flow_users: list[int]
    soak_users: list[int]
    enterprise_of: dict[int, int]  # user id -> the enterprise the bench visits
    counts: dict[str, int]


@dataclass(frozen=True)
class District:
    """The data every run starts from (besides the users the bench drives)."""

    liaisons: int = 100  # each looks after `enterprises_each` enterprises
    enterprises_each: int = 20
    visits: int = 20_000  # over the past year
    problems: int = 2_000
    soak_users: int = SOAK_USERS


# -- the database -------------------------------------------------------------------------------------------
def _code(n: int) -> str:
    body = f"91330200{n:09d}"
    return body + credit_code_check_char(body)


def _pg_name(url: str) -> str:
    name = make_url(url).database or ""
    if "bench" not in name or not re.fullmatch(r"[A-Za-z0-9_]+", name):
        sys.exit(f"refusing database {name!r}: its name must contain 'bench' (letters, digits, _ only)")
    return name


async def _admin(url: str, admin_database: str, statement: str) -> None:
    admin_url = make_url(url).set(database=admin_database).render_as_string(hide_password=False)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await admin.dispose()


async def fresh_database(url: str | None, admin_database: str) -> str:
    """An empty database at the head revision: a new SQLite file, or a re-created PostgreSQL database."""
    url = url or f"sqlite+aiosqlite:///{OUT / 'flows.db'}"
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            sys.exit("SQLite: give a file, e.g. sqlite+aiosqlite:///bench/out/flows.db")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
    else:
        name = _pg_name(url)
        await _admin(url, admin_database, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _admin(url, admin_database, f'CREATE DATABASE "{name}"')
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    return url


async def drop_database(url: str, admin_database: str) -> None:
    if make_url(url).get_backend_name() == "postgresql":
        await _admin(url, admin_database, f'DROP DATABASE IF EXISTS "{_pg_name(url)}" WITH (FORCE)')


async def seed(engine: AsyncEngine, confirmers: int, district: District, *, seed: int = 7) -> Seeded:
    """A small district (by default 100 liaisons × 20 enterprises, 20,000 visits over a year, 2,000 problems)
    plus one quiet enterprise (nothing open) for each user the bench drives."""
    rng = random.Random(seed)
    year_ago = NOW - timedelta(days=365)
    users: list[dict[str, Any]] = []
    enterprises: list[dict[str, Any]] = []
    assignments: list[dict[str, Any]] = []

    def add_user(uid: int) -> None:
        users.append(
            {
                "id": uid,
                "telegram_id": TG_BASE + uid,
                "name": f"联络员{uid}",
                "role": Role.liaison,
                "department": "发改局",
                "community": None,
                "locale": "zh_CN",
                "active": True,
                "unreachable": False,
                "muted": [],
                "created_at": year_ago,
                "joined_at": year_ago,
            }
        )

    def add_enterprise(owner: int) -> int:
        eid = len(enterprises) + 1
        enterprises.append(
            {
                "id": eid,
                "name": f"基准{eid:05d}{rng.choice(['科技', '制造', '商贸', '物流'])}有限公司",
                "credit_code": _code(eid),
                "stage": rng.choice(list(Stage)),
                "community": "东城社区",
                "party_org": PartyOrg.none,
                "party_members": 0,
                "created_at": year_ago,
                "updated_at": year_ago,
            }
        )
        assignments.append(
            {
                "enterprise_id": eid,
                "user_id": owner,
                "role": Role.liaison,
                "start_date": date(2025, 1, 1),
                "end_date": None,
            }
        )
        return eid

    background = list(range(1, district.liaisons + 1))
    for uid in background:
        add_user(uid)
        for _ in range(district.enterprises_each):
            add_enterprise(uid)
    owned = {a["enterprise_id"]: a["user_id"] for a in assignments}
    next_id = district.liaisons + 1
    groups: list[list[int]] = []
    for size in (confirmers, FLOW_USERS, district.soak_users):
        groups.append(list(range(next_id, next_id + size)))
        next_id += size
    enterprise_of: dict[int, int] = {}
    for uid in (u for group in groups for u in group):
        add_user(uid)
        enterprise_of[uid] = add_enterprise(uid)

    span = int((NOW - year_ago).total_seconds())
    visits = []
    for _ in range(district.visits):
        eid = rng.randrange(1, district.liaisons * district.enterprises_each + 1)
        at = year_ago + timedelta(seconds=rng.randrange(span))
        visits.append(
            {
                "enterprise_id": eid,
                "user_id": owned[eid],
                "visited_at": at,
                "topics": ["policy"],
                "notes": "宣讲惠企政策",
                "withdrawn_at": None,
                "created_at": at,
                "updated_at": at,
            }
        )
    statuses = [ProblemStatus.open, ProblemStatus.in_progress, ProblemStatus.returned, ProblemStatus.resolved]
    problems = []
    for _ in range(district.problems):
        eid = rng.randrange(1, district.liaisons * district.enterprises_each + 1)
        at = year_ago + timedelta(seconds=rng.randrange(span))
        problems.append(
            {
                "enterprise_id": eid,
                "reporter_id": owned[eid],
                "category": rng.choice(list(ProblemCategory)),
                "description": "企业反映的问题",
                "status": rng.choices(statuses, (3, 3, 1, 10))[0],
                "created_at": at,
                "updated_at": at,
            }
        )
    async with engine.begin() as conn:
        for model, rows in (
            (User, users),
            (Enterprise, enterprises),
            (Assignment, assignments),
            (Visit, visits),
            (Problem, problems),
        ):
            for start in range(0, len(rows), 2_000):
                await conn.execute(insert(model), rows[start : start + 2_000])
        if engine.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for table in ("users", "enterprises"):
                await conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    return Seeded(
        reader=1,
        confirmers=groups[0],
        flow_users=groups[1],
        soak_users=groups[2],
        enterprise_of=enterprise_of,
        counts={
            "users": len(users),
            "enterprises": len(enterprises),
            "visits": len(visits),
            "problems": len(problems),
        },
    )


# -- driving a chat -----------------------------------------------------------------------------------------
class Driver:
    """Builds the updates of one simulated user from what the bot last showed them (nothing is processed)."""

    def __init__(self, app: App, api: BotAPI, user_id: int) -> None:
        self.user_id = user_id
        self.chat = Chat(app, api, TG_BASE + user_id)

    def text(self, value: str) -> Update:
        return self.chat.message_update(**text_fields(value))

    def _keyboard(self) -> Sent:
        keyboards = [m for m in self.chat.messages() if m.inline_markup]
        if not keyboards:
            raise AssertionError(f"no keyboard in chat {self.chat.user_id}: {self.chat.texts()[-3:]!r}")
        return keyboards[-1]

    def _data(self, choice: str) -> str | None:
        for row in self._keyboard().buttons:
            for _label, data in row:
                if data and (data == choice or (data.startswith("f:") and data.endswith("." + choice))):
                    return str(data)
        return None

    def offers(self, choice: str) -> bool:
        return self._data(choice) is not None

    def tap(self, choice: str) -> Update:
        """Press the button whose flow choice (``f:<draft>:<version>.<choice>``) or data is ``choice``."""
        data = self._data(choice)
        if data is None:
            message = self._keyboard()
            raise AssertionError(f"no button {choice!r} on {message.text[:200]!r}: {message.buttons!r}")
        return self.chat.callback_update(data, self._keyboard())

    def press_again(self, update: Update) -> Update:
        """A second press of the same button on the same message (a double tap): a new callback query."""
        query = update.callback_query
        assert query is not None and query.data is not None and isinstance(query.message, Message)
        return self.chat.callback_update(query.data, query.message.to_dict())

    @property
    def last_text(self) -> str:
        return self.chat.last.text


Script = Iterator[tuple[str, Update]]


def visit_to_summary(d: Driver, enterprise_id: int, notes: str) -> Script:
    """/visit → enterprise → (follow-ups: Continue) → one topic → Done → notes → skip location, photos and
    the party-organisation step. Each update is yielded and processed before the script goes on."""
    yield "/visit", d.text("/visit")
    yield "enterprise", d.tap(f"ent.{enterprise_id}")
    if d.offers("next"):
        yield "follow-ups: continue", d.tap("next")
    yield "topic", d.tap("t.policy")
    yield "topics done", d.tap("done")
    yield "notes", d.text(notes)
    yield "location: skip", d.tap("skip")
    yield "photos: skip", d.tap("skip")
    yield "party: unchanged", d.tap("skip")


def visit_flow(d: Driver, enterprise_id: int, notes: str) -> Script:
    yield from visit_to_summary(d, enterprise_id, notes)
    yield "confirm", d.tap("confirm")


def problem_flow(d: Driver, enterprise_id: int, description: str) -> Script:
    yield "/problem", d.text("/problem")
    yield "enterprise", d.tap(f"ent.{enterprise_id}")
    yield "category", d.tap("cat.land")
    yield "description", d.text(description)
    yield "due date", d.tap("due.month")
    yield "confirm", d.tap("confirm")


async def drive(app: App, script: Script) -> None:
    for _label, update in script:
        await app.process_update(update)


# -- timing -------------------------------------------------------------------------------------------------
Runner = Callable[[int], Awaitable[list[float]]]  # process k units (updates or flows): per-update seconds


def prepared(app: App, updates: list[Update]) -> Runner:
    """Process the next k of ``updates``, timing each ``await app.process_update(update)``."""
    pending = iter(updates)

    async def run(k: int) -> list[float]:
        latencies = []
        for update in itertools.islice(pending, k):
            t0 = time.perf_counter()
            await app.process_update(update)
            latencies.append(time.perf_counter() - t0)
        return latencies

    return run


def forgetting(app: App, run: Runner) -> Runner:
    """`run`, one update at a time, each after the bot forgot who is asking (its identity cache emptied,
    outside the timed region)."""

    async def forget_and_run(k: int) -> list[float]:
        latencies = []
        for _ in range(k):
            app.bot_data["runtime"].identities.clear()
            latencies += await run(1)
        return latencies

    return forget_and_run


@dataclass
class Series:
    name: str
    run: Runner
    units: int  # timed units, spread over the rounds
    warm_up: int
    after_warm_up: Callable[[], None] | None = None


async def interleaved(series: list[Series], rounds: int) -> dict[str, Measurement]:
    """Warm every series up, then run them in turns, ``rounds`` times, so that a change in the machine's load
    during the run (other processes, the database's background work) affects floors and steps alike."""
    for s in series:
        await s.run(s.warm_up)
        if s.after_warm_up is not None:
            s.after_warm_up()
    latencies: dict[str, list[float]] = {s.name: [] for s in series}
    elapsed = dict.fromkeys(latencies, 0.0)
    for r in range(rounds):
        for s in series:
            k = s.units // rounds + (s.units % rounds if r == rounds - 1 else 0)
            gc.collect()
            started = time.perf_counter()
            latencies[s.name] += await s.run(k)
            elapsed[s.name] += time.perf_counter() - started
    return {s.name: Measurement(s.name, latencies[s.name], elapsed[s.name]) for s in series}


class ErrorCount(logging.Handler):
    """Counts WARNING and ERROR records anywhere (the bench must not measure error paths)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1
        self.first.setdefault(record.levelname, f"{record.name}: {record.getMessage()}"[:300])


# -- statement tracing --------------------------------------------------------------------------------------
@contextmanager
def tracing(engine: AsyncEngine) -> Iterator[Trace]:
    """Record the SQL statements, transactions, connection checkouts and round trips made meanwhile.

    Round trips: on PostgreSQL what asyncpg sends and waits for (statements, BEGIN/COMMIT/ROLLBACK, the pool's
    pre-ping, statement preparation); on SQLite the hops to aiosqlite's worker thread and back (cursor,
    execute, fetch, close, commit, rollback)."""
    trace = Trace()
    sync = engine.sync_engine
    started: list[float] = []

    def before(*args: Any) -> None:
        trace.statements.append(" ".join(str(args[2]).split()))
        started.append(time.perf_counter())

    def after(*_args: Any) -> None:
        trace.sql_seconds += time.perf_counter() - started.pop()

    def on_begin(_conn: Any) -> None:
        trace.transactions += 1

    def on_commit(_conn: Any) -> None:
        trace.commits += 1

    def on_rollback(_conn: Any) -> None:
        trace.rollbacks += 1

    def on_checkout(*_args: Any) -> None:
        trace.checkouts += 1

    listeners: list[tuple[Any, str, Callable[..., None]]] = [
        (sync, "before_cursor_execute", before),
        (sync, "after_cursor_execute", after),
        (sync, "begin", on_begin),
        (sync, "commit", on_commit),
        (sync, "rollback", on_rollback),
        (sync.pool, "checkout", on_checkout),
    ]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    patched: list[tuple[type, str, Any]] = []

    def count_calls(cls: type, name: str, kind: Callable[[tuple[Any, ...]], str]) -> None:
        original = getattr(cls, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            trace.trips[kind(args)] += 1
            return await original(*args, **kwargs)

        patched.append((cls, name, original))
        setattr(cls, name, counted)

    if engine.dialect.name == "sqlite":  # Connection._execute(self, fn, *args): fn is cursor, execute, …
        count_calls(aiosqlite.core.Connection, "_execute", lambda a: getattr(a[1], "__name__", "?"))
    else:  # BEGIN/COMMIT/ROLLBACK go through execute, the pool's pre-ping through fetchrow(";")
        connection = importlib.import_module("asyncpg.connection").Connection
        count_calls(connection, "execute", lambda a: str(a[1]).split()[0].rstrip(";"))
        count_calls(connection, "fetchrow", lambda a: "pre-ping ;" if str(a[1]) == ";" else "fetchrow")
        count_calls(connection, "fetchval", lambda a: "fetchval")
        count_calls(connection, "prepare", lambda a: "prepare")
    try:
        yield trace
    finally:
        for target, name, fn in listeners:
            event.remove(target, name, fn)
        for cls, name, original in patched:
            setattr(cls, name, original)
        if engine.dialect.name == "postgresql":  # prepared statements run through asyncpg's Cython protocol
            trace.trips["statement"] += len(trace.statements)


async def traced(engine: AsyncEngine, app: App, updates: list[Update]) -> Trace:
    """The trace of the first update, with the median times of all (the same kind of update each)."""
    traces = []
    for update in updates:
        with tracing(engine) as trace:
            t0 = time.perf_counter()
            await app.process_update(update)
            trace.seconds = time.perf_counter() - t0
        traces.append(trace)
    first = traces[0]
    first.seconds = statistics.median(t.seconds for t in traces)
    first.sql_seconds = statistics.median(t.sql_seconds for t in traces)
    return first


# -- floors -------------------------------------------------------------------------------------------------
def floor_application(api: BotAPI) -> App:
    """The same Application type, context type and defaults as ``bot.app.build_application``; no handlers."""
    return (
        Application.builder()
        .token(TOKEN)
        .context_types(ContextTypes(context=BotContext))
        .defaults(
            Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True))
        )
        .application_class(TracedApplication)
        .request(api)
        .get_updates_request(api)
        .build()
    )


FLOOR_ECHO = "(a) echo, no database"
FLOOR_SELECT = "(b) echo + 1 SELECT by primary key"
FLOOR_INSERT = "(c) echo + 1 INSERT transaction"
FLOOR_BUTTON = "(a′) echo a button press: answer + edit, no database"
READ, WRITE, FLOW = "read: /my", "write: confirm a visit", "whole /visit flow, per update"
# The first update after IDENTITY_CACHE_SECONDS (or after any change to users) looks the user up again.
READ_COLD = "read: /my, who-is-asking not remembered"


def floor_handlers(db: SessionMaker, user_id: int) -> dict[str, Any]:
    async def echo(update: Update, context: BotContext) -> None:
        assert update.effective_chat is not None and update.effective_message is not None
        await update.effective_chat.send_message(update.effective_message.text or "…")

    async def select_echo(update: Update, context: BotContext) -> None:
        async with db() as session:
            user = await session.get(User, user_id)
        assert user is not None
        await echo(update, context)

    async def insert_echo(update: Update, context: BotContext) -> None:
        async with db.begin() as session:
            session.add(
                AuditLog(actor_id=user_id, action="bench", entity="floor", details={}, created_at=NOW)
            )
        await echo(update, context)

    async def button_echo(update: Update, context: BotContext) -> None:
        query = update.callback_query
        assert query is not None and isinstance(query.message, Message)
        await query.answer()
        await query.message.edit_text(
            f"{query.data} {update.update_id}", reply_markup=query.message.reply_markup
        )

    return {FLOOR_ECHO: echo, FLOOR_SELECT: select_echo, FLOOR_INSERT: insert_echo, FLOOR_BUTTON: button_echo}


# -- the runs -----------------------------------------------------------------------------------------------
@dataclass
class Result:
    backend: str
    version: str
    seeded: Seeded
    rounds: int
    measurements: dict[str, Measurement]
    flow_totals: list[float]  # seconds per whole /visit flow
    traces: dict[str, Trace]
    flow_traces: list[tuple[str, Trace]]
    profile: str = ""


def settings_for(url: str) -> Settings:
    return Settings(_env_file=None, telegram_bot_token=TOKEN, database_url=url)


@asynccontextmanager
async def running(app: App) -> AsyncIterator[App]:
    """Initialised, with post_init run, as `python -m bot run` does; without polling."""
    async with app:
        if app.post_init is not None:
            await app.post_init(app)
        try:
            yield app
        finally:
            if app.post_shutdown is not None:
                await app.post_shutdown(app)


def runtime_db(app: App) -> SessionMaker:
    runtime: Runtime = app.bot_data["runtime"]
    return runtime.db


async def measure(
    url: str, iterations: int, rounds: int, *, profile: bool = False, district: District = District()
) -> Result:
    errors = ErrorCount()
    logging.getLogger().addHandler(errors)
    warm = max(5, iterations // 20)
    engine = create_engine(url)
    try:
        timed = iterations + warm  # confirmers: timed, then the one traced, then those profiled
        seeded = await seed(engine, timed + TRACES + PROFILE_CONFIRMS * profile, district)
        confirmers = seeded.confirmers[:timed]
        db = create_sessionmaker(engine)
        api = BotAPI()
        app = build_application(settings_for(url), request=api, clock=lambda: NOW)
        floors: dict[str, App] = {}
        for name, handler in floor_handlers(db, seeded.reader).items():
            floors[name] = floor_application(api)
            if name == FLOOR_BUTTON:
                floors[name].add_handler(CallbackQueryHandler(handler))
            else:
                floors[name].add_handler(MessageHandler(filters.TEXT & filters.ChatType.PRIVATE, handler))
        async with running(app), AsyncExitStack() as stack:
            for floor in floors.values():
                await stack.enter_async_context(floor)
            if engine.dialect.name == "postgresql":
                async with engine.connect() as conn:
                    server = str(await conn.scalar(text("SHOW server_version")))
            else:
                server = sqlite3.sqlite_version
            result = Result(engine.dialect.name, server, seeded, rounds, {}, [], {}, [])
            series = await _floor_series(floors, api, seeded, iterations, warm)
            series += await _step_series(result, app, api, seeded, confirmers, iterations, warm)
            result.measurements = await interleaved(series, rounds)
            await _check_steps(app, seeded, confirmers)
            traced_users = seeded.confirmers[timed : timed + TRACES]
            await _trace(result, floors, app, api, seeded, traced_users, engine)
            if profile:
                result.profile = await _profile(app, api, seeded, seeded.confirmers[timed + TRACES :])
    finally:
        await engine.dispose()
        logging.getLogger().removeHandler(errors)
    if errors.counts["ERROR"]:
        raise SystemExit(f"errors were logged while measuring: {errors.first}")
    return result


async def _floor_series(
    floors: dict[str, App], api: BotAPI, seeded: Seeded, n: int, warm: int
) -> list[Series]:
    tg = TG_BASE + seeded.reader
    series = []
    for name, app in floors.items():
        chat = Chat(app, api, tg)
        if name == FLOOR_BUTTON:
            sent = await app.bot.send_message(tg, "echo", reply_markup=ONE_BUTTON)
            message = api.find(tg, sent.message_id)
            assert message is not None
            updates = [chat.callback_update("echo", message) for _ in range(n + warm)]
        else:  # the same update as the read step: the command /my from a private chat
            updates = [chat.message_update(**text_fields("/my")) for _ in range(n + warm)]
        series.append(Series(name, prepared(app, updates), n, warm))
    return series


async def _step_series(
    result: Result, app: App, api: BotAPI, seeded: Seeded, confirmers: list[int], n: int, warm: int
) -> list[Series]:
    reader = Driver(app, api, seeded.reader)
    reads = [reader.text("/my") for _ in range(n + warm)]
    cold_reads = [reader.text("/my") for _ in range(n + warm)]

    # The write step: each confirmer walks to the visit summary now (not timed); their Confirm taps are timed.
    confirms = []
    for uid in confirmers:
        d = Driver(app, api, uid)
        await drive(app, visit_to_summary(d, seeded.enterprise_of[uid], "宣讲了最新惠企政策"))
        confirms.append(d.tap("confirm"))

    # Whole /visit flows, one after another, rotating over a few users.
    flow_runs = itertools.count()

    async def flows(k: int) -> list[float]:
        latencies: list[float] = []
        for _ in range(k):
            i = next(flow_runs)
            uid = seeded.flow_users[i % len(seeded.flow_users)]
            d, spent = Driver(app, api, uid), []
            for _label, update in visit_flow(d, seeded.enterprise_of[uid], f"第{i}次走访"):
                t0 = time.perf_counter()
                await app.process_update(update)
                spent.append(time.perf_counter() - t0)
            if not d.last_text.startswith("✅"):
                raise AssertionError(f"visit flow {i} not saved: {d.last_text[:200]!r}")
            latencies += spent
            result.flow_totals.append(sum(spent))
        return latencies

    return [
        Series(READ, prepared(app, reads), n, warm),
        Series(READ_COLD, forgetting(app, prepared(app, cold_reads)), n, warm),
        Series(WRITE, prepared(app, confirms), n, warm),
        Series(FLOW, flows, max(3, math.ceil(n / 9)), 2, after_warm_up=result.flow_totals.clear),
    ]


async def _check_steps(app: App, seeded: Seeded, confirmers: list[int]) -> None:
    """What was timed must have worked: /my answered with the overview, every confirm saved one visit."""
    reader = api_last(app, seeded.reader)
    if "联络员1" not in reader:
        raise AssertionError(f"/my did not answer with the overview: {reader[:200]!r}")
    async with runtime_db(app)() as session:
        saved = await session.scalar(
            select(func.count()).select_from(Visit).where(Visit.user_id.in_(confirmers))
        )
        left = await session.scalar(
            select(func.count()).select_from(Draft).where(Draft.user_id.in_(confirmers))
        )
    if saved != len(confirmers) or left:
        raise AssertionError(f"{len(confirmers)} confirms saved {saved} visits and left {left} drafts")


def api_last(app: App, user_id: int) -> str:
    api = app.bot.request
    assert isinstance(api, BotAPI)
    return api.last(TG_BASE + user_id).text


async def _trace(
    result: Result,
    floors: dict[str, App],
    app: App,
    api: BotAPI,
    seeded: Seeded,
    confirmers: list[int],
    engine: AsyncEngine,
) -> None:
    """A few more updates of each kind with the statements recorded (after, not among, the timed ones)."""
    tg = TG_BASE + seeded.reader
    bot_engine = runtime_engine(app)
    for name in (FLOOR_SELECT, FLOOR_INSERT):
        chat = Chat(floors[name], api, tg)
        updates = [chat.message_update(**text_fields("/my")) for _ in range(TRACES)]
        result.traces[name] = await traced(engine, floors[name], updates)
    reader = Driver(app, api, seeded.reader)
    result.traces[READ] = await traced(bot_engine, app, [reader.text("/my") for _ in range(TRACES)])
    app.bot_data["runtime"].identities.clear()
    result.traces[READ_COLD] = await traced(bot_engine, app, [reader.text("/my")])
    confirms = []
    for uid in confirmers:
        d = Driver(app, api, uid)
        await drive(app, visit_to_summary(d, seeded.enterprise_of[uid], "宣讲了最新惠企政策"))
        confirms.append(d.tap("confirm"))
    result.traces[WRITE] = await traced(bot_engine, app, confirms)
    uid = seeded.flow_users[0]
    d = Driver(app, api, uid)
    for label, update in visit_flow(d, seeded.enterprise_of[uid], "追踪"):
        result.flow_traces.append((label, await traced(bot_engine, app, [update])))


PROFILE_READS, PROFILE_CONFIRMS = 3000, 1000
BUCKETS = (
    "event loop and driver: waiting for the database, socket I/O, hand-offs to aiosqlite's thread",
    "SQLAlchemy: building statements in bot/storage (select(), where(), subqueries)",
    "SQLAlchemy: executing (session, compiled cache, ORM loading, flush, greenlets)",
    "python-telegram-bot and the Bot API double",
    "the bot's own code",
    "other",
)
_STORAGE = re.compile(r"\((bot/storage/)?(mywork|users|visits|drafts|enterprises|problems|audit)\.py:")
_EXECUTING = re.compile(r"^(\w+\.)?(execute|scalar|scalars|get|_execute_internal|greenlet_spawn) \(")


def _bucket(stack: list[str]) -> str:
    """Where a sample of the main thread was, by its innermost frame (py-spy's ``func (path:line)``)."""
    leaf = stack[-1]
    found = re.search(r"\(([^()]+):\d+\)$", leaf)
    path = found.group(1) if found else ""
    if "EpollSelector.select" in leaf or path.startswith(
        ("asyncio/", "selectors", "aiosqlite/", "asyncpg/", "threading", "queue")
    ):
        return BUCKETS[0]
    building = any(_STORAGE.search(f) for f in stack) and not any(_EXECUTING.search(f) for f in stack)
    if path.startswith("sqlalchemy/sql/") and building:
        return BUCKETS[1]
    if path.startswith(("sqlalchemy/", "greenlet")):
        return BUCKETS[2]
    if path.startswith(("telegram/", "json/", "html/", "_markupbase", "tests/botapi")) or "botapi.py" in path:
        return BUCKETS[3]
    if path.startswith("bot/") or _STORAGE.search(leaf):
        return BUCKETS[4]
    return BUCKETS[5]


async def _profile(app: App, api: BotAPI, seeded: Seeded, users: list[int]) -> str:
    """Sample this process with py-spy (wall clock, idle included) while it processes /my updates and then
    Confirm taps (their drafts prepared beforehand), and sum the samples by where the time went."""
    spy = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if spy is None:
        return "\n(--profile: py-spy not found; `pip install py-spy` or set PY_SPY=/path/to/py-spy)\n"
    reader = Driver(app, api, seeded.reader)
    batches = {READ: [reader.text("/my") for _ in range(PROFILE_READS)], WRITE: []}
    for uid in users:
        d = Driver(app, api, uid)
        await drive(app, visit_to_summary(d, seeded.enterprise_of[uid], "性能分析"))
        batches[WRITE].append(d.tap("confirm"))
    lines = ["", "### Where the time goes (py-spy, wall clock, main thread)", ""]
    OUT.mkdir(exist_ok=True)
    for name, updates in batches.items():
        raw = OUT / f"flows-{runtime_engine(app).dialect.name}-{name.split(':')[0]}.txt"
        spy_args = ["record", "-p", str(os.getpid()), "-r", "250", "-f", "raw", "--threads", "--idle"]
        # Blocking sleeps and waits (not awaits) while py-spy attaches and writes: those samples end in this
        # function, not in the event loop's select, and are left out below.
        process = subprocess.Popen(
            [spy, *spy_args, "-o", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(1.5)
        for update in updates:
            await app.process_update(update)
        process.send_signal(signal.SIGINT)
        process.wait()
        samples: Counter[str] = Counter()
        for line in raw.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            if count.isdigit() and "MainThread" in frames[0] and not frames[-1].startswith("_profile "):
                samples[_bucket(frames)] += int(count)
        total = samples.total() or 1
        lines.append(f"`{name}`, {len(updates)} updates, {total} samples ({raw}):\n")
        lines += [f"- {samples[b] / total:.0%} {b}" for b in BUCKETS]
        lines.append("")
    return "\n".join(lines)


def runtime_engine(app: App) -> AsyncEngine:
    runtime: Runtime = app.bot_data["runtime"]
    return runtime.engine


# -- the soak -----------------------------------------------------------------------------------------------
class WatchedAPI(BotAPI):
    """The Bot API double, noting when a reply (a sent or edited message) reaches each chat."""

    REPLIES: ClassVar[frozenset[str]] = frozenset({"sendMessage", "editMessageText"})

    def __init__(self) -> None:
        super().__init__()
        self.waiting: dict[int, asyncio.Future[float]] = {}
        self.unexpected: Counter[int] = Counter()  # replies nobody waited for (e.g. to a redelivered update)
        self.alerts = 0

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BotAPI.DEFAULT_NONE,
        write_timeout: Any = BotAPI.DEFAULT_NONE,
        connect_timeout: Any = BotAPI.DEFAULT_NONE,
        pool_timeout: Any = BotAPI.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        answer = await super().do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )
        name = url.rpartition("/")[2]
        params = request_data.parameters if request_data else {}
        if name in self.REPLIES and "chat_id" in params:
            chat = int(str(params["chat_id"]))
            waiter = self.waiting.pop(chat, None)
            if waiter is None or waiter.done():
                self.unexpected[chat] += 1
            else:
                waiter.set_result(time.perf_counter())
        elif name == "answerCallbackQuery" and params.get("show_alert"):
            self.alerts += 1
        return answer


@dataclass
class SoakUser:
    driver: Driver
    enterprise_id: int
    rng: random.Random
    refs: list[str] = field(default_factory=list)  # what the bot said it saved, in order
    last_success: str = ""
    failure: str = ""
    double_taps: int = 0
    redelivered: int = 0


@dataclass
class SoakResult:
    seconds: float
    users: int
    updates: int
    latencies: list[float]
    visits: int
    problems: int
    checks: dict[str, bool]
    details: list[str]
    warnings: Counter[str]
    double_taps: int
    redelivered: int


def success_prefixes() -> dict[str, str]:
    """The start of the success text of each flow, in the default language (up to the reference)."""
    _ = gettext_for("zh_CN")
    templates = {
        "V": _("✅ Visit saved as <b>{ref}</b>: {name}, {date}."),
        "P": _("Problem {ref} is recorded for {enterprise}. Status: open. Follow it up with /my."),
    }
    return {kind: re.sub(r"<[^>]+>", "", t.split("{ref}")[0]) for kind, t in templates.items()}


async def soak(url: str, seeded: Seeded, seconds: float) -> SoakResult:
    """200 users, each running /visit and /problem flows back to back (no think time) through the update
    queue of a started Application, until ``seconds`` have passed; then everything is checked."""
    errors = ErrorCount()
    logging.getLogger().addHandler(errors)
    api = WatchedAPI()
    app = build_application(settings_for(url), request=api, clock=lambda: NOW)
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    prefixes = success_prefixes()

    async def deliver(user: SoakUser, update: Update, *also: Update) -> None:
        """Queue the update (and ``also``: a double tap, a redelivery) and wait for the reply to it."""
        chat = user.driver.chat.user_id
        waiter: asyncio.Future[float] = loop.create_future()
        api.waiting[chat] = waiter
        t0 = time.perf_counter()
        for queued in (update, *also):
            await app.update_queue.put(queued)
        try:
            latencies.append(await asyncio.wait_for(waiter, REPLY_TIMEOUT) - t0)
        except TimeoutError:
            api.waiting.pop(chat, None)
            raise AssertionError(f"no reply within {REPLY_TIMEOUT:.0f} s") from None

    async def run_user(user: SoakUser, deadline: float) -> None:
        d, n = user.driver, 0
        try:
            while time.perf_counter() < deadline:
                n += 1
                kind = "P" if user.rng.random() < 0.25 else "V"
                script = (
                    problem_flow(d, user.enterprise_id, f"压力测试问题{n}")
                    if kind == "P"
                    else visit_flow(d, user.enterprise_id, f"压力测试走访{n}")
                )
                for label, update in script:
                    also: list[Update] = []
                    if label == "confirm" and user.rng.random() < 0.05:  # a double tap on Confirm
                        user.double_taps += 1
                        also.append(d.press_again(update))
                    elif label in ("notes", "description") and user.rng.random() < 0.05:
                        user.redelivered += 1  # Telegram delivers the very same update again
                        also.append(update)
                    await deliver(user, update, *also)
                found = REF.search(d.last_text)
                if found is None or found.group(1) != kind or not d.last_text.startswith(prefixes[kind]):
                    raise AssertionError(f"flow {n} not confirmed: {d.last_text[:200]!r}")
                user.refs.append(found.group(0))
                user.last_success = d.last_text
        except AssertionError as exc:
            user.failure = str(exc)

    users = [
        SoakUser(Driver(app, api, uid), seeded.enterprise_of[uid], random.Random(uid))
        for uid in seeded.soak_users
    ]
    try:
        async with running(app):
            await app.start()
            started = time.perf_counter()
            await asyncio.gather(*(run_user(u, started + seconds) for u in users))
            elapsed = time.perf_counter() - started
            await app.update_queue.join()  # the last double taps and redeliveries
            await app.stop()
            async with runtime_db(app)() as session:
                saved = await _saved_refs(session, seeded.soak_users)
                drafts = await session.scalar(
                    select(func.count()).select_from(Draft).where(Draft.user_id.in_(seeded.soak_users))
                )
    finally:
        logging.getLogger().removeHandler(errors)
    claimed = Counter(ref for u in users for ref in u.refs)
    visits = sum(n for ref, n in claimed.items() if ref.startswith("V"))
    failures = [f"user {u.driver.user_id}: {u.failure}" for u in users if u.failure]
    wrong_last = [u.driver.user_id for u in users if u.driver.last_text != u.last_success]
    per_user_db: Counter[int] = Counter(uid for uid, _ref in saved)
    checks = {
        "every update answered (no reply lost or late)": not failures,
        "records in the database = confirms the users saw (none lost)": len(saved) == claimed.total(),
        "no record twice (each ref once, the same refs, per-user counts equal)": (
            max(claimed.values(), default=1) == 1
            and {ref for _uid, ref in saved} == set(claimed)
            and all(per_user_db[u.driver.user_id] == len(u.refs) for u in users)
        ),
        "each user's last message is their last success text": not wrong_last,
        "double taps and redeliveries: no reply, an 'expired' alert per double tap": not api.unexpected
        and api.alerts == sum(u.double_taps for u in users),
        "no draft left behind": drafts == 0,
        "no ERROR logged": errors.counts["ERROR"] == 0,
    }
    details = failures[:5]
    if errors.counts["ERROR"]:
        details.append(f"first ERROR: {errors.first['ERROR']}")
    if wrong_last:
        details.append(f"last message not the success text for users {wrong_last[:10]}")
    if api.unexpected:
        details.append(f"unexpected replies in chats {dict(api.unexpected.most_common(5))}")
    if api.alerts != sum(u.double_taps for u in users):
        details.append(f"{api.alerts} alerts for {sum(u.double_taps for u in users)} double taps")
    return SoakResult(
        seconds=elapsed,
        users=len(users),
        updates=len(latencies),
        latencies=latencies,
        visits=visits,
        problems=claimed.total() - visits,
        checks=checks,
        details=details,
        warnings=errors.counts,
        double_taps=sum(u.double_taps for u in users),
        redelivered=sum(u.redelivered for u in users),
    )


async def _saved_refs(session: Any, users: list[int]) -> list[tuple[int, str]]:
    rows: list[tuple[int, str]] = []
    for visit in await session.scalars(select(Visit).where(Visit.user_id.in_(users))):
        rows.append((visit.user_id, visit.ref))
    for problem in await session.scalars(select(Problem).where(Problem.reporter_id.in_(users))):
        rows.append((problem.reporter_id, problem.ref))
    return rows


# -- idle memory --------------------------------------------------------------------------------------------
def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _idle_child(url: str) -> None:
    importlib.import_module("bot.__main__")  # what `python -m bot run` imports (uvicorn, the CLI, …)
    gc.collect()
    imported = _rss_mb()
    app = build_application(settings_for(url), request=BotAPI(), clock=lambda: NOW)
    async with running(app):
        await app.start()  # the job queue and the update fetcher, as when polling
        await asyncio.sleep(1.0)
        gc.collect()
        started = _rss_mb()
        await app.stop()
    print(json.dumps({"imported_mb": imported, "running_mb": started}))


def idle_memory(url: str) -> dict[str, float]:
    """RSS of a fresh process that has imported the bot (as ``python -m bot run`` does), built, initialised
    (post_init: schema check, command menus) and started the Application, the Bot API double standing in for
    Telegram."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.flows", "--idle-child", url],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


# -- the report ---------------------------------------------------------------------------------------------
def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    cpus = len(os.sched_getaffinity(0))
    return (
        f"{cpus} CPUs (nproc) · {cpu} · {platform.system()} {platform.release()} · Python "
        f"{platform.python_version()} · SQLite {sqlite3.sqlite_version} · python-telegram-bot "
        f"{version('python-telegram-bot')} · SQLAlchemy {version('sqlalchemy')} · aiosqlite "
        f"{version('aiosqlite')} · asyncpg {version('asyncpg')}"
    )


FLOOR_OF: dict[str, tuple[str, float | None]] = {
    READ: (FLOOR_SELECT, READ_TARGET),
    READ_COLD: (FLOOR_SELECT, None),
    WRITE: (FLOOR_INSERT, WRITE_TARGET),
    FLOW: (FLOOR_INSERT, None),
}


def table(result: Result) -> str:
    lines = [
        "| update | updates/s | p50 ms | p99 ms | mean ms | ratio to floor (p50) | ratio (mean) | target |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in result.measurements.values():
        cells = f"| {m.name} | {m.per_second:,.0f} | {m.p50:.2f} | {m.p99:.2f} | {m.mean:.2f} |"
        if m.name not in FLOOR_OF:
            lines.append(f"{cells} — | — | — |")
            continue
        floor_name, target = FLOOR_OF[m.name]
        floor = result.measurements[floor_name]
        ratio = m.p50 / floor.p50
        verdict = (
            "(for reference)"
            if target is None
            else f"≤ {target:g}× {'met' if ratio <= target else '**missed**'}"
        )
        lines.append(
            f"{cells} {ratio:.2f}× {floor_name[:3]} | {m.mean / floor.mean:.2f}× {floor_name[:3]} "
            f"| {verdict} |"
        )
    flows = Measurement("flow", result.flow_totals, sum(result.flow_totals))
    per_flow = len(result.measurements[FLOW].latencies) / max(1, len(result.flow_totals))
    lines.append(
        f"\nWhole /visit flows: {len(result.flow_totals)} flows of {per_flow:.0f} updates (/visit, "
        "enterprise, topic, done, notes, skip location, skip photos, party unchanged, confirm); "
        f"per flow p50 {flows.p50:.1f} ms, "
        f"p99 {flows.p99:.1f} ms. Measured in {result.rounds} interleaved rounds after a warm-up."
    )
    return "\n".join(lines)


def _shorten(statement: str) -> str:
    """The statement with plain column lists elided."""
    column = r"[\w.]+(?: AS \w+)?"
    statement = re.sub(rf"SELECT (?:{column}, )*{column} FROM", "SELECT … FROM", statement)
    statement = re.sub(r"\(([a-z_]+), [^)]*\) VALUES \([^)]*\)", r"(\1, …) VALUES (…)", statement)
    statement = re.sub(r" SET .*? WHERE ", " SET … WHERE ", statement)
    statement = re.sub(r"RETURNING .*$", "RETURNING …", statement)
    return statement if len(statement) <= 240 else statement[:239] + "…"


def trace_table(result: Result) -> str:
    lines = [
        "| update | SQL statements | transactions | commits | rollbacks | checkouts | round trips "
        "| ms in SQL | ms total |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def row(name: str, t: Trace) -> str:
        return (
            f"| {name} | {len(t.statements)} | {t.transactions} | {t.commits} | {t.rollbacks} "
            f"| {t.checkouts} | {t.round_trips} | {t.sql_seconds * 1000:.2f} | {t.seconds * 1000:.2f} |"
        )

    lines += [row(name, t) for name, t in result.traces.items()]
    whole = Trace()
    for label, t in result.flow_traces:
        whole.add(t)
        lines.append(row(f"/visit flow: {label}", t))
    lines.append(row("whole /visit flow", whole))
    unit = (
        "calls into aiosqlite's worker thread and back"
        if result.backend == "sqlite"
        else "what asyncpg sends and waits for, the pool's pre-ping at every checkout included"
    )
    lines.append(
        f"\nRound trips: {unit}. ms in SQL: inside cursor.execute (with the fetch). Times: median of "
        f"{TRACES} traced updates (flow steps: one each), slowed down by the tracing. Round trips by kind:\n"
    )
    for name in (FLOOR_SELECT, FLOOR_INSERT, READ, READ_COLD, WRITE):
        kinds = ", ".join(f"{kind} ×{n}" for kind, n in result.traces[name].trips.most_common())
        lines.append(f"- {name}: {kinds}")
    lines.append("")
    for name in (READ, WRITE):
        lines.append(f"Statements of one `{name}` update, in order:\n")
        lines += [f"{i}. `{_shorten(s)}`" for i, s in enumerate(result.traces[name].statements, 1)]
        lines.append("")
    return "\n".join(lines)


def soak_report(s: SoakResult) -> str:
    m = Measurement("soak", s.latencies, s.seconds)
    lines = [
        f"{s.users} users for {s.seconds:.1f} s, each running /visit (¾) and /problem (¼) flows back to "
        "back, no think time, through the update queue of the started Application: "
        f"{s.updates:,} updates answered ({m.per_second:,.0f}/s); latency from queueing an update to "
        f"its reply p50 {m.p50:.0f} ms, "
        f"p99 {m.p99:.0f} ms, max {max(s.latencies, default=0) * 1000:.0f} ms; {s.visits:,} visits and "
        f"{s.problems:,} problems confirmed; {s.double_taps} confirms double-tapped, {s.redelivered} updates "
        f"delivered twice; {s.warnings['WARNING']} warnings logged.",
        "",
    ]
    lines += [f"- {'✔' if ok else '✘ FAILED:'} {check}" for check, ok in s.checks.items()]
    lines += [f"  - {detail}" for detail in s.details]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------------------
async def main_async(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()[0]
    url = await fresh_database(args.database_url, args.admin_database)
    try:
        result = await measure(url, args.iterations, args.rounds, profile=args.profile)
        memory = idle_memory(url)
        soaked = None if args.skip_soak else await soak(url, result.seeded, args.soak_seconds)
    finally:
        await drop_database(url, args.admin_database)
    c = result.seeded.counts
    print(f"\n## bench.flows — {'SQLite' if result.backend == 'sqlite' else 'PostgreSQL'} {result.version}\n")
    print(f"Machine: {machine()}.")
    print(
        f"Load average (1 min) at the start and the end of the run: {load_before:.2f}, "
        f"{os.getloadavg()[0]:.2f} (other processes compete for the same {len(os.sched_getaffinity(0))} "
        "CPUs; the interleaved rounds share that noise between floors and steps).\n"
    )
    print(
        f"Database: {c['users']} users, {c['enterprises']:,} enterprises, {c['visits']:,} visits, "
        f"{c['problems']:,} problems. {args.iterations:,} timed updates per row.\n"
    )
    print(table(result))
    print("\n### Database work per update\n")
    print(trace_table(result))
    verdict = "met" if memory["running_mb"] < MEMORY_TARGET_MB else "**missed**"
    print(
        f"### Idle memory\n\nRSS of a fresh process after importing the bot: {memory['imported_mb']:.0f} "
        "MB; with the Application built, initialised and started on this database: "
        f"{memory['running_mb']:.0f} MB "
        f"(target < {MEMORY_TARGET_MB:.0f} MB: {verdict}).\n"
    )
    ok = True
    if soaked is not None:
        print("### Soak\n")
        print(soak_report(soaked))
        ok = all(soaked.checks.values())
    if result.profile:
        print(result.profile)
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=1000, help="timed updates per row (default 1000)")
    parser.add_argument(
        "--database-url", default=None, help="default: a fresh SQLite file bench/out/flows.db (recreated)"
    )
    parser.add_argument("--admin-database", default="test", help="PostgreSQL: where to CREATE/DROP DATABASE")
    parser.add_argument("--soak-seconds", type=float, default=60.0, help="length of the soak (default 60)")
    parser.add_argument("--skip-soak", action="store_true", help="no soak")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the timed series")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also sample the read and write steps with py-spy",
    )
    parser.add_argument("--idle-child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.idle_child:
        asyncio.run(_idle_child(args.idle_child))
        return
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
