"""Conversation state (drafts) kept in the database, so a restart in mid-flow loses nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Draft

# Built once: every message and button in a conversation starts with it.
_FOR_UPDATE = select(Draft).where(Draft.user_id == bindparam("user_id")).with_for_update()


async def draft_for_update(session: AsyncSession, *, user_id: int) -> Draft | None:
    """The user's draft, locked for this transaction (PostgreSQL) so two processes cannot both act on it."""
    draft: Draft | None = await session.scalar(_FOR_UPDATE, {"user_id": user_id})
    return draft


async def replace_draft(
    session: AsyncSession,
    *,
    user_id: int,
    flow: str,
    step: str,
    data: dict[str, Any],
    update_id: int,
    now: datetime,
) -> Draft:
    await session.execute(delete(Draft).where(Draft.user_id == user_id))
    draft = Draft(
        user_id=user_id,
        flow=flow,
        step=step,
        data=data,
        version=1,
        last_update_id=update_id,
        created_at=now,
        updated_at=now,
    )
    session.add(draft)
    await session.flush()
    return draft


async def drop_draft(session: AsyncSession, *, draft: Draft) -> None:
    """Delete the draft now (one statement, no unit-of-work flush at commit) and forget the object."""
    await session.execute(
        delete(Draft).where(Draft.id == draft.id).execution_options(synchronize_session=False)
    )
    session.expunge(draft)
