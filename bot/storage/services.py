"""菜单式服务: the menu catalogue by stage and the service requests made from it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.audit import record
from bot.storage.enums import ServiceStatus, Stage
from bot.storage.models import Enterprise, MenuItem, ServiceRequest

# Requests someone still has to act on (listed at visit checkpoints and in /my).
PENDING_SERVICE = (ServiceStatus.requested, ServiceStatus.in_progress)


async def menu_for(session: AsyncSession, *, stage: Stage) -> list[MenuItem]:
    """The active menu of one stage, in catalogue order."""
    rows = await session.scalars(
        select(MenuItem)
        .where(MenuItem.stage == stage, MenuItem.active)
        .order_by(MenuItem.position, MenuItem.id)
    )
    return list(rows)


async def menu_item(session: AsyncSession, *, item_id: int, stage: Stage) -> MenuItem | None:
    """The item if it is an active part of this stage's menu (anything else may be forged)."""
    found: MenuItem | None = await session.scalar(
        select(MenuItem).where(MenuItem.id == item_id, MenuItem.stage == stage, MenuItem.active)
    )
    return found


async def set_stage(
    session: AsyncSession, *, enterprise: Enterprise, stage: Stage, actor_id: int, now: datetime
) -> None:
    """Record an enterprise's stage (kept in the audit log with the previous value)."""
    previous = enterprise.stage
    enterprise.stage = stage
    enterprise.updated_at = now
    await record(
        session,
        actor_id=actor_id,
        action="set_stage",
        entity="enterprise",
        entity_id=enterprise.id,
        now=now,
        details={"from": previous.value if previous else None, "to": stage.value},
    )


async def create_service_request(
    session: AsyncSession,
    *,
    enterprise_id: int,
    requester_id: int,
    menu_item_id: int,
    note: str,
    now: datetime,
    source: tuple[int, int] | None = None,
) -> ServiceRequest:
    request = ServiceRequest(
        enterprise_id=enterprise_id,
        requester_id=requester_id,
        menu_item_id=menu_item_id,
        note=note,
        status=ServiceStatus.requested,
        created_at=now,
        updated_at=now,
        source_chat_id=source[0] if source else None,
        source_message_id=source[1] if source else None,
    )
    session.add(request)
    await session.flush()
    return request


async def pending_service_requests(
    session: AsyncSession, *, enterprise_id: int | None = None, requester_id: int | None = None
) -> list[tuple[ServiceRequest, MenuItem]]:
    """Requests not yet delivered or declined, oldest first, with their menu item; optionally only one
    enterprise's or one requester's."""
    stmt = (
        select(ServiceRequest, MenuItem)
        .join(MenuItem, MenuItem.id == ServiceRequest.menu_item_id)
        .where(ServiceRequest.status.in_(PENDING_SERVICE))
    )
    if enterprise_id is not None:
        stmt = stmt.where(ServiceRequest.enterprise_id == enterprise_id)
    if requester_id is not None:
        stmt = stmt.where(ServiceRequest.requester_id == requester_id)
    rows = await session.execute(stmt.order_by(ServiceRequest.created_at, ServiceRequest.id))
    return [(request, item) for request, item in rows]
