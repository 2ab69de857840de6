"""/my: one's own enterprises, problems, service requests and visits, and the author's actions on them."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext
from bot.keyboards import CallbackData


async def cmd_my(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def cb_my(update: Update, context: BotContext, data: CallbackData) -> None:
    """`my:<page>:<section>` — switch section / page."""
    raise NotImplementedError


async def cb_my_problem(update: Update, context: BotContext, data: CallbackData) -> None:
    """`mp:<problem id>:<action>` — the reporter's actions: progress, resolve, correct."""
    raise NotImplementedError


async def cb_visit(update: Update, context: BotContext, data: CallbackData) -> None:
    """`vs:<visit id>:<action>` — edit or withdraw one's own visit within the edit window."""
    raise NotImplementedError


async def cb_service(update: Update, context: BotContext, data: CallbackData) -> None:
    """`sv:<request id>:<action>` — actions on a service request."""
    raise NotImplementedError
