"""The rows of the 台账 ledger (/export), streamed from the database in batches so memory stays flat.

Which rows belong to a period [start, end) (aware UTC bounds from bot.services.periods):

* Enterprises — the whole register as it is now, with the visits each had in the period and its last
  visit ever (withdrawn visits never count);
* Visits — visited within the period, not withdrawn;
* Problems — reported within the period or changed within it (any history event), with their full history;
* Services — requested or delivered within the period.

The busy columns come back as the driver hands them over, without SQLAlchemy's type processing: times as
naive UTC to the second (`utc_time`: the stored text on SQLite, a `timestamp` on PostgreSQL), enum values
as plain strings (`raw`), visit topics as their JSON text (a few combinations recur; the ledger decodes
each once). Converting 100,000 values through
SQLAlchemy's type processors cost more than the queries; `bot.services.ledger` reads either form.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, Select, Text, and_, cast, exists, func, or_, select, text, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import NullType

from bot.storage.enums import Role
from bot.storage.models import (
    Assignment,
    Attachment,
    Enterprise,
    MenuItem,
    Problem,
    ProblemEvent,
    ServiceRequest,
    User,
    Visit,
)
from bot.storage.problems import PENDING

BATCH = 1000
_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9]+)?")
Query = Select[*tuple[Any, ...]]
DbRow = Row[*tuple[Any, ...]]


def _in(column: Any, start: datetime, end: datetime) -> Any:
    return and_(column >= start, column < end)


def raw(column: Any, name: str) -> Any:
    """The column as the driver returns it, without SQLAlchemy's result processing."""
    return type_coerce(column, NullType()).label(name)


class _UtcTime(FunctionElement[Any]):
    type = NullType()
    inherit_cache = True


@compiles(_UtcTime)
def _utc_time_stored(element: _UtcTime, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(
        element.clauses, **kw
    )  # SQLite keeps naive UTC text: 'YYYY-MM-DD HH:MM:SS.ffffff'


@compiles(_UtcTime, "postgresql")
def _utc_time_postgresql(element: _UtcTime, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date_trunc('second', ({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC')"


def utc_time(column: Any, name: str) -> Any:
    """A `timestamptz` column as naive UTC, unprocessed: ISO text on SQLite (the ledger reads its first 19
    characters), a naive `datetime` to the second on PostgreSQL."""
    return _UtcTime(column).label(name)


async def stream(session: AsyncSession, stmt: Query, *, batch: int = BATCH) -> AsyncIterator[Sequence[DbRow]]:
    """The statement's rows in batches, from a server-side cursor (never all in memory). Run on the
    session's connection: plain rows need none of the ORM's result handling."""
    connection = await session.connection()
    result = await connection.stream(stmt.execution_options(yield_per=batch))
    async for rows in result.partitions(batch):
        yield rows


async def begin_snapshot(session: AsyncSession, *, share: bool = False) -> str | None:
    """Read every sheet from one snapshot on PostgreSQL (REPEATABLE READ), so the summary and the sheets
    agree even while the bot keeps writing. Call first in a fresh session. With `share`, the snapshot's id,
    for another session to read the same data (`join_snapshot`) while this one's transaction lasts.
    (SQLite reads each statement on its own; the export's statements see the data as of when each began.)"""
    if session.get_bind().dialect.name != "postgresql":
        return None
    await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    if not share:
        return None
    return str(await session.scalar(text("SELECT pg_export_snapshot()")))


async def join_snapshot(session: AsyncSession, snapshot: str | None) -> None:
    """Read in a fresh session from the snapshot `begin_snapshot(share=True)` returned."""
    if snapshot is None:
        return
    if not _SNAPSHOT_ID.fullmatch(snapshot):  # SET TRANSACTION SNAPSHOT takes no parameters
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    await session.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))


def can_read_alongside(session: AsyncSession) -> bool:
    """Can a second connection read the same database (not an in-memory SQLite one)?"""
    url = session.get_bind().engine.url
    return url.get_backend_name() != "sqlite" or url.database not in (None, "", ":memory:")


async def sheet_sizes(session: AsyncSession, *, start: datetime, end: datetime) -> dict[str, int]:
    """How many rows the Enterprises, Problems and Services sheets get (the Summary names them)."""
    chosen = problems_chosen(start, end)
    row = (
        await session.execute(
            select(
                select(func.count()).select_from(Enterprise).scalar_subquery(),
                select(func.count()).select_from(chosen).scalar_subquery(),
                select(func.count())
                .select_from(ServiceRequest)
                .where(services_chosen(start, end))
                .scalar_subquery(),
            )
        )
    ).one()
    return {"enterprises": int(row[0]), "problems": int(row[1]), "services": int(row[2])}


async def pending_now(session: AsyncSession, *, today: date) -> tuple[int, int]:
    """(pending, overdue) problems as of today."""
    row = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(Problem.due_date < today),
            ).where(Problem.status.in_(PENDING))
        )
    ).one()
    return int(row[0]), int(row[1])


def enterprises(start: datetime, end: datetime) -> Query:
    """name, credit_code, stage, community, address, industry, employees, party_org, party_members,
    liaison, instructor, visits in period, last visit (UTC)."""
    live = Visit.enterprise_id == Enterprise.id, Visit.withdrawn_at.is_(None)
    # Correlated subqueries: an index lookup per enterprise (ix_visits_live_enterprise) instead of grouping
    # every visit of the two years.
    in_period = select(func.count()).where(*live, _in(Visit.visited_at, start, end)).correlate(Enterprise)
    last = select(func.max(Visit.visited_at)).where(*live, Visit.visited_at < end).correlate(Enterprise)
    columns: list[Any] = []
    joins: list[tuple[Any, Any]] = []
    for role in (Role.liaison, Role.instructor):
        assignment, person = aliased(Assignment), aliased(User)
        joins.append(
            (
                assignment,
                and_(
                    assignment.enterprise_id == Enterprise.id,
                    assignment.role == role,
                    assignment.end_date.is_(None),
                ),
            )
        )
        joins.append((person, person.id == assignment.user_id))
        columns.append(person.name)
    stmt = select(
        Enterprise.name,
        Enterprise.credit_code,
        raw(Enterprise.stage, "stage"),
        Enterprise.community,
        Enterprise.address,
        Enterprise.industry,
        Enterprise.employees,
        raw(Enterprise.party_org, "party_org"),
        Enterprise.party_members,
        *columns,
        in_period.scalar_subquery(),
        utc_time(last.scalar_subquery(), "last_visit"),
    ).select_from(Enterprise)
    for target, on in joins:
        stmt = stmt.outerjoin(target, on)
    return stmt.order_by(Enterprise.community, Enterprise.name, Enterprise.id)


def visits(start: datetime, end: datetime) -> Query:
    """id, created_at (UTC), visited_at (UTC), enterprise, credit code, community, visitor, role (raw),
    department, community of the visitor, topics (JSON text), notes, party_org (raw), party_members,
    distance_m, photos."""
    photos = select(func.count()).where(Attachment.visit_id == Visit.id).correlate(Visit).scalar_subquery()
    return (
        select(
            Visit.id,
            utc_time(Visit.created_at, "created_at"),
            utc_time(Visit.visited_at, "visited_at"),
            Enterprise.name,
            Enterprise.credit_code,
            Enterprise.community,
            User.name,
            raw(User.role, "role"),
            User.department,
            User.community,
            cast(Visit.topics, Text).label("topics"),
            Visit.notes,
            raw(Visit.party_org, "party_org"),
            Visit.party_members,
            Visit.distance_m,
            photos,
        )
        .join(Enterprise, Enterprise.id == Visit.enterprise_id)
        .join(User, User.id == Visit.user_id)
        .where(_in(Visit.visited_at, start, end), Visit.withdrawn_at.is_(None))
        .order_by(Visit.visited_at, Visit.id)
    )


def problems_chosen(start: datetime, end: datetime) -> Any:
    """Ids of the problems reported or changed within [start, end)."""
    touched = exists().where(ProblemEvent.problem_id == Problem.id, _in(ProblemEvent.created_at, start, end))
    return select(Problem.id).where(or_(_in(Problem.created_at, start, end), touched)).subquery("chosen")


def services_chosen(start: datetime, end: datetime) -> Any:
    return or_(_in(ServiceRequest.created_at, start, end), _in(ServiceRequest.delivered_at, start, end))


def problems(start: datetime, end: datetime) -> Query:
    """One row per history event (events in order, problems by id): id, created_at (UTC), enterprise,
    credit code, community, category, description, reporter, status, department, due_date, resolution, funds,
    resolved_at (UTC), then the event's time (UTC), actor, kind, from, to and note."""
    chosen = problems_chosen(start, end)
    reporter, actor = aliased(User), aliased(User)
    return (
        select(
            Problem.id,
            utc_time(Problem.created_at, "created_at"),
            Enterprise.name,
            Enterprise.credit_code,
            Enterprise.community,
            Problem.category,
            Problem.description,
            reporter.name,
            Problem.status,
            Problem.department,
            Problem.due_date,
            Problem.resolution,
            Problem.funds_wan,
            utc_time(Problem.resolved_at, "resolved_at"),
            utc_time(ProblemEvent.created_at, "event_at"),
            actor.name,
            ProblemEvent.kind,
            ProblemEvent.from_status,
            ProblemEvent.to_status,
            ProblemEvent.note,
        )
        .join(chosen, chosen.c.id == Problem.id)
        .join(Enterprise, Enterprise.id == Problem.enterprise_id)
        .join(reporter, reporter.id == Problem.reporter_id)
        .outerjoin(ProblemEvent, ProblemEvent.problem_id == Problem.id)
        .outerjoin(actor, actor.id == ProblemEvent.actor_id)
        .order_by(Problem.id, ProblemEvent.id)
    )


def services(start: datetime, end: datetime) -> Query:
    """id, created_at (UTC), enterprise, credit code, stage, item (zh), item (en), requester, status,
    delivered_at (UTC), note."""
    return (
        select(
            ServiceRequest.id,
            utc_time(ServiceRequest.created_at, "created_at"),
            Enterprise.name,
            Enterprise.credit_code,
            Enterprise.stage,
            MenuItem.name_zh,
            MenuItem.name_en,
            User.name,
            ServiceRequest.status,
            utc_time(ServiceRequest.delivered_at, "delivered_at"),
            ServiceRequest.note,
        )
        .join(Enterprise, Enterprise.id == ServiceRequest.enterprise_id)
        .join(MenuItem, MenuItem.id == ServiceRequest.menu_item_id)
        .join(User, User.id == ServiceRequest.requester_id)
        .where(services_chosen(start, end))
        .order_by(ServiceRequest.created_at, ServiceRequest.id)
    )
