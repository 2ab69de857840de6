"""Who is asking, remembered between updates.

Every update starts by resolving the Telegram account to a `User` (`bot.auth.identify`). Loading it is a
statement of its own on every update — on SQLite through aiosqlite about as much as everything else a
read step does — so the users found are kept here for a short while:

* any change to a user made in this process drops every entry at once: a flush that inserts, changes or
  deletes a `User`, and any ORM ``update(User)``/``delete(User)`` statement (deactivation, role, language,
  mute, unreachable) — so a deactivation through the bot takes effect on the very next update;
* an entry expires after `ttl` seconds, the bound on how long a change made outside this process (the
  ``users`` CLI, a second bot process on PostgreSQL) takes to be seen.

The role and `active` flag are still checked on every update, by the guard and by `requires`; only the row
they are read from may be up to `ttl` seconds old for changes made elsewhere. ``ttl=0`` turns caching off.
Strangers (no row) are never remembered, so an invite accepted in any process is seen at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction

from bot.storage.models import User

_generation = 0  # bumped on every change to users made in this process, and again when it is committed
_CHANGING = "bot.identity.users_changing"


def _bump() -> None:
    global _generation
    _generation += 1


@event.listens_for(Session, "after_flush")
def _users_flushed(session: Session, _flush: UOWTransaction) -> None:
    if any(isinstance(o, User) for o in (*session.new, *session.dirty, *session.deleted)):
        _changing(session)


@event.listens_for(Session, "do_orm_execute")
def _users_updated(state: ORMExecuteState) -> None:
    mapper = state.bind_mapper
    if (
        (state.is_update or state.is_delete or state.is_insert)
        and mapper is not None
        and mapper.class_ is User
    ):
        _changing(state.session)


@event.listens_for(Session, "after_transaction_end")
def _users_changed(session: Session, transaction: SessionTransaction) -> None:
    # Again once the change is committed (or rolled back): a user loaded by another update between the
    # write and its commit read the old row, and must not be remembered. (A flush ends an inner
    # transaction of its own: only the outermost one counts.)
    if transaction.parent is None and session.info.pop(_CHANGING, False):
        _bump()


def _changing(session: Session) -> None:
    session.info[_CHANGING] = True
    _bump()


class IdentityCache:
    """Telegram id → the `User` (detached) last loaded for it, valid for `ttl` and until users change."""

    def __init__(self, ttl: timedelta, clock: Callable[[], datetime], max_size: int = 10_000) -> None:
        self.ttl, self.clock, self.max_size = ttl, clock, max_size
        self._entries: dict[int, tuple[User, datetime, int]] = {}

    @staticmethod
    def token() -> int:
        """Take before loading; `put` ignores a user loaded while users were changing."""
        return _generation

    def get(self, telegram_id: int) -> User | None:
        entry = self._entries.get(telegram_id)
        if entry is None:
            return None
        user, loaded_at, generation = entry
        age = self.clock() - loaded_at
        if generation != _generation or not timedelta(0) <= age < self.ttl:  # (a clock set back: expired)
            del self._entries[telegram_id]
            return None
        return user

    def put(self, telegram_id: int, user: User, token: int) -> None:
        if not self.ttl or token != _generation:
            return
        if len(self._entries) >= self.max_size:
            self._entries.clear()  # rarely reached (a district has hundreds of staff); simplest bound
        self._entries[telegram_id] = (user, self.clock(), token)

    def clear(self) -> None:
        self._entries.clear()
