"""The audit log: who changed what, kept for every administrative or editing action."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import AuditLog, table

# Written at once in Core SQL: no ORM object to track, and no flush of one at commit (see drafts.py).
_INSERT = insert(table(AuditLog))


async def record(
    session: AsyncSession,
    *,
    actor_id: int | None,
    action: str,
    entity: str,
    entity_id: int | None,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    await session.execute(
        _INSERT,
        {
            "actor_id": actor_id,
            "action": action,
            "entity": entity,
            "entity_id": entity_id,
            "details": details or {},
            "created_at": now,
        },
    )
