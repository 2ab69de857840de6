"""/export: the 台账 ledger as XLSX (or zipped CSV)."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext


async def cmd_export(update: Update, context: BotContext) -> None:
    raise NotImplementedError
