"""Administrators: /invite (a flow) and /users (list, deactivate)."""

from __future__ import annotations

import html
import logging

from telegram import Update

from bot.context import BotContext
from bot.flows.engine import FlowEngine
from bot.keyboards import CallbackData, Prefix, button, markup
from bot.labels import ROLE_LABELS
from bot.storage.models import User
from bot.storage.users import deactivate_user, get_user, list_users

log = logging.getLogger(__name__)


def engine(context: BotContext) -> FlowEngine:
    flows: FlowEngine = context.bot_data["flows"]
    return flows


async def cmd_invite(update: Update, context: BotContext) -> None:
    await engine(context).start(update, context, "invite", {})


def _describe(user: User, context: BotContext) -> str:
    _ = context._
    unit = user.department or user.community
    state = (
        _("deactivated") if not user.active else _("joined") if user.telegram_id else _("invited, not joined")
    )
    return "• {name} — {role}{unit} — {state}".format(
        name=html.escape(user.name),
        role=_(ROLE_LABELS[user.role]),
        unit=f", {html.escape(unit)}" if unit else "",
        state=state,
    )


async def cmd_users(update: Update, context: BotContext) -> None:
    assert update.effective_chat is not None
    async with context.db() as session:
        users = await list_users(session)
    _ = context._
    lines = [_("Users ({count}):").format(count=len(users))] + [_describe(u, context) for u in users]
    buttons = [
        [button(_("Deactivate {name}").format(name=u.name), Prefix.user, u.id, "deactivate")]
        for u in users
        if u.active and u.id != context.user.id
    ]
    await update.effective_chat.send_message(
        "\n".join(lines), reply_markup=markup(buttons) if buttons else None
    )


async def cb_user(update: Update, context: BotContext, data: CallbackData) -> None:
    """`deactivate` asks for confirmation, `deactivate_yes` does it, `keep` dismisses."""
    query = update.callback_query
    assert query is not None
    _ = context._
    if data.arg == "keep":
        await query.answer()
        await query.edit_message_reply_markup(None)
        return
    if data.arg == "deactivate":
        async with context.db() as session:
            target = await get_user(session, user_id=data.id)
        if target is None or not target.active or target.id == context.user.id:
            await query.answer(_("This action has expired."), show_alert=True)
            return
        await query.answer()
        await query.edit_message_text(
            _("Deactivate {name}? They will no longer be able to use the bot.").format(
                name=html.escape(target.name)
            ),
            reply_markup=markup(
                [
                    [
                        button(_("Yes, deactivate"), Prefix.user, target.id, "deactivate_yes"),
                        button(_("No"), Prefix.user, target.id, "keep"),
                    ]
                ]
            ),
        )
        return
    if data.arg != "deactivate_yes" or data.id == context.user.id:
        await query.answer(_("This action has expired."), show_alert=True)
        return
    async with context.db.begin() as session:
        target = await deactivate_user(
            session, user_id=data.id, actor_id=context.user.id, now=context.runtime.now()
        )
    if target is None:
        await query.answer(_("This user is already deactivated."), show_alert=True)
        return
    log.info("user %s deactivated by %s", target.id, context.user.id)
    await query.answer()
    await query.edit_message_text(_("{name} has been deactivated.").format(name=html.escape(target.name)))
