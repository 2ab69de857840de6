"""Problems and their history. Every change of a problem goes through here and leaves a `ProblemEvent`."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.enums import ProblemCategory, ProblemStatus
from bot.storage.models import Problem, ProblemEvent

S = ProblemStatus
# Which status changes are allowed; anything else is refused (e.g. a second tap on an old button).
TRANSITIONS: dict[ProblemStatus, frozenset[ProblemStatus]] = {
    S.open: frozenset({S.in_progress, S.resolved, S.returned, S.closed}),
    S.in_progress: frozenset({S.open, S.resolved, S.returned, S.closed}),
    S.returned: frozenset({S.open, S.closed}),  # the reporter's correction sends it back to open
    S.resolved: frozenset({S.in_progress}),  # reopened by a supervisor
    S.closed: frozenset({S.open}),
}
PENDING = (S.open, S.in_progress, S.returned)


class TransitionError(Exception):
    """The problem is no longer in a state that allows this change."""


async def create_problem(
    session: AsyncSession,
    *,
    enterprise_id: int,
    reporter_id: int,
    category: ProblemCategory,
    description: str,
    requested_due_date: date | None,
    now: datetime,
    source: tuple[int, int] | None = None,
) -> Problem:
    problem = Problem(
        enterprise_id=enterprise_id,
        reporter_id=reporter_id,
        category=category,
        description=description,
        status=S.open,
        requested_due_date=requested_due_date,
        created_at=now,
        updated_at=now,
        source_chat_id=source[0] if source else None,
        source_message_id=source[1] if source else None,
    )
    session.add(problem)
    await session.flush()
    session.add(
        ProblemEvent(
            problem_id=problem.id,
            actor_id=reporter_id,
            kind="created",
            to_status=S.open,
            note=None,
            created_at=now,
        )
    )
    return problem


async def get_problem_for_update(session: AsyncSession, *, problem_id: int) -> Problem | None:
    found: Problem | None = await session.scalar(
        select(Problem).where(Problem.id == problem_id).with_for_update()
    )
    return found


def add_event(
    session: AsyncSession,
    problem: Problem,
    *,
    actor_id: int | None,
    kind: str,
    now: datetime,
    note: str | None = None,
    to_status: ProblemStatus | None = None,
) -> None:
    session.add(
        ProblemEvent(
            problem_id=problem.id,
            actor_id=actor_id,
            kind=kind,
            note=note,
            from_status=problem.status if to_status else None,
            to_status=to_status,
            created_at=now,
        )
    )


def change_status(
    session: AsyncSession,
    problem: Problem,
    *,
    to: ProblemStatus,
    actor_id: int,
    now: datetime,
    note: str | None = None,
    kind: str | None = None,
    expected: ProblemStatus | None = None,
) -> None:
    """Move the problem to `to`, recording who and why; raise TransitionError if it no longer applies.

    `expected` is the status the user saw when they tapped: if it changed meanwhile, nothing happens.
    """
    if expected is not None and problem.status is not expected:
        raise TransitionError(problem.status)
    if to not in TRANSITIONS[problem.status]:
        raise TransitionError(problem.status)
    add_event(session, problem, actor_id=actor_id, kind=kind or to.value, now=now, note=note, to_status=to)
    problem.status = to
    problem.updated_at = now
    if to is S.resolved:
        problem.resolved_at = now
    elif problem.resolved_at is not None:
        problem.resolved_at = None


def resolve(
    session: AsyncSession,
    problem: Problem,
    *,
    actor_id: int,
    now: datetime,
    resolution: str,
    funds_wan: Decimal | None,
    expected: ProblemStatus | None = None,
) -> None:
    change_status(
        session, problem, to=S.resolved, actor_id=actor_id, now=now, note=resolution, expected=expected
    )
    problem.resolution = resolution
    problem.funds_wan = funds_wan


def add_progress(session: AsyncSession, problem: Problem, *, note: str, actor_id: int, now: datetime) -> None:
    """A progress note; an `open` problem thereby moves to `in_progress` (one event records both)."""
    if problem.status is ProblemStatus.open:
        change_status(
            session,
            problem,
            to=ProblemStatus.in_progress,
            actor_id=actor_id,
            now=now,
            note=note,
            kind="progress",
            expected=ProblemStatus.open,
        )
        return
    add_event(session, problem, actor_id=actor_id, kind="progress", now=now, note=note)
    problem.updated_at = now


async def history(session: AsyncSession, *, problem_id: int) -> list[ProblemEvent]:
    rows = await session.scalars(
        select(ProblemEvent).where(ProblemEvent.problem_id == problem_id).order_by(ProblemEvent.id)
    )
    return list(rows)
