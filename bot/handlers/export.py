"""/export [period] [csv]: the 台账 ledger as XLSX (or zipped CSV files), sent as documents.

The period is spelled as for /stats (this, last, 2026-W47, 2026-11, ...; default: this week). The files are
written into a temporary directory by `bot.services.ledger` (rows streamed from the database, written off
the event loop), the database session is closed, and then the files are sent, one document per part.
"""

from __future__ import annotations

import html
import logging
import tempfile
from pathlib import Path

from telegram import Update
from telegram.constants import ChatAction
from telegram.error import TelegramError

from bot.context import BotContext
from bot.services.ledger import TELEGRAM_LIMIT, Format, export_ledger, period_text
from bot.services.periods import MAX_YEAR, MIN_YEAR, PeriodError, local_today, parse_period

log = logging.getLogger(__name__)

PART_LIMIT = TELEGRAM_LIMIT  # bytes per document; tests lower it
UPLOAD_TIMEOUT = 300  # seconds for sending one document of up to 50 MB
ARGUMENT_LIMIT = 40


async def cmd_export(update: Update, context: BotContext) -> None:
    chat = update.effective_chat
    assert chat is not None
    _ = context._
    fmt, words = Format.xlsx, []
    for word in context.args or []:
        if word.lower() in Format.__members__:
            fmt = Format(word.lower())
        else:
            words.append(word)
    text = " ".join(words)
    try:
        period = parse_period(text or None, today=local_today(context.runtime.now(), context.settings.tz))
    except PeriodError as error:
        if error.reason == "week":
            reply = _("There is no week {text}: a year has 52 or 53 ISO weeks.").format(
                text=html.escape(text)
            )
        elif error.reason == "range":
            reply = _("Please choose a period between {first} and {last}.").format(
                first=MIN_YEAR, last=MAX_YEAR
            )
        else:
            reply = _(
                "I did not understand “{text}”. Use this or last (week), a week such as 2026-W47 or a month "
                "such as 2026-11."
            ).format(text=html.escape(text[:ARGUMENT_LIMIT]))
        await chat.send_message(reply + "\n" + _("For example: /export last, /export 2026-11 csv"))
        return
    label = period_text(period, _)
    await chat.send_message(_("Preparing the ledger of {period}…").format(period=label))
    try:
        await chat.send_chat_action(ChatAction.UPLOAD_DOCUMENT)
    except TelegramError as exc:  # only a courtesy
        log.info("chat action failed: %s", exc)
    with tempfile.TemporaryDirectory(prefix="ledger-") as directory:
        # The ledger reads from one REPEATABLE READ snapshot; a second session reads the Summary's figures
        # from the same snapshot while the sheets are written.
        async with context.db() as session:
            ledger = await export_ledger(
                session,
                sessions=context.db,
                period=period,
                tz=context.settings.tz,
                locale=context.locale,
                now=context.runtime.now(),
                fmt=fmt,
                directory=Path(directory),
                limit=PART_LIMIT,
            )
        log.info(
            "ledger %s (%s) for user %s: %s rows in %d file(s)",
            period.iso,
            fmt,
            context.user.id,
            ledger.rows,
            len(ledger.files),
        )
        rows = ledger.rows
        caption = _(
            "Ledger of {period}\nVisits {visits} · problems {problems} · service requests {services}"
        ).format(period=label, visits=rows["visits"], problems=rows["problems"], services=rows["services"])
        if not (rows["visits"] or rows["problems"] or rows["services"]):
            caption += "\n" + _(
                "Nothing was recorded in this period; the file holds the enterprise register only."
            )
        for number, file in enumerate(ledger.files, start=1):
            part = (
                "\n" + _("Part {number} of {count}").format(number=number, count=len(ledger.files))
                if len(ledger.files) > 1
                else ""
            )
            with file.path.open("rb") as content:
                await chat.send_document(
                    content, filename=file.filename, caption=caption + part, write_timeout=UPLOAD_TIMEOUT
                )
