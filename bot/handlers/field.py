"""Field staff's entry points: /visit, /problem, /service and the enterprise shortcut buttons."""

from __future__ import annotations

import logging

from telegram import Update

from bot.context import BotContext
from bot.flows.engine import FlowEngine
from bot.flows.visit import plausible_id
from bot.keyboards import CallbackData
from bot.storage.enterprises import accessible_enterprise

log = logging.getLogger(__name__)

SHORTCUT_FLOWS = ("visit", "problem", "service")


def _flows(context: BotContext) -> FlowEngine:
    flows: FlowEngine = context.bot_data["flows"]
    return flows


async def cmd_visit(update: Update, context: BotContext) -> None:
    """`/visit`, or `/visit 华为` to start with the enterprises matching part of a name or credit code."""
    query = " ".join(context.args or []).strip()
    await _flows(context).start(update, context, "visit", {"query": query} if query else {})


async def cmd_problem(update: Update, context: BotContext) -> None:
    await context.bot_data["flows"].start(update, context, "problem", {})


async def cmd_service(update: Update, context: BotContext) -> None:
    await context.bot_data["flows"].start(update, context, "service", {})


async def cb_enterprise(update: Update, context: BotContext, data: CallbackData) -> None:
    """`ent:<id>:visit|problem|service` — start that flow for the enterprise without choosing it again.

    The enterprise is checked here (a forged id is refused with an alert and logged) and again by the flow.
    """
    query = update.callback_query
    assert query is not None
    _ = context._
    if data.arg not in SHORTCUT_FLOWS or plausible_id(data.id) is None:
        log.warning(
            "update %s: bad enterprise shortcut %r from user %s",
            update.update_id,
            query.data,
            context.user.id,
        )
        await query.answer(_("This action has expired."), show_alert=True)
        return
    async with context.db.begin() as session:
        enterprise = await accessible_enterprise(session, user=context.user, enterprise_id=data.id)
    if enterprise is None:
        log.warning(
            "update %s: enterprise shortcut %r refused for user %s",
            update.update_id,
            query.data,
            context.user.id,
        )
        await query.answer(
            _("You are not assigned to this enterprise, so you cannot act on it."), show_alert=True
        )
        return
    await _flows(context).start(update, context, data.arg, {"enterprise_id": data.id})
