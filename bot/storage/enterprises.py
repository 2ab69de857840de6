"""Enterprises and their assignments (包片)."""

from __future__ import annotations

import unicodedata
from datetime import date

from sqlalchemy import Select, bindparam, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from bot.storage.enums import STAFF, Role
from bot.storage.models import Assignment, Enterprise, User


async def enterprises_by_code(session: AsyncSession, *, codes: list[str]) -> dict[str, Enterprise]:
    found: dict[str, Enterprise] = {}
    for start in range(0, len(codes), 500):  # stay well below SQLite's bound-parameter limit
        chunk = codes[start : start + 500]
        rows = await session.scalars(select(Enterprise).where(Enterprise.credit_code.in_(chunk)))
        found.update({e.credit_code: e for e in rows})
    return found


async def current_assignments(
    session: AsyncSession, *, enterprise_ids: list[int]
) -> dict[tuple[int, Role], Assignment]:
    found: dict[tuple[int, Role], Assignment] = {}
    for start in range(0, len(enterprise_ids), 500):
        chunk = enterprise_ids[start : start + 500]
        rows = await session.scalars(
            select(Assignment).where(Assignment.enterprise_id.in_(chunk), Assignment.end_date.is_(None))
        )
        found.update({(a.enterprise_id, a.role): a for a in rows})
    return found


async def staff_by_name(session: AsyncSession) -> dict[tuple[str, Role], list[User]]:
    """Active liaisons and instructors (joined or only invited/imported), by name and role."""
    users = await session.scalars(
        select(User).where(User.active, or_(User.role == Role.liaison, User.role == Role.instructor))
    )
    by_name: dict[tuple[str, Role], list[User]] = {}
    for user in users:
        by_name.setdefault((user.name, user.role), []).append(user)
    return by_name


async def assign(
    session: AsyncSession,
    *,
    enterprise_id: int,
    user_id: int,
    role: Role,
    today: date,
    current: Assignment | None,
) -> bool:
    """Make `user_id` the enterprise's current liaison/instructor; False if they already are."""
    if current is not None and current.user_id == user_id:
        return False
    if current is not None:
        current.end_date = today
        await session.flush()  # the partial unique index allows one current assignment per role
    session.add(Assignment(enterprise_id=enterprise_id, user_id=user_id, role=role, start_date=today))
    return True


def assigned_enterprise_ids(user_id: int | BindParameter[int]) -> Select[int]:
    """The enterprises currently assigned to this user (a subquery for `Enterprise.id.in_(...)`)."""
    return select(Assignment.enterprise_id).where(
        Assignment.user_id == user_id, Assignment.end_date.is_(None)
    )


async def accessible_enterprise(
    session: AsyncSession, *, user: User, enterprise_id: int
) -> Enterprise | None:
    """The enterprise if this user may act on it: staff only on their current assignments."""
    if assigned_only(user):
        stmt, params = _ASSIGNED_ENTERPRISE, {"enterprise_id": enterprise_id, "user_id": user.id}
    else:
        stmt, params = _ANY_ENTERPRISE, {"enterprise_id": enterprise_id}
    found: Enterprise | None = await session.scalar(stmt, params)
    return found


# Built once: every step of a visit, problem or service conversation checks the enterprise again.
_ANY_ENTERPRISE = select(Enterprise).where(Enterprise.id == bindparam("enterprise_id"))
_ASSIGNED_ENTERPRISE = _ANY_ENTERPRISE.where(Enterprise.id.in_(assigned_enterprise_ids(bindparam("user_id"))))


def assigned_only(user: User) -> bool:
    """Staff may act only on the enterprises currently assigned to them; supervisors and admins on any."""
    return user.role in STAFF


# `accessible_enterprise`'s rule as a condition, for a write that must happen only if the user may act on
# the enterprise, checked in the same statement. Binds "enterprise_id" and, for `assigned_only`, "user_id".
MAY_ACT_ON_ANY = exists().where(Enterprise.id == bindparam("enterprise_id"))
MAY_ACT_ON_ASSIGNED = exists().where(
    Assignment.enterprise_id == bindparam("enterprise_id"),
    Assignment.user_id == bindparam("user_id"),
    Assignment.end_date.is_(None),
)


async def enterprises_for(
    session: AsyncSession, *, user: User, query: str | None = None, offset: int = 0, limit: int = 8
) -> tuple[list[Enterprise], int]:
    """A page of the enterprises this user may act on (staff: their own), optionally filtered by part of
    the name or credit code; with the total count."""
    stmt = select(Enterprise)
    if assigned_only(user):
        stmt = stmt.where(Enterprise.id.in_(assigned_enterprise_ids(user.id)))
    query = unicodedata.normalize("NFKC", query or "").strip()  # full-width input from phones
    if query:
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(
                Enterprise.name.ilike(pattern, escape="\\"),
                Enterprise.credit_code.ilike(pattern, escape="\\"),
            )
        )
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await session.scalars(stmt.order_by(Enterprise.name, Enterprise.id).offset(offset).limit(limit))
    return list(rows), total
