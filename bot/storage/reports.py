"""Aggregate queries behind the supervision reports (/stats, /enterprise, /liaison, /coverage, /trends).

Every figure is computed by the database: facts are first counted per enterprise (each fact table read
through its time index), then joined to the enterprise's *dimensions* — its department (that of its
current liaison) and community — and summed per (department, community) cell. An enterprise lies in
exactly one cell, so cells add up to department totals, community totals and the grand total, distinct
enterprise counts included. Only small aggregated rows ever reach Python.

Conventions: withdrawn visits never count; times are aware UTC bounds [start, end) computed by the
caller (bot.services.periods); `scope_user_id` limits everything to the enterprises currently assigned
to that user (staff see only their own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Integer,
    Numeric,
    Select,
    and_,
    case,
    cast,
    distinct,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from bot.storage.enterprises import assigned_enterprise_ids
from bot.storage.enums import STAFF, PartyOrg, ProblemCategory, ProblemStatus, Role, ServiceStatus
from bot.storage.models import (
    Assignment,
    Enterprise,
    MenuItem,
    Problem,
    ServiceRequest,
    User,
    Visit,
)
from bot.storage.problems import PENDING

PENDING_PROBLEMS = PENDING  # open, in progress, returned for correction
FINISHED_PROBLEMS = (ProblemStatus.resolved, ProblemStatus.closed)
# "not resolved or closed", spelt as the statuses that remain so that the (status, due_date) index serves it
UNFINISHED_PROBLEMS = tuple(s for s in ProblemStatus if s not in FINISHED_PROBLEMS)
PENDING_SERVICES = (ServiceStatus.requested, ServiceStatus.in_progress)
_FUNDS = Numeric(12, 2)
_FACT_NAMES = ("visits", "reported", "resolved", "requested", "delivered", "overdue")


# -- building blocks -----------------------------------------------------------------------------------
def _live_visits() -> ColumnElement[bool]:
    return Visit.withdrawn_at.is_(None)


def _liaison_department() -> Any:
    """(enterprise_id, department) of each enterprise's current liaison."""
    liaison = aliased(User)
    return (
        select(Assignment.enterprise_id.label("enterprise_id"), liaison.department.label("department"))
        .join(liaison, liaison.id == Assignment.user_id)
        .where(Assignment.role == Role.liaison, Assignment.end_date.is_(None))
        .subquery("liaison_department")
    )


def _assigned() -> Any:
    """Enterprises with at least one current assignment."""
    return (
        select(Assignment.enterprise_id.label("enterprise_id"))
        .where(Assignment.end_date.is_(None))
        .group_by(Assignment.enterprise_id)
        .subquery("assigned")
    )


def _in(column: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


def _facts(start: datetime, end: datetime, *, today: date | None) -> Any:
    """Per enterprise with any fact: visits, reported, resolved, funds, requested, delivered, overdue."""
    zero, one = literal_column("0", Integer), literal_column("1", Integer)
    no_funds = cast(null(), _FUNDS)

    def row(enterprise_id: Any, index: int, funds: Any = no_funds) -> list[Any]:
        flags = [one if i == index else zero for i in range(len(_FACT_NAMES))]
        return [
            enterprise_id.label("enterprise_id"),
            *(f.label(n) for f, n in zip(flags, _FACT_NAMES, strict=True)),
            funds.label("funds"),
        ]

    branches = [
        select(*row(Visit.enterprise_id, 0)).where(_in(Visit.visited_at, start, end), _live_visits()),
        select(*row(Problem.enterprise_id, 1)).where(_in(Problem.created_at, start, end)),
        select(*row(Problem.enterprise_id, 2, Problem.funds_wan)).where(
            Problem.status == ProblemStatus.resolved, _in(Problem.resolved_at, start, end)
        ),
        select(*row(ServiceRequest.enterprise_id, 3)).where(_in(ServiceRequest.created_at, start, end)),
        select(*row(ServiceRequest.enterprise_id, 4)).where(
            ServiceRequest.status == ServiceStatus.delivered, _in(ServiceRequest.delivered_at, start, end)
        ),
    ]
    if today is not None:
        branches.append(
            select(*row(Problem.enterprise_id, 5)).where(
                Problem.status.in_(UNFINISHED_PROBLEMS), Problem.due_date < today
            )
        )
    facts = union_all(*branches).subquery("facts")
    return (
        select(
            facts.c.enterprise_id,
            *(func.sum(facts.c[name]).label(name) for name in _FACT_NAMES),
            func.sum(facts.c.funds).label("funds"),
        )
        .group_by(facts.c.enterprise_id)
        .subquery("per_enterprise")
    )


@dataclass(frozen=True)
class Cell:
    """Figures of one (department, community) cell; department is that of the current liaison."""

    department: str | None
    community: str | None
    visits: int = 0
    enterprises_visited: int = 0
    assigned_visited: int = 0
    assigned: int = 0
    reported: int = 0
    resolved: int = 0
    funds: Decimal = Decimal("0.00")
    requested: int = 0
    delivered: int = 0
    overdue: int = 0


def _to_decimal(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


async def period_cells(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    today: date,
    scope_user_id: int | None,
) -> list[Cell]:
    """Every figure of [start, end) per (department, community), overdue as of ``today``; plus the
    number of assigned enterprises of each cell. Cells without any figure are left out."""
    per = _facts(start, end, today=today)
    dept, assigned = _liaison_department(), _assigned()
    visited = per.c.visits > 0
    facts = (
        select(
            dept.c.department,
            Enterprise.community,
            func.coalesce(func.sum(per.c.visits), 0),
            func.count(case((visited, 1))),
            func.count(case((and_(visited, assigned.c.enterprise_id.is_not(None)), 1))),
            func.coalesce(func.sum(per.c.reported), 0),
            func.coalesce(func.sum(per.c.resolved), 0),
            func.sum(per.c.funds),
            func.coalesce(func.sum(per.c.requested), 0),
            func.coalesce(func.sum(per.c.delivered), 0),
            func.coalesce(func.sum(per.c.overdue), 0),
        )
        .select_from(per)
        .join(Enterprise, Enterprise.id == per.c.enterprise_id)
        .outerjoin(dept, dept.c.enterprise_id == per.c.enterprise_id)
        .outerjoin(assigned, assigned.c.enterprise_id == per.c.enterprise_id)
        .group_by(dept.c.department, Enterprise.community)
    )
    base = (
        select(dept.c.department, Enterprise.community, func.count())
        .select_from(Enterprise)
        .join(assigned, assigned.c.enterprise_id == Enterprise.id)
        .outerjoin(dept, dept.c.enterprise_id == Enterprise.id)
        .group_by(dept.c.department, Enterprise.community)
    )
    if scope_user_id is not None:
        facts = facts.where(per.c.enterprise_id.in_(assigned_enterprise_ids(scope_user_id)))
        base = base.where(Enterprise.id.in_(assigned_enterprise_ids(scope_user_id)))
    cells: dict[tuple[str | None, str | None], Cell] = {}
    for department, community, n in (await session.execute(base)).all():
        cells[department, community] = Cell(department, community, assigned=int(n))
    for row in (await session.execute(facts)).all():
        department, community = row[0], row[1]
        known = cells.get((department, community))
        cells[department, community] = Cell(
            department,
            community,
            visits=int(row[2]),
            enterprises_visited=int(row[3]),
            assigned_visited=int(row[4]),
            assigned=known.assigned if known else 0,
            reported=int(row[5]),
            resolved=int(row[6]),
            funds=_to_decimal(row[7]),
            requested=int(row[8]),
            delivered=int(row[9]),
            overdue=int(row[10]),
        )
    return list(cells.values())


@dataclass(frozen=True)
class Totals:
    visits: int = 0
    enterprises_visited: int = 0
    reported: int = 0
    resolved: int = 0
    funds: Decimal = Decimal("0.00")
    requested: int = 0
    delivered: int = 0


async def period_totals(
    session: AsyncSession, *, start: datetime, end: datetime, scope_user_id: int | None
) -> Totals:
    """Grand totals of [start, end) (no breakdown, no overdue): for the comparison period."""
    per = _facts(start, end, today=None)
    stmt = select(
        func.coalesce(func.sum(per.c.visits), 0),
        func.count(case((per.c.visits > 0, 1))),
        func.coalesce(func.sum(per.c.reported), 0),
        func.coalesce(func.sum(per.c.resolved), 0),
        func.sum(per.c.funds),
        func.coalesce(func.sum(per.c.requested), 0),
        func.coalesce(func.sum(per.c.delivered), 0),
    ).select_from(per)
    if scope_user_id is not None:
        stmt = stmt.where(per.c.enterprise_id.in_(assigned_enterprise_ids(scope_user_id)))
    row = (await session.execute(stmt)).one()
    return Totals(
        visits=int(row[0]),
        enterprises_visited=int(row[1]),
        reported=int(row[2]),
        resolved=int(row[3]),
        funds=_to_decimal(row[4]),
        requested=int(row[5]),
        delivered=int(row[6]),
    )


async def visits_per_range(
    session: AsyncSession, *, bounds: Sequence[datetime], scope_user_id: int | None
) -> list[int]:
    """Visits in each of the consecutive ranges [bounds[i], bounds[i+1]) — one indexed range scan."""
    if len(bounds) < 2:
        return []
    bucket = case(
        *((Visit.visited_at < edge, i) for i, edge in enumerate(bounds[1:-1])), else_=len(bounds) - 2
    )
    stmt = (
        select(bucket.label("bucket"), func.count())
        .where(_in(Visit.visited_at, bounds[0], bounds[-1]), _live_visits())
        .group_by(bucket)
    )
    if scope_user_id is not None:
        stmt = stmt.where(Visit.enterprise_id.in_(assigned_enterprise_ids(scope_user_id)))
    counts = [0] * (len(bounds) - 1)
    for index, n in (await session.execute(stmt)).all():
        counts[int(index)] = int(n)
    return counts


# -- /enterprise --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VisitLine:
    visited_at: datetime
    visitor: str
    topics: list[str]


@dataclass(frozen=True)
class ProblemLine:
    ref: str
    category: ProblemCategory
    status: ProblemStatus
    description: str
    due_date: date | None
    created_at: datetime


@dataclass(frozen=True)
class ServiceLine:
    ref: str
    item_zh: str
    item_en: str
    status: ServiceStatus
    created_at: datetime


@dataclass(frozen=True)
class EnterpriseDetails:
    enterprise: Enterprise
    liaison: User | None
    instructor: User | None
    visit_count: int
    last_visits: list[VisitLine]
    problem_counts: dict[ProblemStatus, int]
    problems: list[ProblemLine]
    service_count: int
    services: list[ServiceLine]


async def enterprise_details(
    session: AsyncSession, *, enterprise: Enterprise, visits: int = 5, problems: int = 8, services: int = 5
) -> EnterpriseDetails:
    """The card of one enterprise (the caller has checked access): people, recent visits, problems
    (pending first, then the latest) and services."""
    people = {
        role: user
        for role, user in (
            await session.execute(
                select(Assignment.role, User)
                .join(User, User.id == Assignment.user_id)
                .where(Assignment.enterprise_id == enterprise.id, Assignment.end_date.is_(None))
            )
        ).all()
    }
    visit_count = await session.scalar(
        select(func.count()).where(Visit.enterprise_id == enterprise.id, _live_visits())
    )
    visit_rows = await session.execute(
        select(Visit.visited_at, User.name, Visit.topics)
        .join(User, User.id == Visit.user_id)
        .where(Visit.enterprise_id == enterprise.id, _live_visits())
        .order_by(Visit.visited_at.desc(), Visit.id.desc())
        .limit(visits)
    )
    counts = {
        status: int(n)
        for status, n in (
            await session.execute(
                select(Problem.status, func.count())
                .where(Problem.enterprise_id == enterprise.id)
                .group_by(Problem.status)
            )
        ).all()
    }
    pending_first = case((Problem.status.in_(PENDING_PROBLEMS), 0), else_=1)
    problem_rows = await session.scalars(
        select(Problem)
        .where(Problem.enterprise_id == enterprise.id)
        .order_by(pending_first, Problem.created_at.desc(), Problem.id.desc())
        .limit(problems)
    )
    service_count = await session.scalar(
        select(func.count()).where(ServiceRequest.enterprise_id == enterprise.id)
    )
    service_rows = await session.execute(
        select(ServiceRequest, MenuItem.name_zh, MenuItem.name_en)
        .join(MenuItem, MenuItem.id == ServiceRequest.menu_item_id)
        .where(ServiceRequest.enterprise_id == enterprise.id)
        .order_by(ServiceRequest.created_at.desc(), ServiceRequest.id.desc())
        .limit(services)
    )
    return EnterpriseDetails(
        enterprise=enterprise,
        liaison=people.get(Role.liaison),
        instructor=people.get(Role.instructor),
        visit_count=int(visit_count or 0),
        last_visits=[VisitLine(at, name, list(topics or [])) for at, name, topics in visit_rows.all()],
        problem_counts=counts,
        problems=[
            ProblemLine(p.ref, p.category, p.status, p.description, p.due_date, p.created_at)
            for p in problem_rows
        ],
        service_count=int(service_count or 0),
        services=[ServiceLine(s.ref, zh, en, s.status, s.created_at) for s, zh, en in service_rows.all()],
    )


# -- /liaison -----------------------------------------------------------------------------------------
def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def staff_named(session: AsyncSession, *, name: str, limit: int) -> tuple[list[User], int]:
    """Liaisons and instructors whose name contains ``name`` (exact matches first), with the total."""
    where = (User.role.in_(STAFF), User.name.ilike(_like(name), escape="\\"))
    total = await session.scalar(select(func.count()).select_from(User).where(*where))
    rows = await session.scalars(
        select(User)
        .where(*where)
        .order_by(case((User.name == name, 0), else_=1), User.active.desc(), User.name, User.id)
        .limit(limit)
    )
    return list(rows), int(total or 0)


async def staff_member(session: AsyncSession, *, user_id: int) -> User | None:
    found: User | None = await session.scalar(select(User).where(User.id == user_id, User.role.in_(STAFF)))
    return found


@dataclass(frozen=True)
class StaleEnterprise:
    id: int
    name: str
    community: str | None
    last_visit: datetime | None


@dataclass(frozen=True)
class Activity:
    visits: int
    enterprises_visited: int
    assigned: int
    stale_count: int
    stale: list[StaleEnterprise]
    problems_reported: int
    open_problems: dict[ProblemStatus, int]
    open_services: int
    last_visit: datetime | None
    last_activity: datetime | None


def _last_visit_of_enterprise() -> Any:
    return (
        select(func.max(Visit.visited_at))
        .where(Visit.enterprise_id == Enterprise.id, _live_visits())
        .correlate(Enterprise)
        .scalar_subquery()
    )


def _visited_since(since: datetime) -> Select[int]:
    """Enterprises visited since ``since``: one range scan of the visit-time index, used as an
    uncorrelated IN / NOT IN set (evaluated once, not once per enterprise)."""
    return select(Visit.enterprise_id).where(Visit.visited_at >= since, _live_visits())


async def _stale(
    session: AsyncSession, *, among: Any, since: datetime, limit: int, count: bool = True
) -> tuple[list[StaleEnterprise], int | None]:
    """Enterprises in ``among`` not visited since ``since`` (never visited first, then the longest ago),
    and how many there are (if ``count``).

    NOT EXISTS rather than NOT IN: PostgreSQL plans it as an anti-join with a sane row estimate (NOT IN
    guesses half the table, which prices the correlated last-visit lookups high enough to trigger JIT
    compilation, ~150 ms); SQLite runs both alike."""
    recent = select(Visit.id).where(
        Visit.enterprise_id == Enterprise.id, Visit.visited_at >= since, _live_visits()
    )
    where = (Enterprise.id.in_(among), ~recent.exists())
    total = (
        await session.scalar(select(func.count()).select_from(Enterprise).where(*where)) if count else None
    )
    last = _last_visit_of_enterprise().label("last_visit")
    ranked = select(Enterprise.id, Enterprise.name, Enterprise.community, last).where(*where).subquery()
    rows = await session.execute(
        select(ranked)
        .order_by(ranked.c.last_visit.asc().nulls_first(), ranked.c.name, ranked.c.id)
        .limit(limit)
    )
    return [StaleEnterprise(*row) for row in rows.all()], None if total is None else int(total)


async def staff_activity(
    session: AsyncSession,
    *,
    user_id: int,
    start: datetime,
    end: datetime,
    stale_since: datetime,
    stale_limit: int,
) -> Activity:
    """One liaison's or instructor's work: their visits in [start, end), their enterprises not visited
    (by anyone) since ``stale_since``, their pending problems and services, their last activity."""
    mine = assigned_enterprise_ids(user_id)
    visits, enterprises = (
        await session.execute(
            select(func.count(), func.count(distinct(Visit.enterprise_id))).where(
                Visit.user_id == user_id, _in(Visit.visited_at, start, end), _live_visits()
            )
        )
    ).one()
    assigned = await session.scalar(select(func.count()).select_from(mine.subquery()))
    stale, stale_count = await _stale(session, among=mine, since=stale_since, limit=stale_limit)
    assert stale_count is not None
    reported = await session.scalar(
        select(func.count()).where(Problem.reporter_id == user_id, _in(Problem.created_at, start, end))
    )
    open_problems = {
        status: int(n)
        for status, n in (
            await session.execute(
                select(Problem.status, func.count())
                .where(Problem.reporter_id == user_id, Problem.status.in_(PENDING_PROBLEMS))
                .group_by(Problem.status)
            )
        ).all()
    }
    open_services = await session.scalar(
        select(func.count()).where(
            ServiceRequest.requester_id == user_id, ServiceRequest.status.in_(PENDING_SERVICES)
        )
    )
    last_visit = await session.scalar(
        select(func.max(Visit.visited_at)).where(Visit.user_id == user_id, _live_visits())
    )
    last_problem = await session.scalar(
        select(func.max(Problem.created_at)).where(Problem.reporter_id == user_id)
    )
    last_service = await session.scalar(
        select(func.max(ServiceRequest.created_at)).where(ServiceRequest.requester_id == user_id)
    )
    moments = [m for m in (last_visit, last_problem, last_service) if m is not None]
    return Activity(
        visits=int(visits),
        enterprises_visited=int(enterprises),
        assigned=int(assigned or 0),
        stale_count=stale_count,
        stale=stale,
        problems_reported=int(reported or 0),
        open_problems=open_problems,
        open_services=int(open_services or 0),
        last_visit=last_visit,
        last_activity=max(moments) if moments else None,
    )


# -- /coverage ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CoverageRow:
    community: str | None
    enterprises: int
    party_org: dict[PartyOrg, int]
    assigned: int
    visited_30: int
    visited_90: int


async def coverage_by_community(
    session: AsyncSession, *, since_30: datetime, since_90: datetime
) -> list[CoverageRow]:
    """Per community: enterprises by party-organisation status; assigned enterprises and how many of them
    were visited since ``since_30`` and ``since_90``."""
    org = await session.execute(
        select(Enterprise.community, Enterprise.party_org, func.count()).group_by(
            Enterprise.community, Enterprise.party_org
        )
    )
    visits = await session.execute(
        select(
            Enterprise.community,
            func.count(),
            func.count(case((Enterprise.id.in_(_visited_since(since_30)), 1))),
            func.count(case((Enterprise.id.in_(_visited_since(since_90)), 1))),
        )
        .where(Enterprise.id.in_(select(Assignment.enterprise_id).where(Assignment.end_date.is_(None))))
        .group_by(Enterprise.community)
    )
    rows: dict[str | None, CoverageRow] = {}
    for community, party_org, n in org.all():
        row = rows.get(community) or CoverageRow(community, 0, {}, 0, 0, 0)
        rows[community] = CoverageRow(
            community, row.enterprises + int(n), {**row.party_org, party_org: int(n)}, 0, 0, 0
        )
    for community, n, v30, v90 in visits.all():
        row = rows.get(community) or CoverageRow(community, 0, {}, 0, 0, 0)
        rows[community] = CoverageRow(community, row.enterprises, row.party_org, int(n), int(v30), int(v90))
    return list(rows.values())


async def unvisited_enterprises(
    session: AsyncSession, *, since: datetime, limit: int
) -> list[StaleEnterprise]:
    """Assigned enterprises not visited since ``since``: never visited first, then the longest ago. (How
    many there are is the number assigned minus those visited since then: see `coverage_by_community`.)"""
    assigned = select(Assignment.enterprise_id).where(Assignment.end_date.is_(None))
    found, _count = await _stale(session, among=assigned, since=since, limit=limit, count=False)
    return found


# -- /trends ------------------------------------------------------------------------------------------
async def problem_matrix(
    session: AsyncSession, *, since: datetime
) -> list[tuple[ProblemCategory, str | None, int, int]]:
    """(category, community, problems, enterprises) of the problems reported since ``since``."""
    rows = await session.execute(
        select(
            Problem.category,
            Enterprise.community,
            func.count(),
            func.count(distinct(Problem.enterprise_id)),
        )
        .join(Enterprise, Enterprise.id == Problem.enterprise_id)
        .where(Problem.created_at >= since)
        .group_by(Problem.category, Enterprise.community)
    )
    return [(category, community, int(n), int(e)) for category, community, n, e in rows.all()]


__all__ = [
    "Activity",
    "Cell",
    "CoverageRow",
    "EnterpriseDetails",
    "Totals",
    "coverage_by_community",
    "enterprise_details",
    "period_cells",
    "period_totals",
    "problem_matrix",
    "staff_activity",
    "staff_member",
    "staff_named",
    "unvisited_enterprises",
    "visits_per_range",
]
