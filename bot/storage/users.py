"""Users and invites. Query functions take keyword arguments and never commit."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.audit import record
from bot.storage.enums import Role
from bot.storage.models import Invite, User

TOKEN_BYTES = 24  # 32 URL-safe characters; Telegram allows up to 64 in a /start payload


# Built once: every update starts with this lookup (bot.auth).
_BY_TELEGRAM_ID = select(User).where(User.telegram_id == bindparam("telegram_id"))


async def user_by_telegram_id(session: AsyncSession, *, telegram_id: int) -> User | None:
    user: User | None = await session.scalar(_BY_TELEGRAM_ID, {"telegram_id": telegram_id})
    return user


async def get_user(session: AsyncSession, *, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def create_invite(
    session: AsyncSession,
    *,
    role: Role,
    name: str,
    department: str | None,
    community: str | None,
    now: datetime,
    ttl: timedelta,
    created_by_id: int | None = None,
) -> Invite:
    """Invite a person. A not-yet-joined user of that name and role (e.g. named in an import) is reused."""
    user = await session.scalar(
        select(User).where(User.name == name, User.role == role, User.telegram_id.is_(None), User.active)
    )
    if user is None:
        user = User(name=name, role=role, department=department, community=community, created_at=now)
        session.add(user)
    else:
        user.department = department or user.department
        user.community = community or user.community
    await session.flush()
    invite = Invite(
        token=secrets.token_urlsafe(TOKEN_BYTES),
        user_id=user.id,
        created_by_id=created_by_id,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(invite)
    await session.flush()
    await record(
        session,
        actor_id=created_by_id,
        action="invite",
        entity="user",
        entity_id=user.id,
        details={"role": role.value, "name": name},
        now=now,
    )
    return invite


class InviteOutcome(StrEnum):
    joined = "joined"
    invalid = "invalid"  # unknown, malformed, used, expired or for a deactivated user: the same answer
    account_taken = "account_taken"  # this Telegram account already belongs to another user


@dataclass(frozen=True)
class Acceptance:
    outcome: InviteOutcome
    user: User | None = None


async def accept_invite(
    session: AsyncSession, *, token: str, telegram_id: int, locale: str, now: datetime
) -> Acceptance:
    """Bind a Telegram account to the invited user; the token is consumed atomically (single use)."""
    if await user_by_telegram_id(session, telegram_id=telegram_id) is not None:
        return Acceptance(InviteOutcome.account_taken)
    user_id = await session.scalar(
        update(Invite)
        .where(Invite.token == token, Invite.used_at.is_(None), Invite.expires_at > now)
        .values(used_at=now)
        .returning(Invite.user_id)
    )
    if user_id is None:
        return Acceptance(InviteOutcome.invalid)
    user = await session.get(User, user_id)
    if user is None or not user.active or user.telegram_id is not None:
        return Acceptance(InviteOutcome.invalid)
    user.telegram_id = telegram_id
    user.joined_at = now
    user.locale = locale
    await record(session, actor_id=user.id, action="join", entity="user", entity_id=user.id, now=now)
    return Acceptance(InviteOutcome.joined, user)


async def list_users(session: AsyncSession, *, include_inactive: bool = True) -> list[User]:
    stmt = select(User).order_by(User.role, User.name, User.id)
    if not include_inactive:
        stmt = stmt.where(User.active)
    return list(await session.scalars(stmt))


async def deactivate_user(
    session: AsyncSession, *, user_id: int, actor_id: int | None, now: datetime
) -> User | None:
    """Deactivate a user and withdraw their unused invites; returns None if there is no such active user."""
    user = await session.get(User, user_id)
    if user is None or not user.active:
        return None
    user.active = False
    await session.execute(
        update(Invite).where(Invite.user_id == user_id, Invite.used_at.is_(None)).values(used_at=now)
    )
    await record(session, actor_id=actor_id, action="deactivate", entity="user", entity_id=user_id, now=now)
    return user


async def set_locale(session: AsyncSession, *, user_id: int, locale: str) -> None:
    await session.execute(update(User).where(User.id == user_id).values(locale=locale))
