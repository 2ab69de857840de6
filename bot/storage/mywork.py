"""/my: one's own enterprises, problems, service requests and visits, and the author's edits of them.

Every list is one query (counts and last visit dates are correlated subqueries evaluated by the
database, never loops in Python). Withdrawn visits (`Visit.withdrawn_at` set) count nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from bot.storage.audit import record
from bot.storage.enterprises import assigned_enterprise_ids
from bot.storage.enums import ProblemStatus, ServiceStatus
from bot.storage.models import (
    Assignment,
    Attachment,
    Enterprise,
    MenuItem,
    Problem,
    ProblemEvent,
    ServiceRequest,
    Visit,
)
from bot.storage.problems import PENDING, change_status

SERVICE_PENDING = (ServiceStatus.requested, ServiceStatus.in_progress)
STALE_DAYS = 30  # an assigned enterprise not visited for this long is flagged in the overview
RECENT_DAYS = 30  # "my recent visits" and recently finished service requests


@dataclass(frozen=True)
class Overview:
    enterprises: int
    not_visited: int  # assigned enterprises without a visit in the last STALE_DAYS days
    problems: int  # reported by me, pending (open, in progress or returned)
    returned: int  # of those, returned for correction: waiting for me
    services: int  # requested by me, not yet delivered or declined
    visits: int  # mine in the last RECENT_DAYS days, not withdrawn


@dataclass(frozen=True)
class EnterpriseRow:
    id: int
    name: str
    last_visit: datetime | None
    open_problems: int
    open_services: int


@dataclass(frozen=True)
class ServiceRow:
    request: ServiceRequest
    enterprise_name: str
    item_zh: str
    item_en: str

    def item(self, locale: str) -> str:
        return self.item_en if locale == "en" else self.item_zh


def _counted_visit() -> Any:
    return Visit.withdrawn_at.is_(None)


def _overview_statement() -> Select[Any]:
    """Built once: /my is the most frequent read, and building this statement costs more than the database
    takes to answer it. One row from three one-row aggregates (FILTER counts a subset in the same pass)."""
    user_id: BindParameter[int] = bindparam("user_id")
    visited_lately = (
        select(Visit.id)
        .where(
            Visit.enterprise_id == Assignment.enterprise_id,
            _counted_visit(),
            Visit.visited_at >= bindparam("stale_since"),
        )
        .exists()
    )
    enterprise = Assignment.enterprise_id.distinct()
    assigned = (
        select(
            func.count(enterprise).label("enterprises"),
            func.count(enterprise).filter(~visited_lately).label("not_visited"),
        )
        .where(Assignment.user_id == user_id, Assignment.end_date.is_(None))
        .subquery()
    )
    reported = (
        select(
            func.count(Problem.id).label("pending"),
            func.count(Problem.id).filter(Problem.status == ProblemStatus.returned).label("returned"),
        )
        .where(Problem.reporter_id == user_id, Problem.status.in_(PENDING))
        .subquery()
    )
    services = (
        select(func.count(ServiceRequest.id))
        .where(ServiceRequest.requester_id == user_id, ServiceRequest.status.in_(SERVICE_PENDING))
        .scalar_subquery()
    )
    visits = (
        select(func.count())  # count(*): answered from ix_visits_live_user alone
        .select_from(Visit)
        .where(Visit.user_id == user_id, _counted_visit(), Visit.visited_at >= bindparam("recent_since"))
        .scalar_subquery()
    )
    return select(
        assigned.c.enterprises,
        assigned.c.not_visited,
        reported.c.pending,
        reported.c.returned,
        services,
        visits,
    ).select_from(assigned.join(reported, literal(True)))


_OVERVIEW = _overview_statement()


async def overview(session: AsyncSession, *, user_id: int, now: datetime) -> Overview:
    params = {
        "user_id": user_id,
        "stale_since": now - timedelta(days=STALE_DAYS),
        "recent_since": now - timedelta(days=RECENT_DAYS),
    }
    row = (await session.execute(_OVERVIEW, params)).one()
    return Overview(*(int(value or 0) for value in row))


async def my_enterprises(
    session: AsyncSession, *, user_id: int, offset: int, limit: int
) -> tuple[list[EnterpriseRow], int]:
    """The enterprises currently assigned to me, the longest unvisited first (never visited on top),
    with the last (not withdrawn) visit by anyone and the enterprise's pending problems and services."""
    mine = assigned_enterprise_ids(user_id)
    last_visit = (
        select(func.max(Visit.visited_at))
        .where(Visit.enterprise_id == Enterprise.id, _counted_visit())
        .correlate(Enterprise)
        .scalar_subquery()
        .label("last_visit")
    )
    open_problems = (
        select(func.count(Problem.id))
        .where(Problem.enterprise_id == Enterprise.id, Problem.status.in_(PENDING))
        .correlate(Enterprise)
        .scalar_subquery()
        .label("open_problems")
    )
    open_services = (
        select(func.count(ServiceRequest.id))
        .where(ServiceRequest.enterprise_id == Enterprise.id, ServiceRequest.status.in_(SERVICE_PENDING))
        .correlate(Enterprise)
        .scalar_subquery()
        .label("open_services")
    )
    total = await session.scalar(select(func.count(Enterprise.id)).where(Enterprise.id.in_(mine))) or 0
    rows = await session.execute(
        select(Enterprise.id, Enterprise.name, last_visit, open_problems, open_services)
        .where(Enterprise.id.in_(mine))
        .order_by(last_visit.asc().nulls_first(), Enterprise.name, Enterprise.id)
        .offset(offset)
        .limit(limit)
    )
    return [
        EnterpriseRow(id=r.id, name=r.name, last_visit=r.last_visit, open_problems=r[3], open_services=r[4])
        for r in rows
    ], total


async def my_open_problems(
    session: AsyncSession, *, user_id: int, offset: int, limit: int
) -> tuple[list[tuple[Problem, str]], int]:
    """My pending problems with their enterprise's name: returned ones first (they wait for me), then
    the oldest first."""
    where = and_(Problem.reporter_id == user_id, Problem.status.in_(PENDING))
    total = await session.scalar(select(func.count(Problem.id)).where(where)) or 0
    return await _problems_with_names(session, where, offset=offset, limit=limit), total


async def returned_problems(session: AsyncSession, *, user_id: int, limit: int) -> list[tuple[Problem, str]]:
    """My problems returned for correction (they wait for me), the oldest first."""
    where = and_(Problem.reporter_id == user_id, Problem.status == ProblemStatus.returned)
    return await _problems_with_names(session, where, offset=0, limit=limit)


async def _problems_with_names(
    session: AsyncSession, where: Any, *, offset: int, limit: int
) -> list[tuple[Problem, str]]:
    waiting_for_me = (Problem.status == ProblemStatus.returned).desc()
    rows = await session.execute(
        select(Problem, Enterprise.name)
        .join(Enterprise, Enterprise.id == Problem.enterprise_id)
        .where(where)
        .order_by(waiting_for_me, Problem.created_at, Problem.id)
        .offset(offset)
        .limit(limit)
    )
    return [(problem, name) for problem, name in rows]


async def my_service_requests(
    session: AsyncSession, *, user_id: int, now: datetime, offset: int, limit: int
) -> tuple[list[ServiceRow], int]:
    """My pending service requests (oldest first), then those finished in the last RECENT_DAYS days."""
    where = and_(
        ServiceRequest.requester_id == user_id,
        or_(
            ServiceRequest.status.in_(SERVICE_PENDING),
            ServiceRequest.updated_at >= now - timedelta(days=RECENT_DAYS),
        ),
    )
    total = await session.scalar(select(func.count(ServiceRequest.id)).where(where)) or 0
    finished = ServiceRequest.status.not_in(SERVICE_PENDING)
    rows = await session.execute(
        select(ServiceRequest, Enterprise.name, MenuItem.name_zh, MenuItem.name_en)
        .join(Enterprise, Enterprise.id == ServiceRequest.enterprise_id)
        .join(MenuItem, MenuItem.id == ServiceRequest.menu_item_id)
        .where(where)
        .order_by(finished, ServiceRequest.created_at, ServiceRequest.id)
        .offset(offset)
        .limit(limit)
    )
    return [ServiceRow(req, name, zh, en) for req, name, zh, en in rows], total


async def my_recent_visits(
    session: AsyncSession, *, user_id: int, now: datetime, offset: int, limit: int
) -> tuple[list[tuple[Visit, str]], int]:
    """My visits of the last RECENT_DAYS days (not withdrawn), newest first, with the enterprise name."""
    where = and_(
        Visit.user_id == user_id,
        _counted_visit(),
        Visit.visited_at >= now - timedelta(days=RECENT_DAYS),
    )
    total = await session.scalar(select(func.count(Visit.id)).where(where)) or 0
    rows = await session.execute(
        select(Visit, Enterprise.name)
        .join(Enterprise, Enterprise.id == Visit.enterprise_id)
        .where(where)
        .order_by(Visit.visited_at.desc(), Visit.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [(visit, name) for visit, name in rows], total


# -- cards -----------------------------------------------------------------------------------------
async def problem_card(session: AsyncSession, *, problem_id: int) -> tuple[Problem, str] | None:
    row = (
        await session.execute(
            select(Problem, Enterprise.name)
            .join(Enterprise, Enterprise.id == Problem.enterprise_id)
            .where(Problem.id == problem_id)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def recent_events(session: AsyncSession, *, problem_id: int, limit: int) -> list[ProblemEvent]:
    """The latest `limit` events of a problem, oldest of them first."""
    rows = await session.scalars(
        select(ProblemEvent)
        .where(ProblemEvent.problem_id == problem_id)
        .order_by(ProblemEvent.id.desc())
        .limit(limit)
    )
    return list(reversed(list(rows)))


async def last_event(session: AsyncSession, *, problem_id: int, kind: str) -> ProblemEvent | None:
    found: ProblemEvent | None = await session.scalar(
        select(ProblemEvent)
        .where(ProblemEvent.problem_id == problem_id, ProblemEvent.kind == kind)
        .order_by(ProblemEvent.id.desc())
        .limit(1)
    )
    return found


async def visit_card(session: AsyncSession, *, visit_id: int) -> tuple[Visit, str, int] | None:
    """The visit, its enterprise's name and its number of photos."""
    photos = (
        select(func.count(Attachment.id))
        .where(Attachment.visit_id == Visit.id)
        .correlate(Visit)
        .scalar_subquery()
    )
    row = (
        await session.execute(
            select(Visit, Enterprise.name, photos)
            .join(Enterprise, Enterprise.id == Visit.enterprise_id)
            .where(Visit.id == visit_id)
        )
    ).first()
    return (row[0], row[1], int(row[2] or 0)) if row else None


async def service_card(session: AsyncSession, *, request_id: int) -> ServiceRow | None:
    row = (
        await session.execute(
            select(ServiceRequest, Enterprise.name, MenuItem.name_zh, MenuItem.name_en)
            .join(Enterprise, Enterprise.id == ServiceRequest.enterprise_id)
            .join(MenuItem, MenuItem.id == ServiceRequest.menu_item_id)
            .where(ServiceRequest.id == request_id)
        )
    ).first()
    return ServiceRow(row[0], row[1], row[2], row[3]) if row else None


# -- changes by the author -------------------------------------------------------------------------
async def get_visit_for_update(session: AsyncSession, *, visit_id: int) -> Visit | None:
    found: Visit | None = await session.scalar(select(Visit).where(Visit.id == visit_id).with_for_update())
    return found


async def get_service_request_for_update(session: AsyncSession, *, request_id: int) -> ServiceRequest | None:
    found: ServiceRequest | None = await session.scalar(
        select(ServiceRequest).where(ServiceRequest.id == request_id).with_for_update()
    )
    return found


def editable_until(visit: Visit, *, window_days: int) -> datetime:
    return visit.created_at + timedelta(days=window_days)


async def edit_visit(
    session: AsyncSession, visit: Visit, *, topics: list[str], notes: str, actor_id: int, now: datetime
) -> bool:
    """Change a visit's topics and notes, keeping before/after in the audit log; False if nothing changed."""
    before = {"topics": list(visit.topics), "notes": visit.notes}
    after = {"topics": list(topics), "notes": notes}
    if before == after:
        return False
    visit.topics = list(topics)
    visit.notes = notes
    visit.updated_at = now
    await record(
        session,
        actor_id=actor_id,
        action="visit.edit",
        entity="visit",
        entity_id=visit.id,
        now=now,
        details={"before": before, "after": after},
    )
    return True


async def withdraw_visit(session: AsyncSession, visit: Visit, *, actor_id: int, now: datetime) -> None:
    """Withdraw a visit: it stays in the database for the audit trail but no longer counts anywhere
    (every report must filter on `Visit.withdrawn_at IS NULL`)."""
    visit.withdrawn_at = now
    visit.updated_at = now
    await record(
        session,
        actor_id=actor_id,
        action="visit.withdraw",
        entity="visit",
        entity_id=visit.id,
        now=now,
        details={"before": {"withdrawn_at": None}, "after": {"withdrawn_at": now.isoformat()}},
    )


async def correct_problem(
    session: AsyncSession, problem: Problem, *, description: str, actor_id: int, now: datetime
) -> None:
    """The reporter's answer to a return for correction: new description, back to `open`.

    Raises TransitionError when the problem is no longer `returned` (already answered, closed...).
    """
    before = problem.description
    change_status(
        session,
        problem,
        to=ProblemStatus.open,
        actor_id=actor_id,
        now=now,
        note=description,
        kind="corrected",
        expected=ProblemStatus.returned,
    )
    problem.description = description
    await record(
        session,
        actor_id=actor_id,
        action="problem.correct",
        entity="problem",
        entity_id=problem.id,
        now=now,
        details={"before": {"description": before}, "after": {"description": description}},
    )


async def withdraw_service_request(
    session: AsyncSession, request: ServiceRequest, *, actor_id: int, now: datetime
) -> None:
    """Withdraw a request nobody has started on: it is deleted (there is no "withdrawn" status, and
    "declined" would wrongly say the district refused it); the full row stays in the audit log."""
    await record(
        session,
        actor_id=actor_id,
        action="service.withdraw",
        entity="service_request",
        entity_id=request.id,
        now=now,
        details={
            "before": {
                "ref": request.ref,
                "enterprise_id": request.enterprise_id,
                "menu_item_id": request.menu_item_id,
                "note": request.note,
                "status": request.status.value,
                "created_at": request.created_at.isoformat(),
            },
            "after": None,
        },
    )
    await session.delete(request)
