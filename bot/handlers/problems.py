"""Supervisors' problem handling: /pending, /overdue, the problem card and its actions."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext
from bot.keyboards import CallbackData


async def cmd_pending(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def cmd_overdue(update: Update, context: BotContext) -> None:
    raise NotImplementedError


async def cb_problem_list(update: Update, context: BotContext, data: CallbackData) -> None:
    """`pl:<page>:<filter>` — paging and filters of /pending and /overdue."""
    raise NotImplementedError


async def cb_problem(update: Update, context: BotContext, data: CallbackData) -> None:
    """`pb:<problem id>:<action>` — the problem card and the supervisor's actions on it."""
    raise NotImplementedError
