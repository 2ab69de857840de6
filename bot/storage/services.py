"""菜单式服务: the menu catalogue by stage and the service requests made from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.audit import record
from bot.storage.enums import ServiceStatus, Stage
from bot.storage.models import AuditLog, Draft, Enterprise, MenuItem, ServiceRequest, User
from bot.storage.mywork import ServiceRow

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


# -- supervisors: the pending list, the card, moving a request on ---------------------------------------
# The moves a supervisor may make from each status (the machine is one-way: no reopening).
SERVICE_TRANSITIONS: dict[ServiceStatus, tuple[ServiceStatus, ...]] = {
    ServiceStatus.requested: (ServiceStatus.in_progress, ServiceStatus.delivered, ServiceStatus.declined),
    ServiceStatus.in_progress: (ServiceStatus.delivered, ServiceStatus.declined),
}
REVIEW_FLOW = "service_review"  # the flow (bot/flows/service_review.py) that asks for a note or reason


class ServiceTransitionError(Exception):
    """The request is no longer in the status the supervisor saw (or the move is not allowed from it)."""

    def __init__(self, status: ServiceStatus) -> None:
        super().__init__(status.value)
        self.status = status


@dataclass(frozen=True)
class PendingServiceRow:
    request: ServiceRequest
    enterprise_name: str
    item_zh: str
    item_en: str
    requester_name: str | None

    def item(self, locale: str) -> str:
        return self.item_en if locale == "en" else self.item_zh


async def list_pending_services(
    session: AsyncSession, *, offset: int, limit: int
) -> tuple[list[PendingServiceRow], int]:
    """Every request someone still has to act on (requested or in progress), oldest first, and their count."""
    pending = ServiceRequest.status.in_(PENDING_SERVICE)
    total = await session.scalar(select(func.count(ServiceRequest.id)).where(pending)) or 0
    rows = await session.execute(
        select(ServiceRequest, Enterprise.name, MenuItem.name_zh, MenuItem.name_en, User.name)
        .join(Enterprise, Enterprise.id == ServiceRequest.enterprise_id)
        .join(MenuItem, MenuItem.id == ServiceRequest.menu_item_id)
        .outerjoin(User, User.id == ServiceRequest.requester_id)
        .where(pending)
        .order_by(ServiceRequest.created_at, ServiceRequest.id)
        .offset(offset)
        .limit(limit)
    )
    return [PendingServiceRow(req, name, zh, en, requester) for req, name, zh, en, requester in rows], total


@dataclass(frozen=True)
class ServiceHistoryEntry:
    at: datetime
    actor: str | None
    action: str  # the audit action: "create", "service.in_progress", "service.delivered", ...
    note: str | None


@dataclass(frozen=True)
class ServiceReviewCard:
    row: ServiceRow
    requester: User | None
    history: list[ServiceHistoryEntry]


async def service_review_card(session: AsyncSession, *, request_id: int) -> ServiceReviewCard | None:
    """A request as supervisors see it: with its requester and its history (from the audit log)."""
    found = (
        await session.execute(
            select(ServiceRequest, Enterprise.name, MenuItem.name_zh, MenuItem.name_en, User)
            .join(Enterprise, Enterprise.id == ServiceRequest.enterprise_id)
            .join(MenuItem, MenuItem.id == ServiceRequest.menu_item_id)
            .outerjoin(User, User.id == ServiceRequest.requester_id)
            .where(ServiceRequest.id == request_id)
        )
    ).first()
    if found is None:
        return None
    request, enterprise_name, item_zh, item_en, requester = found
    rows = await session.execute(
        select(AuditLog.created_at, User.name, AuditLog.action, AuditLog.details)
        .outerjoin(User, User.id == AuditLog.actor_id)
        .where(AuditLog.entity == "service_request", AuditLog.entity_id == request_id)
        .order_by(AuditLog.created_at, AuditLog.id)
    )
    history = [
        ServiceHistoryEntry(at, actor, action, (details or {}).get("note") or None)
        for at, actor, action, details in rows
    ]
    return ServiceReviewCard(ServiceRow(request, enterprise_name, item_zh, item_en), requester, history)


async def change_service_status(
    session: AsyncSession,
    request: ServiceRequest,
    *,
    to: ServiceStatus,
    expected: ServiceStatus,
    actor_id: int,
    now: datetime,
    note: str | None = None,
) -> None:
    """Move a request (locked by the caller) from `expected` to `to`, or raise ServiceTransitionError if it
    is no longer `expected` — a stale card or a second tap changes nothing. Kept in the audit log with the
    status before and after and the note; `delivered_at` is set on delivery (what /stats counts)."""
    if request.status is not expected or to not in SERVICE_TRANSITIONS.get(expected, ()):
        raise ServiceTransitionError(request.status)
    before = request.status
    request.status = to
    request.updated_at = now
    after: dict[str, Any] = {"status": to.value}
    if to is ServiceStatus.delivered:
        request.delivered_at = now
        after["delivered_at"] = now.isoformat()
    await record(
        session,
        actor_id=actor_id,
        action=f"service.{to.value}",
        entity="service_request",
        entity_id=request.id,
        now=now,
        details={"before": {"status": before.value}, "after": after, "note": note},
    )


async def service_review_in_progress(
    session: AsyncSession, *, user_id: int, since: datetime
) -> dict[str, Any] | None:
    """The data of the user's service-review conversation if one is in progress and was active since
    `since` — so a second tap on the same card button does not start it again."""
    data: dict[str, Any] | None = await session.scalar(
        select(Draft.data).where(
            Draft.user_id == user_id, Draft.flow == REVIEW_FLOW, Draft.updated_at >= since
        )
    )
    return data
