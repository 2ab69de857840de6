"""Who is asking: every update is resolved to an active `User` before any handler runs.

The guard runs in the first handler group for every update. Strangers and deactivated users get a
polite answer in their language and nothing else, except `/start <token>` (joining). The user's row comes
from `runtime.identities` when it was loaded moments ago and no user has changed since
(`bot.storage.identity`), otherwise from the database. Commands and
callbacks then check the role with `requires`, on the server, whatever buttons were shown.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot.context import BotContext
from bot.i18n import gettext_for, locale_from_telegram
from bot.logs import HANDLER, ROLE
from bot.storage.enums import Role
from bot.storage.users import user_by_telegram_id

log = logging.getLogger(__name__)

Handler = Callable[[Update, BotContext], Coroutine[Any, Any, Any]]


def _is_join_attempt(update: Update) -> bool:
    message = update.message
    return bool(message and message.text and message.text.split(maxsplit=1)[0].split("@")[0] == "/start")


async def identify(update: Update, context: BotContext) -> None:
    tg_user = update.effective_user
    if tg_user is None or update.effective_chat is None or update.effective_chat.type != "private":
        raise ApplicationHandlerStop  # groups, channels, polls: this bot only talks in private chats
    identities = context.runtime.identities
    user = identities.get(tg_user.id)
    if user is None:
        token = identities.token()
        async with context.db() as session:
            user = await user_by_telegram_id(session, telegram_id=tg_user.id)
        if user is not None:
            identities.put(tg_user.id, user, token)
    if user is not None and user.active:
        ROLE.set(user.role.value)
        context.actor = user
        context.locale = user.locale or context.settings.default_locale
        return
    context.locale = locale_from_telegram(tg_user.language_code, context.settings.default_locale)
    if user is None and _is_join_attempt(update):
        return  # /start with an invite token is the one thing a stranger may do
    _ = gettext_for(context.locale)
    if user is not None:
        text = _(
            "Your account has been deactivated. If this is a mistake, please contact your administrator."
        )
    else:
        text = _(
            "This bot is for the district's party-building staff. Please ask your administrator for an "
            "invite link."
        )
    log.info("refused update %s from unregistered Telegram user %s", update.update_id, tg_user.id)
    await refuse(update, text)
    raise ApplicationHandlerStop


async def refuse(update: Update, text: str) -> None:
    """Answer a refused action: an alert for a button, a message otherwise."""
    if update.callback_query is not None:
        await update.callback_query.answer(text, show_alert=True)
    elif update.effective_chat is not None:
        await update.effective_chat.send_message(text)


def requires(*roles: Role) -> Callable[[Handler], Handler]:
    """Let only these roles through; everyone else is told politely and nothing changes."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(update: Update, context: BotContext) -> Any:
            HANDLER.set(handler.__name__)
            if context.actor is None or context.actor.role not in roles:
                log.warning(
                    "update %s: %s denied to user %s",
                    update.update_id,
                    handler.__name__,
                    context.actor.id if context.actor else None,
                )
                await refuse(update, context._("Sorry, this is not available to you."))
                return None
            return await handler(update, context)

        return guarded

    return decorate
