"""Answering from a button: redraw the message it was on, or say the action has expired."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest

from bot.auth import refuse
from bot.context import BotContext

log = logging.getLogger(__name__)


async def redraw(update: Update, text: str, reply_markup: InlineKeyboardMarkup | None) -> None:
    """Edit the message the button was on (a no-op if unchanged); send a new one if that is impossible
    (too old, deleted, or no button at all)."""
    query = update.callback_query
    if query is not None and isinstance(query.message, Message):
        try:
            await query.message.edit_text(text, reply_markup=reply_markup)
            return
        except BadRequest as exc:
            if "not modified" in str(exc).lower():
                return
            log.info("could not edit message, sending a new one: %s", exc)
    if update.effective_chat is not None:
        await update.effective_chat.send_message(text, reply_markup=reply_markup)


async def expired(update: Update, context: BotContext, reason: str) -> None:
    """Refuse a button that no longer applies (or never could): log why, tell the user politely."""
    log.warning(
        "update %s: callback %r refused for user %s: %s",
        update.update_id,
        update.callback_query.data if update.callback_query else None,
        context.user.id,
        reason,
    )
    await refuse(update, context._("This action has expired."))
