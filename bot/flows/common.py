"""Input checks shared by the flows: each returns the clean value or an `Invalid` saying why, politely."""

from __future__ import annotations

from bot.flows.engine import Input, Invalid, Text
from bot.i18n import Translator

NAME_LIMIT = 50
SHORT_LIMIT = 100
NOTES_LIMIT = 2000


def read_text(given: Input, _: Translator, *, limit: int) -> str | Invalid:
    if not isinstance(given, Text):
        return Invalid(_("Please send this as a text message."))
    value = given.value.strip()
    if not value:
        return Invalid(_("Please send a non-empty text."))
    if len(value) > limit:
        return Invalid(
            _(
                "That text has {length} characters; the limit is {limit}. Please shorten it and send "
                "it again."
            ).format(length=len(value), limit=limit)
        )
    return value
