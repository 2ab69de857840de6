"""Visits (驻点式服务): the visit log, its photos and what a visit follows up."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Exists, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from bot.storage.enterprises import MAY_ACT_ON_ANY, MAY_ACT_ON_ASSIGNED, assigned_only
from bot.storage.enums import PartyOrg, ServiceStatus, VisitTopic
from bot.storage.models import (
    Attachment,
    Enterprise,
    MenuItem,
    Problem,
    ServiceRequest,
    User,
    Visit,
    table,
    visit_ref,
)
from bot.storage.problems import PENDING

MAX_PHOTOS = 5


async def open_problems(session: AsyncSession, *, enterprise_id: int) -> list[Problem]:
    """The enterprise's problems someone still has to act on (open, in progress, returned), oldest first."""
    rows = await session.scalars(
        select(Problem)
        .where(Problem.enterprise_id == enterprise_id, Problem.status.in_(PENDING))
        .order_by(Problem.created_at, Problem.id)
    )
    return list(rows)


async def open_service_requests(
    session: AsyncSession, *, enterprise_id: int
) -> list[tuple[ServiceRequest, MenuItem]]:
    """The enterprise's service requests not yet delivered or declined, oldest first, with their item."""
    rows = await session.execute(
        select(ServiceRequest, MenuItem)
        .join(MenuItem, MenuItem.id == ServiceRequest.menu_item_id)
        .where(
            ServiceRequest.enterprise_id == enterprise_id,
            ServiceRequest.status.in_((ServiceStatus.requested, ServiceStatus.in_progress)),
        )
        .order_by(ServiceRequest.created_at, ServiceRequest.id)
    )
    return [(request, item) for request, item in rows]


async def problem_of_enterprise(
    session: AsyncSession, *, problem_id: int, enterprise_id: int, lock: bool = False
) -> Problem | None:
    """The problem if it belongs to this enterprise (a forged id finds nothing); `lock` to change it."""
    stmt = select(Problem).where(Problem.id == problem_id, Problem.enterprise_id == enterprise_id)
    found: Problem | None = await session.scalar(stmt.with_for_update() if lock else stmt)
    return found


class SavedVisit(NamedTuple):
    id: int
    ref: str


def _insert_visit_if(condition: Exists) -> ReturningInsert[int]:
    """INSERT INTO visits (…) SELECT :enterprise_id, :user_id, … WHERE <condition> RETURNING id."""
    visits = table(Visit)
    columns = [column for column in visits.c if column.name not in ("id", "withdrawn_at")]
    values = select(*(bindparam(column.name, type_=column.type) for column in columns)).where(condition)
    return insert(visits).from_select(columns, values).returning(visits.c.id)


# Built once, and Core rather than ORM: confirming a visit is the bot's busiest write (see drafts.py). The
# permission check is the INSERT's own condition, so the confirm needs no separate query for it.
_INSERT_VISIT = {True: _insert_visit_if(MAY_ACT_ON_ASSIGNED), False: _insert_visit_if(MAY_ACT_ON_ANY)}
_INSERT_ATTACHMENT = insert(table(Attachment))


async def create_visit(
    session: AsyncSession,
    *,
    enterprise_id: int,
    user: User,
    visited_at: datetime,
    topics: list[VisitTopic],
    notes: str,
    location: tuple[float, float] | None,
    distance_m: int | None,
    party_org: PartyOrg | None,
    party_members: int | None,
    photos: list[tuple[str, str]],
    source: tuple[int, int] | None,
) -> SavedVisit | None:
    """Store one visit with its photos (file_id, file_unique_id; at most MAX_PHOTOS, duplicates dropped);
    None, storing nothing, if the user may not act on the enterprise (any longer)."""
    visit_id: int | None = (
        await session.execute(
            _INSERT_VISIT[assigned_only(user)],
            {
                "enterprise_id": enterprise_id,
                "user_id": user.id,
                "visited_at": visited_at,
                "topics": [topic.value for topic in topics],
                "notes": notes,
                "latitude": location[0] if location else None,
                "longitude": location[1] if location else None,
                "distance_m": distance_m,
                "party_org": party_org,
                "party_members": party_members,
                "created_at": visited_at,
                "updated_at": visited_at,
                "source_chat_id": source[0] if source else None,
                "source_message_id": source[1] if source else None,
            },
        )
    ).scalar_one_or_none()
    if visit_id is None:
        return None
    attachments: dict[str, dict[str, object]] = {}
    for file_id, file_unique_id in photos:
        if file_unique_id not in attachments and len(attachments) < MAX_PHOTOS:
            attachments[file_unique_id] = {
                "visit_id": visit_id,
                "file_id": file_id,
                "file_unique_id": file_unique_id,
            }
    if attachments:
        await session.execute(_INSERT_ATTACHMENT, list(attachments.values()))
    return SavedVisit(visit_id, visit_ref(visit_id, visited_at))


def update_party_org(
    enterprise: Enterprise, *, party_org: PartyOrg | None, party_members: int | None, now: datetime
) -> dict[str, object]:
    """Apply a visit's party-organisation update to the enterprise; returns what changed (for the audit)."""
    changes: dict[str, object] = {}
    if party_org is not None and party_org is not enterprise.party_org:
        changes["party_org"] = [enterprise.party_org.value, party_org.value]
        enterprise.party_org = party_org
    if party_members is not None and party_members != enterprise.party_members:
        changes["party_members"] = [enterprise.party_members, party_members]
        enterprise.party_members = party_members
    if changes:
        enterprise.updated_at = now
    return changes
