"""/my: one's own enterprises, problems, service requests and visits, and the author's actions on them.

Callback data (every id is checked against the acting user on the server, whatever was shown):
``my:<page>:<section>`` sections home / ent / pb / sv / vs; ``mp:<problem id>:view|progress|resolve|correct``;
``vs:<visit id>:view|edit|withdraw|withdraw_yes``; ``sv:<request id>:<action>`` dispatched through
`SERVICE_ACTIONS` (staff: view / withdraw / withdraw_yes; supervisors' actions can be registered there).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, tzinfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.auth import refuse
from bot.commands import EVERYONE
from bot.config import Settings
from bot.context import BotContext
from bot.flows.edit import (
    funds_text,
    local_date,
    problem_refusal,
    topics_text,
    visit_refusal,
)
from bot.flows.engine import FlowEngine
from bot.i18n import N_, Translator
from bot.keyboards import CallbackData, Prefix, button, markup
from bot.labels import CATEGORY_LABELS, PROBLEM_STATUS_LABELS, SERVICE_STATUS_LABELS
from bot.replies import expired, redraw
from bot.storage.enums import STAFF, ProblemStatus, Role, ServiceStatus
from bot.storage.models import Problem, ProblemEvent, Visit
from bot.storage.mywork import (
    RECENT_DAYS,
    STALE_DAYS,
    ServiceRow,
    editable_until,
    get_service_request_for_update,
    get_visit_for_update,
    last_event,
    my_enterprises,
    my_open_problems,
    my_recent_visits,
    my_service_requests,
    overview,
    problem_card,
    recent_events,
    returned_problems,
    service_card,
    visit_card,
    withdraw_service_request,
    withdraw_visit,
)

log = logging.getLogger(__name__)

PAGE = 8
LABEL_CHARS = 24  # of an enterprise name on a button
EVENT_KINDS = {
    "created": N_("Reported"),
    "progress": N_("Progress"),
    "corrected": N_("Corrected"),
    "assigned": N_("Department and due date assigned"),
    "reopened": N_("Reopened"),
}
View = tuple[str, InlineKeyboardMarkup]


# -- small helpers -------------------------------------------------------------------------------------
def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _age(moment: datetime, context: BotContext) -> str:
    return age_text(moment, now=context.runtime.now(), tz=context.settings.tz, _=context._)


def age_text(moment: datetime, *, now: datetime, tz: tzinfo, _: Translator) -> str:
    days = (now.astimezone(tz).date() - moment.astimezone(tz).date()).days
    return _("today") if days <= 0 else _("{days} d").format(days=days)


def _flows(context: BotContext) -> FlowEngine:
    flows: FlowEngine = context.bot_data["flows"]
    return flows


def _nav(_: Translator, section: str, page: int, total: int) -> list[InlineKeyboardButton]:
    row = []
    if page > 0:
        row.append(button(_("‹ Previous"), Prefix.my, page - 1, section))
    if (page + 1) * PAGE < total:
        row.append(button(_("Next ›"), Prefix.my, page + 1, section))
    return row


def _home_button(_: Translator) -> list[InlineKeyboardButton]:
    return [button(_("« My work"), Prefix.my, 0, "home")]


def _header(_: Translator, title: str, page: int, total: int) -> str:
    pages = max(1, -(-total // PAGE))
    if pages == 1:
        return f"<b>{title}</b>"
    return f"<b>{title}</b> " + _("(page {page} of {pages})").format(page=page + 1, pages=pages)


# -- /my and its sections ------------------------------------------------------------------------------
async def _overview(context: BotContext) -> View:
    _, user = context._, context.user
    async with context.db() as session:
        counts = await overview(session, user_id=user.id, now=context.runtime.now())
        returned = await returned_problems(session, user_id=user.id, limit=3) if counts.returned else []
    lines = [_("<b>My work</b> — {name}").format(name=html.escape(user.name))]
    line = _("Enterprises: {count}").format(count=counts.enterprises)
    if counts.not_visited:
        line += _(", {count} not visited for {days}+ days").format(count=counts.not_visited, days=STALE_DAYS)
    lines.append(line)
    line = _("Pending problems: {count}").format(count=counts.problems)
    if counts.returned:
        line += _(", {count} returned for correction — please correct them").format(count=counts.returned)
    lines.append(line)
    lines.append(_("Service requests in progress: {count}").format(count=counts.services))
    lines.append(_("Visits in the last {days} days: {count}").format(days=RECENT_DAYS, count=counts.visits))
    rows = [
        [button(_("✏ Correct {ref}").format(ref=problem.ref), Prefix.my_problem, problem.id, "correct")]
        for problem, _name in returned
    ]
    rows += [
        [
            button(_("My enterprises ({count})").format(count=counts.enterprises), Prefix.my, 0, "ent"),
            button(_("My problems ({count})").format(count=counts.problems), Prefix.my, 0, "pb"),
        ],
        [
            button(_("My services ({count})").format(count=counts.services), Prefix.my, 0, "sv"),
            button(_("My visits ({count})").format(count=counts.visits), Prefix.my, 0, "vs"),
        ],
    ]
    return "\n".join(lines), markup(rows)


async def _enterprises(context: BotContext, page: int) -> View:
    _ = context._
    async with context.db.begin() as session:
        rows, total = await my_enterprises(session, user_id=context.user.id, offset=page * PAGE, limit=PAGE)
    lines = [_header(_, _("My enterprises ({count})").format(count=total), page, total)]
    if not rows:
        lines.append(_("No enterprise is assigned to you yet. Please ask your administrator."))
    buttons = []
    for row in rows:
        last = (
            _("last visit {date} ({age})").format(
                date=local_date(row.last_visit, context.settings), age=_age(row.last_visit, context)
            )
            if row.last_visit
            else _("never visited")
        )
        lines.append(
            "• <b>{name}</b>\n  {last} · {problems} · {services}".format(
                name=html.escape(row.name),
                last=last,
                problems=_("open problems: {count}").format(count=row.open_problems),
                services=_("services: {count}").format(count=row.open_services),
            )
        )
        buttons.append(
            [
                button(
                    _("Log a visit: {name}").format(name=_short(row.name, LABEL_CHARS)),
                    Prefix.enterprise,
                    row.id,
                    "visit",
                )
            ]
        )
    buttons += [_nav(_, "ent", page, total), _home_button(_)]
    return "\n".join(lines), markup(buttons)


async def _problems(context: BotContext, page: int) -> View:
    _ = context._
    async with context.db.begin() as session:
        rows, total = await my_open_problems(session, user_id=context.user.id, offset=page * PAGE, limit=PAGE)
    lines = [_header(_, _("My problems ({count})").format(count=total), page, total)]
    if not rows:
        lines.append(_("You have no pending problems."))
    buttons = []
    for problem, name in rows:
        category, status = _(CATEGORY_LABELS[problem.category]), _(PROBLEM_STATUS_LABELS[problem.status])
        flag = "⚠ " if problem.status is ProblemStatus.returned else ""
        lines.append(
            f"• {flag}<b>{problem.ref}</b> · {html.escape(name)} · {category} · {status} · "
            f"{_age(problem.created_at, context)}"
        )
        buttons.append(
            [button(f"{flag}{problem.ref} · {category} · {status}", Prefix.my_problem, problem.id, "view")]
        )
    buttons += [_nav(_, "pb", page, total), _home_button(_)]
    return "\n".join(lines), markup(buttons)


async def _services(context: BotContext, page: int) -> View:
    _ = context._
    async with context.db.begin() as session:
        rows, total = await my_service_requests(
            session, user_id=context.user.id, now=context.runtime.now(), offset=page * PAGE, limit=PAGE
        )
    lines = [_header(_, _("My service requests ({count})").format(count=total), page, total)]
    if not rows:
        lines.append(_("You have no service requests in progress."))
    buttons = []
    for row in rows:
        request, item = row.request, row.item(context.locale)
        status = _(SERVICE_STATUS_LABELS[request.status])
        lines.append(
            f"• <b>{request.ref}</b> · {html.escape(row.enterprise_name)} · {html.escape(item)} · {status} · "
            f"{_age(request.created_at, context)}"
        )
        buttons.append(
            [button(f"{request.ref} · {_short(item, LABEL_CHARS)}", Prefix.service, request.id, "view")]
        )
    buttons += [_nav(_, "sv", page, total), _home_button(_)]
    return "\n".join(lines), markup(buttons)


async def _visits(context: BotContext, page: int) -> View:
    _, settings, now = context._, context.settings, context.runtime.now()
    async with context.db.begin() as session:
        rows, total = await my_recent_visits(
            session, user_id=context.user.id, now=now, offset=page * PAGE, limit=PAGE
        )
    title = _("My visits in the last {days} days ({count})").format(days=RECENT_DAYS, count=total)
    lines = [_header(_, title, page, total)]
    if not rows:
        lines.append(_("You have logged no visits in the last {days} days.").format(days=RECENT_DAYS))
    buttons = []
    for visit, name in rows:
        until = editable_until(visit, window_days=settings.edit_window_days)
        editable = (
            _("editable until {date}").format(date=local_date(until, settings)) if now < until else _("final")
        )
        day = local_date(visit.visited_at, settings)
        lines.append(f"• <b>{visit.ref}</b> · {day} · {html.escape(name)} · {editable}")
        buttons.append(
            [button(f"{visit.ref} · {day} · {_short(name, LABEL_CHARS)}", Prefix.visit, visit.id, "view")]
        )
    buttons += [_nav(_, "vs", page, total), _home_button(_)]
    return "\n".join(lines), markup(buttons)


SECTIONS: dict[str, Callable[[BotContext, int], Awaitable[View]]] = {
    "ent": _enterprises,
    "pb": _problems,
    "sv": _services,
    "vs": _visits,
}


async def cmd_my(update: Update, context: BotContext) -> None:
    assert update.effective_chat is not None
    text, reply_markup = await _overview(context)
    await update.effective_chat.send_message(text, reply_markup=reply_markup)


async def cb_my(update: Update, context: BotContext, data: CallbackData) -> None:
    """`my:<page>:<section>` — switch section / page."""
    query = update.callback_query
    assert query is not None
    section = data.arg or "home"
    if section != "home" and section not in SECTIONS:
        await expired(update, context, "unknown section")
        return
    page = min(data.id, 10_000)
    text, reply_markup = await (_overview(context) if section == "home" else SECTIONS[section](context, page))
    await query.answer()
    await redraw(update, text, reply_markup)


# -- problems ------------------------------------------------------------------------------------------
def _event_line(event: ProblemEvent, context: BotContext) -> str:
    _ = context._
    if event.kind in EVENT_KINDS:
        what = _(EVENT_KINDS[event.kind])
    elif event.to_status is not None:
        what = _(PROBLEM_STATUS_LABELS[event.to_status])
    else:
        what = _("Updated")
    if event.note:
        what = _("{what}: {note}").format(what=what, note=html.escape(_short(event.note, 120)))
    return f"  {local_date(event.created_at, context.settings)} {what}"


def _problem_text(
    problem: Problem, enterprise: str, events: list[ProblemEvent], reason: str | None, context: BotContext
) -> str:
    _, settings = context._, context.settings
    lines = [
        f"<b>{problem.ref}</b> · {_(CATEGORY_LABELS[problem.category])} · "
        f"<b>{_(PROBLEM_STATUS_LABELS[problem.status])}</b>",
        _("Enterprise: {name}").format(name=html.escape(enterprise)),
        _("Reported: {date} ({age})").format(
            date=local_date(problem.created_at, settings), age=_age(problem.created_at, context)
        ),
    ]
    if problem.due_date:
        lines.append(_("Due date: {date}").format(date=problem.due_date.isoformat()))
    elif problem.requested_due_date:
        lines.append(_("Desired due date: {date}").format(date=problem.requested_due_date.isoformat()))
    if problem.department:
        lines.append(_("Responsible department: {name}").format(name=html.escape(problem.department)))
    lines.append(_("Description: {text}").format(text=html.escape(problem.description)))
    if problem.status is ProblemStatus.returned:
        lines.append(_("⚠ Returned for correction: {reason}").format(reason=html.escape(reason or "—")))
    if problem.status is ProblemStatus.resolved:
        lines.append(_("Resolution: {text}").format(text=html.escape(problem.resolution or "—")))
        lines.append(_("Funds provided: {funds}").format(funds=funds_text(problem.funds_wan, _)))
    if events:
        lines.append(_("Latest history:"))
        lines += [_event_line(event, context) for event in events]
    return "\n".join(lines)


def _problem_buttons(problem: Problem, _: Translator) -> InlineKeyboardMarkup:
    rows = []
    if problem.status is ProblemStatus.returned:
        rows.append([button(_("✏ Correct and resubmit"), Prefix.my_problem, problem.id, "correct")])
    if problem.status in (ProblemStatus.open, ProblemStatus.in_progress, ProblemStatus.returned):
        row = [button(_("➕ Add progress"), Prefix.my_problem, problem.id, "progress")]
        if problem.status is not ProblemStatus.returned:
            row.append(button(_("✔ Mark resolved"), Prefix.my_problem, problem.id, "resolve"))
        rows.append(row)
    rows.append([button(_("« My problems"), Prefix.my, 0, "pb")])
    return markup(rows)


PROBLEM_FLOWS = {"progress": "problem_progress", "resolve": "problem_resolve", "correct": "problem_correct"}


async def cb_my_problem(update: Update, context: BotContext, data: CallbackData) -> None:
    """`mp:<problem id>:<action>` — the reporter's actions: view, progress, resolve, correct."""
    query = update.callback_query
    assert query is not None
    _ = context._
    action = data.arg or "view"
    if action != "view" and action not in PROBLEM_FLOWS:
        await expired(update, context, "unknown problem action")
        return
    async with context.db.begin() as session:
        found = await problem_card(session, problem_id=data.id)
        problem = found[0] if found else None
        refusal = problem_refusal(problem, context.user, action, _)
        text, reply_markup = "", None
        if refusal is None and found is not None and action == "view":
            events = await recent_events(session, problem_id=data.id, limit=4)
            returned = (
                await last_event(session, problem_id=data.id, kind="returned")
                if found[0].status is ProblemStatus.returned
                else None
            )
            text = _problem_text(found[0], found[1], events, returned.note if returned else None, context)
            reply_markup = _problem_buttons(found[0], _)
    if refusal is not None:
        log.warning(
            "update %s: mp:%s:%s refused for user %s", update.update_id, data.id, action, context.user.id
        )
        await refuse(update, refusal)
        return
    if action == "view":
        await query.answer()
        await redraw(update, text, reply_markup)
        return
    await _flows(context).start(update, context, PROBLEM_FLOWS[action], {"problem_id": data.id})


# -- visits --------------------------------------------------------------------------------------------
async def cb_visit(update: Update, context: BotContext, data: CallbackData) -> None:
    """`vs:<visit id>:<action>` — view, edit or withdraw one's own visit within the edit window."""
    query = update.callback_query
    assert query is not None
    _, settings, now = context._, context.settings, context.runtime.now()
    action = data.arg or "view"
    if action not in ("view", "edit", "withdraw", "withdraw_yes"):
        await expired(update, context, "unknown visit action")
        return
    text, reply_markup = "", None
    async with context.db.begin() as session:
        if action == "withdraw_yes":
            visit = await get_visit_for_update(session, visit_id=data.id)
            refusal = visit_refusal(visit, context.user, "withdraw", now, settings, _)
            if refusal is None and visit is not None:
                await withdraw_visit(session, visit, actor_id=context.user.id, now=now)
                text = _("Visit {ref} has been withdrawn; it no longer counts in any report.").format(
                    ref=visit.ref
                )
                reply_markup = markup([[button(_("« My visits"), Prefix.my, 0, "vs")]])
        else:
            found = await visit_card(session, visit_id=data.id)
            visit = found[0] if found else None
            refusal = visit_refusal(visit, context.user, action, now, settings, _)
            if refusal is None and found is not None:
                text, reply_markup = _visit_view(*found, action, context)
    if refusal is not None:
        log.warning(
            "update %s: vs:%s:%s refused for user %s", update.update_id, data.id, action, context.user.id
        )
        await refuse(update, refusal)
        return
    if action == "edit":
        await _flows(context).start(update, context, "visit_edit", {"visit_id": data.id})
        return
    await query.answer()
    await redraw(update, text, reply_markup)


def _visit_view(visit: Visit, enterprise: str, photos: int, action: str, context: BotContext) -> View:
    _, settings, now = context._, context.settings, context.runtime.now()
    if action == "withdraw":
        return _(
            "Withdraw visit {ref} ({name}, {date})? It will no longer count in any report. "
            "This cannot be undone."
        ).format(
            ref=visit.ref, name=html.escape(enterprise), date=local_date(visit.visited_at, settings)
        ), markup(
            [
                [
                    button(_("Yes, withdraw it"), Prefix.visit, visit.id, "withdraw_yes"),
                    button(_("No, keep it"), Prefix.visit, visit.id, "view"),
                ]
            ]
        )
    until = editable_until(visit, window_days=settings.edit_window_days)
    lines = [
        f"<b>{visit.ref}</b> · {html.escape(enterprise)}",
        _("Visited: {when}").format(when=visit.visited_at.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M")),
        _("Covered: {topics}").format(topics=topics_text(visit.topics, _)),
        _("Notes: {notes}").format(notes=html.escape(visit.notes) or "—"),
    ]
    if photos:
        lines.append(_("Photos: {count}").format(count=photos))
    if visit.latitude is not None:
        lines.append(
            _("Location recorded, {metres} m from the enterprise").format(metres=visit.distance_m)
            if visit.distance_m is not None
            else _("Location recorded")
        )
    rows = []
    if visit.withdrawn_at is not None:
        lines.append(_("Withdrawn on {date}.").format(date=local_date(visit.withdrawn_at, settings)))
    elif now < until:
        lines.append(_("You can change it until {date}.").format(date=local_date(until, settings)))
        rows.append(
            [
                button(_("✏ Edit"), Prefix.visit, visit.id, "edit"),
                button(_("↩ Withdraw"), Prefix.visit, visit.id, "withdraw"),
            ]
        )
    else:
        lines.append(_("The {days}-day period for changes is over.").format(days=settings.edit_window_days))
    rows.append([button(_("« My visits"), Prefix.my, 0, "vs")])
    return "\n".join(lines), markup(rows)


# -- service requests ----------------------------------------------------------------------------------
ServiceAction = Callable[[Update, BotContext, CallbackData], Awaitable[None]]
# Role -> the card that role sees instead of the requester's one: supervisors' card (requester, history,
# their actions) is set by bot.handlers.services with `register_service_card` (it imports this module).
SERVICE_CARDS: dict[Role, ServiceAction] = {}


def register_service_card(roles: tuple[Role, ...], handler: ServiceAction) -> None:
    for role in roles:
        if role in STAFF or role in SERVICE_CARDS:
            raise ValueError(f"a service card for {role.value!r} cannot be registered")
        SERVICE_CARDS[role] = handler


def service_card_lines(
    row: ServiceRow, *, _: Translator, locale: str, now: datetime, settings: Settings
) -> list[str]:
    """The lines of a request's card everybody sees (HTML, user text escaped)."""
    request = row.request
    lines = [
        f"<b>{request.ref}</b> · {html.escape(row.item(locale))} · "
        f"<b>{_(SERVICE_STATUS_LABELS[request.status])}</b>",
        _("Enterprise: {name}").format(name=html.escape(row.enterprise_name)),
        _("Requested: {date} ({age})").format(
            date=local_date(request.created_at, settings),
            age=age_text(request.created_at, now=now, tz=settings.tz, _=_),
        ),
    ]
    if request.note:
        lines.append(_("Note: {text}").format(text=html.escape(request.note)))
    if request.delivered_at:
        lines.append(_("Delivered: {date}").format(date=local_date(request.delivered_at, settings)))
    return lines


async def _service_view(update: Update, context: BotContext, data: CallbackData) -> None:
    """The request's card: its requester sees it (and may withdraw it while nobody has started on it);
    supervisors and admins see any request (with their own card when one is registered)."""
    query = update.callback_query
    assert query is not None
    _, settings, user = context._, context.settings, context.user
    if user.role in SERVICE_CARDS:
        await SERVICE_CARDS[user.role](update, context, data)
        return
    async with context.db.begin() as session:
        row = await service_card(session, request_id=data.id)
    if row is None:
        await expired(update, context, "no such service request")
        return
    request, staff = row.request, user.role in STAFF
    if staff and request.requester_id != user.id:
        log.warning(
            "update %s: sv:%s:view refused for user %s: not the requester", update.update_id, data.id, user.id
        )
        await refuse(update, _("Only the person who requested this service can see it here."))
        return
    lines = service_card_lines(row, _=_, locale=context.locale, now=context.runtime.now(), settings=settings)
    rows = []
    if staff:
        if request.status is ServiceStatus.requested:
            rows.append([button(_("↩ Withdraw the request"), Prefix.service, request.id, "withdraw")])
        rows.append([button(_("« My services"), Prefix.my, 0, "sv")])
    await query.answer()
    await redraw(update, "\n".join(lines), markup(rows) if rows else None)


async def _service_withdraw(update: Update, context: BotContext, data: CallbackData) -> None:
    """`withdraw` asks, `withdraw_yes` withdraws: only the requester, only while still `requested`."""
    query = update.callback_query
    assert query is not None
    _, user, now = context._, context.user, context.runtime.now()
    confirmed = data.arg == "withdraw_yes"
    refusal: str | None = None
    text, reply_markup = "", None
    async with context.db.begin() as session:
        request = await get_service_request_for_update(session, request_id=data.id)
        if request is None:
            refusal = (
                _("This action has expired.") if not confirmed else _("This request is already withdrawn.")
            )
        elif request.requester_id != user.id:
            log.warning("user %s: service withdraw of %s refused: not the requester", user.id, request.id)
            refusal = _("Only the person who requested this service can withdraw it.")
        elif request.status is not ServiceStatus.requested:
            refusal = _("This action has expired: the request is already “{status}”.").format(
                status=_(SERVICE_STATUS_LABELS[request.status])
            )
        elif confirmed:
            ref = request.ref
            await withdraw_service_request(session, request, actor_id=user.id, now=now)
            text = _("Service request {ref} has been withdrawn.").format(ref=ref)
            reply_markup = markup([[button(_("« My services"), Prefix.my, 0, "sv")]])
        else:
            text = _("Withdraw service request {ref}? It will be removed from the ledger.").format(
                ref=request.ref
            )
            reply_markup = markup(
                [
                    [
                        button(_("Yes, withdraw it"), Prefix.service, request.id, "withdraw_yes"),
                        button(_("No, keep it"), Prefix.service, request.id, "view"),
                    ]
                ]
            )
    if refusal is not None:
        log.warning("update %s: sv:%s:%s refused for user %s", update.update_id, data.id, data.arg, user.id)
        await refuse(update, refusal)
        return
    await query.answer()
    await redraw(update, text, reply_markup)


# Action -> (roles allowed, handler). Supervisors' actions (e.g. delivered / declined) are added with
# `register_service_action` from their module; the role check here runs before any handler.
SERVICE_ACTIONS: dict[str, tuple[tuple[Role, ...], ServiceAction]] = {
    "view": (EVERYONE, _service_view),
    "withdraw": (STAFF, _service_withdraw),
    "withdraw_yes": (STAFF, _service_withdraw),
}


def register_service_action(action: str, roles: tuple[Role, ...], handler: ServiceAction) -> None:
    if action in SERVICE_ACTIONS:
        raise ValueError(f"service action {action!r} is already registered")
    SERVICE_ACTIONS[action] = (roles, handler)


async def cb_service(update: Update, context: BotContext, data: CallbackData) -> None:
    """`sv:<request id>:<action>` — actions on a service request, dispatched by action and role."""
    route = SERVICE_ACTIONS.get(data.arg or "view")
    if route is None:
        await expired(update, context, "unknown service action")
        return
    roles, handler = route
    if context.user.role not in roles:
        log.warning(
            "update %s: sv:%s:%s denied to user %s", update.update_id, data.id, data.arg, context.user.id
        )
        await refuse(update, context._("Sorry, this is not available to you."))
        return
    await handler(update, context, data)
