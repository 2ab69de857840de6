"""The notification outbox: every push is a row under a unique (kind, recipient, subject, period) key.

Writing the row is what decides that a push happens; writing it twice does nothing, whichever process or
run tries. Rows are claimed with a lease before sending (`send_after` moves forward), so a crash between
claim and send only delays the message to the next run, and two processes never claim the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.enums import Role
from bot.storage.models import Notification, User

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"


@dataclass(frozen=True)
class Push:
    kind: str
    recipient_id: int
    subject: str
    period: str
    payload: dict[str, Any]
    send_after: datetime


async def enqueue(session: AsyncSession, pushes: list[Push]) -> int:
    """Insert the pushes not yet in the outbox; returns how many were new."""
    if not pushes:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    new = 0
    for start in range(0, len(pushes), 500):
        chunk = pushes[start : start + 500]
        stmt = (
            insert(Notification)
            .values(
                [
                    {
                        "kind": p.kind,
                        "recipient_id": p.recipient_id,
                        "subject": p.subject,
                        "period": p.period,
                        "payload": p.payload,
                        "status": PENDING,
                        "attempts": 0,
                        "send_after": p.send_after,
                        "created_at": p.send_after,
                    }
                    for p in chunk
                ]
            )
            .on_conflict_do_nothing(index_elements=["kind", "recipient_id", "subject", "period"])
            .returning(Notification.id)
        )
        new += len((await session.execute(stmt)).all())
    return new


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    chat_id: int
    recipient_id: int
    payload: dict[str, Any]
    attempts: int


async def claim(
    session: AsyncSession, *, now: datetime, lease: timedelta, limit: int, kinds: frozenset[str] | None = None
) -> list[Claimed]:
    """Take up to `limit` due rows (oldest first, optionally only these kinds) for sending; skips rows
    another process holds."""
    due = or_(Notification.status == PENDING, Notification.status == SENDING)  # SENDING: an expired lease
    ids_stmt = (
        select(Notification.id)
        .where(due, Notification.send_after <= now, Notification.kind.in_(kinds) if kinds else true())
        .order_by(Notification.send_after, Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(await session.scalars(ids_stmt))
    if not ids:
        return []
    # Claim only what is still due: on SQLite the SELECT above holds no lock, so another scanner may have
    # claimed some of these rows meanwhile; the UPDATE, which does lock, is the one that decides.
    ids = list(
        await session.scalars(
            update(Notification)
            .where(Notification.id.in_(ids), due, Notification.send_after <= now)
            .values(status=SENDING, send_after=now + lease)
            .returning(Notification.id)
            .execution_options(synchronize_session=False)
        )
    )
    if not ids:
        return []
    rows = await session.execute(
        select(Notification, User.telegram_id)
        .join(User, User.id == Notification.recipient_id)
        .where(Notification.id.in_(ids))
        .order_by(Notification.id)
    )
    return [
        Claimed(n.id, n.kind, telegram_id or 0, n.recipient_id, n.payload, n.attempts)
        for n, telegram_id in rows
    ]


async def mark_sent(session: AsyncSession, *, notification_id: int, now: datetime) -> None:
    await session.execute(
        update(Notification).where(Notification.id == notification_id).values(status=SENT, sent_at=now)
    )


async def mark_retry(
    session: AsyncSession, *, notification_id: int, attempts: int, send_after: datetime, error: str
) -> None:
    await session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(status=PENDING, attempts=attempts, send_after=send_after, last_error=error[:300])
    )


async def mark_failed(session: AsyncSession, *, notification_id: int, error: str) -> None:
    await session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(status=FAILED, last_error=error[:300])
    )


async def mark_unreachable(session: AsyncSession, *, user_id: int) -> bool:
    """Flag a user who blocked the bot; True if they were not flagged yet."""
    result = await session.execute(
        update(User).where(User.id == user_id, User.unreachable.is_(False)).values(unreachable=True)
    )
    return bool(getattr(result, "rowcount", 0))


async def active_users(session: AsyncSession, *, roles: tuple[Role, ...]) -> list[User]:
    rows = await session.scalars(
        select(User).where(User.active, User.telegram_id.is_not(None), User.role.in_(roles)).order_by(User.id)
    )
    return list(rows)


async def pending_count(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Notification).where(Notification.status.in_((PENDING, SENDING)))
    )
    return count or 0


async def recently_pushed(session: AsyncSession, *, kind: str, since: datetime) -> set[tuple[int, str]]:
    """(recipient, subject) pairs that got a push of this kind queued since `since`."""
    rows = await session.execute(
        select(Notification.recipient_id, Notification.subject).where(
            Notification.kind == kind, Notification.created_at >= since
        )
    )
    return {(recipient, subject) for recipient, subject in rows}
