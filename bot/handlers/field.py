"""Field staff's entry points: /visit, /problem, /service and the enterprise shortcut buttons."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext
from bot.keyboards import CallbackData


async def cmd_visit(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def cmd_problem(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def cmd_service(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def cb_enterprise(update: Update, context: BotContext, data: CallbackData) -> None:
    """`ent:<id>:visit|problem|service` — start that flow for the enterprise without choosing it again."""
    raise NotImplementedError
