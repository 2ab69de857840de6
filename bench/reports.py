"""Benchmark: /stats, /coverage and /pending end to end through the real handlers, against the plain oracle
SQL of tests/oracle.py on the same database in the same run.

Generates a district (default 10,000 enterprises, 500,000 visits over two years, 50,000 problems, 20,000
service requests, 300 staff in 20 departments and 30 communities; ``--scale`` multiplies it), then, for each
report, times the median of ``--runs`` runs of

- the handler: an update processed by the real Application (guard, role check, one unit of work, figures,
  chart rendering, the sendMessage/sendPhoto calls answered by the Bot API double of tests/botapi.py);
- the oracle: the same figures by the straightforward SQL of tests/oracle.py (no rendering, no Telegram).

    .venv/bin/python -m bench.reports [--scale 1] [--runs 5] [--database-url postgresql+asyncpg://…/bench]
    .venv/bin/python -m bench.reports --reuse   # skip generating: time the existing bench/out/reports.db

A PostgreSQL database is emptied and refilled: its name must contain "bench" (or pass --force).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_application
from bot.config import Settings
from bot.context import Runtime
from bot.services import charts
from bot.services.credit_code import credit_code_check_char
from bot.services.periods import Period, elapsed_part, local_today, period_containing, trend_weeks
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
    rows, counts = await measure(url, args.runs)
    backend = make_url(url).get_backend_name()
    print(
        f"\n{backend}, {', '.join(f'{n:,} {t}' for t, n in counts.items())}; median of {args.runs} runs; "
        f"Python {platform.python_version()} on {platform.machine()}"
        + ("; with the suggested indexes" if args.suggested_indexes else "; schema indexes only")
        + "\n"
    )
    print(table(rows))


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
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
