"""Supervision reports: /stats, /enterprise, /liaison, /coverage, /trends."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext
from bot.keyboards import CallbackData


async def cmd_stats(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def cb_stats(update: Update, context: BotContext, data: CallbackData) -> None:
    raise NotImplementedError


async def cmd_enterprise(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def cmd_liaison(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def cmd_coverage(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def cmd_trends(update: Update, context: BotContext) -> None:
    raise NotImplementedError
