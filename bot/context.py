"""Typed callback context: the runtime (settings, database, clock) and the acting user."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from telegram.ext import Application, CallbackContext, ExtBot

from bot.config import Settings
from bot.i18n import Translator, gettext_for
from bot.storage.db import SessionMaker
from bot.storage.identity import IdentityCache
from bot.storage.models import User


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """What every handler needs besides Telegram; kept in `bot_data["runtime"]`."""

    settings: Settings
    engine: AsyncEngine
    db: SessionMaker
    clock: Callable[[], datetime] = field(default=_utcnow)
    monotonic: Callable[[], float] = field(default=time.monotonic)
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)
    identities: IdentityCache = field(init=False)

    def __post_init__(self) -> None:
        self.identities = IdentityCache(
            timedelta(seconds=self.settings.identity_cache_seconds), lambda: self.clock()
        )

    def now(self) -> datetime:
        return self.clock()


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """One per update; `actor` and `locale` are filled by the guard in `bot.auth` before any handler."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        chat_id: int | None = None,
        user_id: int | None = None,
    ) -> None:
        super().__init__(application, chat_id=chat_id, user_id=user_id)
        self.actor: User | None = None
        self.locale: str = "zh_CN"

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.bot_data["runtime"]
        return runtime

    @property
    def db(self) -> SessionMaker:
        return self.runtime.db

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def _(self) -> Translator:
        return gettext_for(self.locale)

    @property
    def user(self) -> User:
        """The registered, active user behind this update (the guard lets no one else through)."""
        if self.actor is None:
            raise RuntimeError("handler reached without an identified user")
        return self.actor
