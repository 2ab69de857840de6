"""Supervisors' handling of service requests (菜单式服务): /services, the request's card and its actions.

``requested → in_progress → delivered | declined``; each move is made by a supervisor or an admin from
the card, kept in the audit log, and told to the requester at once through the outbox (kind ``service``,
which they can mute in /settings).

Callback data (all ``sv:``, dispatched by `bot.handlers.my.cb_service` through `register_service_action`):

* ``sv:<page>:list`` — a page of /services (here the id is the page, not a request);
* ``sv:<id>:view`` — the card as a new message (supervisors get this card instead of the requester's);
  ``sv:<id>:ref`` redraws it in place;
* ``sv:<id>:ip.requested`` — mark in progress (one tap);
* ``sv:<id>:dl.<status>`` — mark delivered, with an optional note (the `service_review` flow);
* ``sv:<id>:dc.<status>`` — decline, with a reason (the `service_review` flow).

An action carries the status the card showed; only the moves of `SERVICE_TRANSITIONS` are registered, so
anything else is "expired". A tap on a stale card (the status changed meanwhile) says so, redraws the card
and changes nothing; the status is checked again, under a row lock, when the change is written.
"""

from __future__ import annotations

import html
import logging
from datetime import datetime, timedelta
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.commands import SUPERVISION
from bot.config import Settings
from bot.context import BotContext
from bot.flows.engine import FlowEngine
from bot.handlers.my import (
    age_text,
    register_service_action,
    register_service_card,
    service_card_lines,
)
from bot.handlers.reminders import deliver_immediate
from bot.i18n import N_, Translator, gettext_for
from bot.keyboards import MAX_ID, CallbackData, Prefix, button, markup
from bot.labels import SERVICE_STATUS_LABELS
from bot.replies import expired, redraw
from bot.storage import outbox
from bot.storage.enums import ServiceStatus
from bot.storage.models import ServiceRequest, User
from bot.storage.mywork import get_service_request_for_update
from bot.storage.outbox import Push
from bot.storage.services import (
    REVIEW_FLOW,
    SERVICE_TRANSITIONS,
    ServiceHistoryEntry,
    ServiceReviewCard,
    ServiceTransitionError,
    change_service_status,
    list_pending_services,
    service_review_card,
    service_review_in_progress,
)

log = logging.getLogger(__name__)

SS = ServiceStatus
PAGE_SIZE = 8
MAX_PAGE = 10_000
LABEL_LIMIT = 40  # characters of a list button
NOTE_LIMIT = 300  # characters of one history note shown on the card
NOTIFY_KIND = "service"
# Action prefix in the callback data -> the status it moves to.
VERBS: dict[str, ServiceStatus] = {"ip": SS.in_progress, "dl": SS.delivered, "dc": SS.declined}
FLOW_ACTIONS = {SS.delivered: "deliver", SS.declined: "decline"}

HISTORY_LABELS = {
    "create": N_("requested the service"),
    "service.in_progress": N_("marked it in progress"),
    "service.delivered": N_("marked it delivered"),
    "service.declined": N_("declined it"),
}


# -- small helpers -------------------------------------------------------------------------------------
def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_label(status: ServiceStatus, _: Translator) -> str:
    return _(SERVICE_STATUS_LABELS[status])


def changed_text(status: ServiceStatus, _: Translator) -> str:
    return _("Already changed: this request is now “{status}”. Nothing was done.").format(
        status=status_label(status, _)
    )


def done_text(to: ServiceStatus, *, told: bool, _: Translator) -> str:
    """What the supervisor is told after a move (whether the requester was told too)."""
    if told:
        return _("Done: the request is now “{status}”; the requester is told now.").format(
            status=status_label(to, _)
        )
    return _("Done: the request is now “{status}”.").format(status=status_label(to, _))


def action_arg(to: ServiceStatus, seen: ServiceStatus) -> str:
    verb = next(verb for verb, status in VERBS.items() if status is to)
    return f"{verb}.{seen.value}"


# -- the list ------------------------------------------------------------------------------------------
async def _list_screen(context: BotContext, page: int) -> tuple[str, InlineKeyboardMarkup]:
    _, settings, now = context._, context.settings, context.runtime.now()
    async with context.db() as session:
        rows, total = await list_pending_services(session, offset=page * PAGE_SIZE, limit=PAGE_SIZE)
        if not rows and total and page > 0:  # the list shrank since the button was drawn
            page = (total - 1) // PAGE_SIZE
            rows, total = await list_pending_services(session, offset=page * PAGE_SIZE, limit=PAGE_SIZE)
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    lines = [
        _("<b>Pending service requests</b>: {total} · page {page}/{pages}").format(
            total=total, page=page + 1, pages=pages
        )
    ]
    if rows:
        lines.append(_("Oldest first. Tap a request to open its card."))
    else:
        lines.append(_("No service request is pending. Well done!"))
    buttons: list[list[InlineKeyboardButton]] = []
    for i, row in enumerate(rows, start=page * PAGE_SIZE + 1):
        request = row.request
        details = " · ".join(
            [
                html.escape(row.item(context.locale)),
                status_label(request.status, _),
                html.escape(row.requester_name or "—"),
                _("requested {date} ({age})").format(
                    date=request.created_at.astimezone(settings.tz).date().isoformat(),
                    age=age_text(request.created_at, now=now, tz=settings.tz, _=_),
                ),
            ]
        )
        lines.append(
            f"{i}. <b>{request.ref}</b> {html.escape(_clip(row.enterprise_name, 60))}\n    {details}"
        )
        buttons.append(
            [
                button(
                    _clip(f"{i}. {request.ref} {row.enterprise_name}", LABEL_LIMIT),
                    Prefix.service,
                    request.id,
                    "view",
                )
            ]
        )
    nav = []
    if page > 0:
        nav.append(button(_("‹ Previous"), Prefix.service, page - 1, "list"))
    if (page + 1) * PAGE_SIZE < total:
        nav.append(button(_("Next ›"), Prefix.service, page + 1, "list"))
    return "\n".join(lines), markup([*buttons, nav])


async def cmd_services(update: Update, context: BotContext) -> None:
    """/services — the service requests someone still has to act on, oldest first."""
    assert update.effective_chat is not None
    text, reply_markup = await _list_screen(context, 0)
    await update.effective_chat.send_message(text, reply_markup=reply_markup)


async def _cb_list(update: Update, context: BotContext, data: CallbackData) -> None:
    """`sv:<page>:list` — paging of /services."""
    query = update.callback_query
    assert query is not None
    if data.id > MAX_PAGE:
        await expired(update, context, "page out of range")
        return
    text, reply_markup = await _list_screen(context, data.id)
    await query.answer()
    await redraw(update, text, reply_markup)


# -- the card ------------------------------------------------------------------------------------------
def _history_line(entry: ServiceHistoryEntry, settings: Settings, _: Translator) -> str:
    label = HISTORY_LABELS.get(entry.action)
    line = "• {at} {who}: {what}".format(
        at=entry.at.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M"),
        who=html.escape(entry.actor) if entry.actor else _("(system)"),
        what=_(label) if label else html.escape(entry.action),
    )
    if entry.note:
        line += " — " + html.escape(_clip(entry.note, NOTE_LIMIT))
    return line


def render_card(
    card: ServiceReviewCard, *, _: Translator, locale: str, now: datetime, settings: Settings
) -> str:
    """The supervisors' card: what everybody sees, who asked, and what happened since (HTML)."""
    lines = service_card_lines(card.row, _=_, locale=locale, now=now, settings=settings)
    requester = card.requester
    if requester is not None:
        unit = requester.department or requester.community
        name = html.escape(requester.name)
        lines.append(
            _("Requested by: {name} ({unit})").format(name=name, unit=html.escape(unit))
            if unit
            else _("Requested by: {name}").format(name=name)
        )
    if card.history:
        lines += ["", "<b>" + _("History") + "</b>"]
        lines += [_history_line(entry, settings, _) for entry in card.history]
    return "\n".join(lines)


def card_buttons(request: ServiceRequest, _: Translator) -> list[list[InlineKeyboardButton]]:
    """The supervisor's actions for the request's status (each carries that status), refresh and list."""
    moves = SERVICE_TRANSITIONS.get(request.status, ())
    labels = {
        SS.in_progress: _("Mark in progress"),
        SS.delivered: _("Mark delivered"),
        SS.declined: _("Decline"),
    }
    actions = [button(labels[to], Prefix.service, request.id, action_arg(to, request.status)) for to in moves]
    rows = [actions[:2], actions[2:]]
    rows.append(
        [
            button(_("🔄 Refresh"), Prefix.service, request.id, "ref"),
            button(_("« Pending services"), Prefix.service, 0, "list"),
        ]
    )
    return [row for row in rows if row]


def _screen(card: ServiceReviewCard, context: BotContext) -> tuple[str, InlineKeyboardMarkup]:
    text = render_card(
        card, _=context._, locale=context.locale, now=context.runtime.now(), settings=context.settings
    )
    return text, markup(card_buttons(card.row.request, context._))


async def _cb_view(update: Update, context: BotContext, data: CallbackData) -> None:
    """`sv:<id>:view` sends the supervisors' card; `sv:<id>:ref` redraws it in place."""
    query = update.callback_query
    assert query is not None
    card = None
    if 0 < data.id <= MAX_ID:
        async with context.db() as session:
            card = await service_review_card(session, request_id=data.id)
    if card is None:
        await expired(update, context, "no such service request")
        return
    text, reply_markup = _screen(card, context)
    await query.answer()
    if data.arg == "ref":
        await redraw(update, text, reply_markup)
    else:
        assert update.effective_chat is not None
        await update.effective_chat.send_message(text, reply_markup=reply_markup)


# -- the actions ---------------------------------------------------------------------------------------
def requester_push(
    *,
    request: ServiceRequest,
    card: ServiceReviewCard,
    actor: User,
    note: str | None,
    now: datetime,
    settings: Settings,
) -> Push | None:
    """What the requester is told of a move, in their language — None if they muted it, left, or made the
    move themselves."""
    requester = card.requester
    if requester is None or not requester.active or requester.id == actor.id:
        return None
    if NOTIFY_KIND in (requester.muted or []):
        return None
    locale = requester.locale or settings.default_locale
    _ = gettext_for(locale)
    names = {
        "ref": request.ref,
        "service": html.escape(card.row.item(locale)),
        "enterprise": html.escape(card.row.enterprise_name),
        "name": html.escape(actor.name),
    }
    if request.status is SS.in_progress:
        text = _(
            "🛠 Your service request {ref} ({service}, {enterprise}) is now in progress ({name})."
        ).format(**names)
    elif request.status is SS.delivered:
        text = _(
            "✅ Your service request {ref} ({service}, {enterprise}) was marked delivered by {name}."
        ).format(**names)
        if note:
            text += "\n" + _("<b>Note:</b> {note}").format(note=html.escape(note))
    else:
        text = _(
            "Your service request {ref} ({service}, {enterprise}) was declined by {name}.\n"
            "<b>Reason:</b> {reason}"
        ).format(**names, reason=html.escape(note or ""))
    # One push per request and move; the status in the period keeps two moves in the same second apart
    # (and `period` is 30 characters: a full ISO timestamp with microseconds would not fit).
    period = f"{request.status.value}.{now.astimezone(settings.tz):%Y%m%d%H%M%S}"
    return Push(
        NOTIFY_KIND, requester.id, f"service:{request.id}", period, {"text": text, "buttons": []}, now
    )


async def _cb_in_progress(update: Update, context: BotContext, data: CallbackData) -> None:
    """`sv:<id>:ip.requested` — mark in progress at once (nothing to type)."""
    query = update.callback_query
    assert query is not None
    _, user, now = context._, context.user, context.runtime.now()
    if not 0 < data.id <= MAX_ID:
        await expired(update, context, "bad id")
        return
    seen = SS(data.arg.split(".", 1)[1])
    changed: ServiceStatus | None = None
    card, told = None, False
    async with context.db.begin() as session:
        request = await get_service_request_for_update(session, request_id=data.id)
        if request is not None:
            try:
                await change_service_status(
                    session, request, to=SS.in_progress, expected=seen, actor_id=user.id, now=now
                )
            except ServiceTransitionError as exc:
                changed = exc.status
            await session.flush()
            card = await service_review_card(session, request_id=request.id)
            assert card is not None
            if changed is None:
                push = requester_push(
                    request=request, card=card, actor=user, note=None, now=now, settings=context.settings
                )
                await outbox.enqueue(session, [push] if push else [])
                told = push is not None
    if request is None or card is None:
        await expired(update, context, "no such service request")
        return
    text, reply_markup = _screen(card, context)
    if changed is not None:
        log.info(
            "update %s: %s seen as %s, now %s; nothing done", update.update_id, request.ref, seen, changed
        )
        await query.answer(changed_text(changed, _), show_alert=True)
    else:
        await query.answer(done_text(SS.in_progress, told=told, _=_))
    await redraw(update, text, reply_markup)
    if told:
        await deliver_immediate(context)


async def _cb_flow_action(update: Update, context: BotContext, data: CallbackData) -> None:
    """`sv:<id>:dl.<status>` / `sv:<id>:dc.<status>` — start the flow that asks for the note or reason."""
    query = update.callback_query
    assert query is not None
    _ = context._
    verb, seen_value = data.arg.split(".", 1)
    to, seen = VERBS[verb], SS(seen_value)
    card, started = None, None
    if 0 < data.id <= MAX_ID:
        async with context.db() as session:
            card = await service_review_card(session, request_id=data.id)
            started = await service_review_in_progress(
                session,
                user_id=context.user.id,
                since=context.runtime.now() - timedelta(hours=context.settings.flow_ttl_hours),
            )
    if card is None:
        await expired(update, context, "no such service request")
        return
    status = card.row.request.status
    if status is not seen:
        log.info("update %s: %s on %s seen as %s, now %s", update.update_id, verb, data.id, seen, status)
        await query.answer(changed_text(status, _), show_alert=True)
        await redraw(update, *_screen(card, context))
        return
    args: dict[str, Any] = {"request_id": data.id, "action": FLOW_ACTIONS[to], "expected": seen.value}
    # A second tap while the first one's conversation runs: do not start it again.
    if {key: (started or {}).get(key) for key in args} == args:
        await query.answer(_("Already started: please answer the question above."))
        return
    flows: FlowEngine = context.bot_data["flows"]
    await flows.start(update, context, REVIEW_FLOW, args)


register_service_card(SUPERVISION, _cb_view)
register_service_action("ref", SUPERVISION, _cb_view)
register_service_action("list", SUPERVISION, _cb_list)
for _seen, _moves in SERVICE_TRANSITIONS.items():
    for _to in _moves:
        register_service_action(
            action_arg(_to, _seen),
            SUPERVISION,
            _cb_in_progress if _to is SS.in_progress else _cb_flow_action,
        )
