"""Supervisors' problem lists (/pending, /overdue) and the problem card: filtered, counted and paged in SQL.

Pending = open, in progress or returned for correction. Overdue = pending with a due date before today
(today in the district's time zone, computed by the caller). Lists are oldest first: pending by the day
the problem was reported, overdue by its due date (the longest overdue first).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.enums import ProblemCategory, ProblemStatus
from bot.storage.models import Draft, Enterprise, Problem, User
from bot.storage.problems import PENDING, history


def department_key(name: str) -> str:
    """A short stable key for a department name, small enough for callback data (names are Chinese)."""
    return hashlib.blake2s(name.encode(), digest_size=4).hexdigest()


@dataclass(frozen=True)
class ProblemFilter:
    """Which problems a list shows. `unassigned` means no responsible department yet."""

    overdue: bool = False
    category: ProblemCategory | None = None
    department: str | None = None
    unassigned: bool = False


@dataclass(frozen=True)
class ProblemRow:
    id: int
    created_at: datetime
    enterprise_name: str
    category: ProblemCategory
    status: ProblemStatus
    department: str | None
    due_date: date | None

    @property
    def ref(self) -> str:
        return f"P-{self.created_at.year}-{self.id:04d}"


def _conditions(filter: ProblemFilter, *, today: date, with_category: bool = True) -> list[Any]:
    conditions: list[Any] = [Problem.status.in_(PENDING)]
    if filter.overdue:
        conditions.append(Problem.due_date < today)
    if with_category and filter.category is not None:
        conditions.append(Problem.category == filter.category)
    return conditions


def _department_conditions(filter: ProblemFilter) -> list[Any]:
    if filter.unassigned:
        return [Problem.department.is_(None)]
    if filter.department is not None:
        return [Problem.department == filter.department]
    return []


async def list_problems(
    session: AsyncSession, *, filter: ProblemFilter, today: date, offset: int, limit: int
) -> tuple[list[ProblemRow], int]:
    """One page of the list and the total number of problems matching the filter."""
    conditions = _conditions(filter, today=today) + _department_conditions(filter)
    total = await session.scalar(select(func.count()).select_from(Problem).where(*conditions)) or 0
    order = (
        (Problem.due_date, Problem.created_at, Problem.id)
        if filter.overdue
        else (Problem.created_at, Problem.id)
    )
    result = await session.execute(
        select(
            Problem.id,
            Problem.created_at,
            Enterprise.name,
            Problem.category,
            Problem.status,
            Problem.department,
            Problem.due_date,
        )
        .join(Enterprise, Enterprise.id == Problem.enterprise_id)
        .where(*conditions)
        .order_by(*order)
        .offset(offset)
        .limit(limit)
    )
    return [ProblemRow(*row) for row in result.all()], total


async def category_counts(
    session: AsyncSession, *, filter: ProblemFilter, today: date
) -> list[tuple[ProblemCategory, int]]:
    """How many listed problems each category has (within the department filter), in enum order."""
    conditions = _conditions(filter, today=today, with_category=False) + _department_conditions(filter)
    result = await session.execute(
        select(Problem.category, func.count()).where(*conditions).group_by(Problem.category)
    )
    counts: dict[ProblemCategory, int] = {category: count for category, count in result.all()}
    return [(category, counts[category]) for category in ProblemCategory if category in counts]


async def department_counts(
    session: AsyncSession, *, filter: ProblemFilter, today: date
) -> list[tuple[str | None, int]]:
    """How many listed problems each responsible department has (None = unassigned, first), by name."""
    result = await session.execute(
        select(Problem.department, func.count())
        .where(*_conditions(filter, today=today))
        .group_by(Problem.department)
    )
    rows: list[tuple[str | None, int]] = [(department, count) for department, count in result.all()]
    return sorted(rows, key=lambda row: (row[0] is not None, row[0] or ""))


async def department_by_key(session: AsyncSession, *, key: str) -> str | None:
    """The department name behind a `department_key`, among those any problem was ever assigned to."""
    names = await session.scalars(
        select(Problem.department).where(Problem.department.is_not(None)).distinct()
    )
    return next((name for name in names if name is not None and department_key(name) == key), None)


async def known_departments(session: AsyncSession, *, limit: int = 12) -> list[str]:
    """Departments to suggest when assigning: those problems were assigned to most often, then the
    departments liaisons come from."""
    assigned = await session.execute(
        select(Problem.department, func.count())
        .where(Problem.department.is_not(None))
        .group_by(Problem.department)
        .order_by(func.count().desc(), Problem.department)
        .limit(limit)
    )
    names: list[str] = [name for name, _count in assigned.all() if name]
    if len(names) < limit:
        liaisons = await session.scalars(
            select(User.department).where(User.department.is_not(None), User.active).distinct()
        )
        names += sorted({name for name in liaisons if name and name not in names})
    return names[:limit]


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    actor: str | None
    kind: str
    from_status: ProblemStatus | None
    to_status: ProblemStatus | None
    note: str | None


@dataclass(frozen=True)
class ProblemCard:
    problem: Problem
    enterprise: Enterprise
    reporter: User | None
    history: list[HistoryEntry]


async def problem_card(session: AsyncSession, *, problem_id: int) -> ProblemCard | None:
    """Everything the problem card shows: the problem, its enterprise, reporter and full history."""
    problem = await session.get(Problem, problem_id)
    if problem is None:
        return None
    enterprise = await session.get(Enterprise, problem.enterprise_id)
    assert enterprise is not None  # a foreign key with ON DELETE CASCADE
    reporter = await session.get(User, problem.reporter_id)
    events = await history(session, problem_id=problem_id)
    actor_ids = {event.actor_id for event in events if event.actor_id is not None}
    names: dict[int, str] = {}
    if actor_ids:
        result = await session.execute(select(User.id, User.name).where(User.id.in_(actor_ids)))
        names = {user_id: name for user_id, name in result.all()}
    entries = [
        HistoryEntry(
            at=event.created_at,
            actor=names.get(event.actor_id) if event.actor_id is not None else None,
            kind=event.kind,
            from_status=event.from_status,
            to_status=event.to_status,
            note=event.note,
        )
        for event in events
    ]
    return ProblemCard(problem=problem, enterprise=enterprise, reporter=reporter, history=entries)


async def review_in_progress(
    session: AsyncSession, *, user_id: int, since: datetime
) -> dict[str, Any] | None:
    """The data of the user's problem-review conversation (flow `review`) if one is in progress and was
    active since `since` — so a second tap on the same card button does not start it again."""
    data: dict[str, Any] | None = await session.scalar(
        select(Draft.data).where(Draft.user_id == user_id, Draft.flow == "review", Draft.updated_at >= since)
    )
    return data
