"""Joining with an invite, /help, /lang and /cancel."""

from __future__ import annotations

import html
import logging
import re

from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.error import TelegramError

from bot.commands import commands_for
from bot.context import BotContext
from bot.i18n import gettext_for
from bot.keyboards import Prefix, button, markup
from bot.labels import ROLE_LABELS
from bot.storage.models import User
from bot.storage.users import InviteOutcome, accept_invite, set_locale

log = logging.getLogger(__name__)

TOKEN_FORMAT = re.compile(r"[A-Za-z0-9_\-]{16,64}")
LANGUAGE_NAMES = {"zh_CN": "中文", "en": "English"}


def help_text(user: User, locale: str) -> str:
    _ = gettext_for(locale)
    lines = [
        _("Hello, {name} ({role}). What I can do for you:").format(
            name=html.escape(user.name), role=_(ROLE_LABELS[user.role])
        )
    ]
    lines += [f"/{c.name} — {_(c.description)}" for c in commands_for(user.role)]
    return "\n".join(lines)


async def publish_commands(context: BotContext, user: User, chat_id: int) -> None:
    """Show this user, in their chat, only their role's commands in their language."""
    _ = gettext_for(user.locale or context.settings.default_locale)
    commands = [BotCommand(c.name, _(c.description)) for c in commands_for(user.role)]
    try:
        await context.bot.set_my_commands(commands, scope=BotCommandScopeChat(chat_id))
    except TelegramError as exc:  # the menu is a convenience; never fail the user's action for it
        log.warning("set_my_commands failed for chat %s: %s", chat_id, exc)


async def cmd_start(update: Update, context: BotContext) -> None:
    message, tg_user = update.message, update.effective_user
    assert message is not None and tg_user is not None
    _ = context._
    if context.actor is not None:
        await message.reply_text(
            _("You are already registered.") + "\n\n" + help_text(context.actor, context.locale)
        )
        return
    token = (context.args or [""])[0]
    if not TOKEN_FORMAT.fullmatch(token):
        await message.reply_text(
            _(
                "This bot is for the district's party-building staff. Please ask your "
                "administrator for an invite link."
            )
        )
        return
    async with context.db.begin() as session:
        result = await accept_invite(
            session, token=token, telegram_id=tg_user.id, locale=context.locale, now=context.runtime.now()
        )
    if result.outcome is InviteOutcome.account_taken:
        await message.reply_text(
            _(
                "This Telegram account is already registered. If you need a different role, "
                "please ask your administrator."
            )
        )
        return
    if result.user is None:
        await message.reply_text(
            _(
                "This invite link is not valid: it may have been used already or have "
                "expired. Please ask your administrator for a new one."
            )
        )
        return
    user = result.user
    log.info("user %s joined as %s", user.id, user.role.value)
    await message.reply_text(_("Welcome! Your account is ready.") + "\n\n" + help_text(user, context.locale))
    await publish_commands(context, user, message.chat_id)


async def cmd_help(update: Update, context: BotContext) -> None:
    assert update.effective_chat is not None
    await update.effective_chat.send_message(help_text(context.user, context.locale))


async def cmd_lang(update: Update, context: BotContext) -> None:
    assert update.effective_chat is not None
    buttons = [
        [
            button(("✓ " if code == context.locale else "") + name, Prefix.lang, 0, code)
            for code, name in LANGUAGE_NAMES.items()
        ]
    ]
    await update.effective_chat.send_message(context._("Choose your language:"), reply_markup=markup(buttons))


async def cb_lang(update: Update, context: BotContext, locale: str) -> None:
    query = update.callback_query
    assert query is not None
    if locale not in LANGUAGE_NAMES:
        await query.answer(context._("This action has expired."), show_alert=True)
        return
    user = context.user
    async with context.db.begin() as session:
        await set_locale(session, user_id=user.id, locale=locale)
    user.locale = context.locale = locale
    await query.answer()
    await query.edit_message_text(context._("Language set to English.") + "\n\n" + help_text(user, locale))
    assert update.effective_chat is not None
    await publish_commands(context, user, update.effective_chat.id)
