"""What the reminders are about, read from the data (the scanner decides from these, never from memory)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.enums import ProblemCategory, ProblemStatus, Role
from bot.storage.models import Assignment, Enterprise, Problem, User, Visit
from bot.storage.problems import PENDING


@dataclass(frozen=True)
class ProblemItem:
    id: int
    ref: str
    enterprise: str
    category: ProblemCategory
    status: ProblemStatus
    created_at: datetime
    due_date: date | None
    reporter_id: int
    assignee_id: int | None


@dataclass(frozen=True)
class Recipient:
    id: int
    telegram_id: int
    locale: str | None
    role: Role
    muted: list[str]


def _reachable() -> ColumnElement[bool]:
    return and_(User.active, User.telegram_id.is_not(None), User.unreachable.is_(False))


async def recipients(
    session: AsyncSession, *, ids: set[int] | None = None, roles: tuple[Role, ...] | None = None
) -> dict[int, Recipient]:
    """Active, reachable users (by id and/or role) who can receive pushes."""
    stmt = select(User).where(_reachable())
    if ids is not None:
        stmt = stmt.where(User.id.in_(ids or {0}))
    if roles is not None:
        stmt = stmt.where(User.role.in_(roles))
    users = await session.scalars(stmt)
    return {u.id: Recipient(u.id, u.telegram_id or 0, u.locale, u.role, list(u.muted or [])) for u in users}


def _problem_items_stmt() -> Select[Problem, str]:
    return select(Problem, Enterprise.name).join(Enterprise, Enterprise.id == Problem.enterprise_id)


def _item(problem: Problem, enterprise: str) -> ProblemItem:
    return ProblemItem(
        problem.id,
        problem.ref,
        enterprise,
        problem.category,
        problem.status,
        problem.created_at,
        problem.due_date,
        problem.reporter_id,
        problem.assignee_id,
    )


async def pending_problems(session: AsyncSession, *, today: date) -> list[ProblemItem]:
    """Open, in-progress or returned problems that are not snoozed today, oldest first."""
    rows = await session.execute(
        _problem_items_stmt()
        .where(
            Problem.status.in_(PENDING), or_(Problem.snoozed_until.is_(None), Problem.snoozed_until < today)
        )
        .order_by(Problem.created_at, Problem.id)
    )
    return [_item(p, name) for p, name in rows]


async def overdue_problems(session: AsyncSession, *, today: date) -> list[ProblemItem]:
    rows = await session.execute(
        _problem_items_stmt()
        .where(Problem.status.in_(PENDING), Problem.due_date < today)
        .order_by(Problem.due_date, Problem.id)
    )
    return [_item(p, name) for p, name in rows]


@dataclass(frozen=True)
class Gap:
    user_id: int
    enterprise_id: int
    enterprise: str
    last_visit: datetime | None


async def coverage_gaps(session: AsyncSession, *, before: datetime) -> list[Gap]:
    """Current assignments whose enterprise has no (non-withdrawn) visit since `before`, never first."""
    last_visit = (
        select(Visit.enterprise_id, func.max(Visit.visited_at).label("last"))
        .where(Visit.withdrawn_at.is_(None))
        .group_by(Visit.enterprise_id)
        .subquery()
    )
    rows = await session.execute(
        select(Assignment.user_id, Enterprise.id, Enterprise.name, last_visit.c.last)
        .join(Enterprise, Enterprise.id == Assignment.enterprise_id)
        .outerjoin(last_visit, last_visit.c.enterprise_id == Enterprise.id)
        .where(Assignment.end_date.is_(None), or_(last_visit.c.last.is_(None), last_visit.c.last < before))
        .order_by(Assignment.user_id, last_visit.c.last.is_not(None), last_visit.c.last, Enterprise.name)
    )
    return [Gap(user_id, ent_id, name, last) for user_id, ent_id, name, last in rows]


async def snooze(session: AsyncSession, *, problem_id: int, user_id: int, until: date) -> ProblemItem | None:
    """Snooze a pending problem for its reporter or assignee; None if it is not theirs or not pending."""
    problem = await session.scalar(
        select(Problem)
        .where(
            Problem.id == problem_id,
            Problem.status.in_(PENDING),
            or_(Problem.reporter_id == user_id, Problem.assignee_id == user_id),
        )
        .with_for_update()
    )
    if problem is None:
        return None
    problem.snoozed_until = until
    enterprise = await session.get(Enterprise, problem.enterprise_id)
    return _item(problem, enterprise.name if enterprise else "")


async def set_muted(session: AsyncSession, *, user_id: int, muted: list[str]) -> None:
    user = await session.get(User, user_id)
    if user is not None:
        user.muted = sorted(set(muted))
