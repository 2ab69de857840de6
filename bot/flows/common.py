"""Input checks shared by the flows: each returns the clean value or an `Invalid` saying why, politely."""

from __future__ import annotations

import html

from bot.flows.engine import Choice, Input, Invalid, Screen, Step, Text
from bot.i18n import Translator
from bot.keyboards import MAX_ID
from bot.storage.enterprises import accessible_enterprise, enterprises_for
from bot.storage.models import Enterprise

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


ENTERPRISE_PAGE = 8


async def enterprise_screen(step: Step, prompt: str) -> Screen:
    """Choose an enterprise: the user's own as buttons (8 a page), or type part of a name or credit code."""
    _ = step._
    page, query = int(step.data.get("ent_page", 0)), step.data.get("ent_query")
    rows, total = await enterprises_for(
        step.session, user=step.user, query=query, offset=page * ENTERPRISE_PAGE, limit=ENTERPRISE_PAGE
    )
    lines = [prompt]
    if query:
        lines.append(_("Search “{query}”: {count} found.").format(query=html.escape(query), count=total))
    elif total == 0:
        lines.append(_("No enterprise is assigned to you yet. Please ask your administrator."))
    lines.append(_("Tap an enterprise, or type part of its name or credit code to search."))
    buttons: list[list[tuple[str, str]]] = [[(e.name, f"ent.{e.id}")] for e in rows]
    nav = []
    if page > 0:
        nav.append((_("‹ Previous"), f"entp.{page - 1}"))
    if (page + 1) * ENTERPRISE_PAGE < total:
        nav.append((_("Next ›"), f"entp.{page + 1}"))
    if query:
        nav.append((_("Show all"), "entp.all"))
    if nav:
        buttons.append(nav)
    return Screen("\n".join(lines), buttons)


async def pick_enterprise(step: Step, given: Input) -> Enterprise | Invalid | None:
    """The chosen enterprise (checked against the user's assignments), an Invalid, or None when the
    user paged or searched and the same step should be shown again."""
    _ = step._
    if isinstance(given, Choice) and given.value.startswith("entp."):
        arg = given.value.removeprefix("entp.")
        if arg == "all":
            step.data.pop("ent_query", None)
            step.data["ent_page"] = 0
        elif arg.isdigit():
            step.data["ent_page"] = int(arg)
        return None
    if isinstance(given, Choice) and given.value.startswith("ent."):
        arg = given.value.removeprefix("ent.")
        enterprise = (
            await accessible_enterprise(step.session, user=step.user, enterprise_id=int(arg))
            if arg.isascii() and arg.isdigit() and len(arg) <= 10 and int(arg) <= MAX_ID
            else None
        )
        if enterprise is None:
            return Invalid(_("You are not assigned to this enterprise, so you cannot act on it."))
        return enterprise
    query = read_text(given, _, limit=SHORT_LIMIT)
    if isinstance(query, Invalid):
        return query
    rows, total = await enterprises_for(step.session, user=step.user, query=query, limit=2)
    if total == 1:
        return rows[0]
    step.data["ent_query"] = query
    step.data["ent_page"] = 0
    return None
