"""Benchmark: /stats, /coverage, /pending and /export end to end through the real handlers, against the
plain oracle SQL (tests/oracle.py; for /export the ledger oracle below) on the same database in the same run.

Generates a district (default 10,000 enterprises, 500,000 visits over two years, 50,000 problems, 20,000
service requests, 300 staff in 20 departments and 30 communities; ``--scale`` multiplies it), then, for each
report, times the median of ``--runs`` runs of

- the handler: an update processed by the real Application (guard, role check, one unit of work, figures,
  chart rendering, the sendMessage/sendPhoto/sendDocument calls answered by the Bot API double of
  tests/botapi.py);
- the oracle: the same figures by the straightforward SQL of tests/oracle.py (no rendering, no Telegram).

/export is timed for the month of the data with the most live visits (a full calendar month, ~21,000
visits at the default size; the output names it), as XLSX and as ``csv``, plus the ledger service alone
(the file written, no Telegram). Its oracle is `export_oracle`: plain SQL selecting the rows the ledger
holds (the whole enterprise register with its people and the month's visit counts, the month's live
visits, the problems reported or changed in the month with their history, the service requests requested
or delivered in it) and fetching them all. Once per format, the sheets' row counts of the sent file are
checked against the oracle's.

The export's memory is measured in a child process (``--export-child``, on the same database): it builds the
Application, notes its RSS, exports the largest month through the handler and reports its peak RSS
(``ru_maxrss``). This is repeated on a database generated at each of ``--memory-scales`` (default 0.2 and 1;
the main database serves its own scale) to show the peak does not grow with the data. Target: < 200 MB.

    .venv/bin/python -m bench.reports [--scale 1] [--runs 5] [--database-url postgresql+asyncpg://…/bench]
    .venv/bin/python -m bench.reports --reuse   # skip generating: time the existing bench/out/reports.db

A PostgreSQL database is emptied and refilled: its name must contain "bench" (or pass --force). The databases
of the other memory scales are bench/out/reports-scale<s>.db (SQLite, kept; reused with --reuse) or
<name>_scale<s> (PostgreSQL, created, filled and dropped in the run).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import io
import json
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.app import build_application
from bot.config import Settings
from bot.context import Runtime
from bot.services import charts
from bot.services.credit_code import credit_code_check_char
from bot.services.ledger import Format, export_ledger
from bot.services.periods import (
    Period,
    PeriodKind,
    elapsed_part,
    local_today,
    period_containing,
    trend_weeks,
)
from bot.services.stats import coverage_report, stats_report
from bot.storage.db import create_engine
from bot.storage.enums import PartyOrg, ProblemCategory, ProblemStatus, Role, ServiceStatus, Stage
from bot.storage.migrate import upgrade
from bot.storage.models import (
    Assignment,
    Base,
    Enterprise,
    MenuItem,
    Problem,
    ServiceRequest,
    User,
    UTCDateTime,
    Visit,
)
from tests import oracle
from tests.botapi import BotAPI, Chat

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # Wednesday 12:00 in Beijing
TZ = ZoneInfo("Asia/Shanghai")
SPAN = timedelta(days=730)
SUPERVISOR_TG = 900_000_001
_DEPARTMENT_NAMES = (
    "发改 商务 市场监管 人社 科技 财政 住建 交通 农业 文旅 应急 生态 卫健 教育 民政 司法 统计 税务 工信 城管"
)
_COMMUNITY_NAMES = (
    "东城 西城 南湖 北苑 花园 滨江 新港 光明 和平 幸福 长安 青山 金桥 银湖 明珠 "
    "朝阳 锦绣 康乐 龙泉 凤凰 春晓 秋实 星河 月湾 云杉 松涛 竹林 梅园 兰亭 菊苑"
)
DEPARTMENTS = [f"{name}局" for name in _DEPARTMENT_NAMES.split()]
COMMUNITIES = [f"{name}社区" for name in _COMMUNITY_NAMES.split()]
BATCH = 5_000
TARGET_RATIO, TARGET_MS = 2.0, 1000.0
TARGET_EXPORT_MB = 200.0


@dataclass(frozen=True)
class Size:
    enterprises: int
    visits: int
    problems: int
    services: int
    liaisons: int
    instructors: int

    @classmethod
    def scaled(cls, scale: float) -> Size:
        def n(base: int, least: int) -> int:
            return max(least, round(base * scale))

        return cls(n(10_000, 50), n(500_000, 200), n(50_000, 50), n(20_000, 20), n(200, 4), n(100, 2))


def _code(n: int) -> str:
    body = f"91330100{n:09d}"
    return body + credit_code_check_char(body)


async def _insert(engine: AsyncEngine, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        async with engine.begin() as conn:
            await conn.execute(insert(table), rows[start : start + BATCH])


SUGGESTED_INDEXES = (  # not in the schema: measured with --suggested-indexes (see the report)
    "CREATE INDEX ix_visits_live_time ON visits (visited_at, enterprise_id) WHERE withdrawn_at IS NULL",
    "CREATE INDEX ix_visits_live_enterprise ON visits (enterprise_id, visited_at) WHERE withdrawn_at IS NULL",
    "CREATE INDEX ix_problems_status_resolved ON problems (status, resolved_at)",
)


async def create_database(url: str) -> None:
    """Create the PostgreSQL database of ``url`` if it does not exist yet."""
    parsed = make_url(url)
    admin = create_engine(
        parsed.set(database="postgres").render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as conn:
        exists = await conn.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
        )
        if not exists:
            await conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    await admin.dispose()


async def add_indexes(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for statement in SUGGESTED_INDEXES:
            name = statement.split()[2]
            await conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
            await conn.execute(text(statement))
    await analyze(engine)


async def analyze(engine: AsyncEngine) -> None:
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))


async def reset(engine: AsyncEngine) -> None:
    """An empty database at the head revision (PostgreSQL: drop the bot's tables first)."""
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    await upgrade(engine)


async def generate(engine: AsyncEngine, size: Size, *, seed: int = 2026) -> None:
    rng = random.Random(seed)
    first = NOW - SPAN
    span_s = int(SPAN.total_seconds())

    def moment(after: datetime = first) -> datetime:
        return after + timedelta(seconds=rng.randrange(max(1, int((NOW - after).total_seconds()))))

    users: list[dict[str, Any]] = [
        {"id": 1, "telegram_id": SUPERVISOR_TG, "name": "督导", "role": Role.supervisor, "created_at": first}
    ]
    liaisons = list(range(2, 2 + size.liaisons))
    instructors = list(range(2 + size.liaisons, 2 + size.liaisons + size.instructors))
    users += [
        {
            "id": uid,
            "telegram_id": 910_000_000 + uid,
            "name": f"联络员{uid}",
            "role": Role.liaison,
            "department": DEPARTMENTS[uid % len(DEPARTMENTS)],
            "created_at": first,
        }
        for uid in liaisons
    ]
    users += [
        {
            "id": uid,
            "telegram_id": 910_000_000 + uid,
            "name": f"指导员{uid}",
            "role": Role.instructor,
            "community": COMMUNITIES[uid % len(COMMUNITIES)],
            "created_at": first,
        }
        for uid in instructors
    ]
    for row in users:
        row.update(active=True, unreachable=False, muted=[], locale="zh_CN", joined_at=first)
        row.setdefault("department", None)
        row.setdefault("community", None)
    await _insert(engine, User, users)

    orgs = [PartyOrg.none] * 4 + [PartyOrg.standalone] * 2 + [PartyOrg.joint] * 2 + [PartyOrg.affiliated]
    enterprises = [
        {
            "id": i,
            "name": f"企业{i:06d}{rng.choice(['科技', '制造', '商贸', '物流'])}有限公司",
            "credit_code": _code(i),
            "stage": rng.choice(list(Stage)),
            "community": COMMUNITIES[i % len(COMMUNITIES)] if i % 97 else None,
            "party_org": rng.choice(orgs),
            "party_members": rng.randrange(0, 30),
            "created_at": first,
            "updated_at": first,
        }
        for i in range(1, size.enterprises + 1)
    ]
    await _insert(engine, Enterprise, enterprises)

    owners: dict[int, list[int]] = {}
    assignments: list[dict[str, Any]] = []
    for e in range(1, size.enterprises + 1):
        people = []
        if rng.random() < 0.92:
            liaison = rng.choice(liaisons)
            if rng.random() < 0.1:  # reassigned once: the old assignment ended
                old = rng.choice(liaisons)
                assignments.append(
                    {
                        "enterprise_id": e,
                        "user_id": old,
                        "role": Role.liaison,
                        "start_date": date(2024, 11, 1),
                        "end_date": date(2026, 3, 1),
                    }
                )
            assignments.append(
                {
                    "enterprise_id": e,
                    "user_id": liaison,
                    "role": Role.liaison,
                    "start_date": date(2024, 11, 1),
                }
            )
            people.append(liaison)
        if rng.random() < 0.6:
            instructor = rng.choice(instructors)
            assignments.append(
                {
                    "enterprise_id": e,
                    "user_id": instructor,
                    "role": Role.instructor,
                    "start_date": date(2024, 11, 1),
                }
            )
            people.append(instructor)
        owners[e] = people or [rng.choice(liaisons)]
    for row in assignments:
        row.setdefault("end_date", None)
    await _insert(engine, Assignment, assignments)

    visits = []
    for _ in range(size.visits):
        e = rng.randrange(1, size.enterprises + 1)
        at = first + timedelta(seconds=rng.randrange(span_s))
        visits.append(
            {
                "enterprise_id": e,
                "user_id": rng.choice(owners[e]),
                "visited_at": at,
                "topics": ["policy"],
                "notes": "",
                "withdrawn_at": at + timedelta(hours=2) if rng.random() < 0.03 else None,
                "created_at": at,
                "updated_at": at,
            }
        )
    await _insert(engine, Visit, visits)
    del visits

    problems = []
    recent = NOW - timedelta(days=60)
    for _ in range(size.problems):
        e = rng.randrange(1, size.enterprises + 1)
        created = moment()
        weights = (40, 30, 5, 20, 5) if created > recent else (4, 5, 1, 75, 15)
        status = rng.choices(
            [
                ProblemStatus.open,
                ProblemStatus.in_progress,
                ProblemStatus.returned,
                ProblemStatus.resolved,
                ProblemStatus.closed,
            ],
            weights,
        )[0]
        resolved_at = (
            min(created + timedelta(days=rng.uniform(0.1, 60)), NOW)
            if status is ProblemStatus.resolved
            else None
        )
        due = (created + timedelta(days=30)).astimezone(TZ).date() if rng.random() < 0.8 else None
        problems.append(
            {
                "enterprise_id": e,
                "reporter_id": owners[e][0],
                "category": rng.choice(list(ProblemCategory)),
                "description": "企业反映的问题",
                "status": status,
                "department": rng.choice(DEPARTMENTS) if status is not ProblemStatus.open else None,
                "due_date": due,
                "funds_wan": Decimal(rng.randrange(0, 50_000)) / 100
                if resolved_at and rng.random() < 0.3
                else None,
                "created_at": created,
                "updated_at": created,
                "resolved_at": resolved_at,
            }
        )
    await _insert(engine, Problem, problems)
    del problems

    async with engine.connect() as conn:
        menu = list(await conn.scalars(select(MenuItem.id)))
    services = []
    for _ in range(size.services):
        e = rng.randrange(1, size.enterprises + 1)
        created = moment()
        service_status = rng.choices(list(ServiceStatus), (10, 15, 65, 10))[0]
        services.append(
            {
                "enterprise_id": e,
                "requester_id": owners[e][0],
                "menu_item_id": rng.choice(menu),
                "note": "",
                "status": service_status,
                "created_at": created,
                "updated_at": created,
                "delivered_at": min(created + timedelta(days=rng.uniform(1, 30)), NOW)
                if service_status is ServiceStatus.delivered
                else None,
            }
        )
    await _insert(engine, ServiceRequest, services)
    await analyze(engine)  # PostgreSQL: what autovacuum would soon do; SQLite keeps no statistics by default


# -- timing -------------------------------------------------------------------------------------------
async def median_ms(runs: int, work: Callable[[], Awaitable[Any]]) -> float:
    await work()  # warm-up: connection pool, statement caches, the chart thread and its font
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@dataclass
class Row:
    report: str
    handler_ms: float | None
    oracle_ms: float
    note: str = ""


async def measure(url: str, runs: int) -> tuple[list[Row], dict[str, int]]:
    settings = Settings(_env_file=None, telegram_bot_token="1:BENCH", database_url=url)
    api = BotAPI()
    app = build_application(settings, request=api, clock=lambda: NOW)
    rows: list[Row] = []
    async with app:
        await app.post_init(app)  # type: ignore[misc]
        runtime: Runtime = app.bot_data["runtime"]
        chat = Chat(app, api, SUPERVISOR_TG)
        today = local_today(NOW, TZ)
        period = period_containing(today)
        weeks = [w.utc_bounds(TZ) for w in trend_weeks(period, today=today)]

        async def send(command: str) -> None:
            before = len(api.calls)
            await chat.send(command)
            failed = [c for c in api.calls[before:] if not c.ok]
            sent = [c for c in api.calls[before:] if c.method in ("sendMessage", "sendPhoto")]
            assert sent and not failed, (command, [c.params for c in failed] or "nothing sent")

        async def stats_oracle() -> None:
            async with runtime.db() as session:
                await oracle.stats(
                    session,
                    period=period.utc_bounds(TZ),
                    previous=elapsed_part(period, period.previous(), NOW, TZ),
                    weeks=weeks,
                    today=today,
                )

        async def stats_figures() -> None:
            async with runtime.db() as session:
                await stats_report(session, period=period, now=NOW, tz=TZ, scope_user_id=None)

        async def last_week_figures() -> None:
            async with runtime.db() as session:
                await stats_report(session, period=period.previous(), now=NOW, tz=TZ, scope_user_id=None)

        async def last_week_oracle() -> None:
            last: Period = period.previous()
            async with runtime.db() as session:
                await oracle.stats(
                    session,
                    period=last.utc_bounds(TZ),
                    previous=last.previous().utc_bounds(TZ),
                    weeks=[w.utc_bounds(TZ) for w in trend_weeks(last, today=today)],
                    today=today,
                )

        async def coverage_oracle() -> None:
            async with runtime.db() as session:
                await oracle.coverage(session, now=NOW, limit=30)

        async def coverage_figures() -> None:
            async with runtime.db() as session:
                await coverage_report(session, now=NOW, limit=30)

        async def pending_oracle() -> None:
            async with runtime.db() as session:
                await oracle.pending(session)

        stats_o = await median_ms(runs, stats_oracle)
        rows.append(
            Row("/stats (this week, end to end)", await median_ms(runs, lambda: send("/stats")), stats_o)
        )

        async def stats_cold() -> None:
            charts._CACHE.clear()  # every run draws its chart, as the first request after a change does
            await send("/stats")

        rows.append(
            Row("/stats (this week, end to end, chart drawn)", await median_ms(runs, stats_cold), stats_o)
        )
        rows.append(
            Row("/stats figures only (service, no chart)", await median_ms(runs, stats_figures), stats_o)
        )
        last_o = await median_ms(runs, last_week_oracle)
        rows.append(
            Row("/stats last (end to end)", await median_ms(runs, lambda: send("/stats last")), last_o)
        )
        rows.append(Row("/stats last figures only", await median_ms(runs, last_week_figures), last_o))
        coverage_o = await median_ms(runs, coverage_oracle)
        rows.append(
            Row("/coverage (end to end)", await median_ms(runs, lambda: send("/coverage")), coverage_o)
        )
        rows.append(Row("/coverage figures only", await median_ms(runs, coverage_figures), coverage_o))
        pending_o = await median_ms(runs, pending_oracle)
        try:
            pending_h: float | None = await median_ms(runs, lambda: send("/pending"))
            note = ""
        except (AssertionError, NotImplementedError, ImportError) as exc:  # the other helper's part
            pending_h, note = None, f"skipped: /pending handler not usable ({type(exc).__name__})"
        rows.append(Row("/pending (end to end)", pending_h, pending_o, note))
        async with runtime.db() as session:
            counts = {
                model.__tablename__: int(await session.scalar(select(func.count()).select_from(model)) or 0)
                for model in (Enterprise, Visit, Problem, ServiceRequest, Assignment, User)
            }
        await app.post_shutdown(app)  # type: ignore[misc]
    return rows, counts


# -- /export -------------------------------------------------------------------------------------------
LEDGER_SHEETS = ("enterprises", "visits", "problems", "services")  # the data sheets, after the Summary
_LIVE_IN_MONTH = "v.withdrawn_at IS NULL AND v.visited_at >= :start AND v.visited_at < :end"
EXPORT_ORACLE_SQL = {
    # The register as it is now: current liaison and instructor, the month's visits, the last visit before
    # the month ended.
    "enterprises": (
        "SELECT e.name, e.credit_code, e.stage, e.community, e.address, e.industry, e.employees, "
        "e.party_org, e.party_members, "
        "(SELECT u.name FROM assignments a JOIN users u ON u.id = a.user_id "
        " WHERE a.enterprise_id = e.id AND a.role = 'liaison' AND a.end_date IS NULL), "
        "(SELECT u.name FROM assignments a JOIN users u ON u.id = a.user_id "
        " WHERE a.enterprise_id = e.id AND a.role = 'instructor' AND a.end_date IS NULL), "
        f"(SELECT COUNT(*) FROM visits v WHERE v.enterprise_id = e.id AND {_LIVE_IN_MONTH}), "
        "(SELECT MAX(v.visited_at) FROM visits v "
        " WHERE v.enterprise_id = e.id AND v.withdrawn_at IS NULL AND v.visited_at < :end) "
        "FROM enterprises e ORDER BY e.community, e.name, e.id"
    ),
    "visits": (
        "SELECT v.id, v.created_at, v.visited_at, e.name, e.credit_code, e.community, u.name, u.role, "
        "u.department, u.community, v.topics, v.notes, v.party_org, v.party_members, v.distance_m, "
        "(SELECT COUNT(*) FROM attachments t WHERE t.visit_id = v.id) "
        "FROM visits v JOIN enterprises e ON e.id = v.enterprise_id JOIN users u ON u.id = v.user_id "
        f"WHERE {_LIVE_IN_MONTH} ORDER BY v.visited_at, v.id"
    ),
    # Reported in the month or with a history event in it; one row per event (problems without events: one).
    "problems": (
        "SELECT p.id, p.created_at, e.name, e.credit_code, e.community, p.category, p.description, r.name, "
        "p.status, p.department, p.due_date, p.resolution, p.funds_wan, p.resolved_at, "
        "h.created_at, a.name, h.kind, h.from_status, h.to_status, h.note "
        "FROM problems p JOIN enterprises e ON e.id = p.enterprise_id JOIN users r ON r.id = p.reporter_id "
        "LEFT JOIN problem_events h ON h.problem_id = p.id LEFT JOIN users a ON a.id = h.actor_id "
        "WHERE (p.created_at >= :start AND p.created_at < :end) OR p.id IN "
        "(SELECT problem_id FROM problem_events WHERE created_at >= :start AND created_at < :end) "
        "ORDER BY p.id, h.id"
    ),
    "services": (
        "SELECT s.id, s.created_at, e.name, e.credit_code, e.stage, m.name_zh, m.name_en, u.name, s.status, "
        "s.delivered_at, s.note "
        "FROM service_requests s JOIN enterprises e ON e.id = s.enterprise_id "
        "JOIN menu_items m ON m.id = s.menu_item_id JOIN users u ON u.id = s.requester_id "
        "WHERE (s.created_at >= :start AND s.created_at < :end) "
        "OR (s.delivered_at >= :start AND s.delivered_at < :end) "
        "ORDER BY s.created_at, s.id"
    ),
}


async def export_oracle(session: AsyncSession, start: datetime, end: datetime) -> dict[str, int]:
    """Fetch every row the ledger of [start, end) holds, by plain SQL; the row count of each sheet."""
    counts: dict[str, int] = {}
    for sheet, sql in EXPORT_ORACLE_SQL.items():
        stmt = text(sql).bindparams(
            bindparam("start", type_=UTCDateTime()), bindparam("end", type_=UTCDateTime())
        )
        params = {"start": start, "end": end} if ":start" in sql else {"end": end}
        rows = (await session.execute(stmt, params)).all()
        counts[sheet] = len({r[0] for r in rows}) if sheet == "problems" else len(rows)
    return counts


async def table_counts(url: str) -> dict[str, int]:
    """Rows per table (for the heading, when --only export skips the other reports)."""
    engine = create_engine(url)
    async with engine.connect() as conn:
        counts = {
            model.__tablename__: int(await conn.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Enterprise, Visit, Problem, ServiceRequest, Assignment, User)
        }
    await engine.dispose()
    return counts


def full_months() -> list[Period]:
    """The calendar months (local time) entirely inside the generated data's two years."""
    first_day, today = local_today(NOW - SPAN, TZ), local_today(NOW, TZ)
    month = period_containing(first_day, PeriodKind.month).next()
    months = []
    while month.end <= today:
        months.append(month)
        month = month.next()
    return months


async def largest_month(url: str) -> tuple[Period, int]:
    """The full month with the most live visits, and that number."""
    engine = create_engine(url)
    counts: list[tuple[int, Period]] = []
    async with engine.connect() as conn:
        for month in full_months():
            start, end = month.utc_bounds(TZ)
            live = Visit.withdrawn_at.is_(None), Visit.visited_at >= start, Visit.visited_at < end
            counts.append((int(await conn.scalar(select(func.count()).where(*live)) or 0), month))
    await engine.dispose()
    visits, month = max(counts, key=lambda c: (c[0], c[1].start))
    return month, visits


def sheet_rows(document: bytes, fmt: Format) -> dict[str, int]:
    """Data rows (headers left out) of each data sheet of an XLSX workbook or zip of CSV files."""
    counts: list[int] = []
    if fmt is Format.xlsx:
        workbook = load_workbook(io.BytesIO(document), read_only=True)
        counts = [sum(1 for _ in sheet.iter_rows(values_only=True)) - 1 for sheet in workbook.worksheets]
        workbook.close()
    else:
        with zipfile.ZipFile(io.BytesIO(document)) as archive:
            for info in archive.infolist():
                with archive.open(info) as entry:
                    lines = io.TextIOWrapper(entry, encoding="utf-8-sig", newline="")
                    counts.append(sum(1 for _ in csv.reader(lines)) - 1)
    assert len(counts) == 1 + len(LEDGER_SHEETS), counts
    return dict(zip(LEDGER_SHEETS, counts[1:], strict=True))


@dataclass
class ExportCheck:
    month: Period
    month_visits: int
    expected: dict[str, int]  # the oracle's rows per sheet
    found: dict[str, dict[str, int]]  # format -> the sent file's data rows per sheet
    sizes: dict[str, int]  # format -> bytes of the sent file

    @property
    def ok(self) -> bool:
        return all(found == self.expected for found in self.found.values())


async def export_via_chat(chat: Chat, api: BotAPI, month: Period, fmt: Format) -> bytes:
    """Send `/export <month> [csv]` through the Application; the one document it sent. The double's copies
    of the file are dropped, so timed runs do not accumulate them."""
    before = len(api.calls)
    await chat.send(f"/export {month.iso}" + (" csv" if fmt is Format.csv else ""))
    calls = api.calls[before:]
    documents = [c for c in calls if c.method == "sendDocument"]
    assert len(documents) == 1 and all(c.ok for c in calls), [(c.method, c.ok) for c in calls]
    ((_name, content),) = documents[0].files.values()
    api.reset()
    api.files.clear()
    for message in chat.messages():
        message.file_bytes = None
    return content


async def measure_export(
    url: str, runs: int, month: Period, month_visits: int
) -> tuple[list[Row], ExportCheck]:
    settings = Settings(_env_file=None, telegram_bot_token="1:BENCH", database_url=url)
    api = BotAPI()
    app = build_application(settings, request=api, clock=lambda: NOW)
    rows: list[Row] = []
    start, end = oracle.month_bounds(month.year, month.number)  # the oracle's own bounds
    check = ExportCheck(month, month_visits, {}, {}, {})
    async with app:
        await app.post_init(app)  # type: ignore[misc]
        runtime: Runtime = app.bot_data["runtime"]
        chat = Chat(app, api, SUPERVISOR_TG)

        async def export_oracle_run() -> None:
            async with runtime.db() as session:
                check.expected = await export_oracle(session, start, end)

        async def ledger_only() -> None:
            with tempfile.TemporaryDirectory(prefix="bench-ledger-") as directory:
                async with runtime.db() as session:
                    await export_ledger(
                        session,
                        sessions=runtime.db,
                        period=month,
                        tz=TZ,
                        locale="zh_CN",
                        now=NOW,
                        fmt=Format.xlsx,
                        directory=Path(directory),
                    )

        export_o = await median_ms(runs, export_oracle_run)
        for fmt, label in ((Format.xlsx, "XLSX"), (Format.csv, "csv, zipped CSV")):
            documents: list[bytes] = []

            async def run(fmt: Format = fmt, documents: list[bytes] = documents) -> None:
                documents[:] = [await export_via_chat(chat, api, month, fmt)]

            suffix = " csv" if fmt is Format.csv else ""
            rows.append(
                Row(
                    f"/export {month.iso}{suffix} ({label}, end to end)", await median_ms(runs, run), export_o
                )
            )
            check.found[fmt.value] = await asyncio.to_thread(sheet_rows, documents[0], fmt)
            check.sizes[fmt.value] = len(documents[0])
        rows.append(
            Row(
                f"/export {month.iso} ledger file only (service, no Telegram)",
                await median_ms(runs, ledger_only),
                export_o,
            )
        )
        await app.post_shutdown(app)  # type: ignore[misc]
    return rows, check


# -- the export's memory, in a process of its own ------------------------------------------------------
def _status_kb(field: str) -> int | None:
    """A memory figure of /proc/self/status in KB (Linux), None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def max_rss_kb() -> int:
    """ru_maxrss of this process: its peak RSS over its whole life."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KB on Linux


def reset_peak() -> bool:
    """Restart the address space's RSS high-water mark (VmHWM) from the current RSS: "5" into
    /proc/self/clear_refs (Linux ≥ 4.0). ru_maxrss is the larger of that mark and the marks recorded when
    threads exit, so once start-up's worker threads have come and gone it cannot be reset; VmHWM read after
    the export is then the export's own peak (a cross-check of ru_maxrss − start-up)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def export_child(url: str, period: str, fmt: Format) -> dict[str, Any]:
    """The --export-child mode: start the Application, note the RSS, export `period` once through the
    handler, note the peaks."""
    settings = Settings(_env_file=None, telegram_bot_token="1:BENCH", database_url=url)
    api = BotAPI()
    app = build_application(settings, request=api, clock=lambda: NOW)
    async with app:
        await app.post_init(app)  # type: ignore[misc]
        chat = Chat(app, api, SUPERVISOR_TG)
        month = Period(PeriodKind.month, int(period[:4]), int(period[5:7]))
        gc.collect()
        started_kb, startup_peak_kb = _status_kb("VmRSS") or max_rss_kb(), max_rss_kb()
        reset = reset_peak()
        started = time.perf_counter()
        document = await export_via_chat(chat, api, month, fmt)
        seconds = time.perf_counter() - started
        export_peak_kb = _status_kb("VmHWM") if reset else None
        peak_kb = max_rss_kb()
        await app.post_shutdown(app)  # type: ignore[misc]
    return {
        "started_kb": started_kb,
        "startup_peak_kb": startup_peak_kb,
        "export_peak_kb": export_peak_kb,
        "peak_kb": peak_kb,
        "seconds": seconds,
        "bytes": len(document),
    }


@dataclass
class Memory:
    scale: float
    month: Period
    month_visits: int
    fmt: Format
    started_kb: int  # RSS right after start-up
    startup_peak_kb: int  # ru_maxrss right after start-up
    export_peak_kb: int | None  # VmHWM from right after start-up to the end of the export (Linux)
    peak_kb: int  # ru_maxrss at the end: the process's peak
    seconds: float
    size: int

    @property
    def growth_mb(self) -> float:
        return (self.peak_kb - self.started_kb) / 1024


def export_memory(url: str, month: Period, month_visits: int, fmt: Format, scale: float) -> Memory:
    """Run the export of `month` in a child process on `url`; its memory."""
    command = [sys.executable, "-m", "bench.reports", "--export-child", "--database-url", url]
    command += ["--export-period", month.iso, "--export-format", fmt.value]
    if Path("/bin/sh").exists():
        # Linux keeps ru_maxrss across exec: a child exec'd straight from this process would start with this
        # process's peak (hundreds of MB after the timings) as its own. A shell forks the child instead, so
        # its ru_maxrss starts from the shell's few MB. (Not `exec`: that would be the same process again.)
        command = ["/bin/sh", "-c", '"$0" "$@"; exit $?', *command]
    done = subprocess.run(
        command, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=900
    )
    if done.returncode:
        raise RuntimeError(f"the export child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    export_peak = result["export_peak_kb"]
    return Memory(
        scale,
        month,
        month_visits,
        fmt,
        int(result["started_kb"]),
        int(result["startup_peak_kb"]),
        None if export_peak is None else int(export_peak),
        int(result["peak_kb"]),
        float(result["seconds"]),
        int(result["bytes"]),
    )


def scale_url(url: str, scale: float) -> str:
    """The database for another scale beside `url`: a sibling SQLite file or PostgreSQL database."""
    parsed = make_url(url)
    tag = f"scale{scale:g}"
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "reports.db")
        return parsed.set(database=str(path.with_name(f"{path.stem}-{tag}{path.suffix}"))).render_as_string(
            hide_password=False
        )
    name = f"{parsed.database}_{tag.replace('.', '_')}"
    return parsed.set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str) -> None:
    parsed = make_url(url)
    admin = create_engine(
        parsed.set(database="postgres").render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}"'))
    await admin.dispose()


async def memory_at_scales(
    url: str, main_scale: float, scales: list[float], *, reuse: bool, formats: tuple[Format, ...]
) -> list[Memory]:
    """The export's memory of the largest month, at each scale. The main database serves its own scale; the
    others are generated beside it (a SQLite file is kept for --reuse, a PostgreSQL database dropped)."""
    out: list[Memory] = []
    for scale in scales:
        target = url if scale == main_scale else scale_url(url, scale)
        postgres = make_url(target).get_backend_name() == "postgresql"
        fill = target != url and (postgres or not (reuse and Path(make_url(target).database or "").exists()))
        if fill:
            if postgres:
                await create_database(target)
            else:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{make_url(target).database}{suffix}").unlink(missing_ok=True)
            engine = create_engine(target)
            started = time.perf_counter()
            await reset(engine)
            await generate(engine, Size.scaled(scale))
            await engine.dispose()
            print(f"generated scale {scale:g} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        try:
            month, visits = await largest_month(target)
            for fmt in formats:
                out.append(await asyncio.to_thread(export_memory, target, month, visits, fmt, scale))
        finally:
            if fill and postgres:
                await drop_database(target)
    return out


def memory_table(memories: list[Memory]) -> str:
    out = [
        "| export in a child process (largest month) | visits in the month | file (MB) | export (s) "
        "| RSS after start-up (MB) | peak RSS, ru_maxrss (MB) | peak − start-up (MB) "
        "| cross-check: VmHWM − start-up (MB) | peak < 200 MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for m in memories:
        ok = "yes" if m.peak_kb / 1024 < TARGET_EXPORT_MB else "**no**"
        suffix = " csv" if m.fmt is Format.csv else ""
        hwm = "—" if m.export_peak_kb is None else f"{(m.export_peak_kb - m.started_kb) / 1024:.0f}"
        out.append(
            f"| scale {m.scale:g}: /export {m.month.iso}{suffix} | {m.month_visits:,} | {m.size / 1e6:.1f} "
            f"| {m.seconds:.1f} | {m.started_kb / 1024:.0f} | {m.peak_kb / 1024:.0f} | {m.growth_mb:.0f} "
            f"| {hwm} | {ok} |"
        )
    startup = max(0, *(m.startup_peak_kb - m.started_kb for m in memories)) / 1024
    out.append(
        "\nOne process per row, started afresh. RSS after start-up: imports done, Application built and "
        "initialised, database connected (its ru_maxrss then was at most "
        f"{startup:.0f} MB above it). Peak: ru_maxrss at the end of the export. Cross-check: the address "
        "space's high-water mark (VmHWM), reset right after start-up, at the end of the export."
    )
    return "\n".join(out)


def table(rows: list[Row]) -> str:
    out = [
        "| report | handler median (ms) | oracle median (ms) | ratio | ≤ 2× oracle | < 1 s |",
        "|---|---:|---:|---:|:---:|:---:|",
    ]
    for r in rows:
        if r.handler_ms is None:
            out.append(f"| {r.report} | — | {r.oracle_ms:.1f} | — | — | — | {r.note}")
            continue
        ratio = r.handler_ms / r.oracle_ms if r.oracle_ms else float("inf")
        ok_ratio = "yes" if ratio <= TARGET_RATIO else "**no**"
        ok_time = "yes" if r.handler_ms < TARGET_MS else "**no**"
        out.append(
            f"| {r.report} | {r.handler_ms:.1f} | {r.oracle_ms:.1f} | {ratio:.2f} | {ok_ratio} | {ok_time} |"
        )
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> None:
    url = args.database_url
    if url is None:
        path = Path(__file__).parent / "out" / "reports.db"
        path.parent.mkdir(exist_ok=True)
        if not args.reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite+aiosqlite:///{path}"
    elif not args.force and "bench" not in (make_url(url).database or ""):
        sys.exit("refusing to empty a database whose name does not contain 'bench' (use --force)")
    size = Size.scaled(args.scale)
    if make_url(url).get_backend_name() == "postgresql":
        await create_database(url)
    engine = create_engine(url)
    if not args.reuse:
        started = time.perf_counter()
        await reset(engine)
        await generate(engine, size)
        print(f"generated in {time.perf_counter() - started:.0f} s: {size}", file=sys.stderr)
    if args.suggested_indexes:
        await add_indexes(engine)
    await engine.dispose()
    rows: list[Row] = []
    if args.only == "export":
        counts = await table_counts(url)
    else:
        rows, counts = await measure(url, args.runs)
    month, month_visits = await largest_month(url)
    export_rows, check = await measure_export(url, args.runs, month, month_visits)
    memories = await memory_at_scales(
        url, args.scale, args.memory_scales, reuse=args.reuse, formats=(Format.xlsx, Format.csv)
    )
    backend = make_url(url).get_backend_name()
    print(
        f"\n{backend}, {', '.join(f'{n:,} {t}' for t, n in counts.items())}; median of {args.runs} runs; "
        f"Python {platform.python_version()} on {platform.machine()}"
        + ("; with the suggested indexes" if args.suggested_indexes else "; schema indexes only")
        + "\n"
    )
    print(table(rows + export_rows))
    print(
        f"\n/export {month.iso} is the full month of the data with the most live visits "
        f"({month_visits:,}). The oracle fetched "
        + ", ".join(f"{n:,} {sheet}" for sheet, n in check.expected.items())
        + "; the sent files hold "
        + "; ".join(
            f"{fmt.upper()} ({check.sizes[fmt] / 1e6:.1f} MB): " + ", ".join(f"{n:,}" for n in found.values())
            for fmt, found in check.found.items()
        )
        + (" — the same rows." if check.ok else " — **they differ from the oracle**.")
    )
    print()
    print(memory_table(memories))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the default district size")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement (median)")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in bench/out/")
    parser.add_argument("--reuse", action="store_true", help="time the existing database, do not regenerate")
    parser.add_argument("--force", action="store_true", help="empty a PostgreSQL database whatever its name")
    parser.add_argument(
        "--suggested-indexes", action="store_true", help="add the indexes proposed for the schema, then time"
    )
    parser.add_argument(
        "--memory-scales",
        type=lambda text: [float(s) for s in text.split(",")],
        default=[0.2, 1.0],
        help="scales at which the export's peak memory is measured in a child process (default 0.2,1)",
    )
    parser.add_argument(
        "--only",
        choices=("all", "export"),
        default="all",
        help="time every report (default) or only /export (its rows and memory)",
    )
    parser.add_argument("--export-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--export-period", default="", help=argparse.SUPPRESS)
    parser.add_argument("--export-format", default=Format.xlsx.value, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:  # a child of memory_at_scales: one export, its memory as JSON
        result = asyncio.run(export_child(args.database_url, args.export_period, Format(args.export_format)))
        print(json.dumps(result))
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
