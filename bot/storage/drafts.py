"""Conversation state (drafts) kept in the database, so a restart in mid-flow loses nothing.

Every message and button in a conversation reads the draft, and most write it, so this module works on
the `drafts` table in Core SQL: a `DraftState` is a plain object, saved by one explicit UPDATE of what
changed. The ORM's identity map and unit-of-work flush cost more than the statements themselves here
(measured in bench/flows.py: about a third of a Confirm tap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Draft, table

_T = table(Draft)

# Built once: every message and button in a conversation starts with one of them.
_FOR_UPDATE = select(_T).where(_T.c.user_id == bindparam("user_id")).with_for_update()
_DELETE_BY_ID = delete(_T).where(_T.c.id == bindparam("draft_id"))
_DELETE_BY_USER = delete(_T).where(_T.c.user_id == bindparam("user_id"))
_INSERT = insert(_T).returning(_T.c.id)
_SAVE = update(_T).where(_T.c.id == bindparam("draft_id"))  # SET: the columns given as parameters


@dataclass(eq=False)
class DraftState:
    """One user's conversation in progress, as read at the start of this update."""

    id: int
    user_id: int
    flow: str
    step: str
    data: dict[str, Any]
    version: int
    last_update_id: int
    created_at: datetime
    updated_at: datetime
    dropped: bool = field(default=False, repr=False)

    def saved_as(self) -> tuple[object, ...]:
        """What `save_draft` writes: compared before and after a step to skip a needless UPDATE."""
        return (self.step, self.data, self.version, self.last_update_id, self.updated_at)


async def draft_for_update(session: AsyncSession, *, user_id: int) -> DraftState | None:
    """The user's draft, locked for this transaction (PostgreSQL) so two processes cannot both act on it."""
    row = (await session.execute(_FOR_UPDATE, {"user_id": user_id})).one_or_none()
    return None if row is None else DraftState(**row._asdict())


async def replace_draft(
    session: AsyncSession,
    *,
    user_id: int,
    flow: str,
    step: str,
    data: dict[str, Any],
    update_id: int,
    now: datetime,
) -> DraftState:
    """Start a new conversation for the user, discarding any other."""
    await session.execute(_DELETE_BY_USER, {"user_id": user_id})
    draft = DraftState(0, user_id, flow, step, data, 1, update_id, now, now)
    values = {name: value for name, value in vars(draft).items() if name not in ("id", "dropped")}
    draft.id = (await session.execute(_INSERT, values)).scalar_one()
    return draft


async def save_draft(session: AsyncSession, *, draft: DraftState) -> None:
    await session.execute(
        _SAVE,
        {
            "draft_id": draft.id,
            "step": draft.step,
            "data": draft.data,
            "version": draft.version,
            "last_update_id": draft.last_update_id,
            "updated_at": draft.updated_at,
        },
    )


async def drop_draft(session: AsyncSession, *, draft: DraftState) -> None:
    """Delete the draft now; `save_draft` is not called for it afterwards."""
    await session.execute(_DELETE_BY_ID, {"draft_id": draft.id})
    draft.dropped = True
