"""Supervisors' problem handling: /pending, /overdue, the problem card and its actions.

Lists: ``pl:<page>:<state>`` where the state packs the list, the view and the filters into a few bytes:
``<p|o><l|c|d>.<category|->.<department key|u|->`` — pending/overdue; list, choose a category, choose a
department; the category filter; the department filter (`department_key`, ``u`` = unassigned).

Card: ``pb:<id>:view`` sends the card, ``pb:<id>:ref`` redraws it in place; the actions carry the status
the supervisor saw — ``as.<status>`` (assign department and due date), ``st.<status>.<to>`` (change status),
``ret.<status>`` (return for correction), ``cl.<status>`` (close without resolution). A tap on a stale card
finds the status changed, says so and redraws the card; nothing else happens. The actions that need typed
input run as the `review` flow (bot/flows/review.py), which checks the status again when it applies.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.context import BotContext
from bot.flows.engine import FlowEngine
from bot.i18n import N_, Translator
from bot.keyboards import CallbackData, Prefix, button, markup
from bot.labels import CATEGORY_LABELS, PROBLEM_STATUS_LABELS
from bot.replies import expired, redraw
from bot.storage.enums import ProblemCategory, ProblemStatus
from bot.storage.models import Problem
from bot.storage.problem_queries import (
    HistoryEntry,
    ProblemCard,
    ProblemFilter,
    ProblemRow,
    category_counts,
    department_by_key,
    department_counts,
    department_key,
    list_problems,
    problem_card,
    review_in_progress,
)

log = logging.getLogger(__name__)

S = ProblemStatus
PAGE_SIZE = 8
DEPARTMENTS_PER_PAGE = 10
MAX_ID = 2**31 - 1  # ids are 32-bit: anything larger is forged (and PostgreSQL would refuse the query)
DESCRIPTION_LIMIT = 800  # characters of the description shown on the card
NOTE_LIMIT = 300  # characters of one history note shown on the card
CARD_LIMIT = 3800  # Telegram allows 4096 characters; keep room for the flow's own line above the card
LABEL_LIMIT = 40  # characters of a list button

# What the supervisor may do in each status: (action, status the card showed, target status).
ASSIGNABLE = (S.open, S.in_progress)
RETURNABLE = (S.open, S.in_progress)
CLOSABLE = (S.open, S.in_progress, S.returned)
STATUS_CHANGES = {(S.open, S.in_progress), (S.resolved, S.in_progress), (S.closed, S.open)}
_ACTION = re.compile(r"(as|ret|cl)\.([a-z_]+)|st\.([a-z_]+)\.([a-z_]+)")

KIND_LABELS = {
    "created": N_("reported the problem"),
    "assigned": N_("assigned the responsible department and due date"),
    "in_progress": N_("marked it in progress"),
    "progress": N_("reported progress"),
    "returned": N_("returned it for correction"),
    "corrected": N_("corrected it"),
    "resolved": N_("marked it resolved"),
    "closed": N_("closed it without resolution"),
    "reopened": N_("reopened it"),
    "open": N_("set it back to open"),
}


# -- small helpers -------------------------------------------------------------------------------------
def local_today(context: BotContext) -> date:
    return context.runtime.now().astimezone(context.settings.tz).date()


def status_label(status: ProblemStatus, _: Translator) -> str:
    return _(PROBLEM_STATUS_LABELS[status])


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _overdue_days(due: date | None, status: ProblemStatus, today: date) -> int:
    if due is None or status in (S.resolved, S.closed):
        return 0
    return max((today - due).days, 0)


def _due_text(due: date | None, status: ProblemStatus, today: date, _: Translator) -> str:
    if due is None:
        return _("not set")
    days = _overdue_days(due, status, today)
    if days:
        return _("{date} (overdue by {days} days)").format(date=due.isoformat(), days=days)
    return due.isoformat()


# -- lists ---------------------------------------------------------------------------------------------
_STATE = re.compile(r"([po])([lcd])\.([a-z_]{1,12}|-)\.([0-9a-f]{8}|u|-)")


@dataclass(frozen=True)
class ListState:
    overdue: bool
    view: str = "l"  # l: the list, c: choose a category, d: choose a department
    category: ProblemCategory | None = None
    department: str = "-"  # "-": all, "u": unassigned, else a department_key

    @property
    def arg(self) -> str:
        category = self.category.value if self.category else "-"
        return f"{'o' if self.overdue else 'p'}{self.view}.{category}.{self.department}"

    def button(self, text: str, page: int = 0, **changes: Any) -> InlineKeyboardButton:
        return button(text, Prefix.problem_list, page, replace(self, **changes).arg)

    @property
    def filtered(self) -> bool:
        return self.category is not None or self.department != "-"


def parse_state(arg: str) -> ListState | None:
    match = _STATE.fullmatch(arg)
    if match is None:
        return None
    kind, view, category, department = match.groups()
    if category != "-" and category not in ProblemCategory.__members__:
        return None
    return ListState(
        overdue=kind == "o",
        view=view,
        category=ProblemCategory(category) if category != "-" else None,
        department=department,
    )


def _row_line(number: int, row: ProblemRow, overdue: bool, today: date, tz: ZoneInfo, _: Translator) -> str:
    department = html.escape(row.department) if row.department else _("no department")
    days = _overdue_days(row.due_date, row.status, today)
    if overdue and row.due_date is not None:
        when = _("{days} days overdue (due {date})").format(days=days, date=row.due_date.isoformat())
    elif days:
        when = _("reported {date}, overdue by {days} days").format(
            date=row.created_at.astimezone(tz).date().isoformat(), days=days
        )
    else:
        when = _("reported {date}").format(date=row.created_at.astimezone(tz).date().isoformat())
    enterprise = html.escape(_clip(row.enterprise_name, 60))
    details = " · ".join([_(CATEGORY_LABELS[row.category]), status_label(row.status, _), department, when])
    return f"{number}. <b>{row.ref}</b> {enterprise}\n    {details}"


async def _list_screen(
    context: BotContext, state: ListState, page: int
) -> tuple[str, InlineKeyboardMarkup] | None:
    """The list (or one of its filter choosers); None when the state names a department that no longer
    exists (a forged or very old button)."""
    _, today = context._, local_today(context)
    department: str | None = None
    async with context.db() as session:
        if state.department not in ("-", "u"):
            department = await department_by_key(session, key=state.department)
            if department is None:
                return None
        which = ProblemFilter(
            overdue=state.overdue,
            category=state.category,
            department=department,
            unassigned=state.department == "u",
        )
        if state.view == "c":
            categories = await category_counts(session, filter=which, today=today)
            return _category_chooser(state, categories, _)
        if state.view == "d":
            departments = await department_counts(session, filter=which, today=today)
            return _department_chooser(state, departments, page, _)
        rows, total = await list_problems(
            session, filter=which, today=today, offset=page * PAGE_SIZE, limit=PAGE_SIZE
        )
        if not rows and total and page > 0:  # the list shrank since the button was drawn
            page = (total - 1) // PAGE_SIZE
            rows, total = await list_problems(
                session, filter=which, today=today, offset=page * PAGE_SIZE, limit=PAGE_SIZE
            )
    title = _("Overdue problems") if state.overdue else _("Pending problems")
    category_name = _(CATEGORY_LABELS[state.category]) if state.category else _("all")
    department_name = (
        _("unassigned") if state.department == "u" else html.escape(department) if department else _("all")
    )
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    lines = [
        _("<b>{title}</b>: {total} · page {page}/{pages}").format(
            title=title, total=total, page=page + 1, pages=pages
        ),
        _("Category: {category} · Department: {department}").format(
            category=category_name, department=department_name
        ),
    ]
    if not rows:
        if state.filtered:
            lines.append(_("No problems match these filters."))
        elif state.overdue:
            lines.append(_("No problem is overdue."))
        else:
            lines.append(_("No problem is pending. Well done!"))
    elif state.overdue:
        lines.append(_("Longest overdue first. Tap a problem to open its card."))
    else:
        lines.append(_("Oldest first. Tap a problem to open its card."))
    lines += [
        _row_line(page * PAGE_SIZE + i + 1, row, state.overdue, today, context.settings.tz, _)
        for i, row in enumerate(rows)
    ]
    rows_buttons = [
        [
            button(
                _clip(f"{page * PAGE_SIZE + i + 1}. {row.ref} {row.enterprise_name}", LABEL_LIMIT),
                Prefix.problem,
                row.id,
                "view",
            )
        ]
        for i, row in enumerate(rows)
    ]
    nav = []
    if page > 0:
        nav.append(state.button(_("‹ Previous"), page - 1))
    if (page + 1) * PAGE_SIZE < total:
        nav.append(state.button(_("Next ›"), page + 1))
    filters = [
        state.button(_("Category: {name} ▾").format(name=category_name), view="c"),
        state.button(
            _clip(_("Department: {name} ▾").format(name=department or department_name), 30), view="d"
        ),
    ]
    extra = []
    if state.filtered:
        extra.append(state.button(_("✖ Clear filters"), category=None, department="-"))
    extra.append(
        state.button(_("All pending"), overdue=False)
        if state.overdue
        else state.button(_("Overdue only"), overdue=True)
    )
    return "\n".join(lines), markup([*rows_buttons, nav, filters, extra])


def _category_chooser(
    state: ListState, counts: list[tuple[ProblemCategory, int]], _: Translator
) -> tuple[str, InlineKeyboardMarkup]:
    total = sum(count for _category, count in counts)
    options = [state.button(_("All ({count})").format(count=total), view="l", category=None)]
    options += [
        state.button(
            _("{name} ({count})").format(name=_(CATEGORY_LABELS[category]), count=count),
            view="l",
            category=category,
        )
        for category, count in counts
    ]
    rows = [options[i : i + 3] for i in range(0, len(options), 3)]
    rows.append([state.button(_("« Back"), view="l")])
    return _("Show which category?"), markup(rows)


def _department_chooser(
    state: ListState, counts: list[tuple[str | None, int]], page: int, _: Translator
) -> tuple[str, InlineKeyboardMarkup]:
    total = sum(count for _name, count in counts)
    first = [state.button(_("All ({count})").format(count=total), view="l", department="-")]
    named = [(name, count) for name, count in counts if name is not None]
    unassigned = sum(count for name, count in counts if name is None)
    if unassigned:
        first.append(
            state.button(_("Unassigned ({count})").format(count=unassigned), view="l", department="u")
        )
    page = min(page, max((len(named) - 1) // DEPARTMENTS_PER_PAGE, 0))
    shown = named[page * DEPARTMENTS_PER_PAGE : (page + 1) * DEPARTMENTS_PER_PAGE]
    options = [
        state.button(
            _("{name} ({count})").format(name=_clip(name, LABEL_LIMIT), count=count),
            view="l",
            department=department_key(name),
        )
        for name, count in shown
    ]
    rows = [first, *(options[i : i + 2] for i in range(0, len(options), 2))]
    nav = []
    if page > 0:
        nav.append(state.button(_("‹ Previous"), page - 1))
    if (page + 1) * DEPARTMENTS_PER_PAGE < len(named):
        nav.append(state.button(_("Next ›"), page + 1))
    rows += [nav, [state.button(_("« Back"), view="l")]]
    return _("Show which responsible department?"), markup(rows)


async def _send_list(update: Update, context: BotContext, overdue: bool) -> None:
    assert update.effective_chat is not None
    screen = await _list_screen(context, ListState(overdue=overdue), 0)
    assert screen is not None  # no department filter, so always a screen
    text, reply_markup = screen
    await update.effective_chat.send_message(text, reply_markup=reply_markup)


async def cmd_pending(update: Update, context: BotContext) -> None:
    await _send_list(update, context, overdue=False)


async def cmd_overdue(update: Update, context: BotContext) -> None:
    await _send_list(update, context, overdue=True)


async def cb_problem_list(update: Update, context: BotContext, data: CallbackData) -> None:
    """`pl:<page>:<filter>` — paging and filters of /pending and /overdue."""
    query = update.callback_query
    assert query is not None
    state = parse_state(data.arg)
    if state is None or data.id > 10_000:
        await expired(update, context, "malformed list state")
        return
    screen = await _list_screen(context, state, data.id)
    if screen is None:
        await expired(update, context, "unknown department")
        return
    await query.answer()
    await redraw(update, *screen)


# -- the card ------------------------------------------------------------------------------------------
def history_line(entry: HistoryEntry, tz: ZoneInfo, _: Translator) -> str:
    if entry.kind in KIND_LABELS:
        what = _(KIND_LABELS[entry.kind])
    elif entry.to_status is not None:
        what = _("changed the status to {status}").format(status=status_label(entry.to_status, _))
    else:
        what = html.escape(entry.kind)
    line = "• {at} {who}: {what}".format(
        at=entry.at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        who=html.escape(entry.actor) if entry.actor else _("(system)"),
        what=what,
    )
    if entry.note:
        line += " — " + html.escape(_clip(entry.note, NOTE_LIMIT))
    return line


def render_card(card: ProblemCard, tz: ZoneInfo, today: date, _: Translator) -> str:
    problem, enterprise = card.problem, card.enterprise
    lines = [
        f"<b>{problem.ref}</b> · {status_label(problem.status, _)}",
        _("Enterprise: {name}").format(name=html.escape(enterprise.name)),
        _("Category: {category}").format(category=_(CATEGORY_LABELS[problem.category])),
        _("Reported by {name} on {date}").format(
            name=html.escape(card.reporter.name) if card.reporter else "—",
            date=problem.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        ),
        _("Responsible department: {department}").format(
            department=html.escape(problem.department) if problem.department else _("not assigned")
        ),
        _("Due date: {due}").format(due=_due_text(problem.due_date, problem.status, today, _)),
    ]
    if problem.requested_due_date is not None:
        lines.append(_("Reporter's desired date: {date}").format(date=problem.requested_due_date.isoformat()))
    lines.append(
        _("Description: {text}").format(text=html.escape(_clip(problem.description, DESCRIPTION_LIMIT)))
    )
    if problem.resolution:
        lines.append(
            _("Resolution: {text}").format(text=html.escape(_clip(problem.resolution, DESCRIPTION_LIMIT)))
        )
    if problem.funds_wan is not None:
        lines.append(_("Funds provided: {amount} (10k CNY)").format(amount=f"{problem.funds_wan:.2f}"))
    head = "\n".join(lines)
    events = [history_line(entry, tz, _) for entry in card.history]
    title = "\n\n<b>" + _("History") + "</b>\n"
    # Keep the newest events if the whole history does not fit in one message.
    shown: list[str] = []
    room = CARD_LIMIT - len(head) - len(title) - 60
    for line in reversed(events):
        if len(line) + 1 > room:
            break
        shown.insert(0, line)
        room -= len(line) + 1
    if len(shown) < len(events):
        shown.insert(0, _("… {count} earlier events not shown").format(count=len(events) - len(shown)))
    return head + title + "\n".join(shown)


def card_buttons(problem: Problem, _: Translator) -> list[list[InlineKeyboardButton]]:
    status = problem.status.value
    rows: list[list[InlineKeyboardButton]] = []
    if problem.status in ASSIGNABLE:
        label = _("Reassign") if problem.department else _("Assign department and due date")
        rows.append([button(label, Prefix.problem, problem.id, f"as.{status}")])
    changes = [to for (seen, to) in sorted(STATUS_CHANGES) if seen is problem.status]
    for to in changes:
        label = _("Reopen") if problem.status in (S.resolved, S.closed) else _("Mark in progress")
        rows.append([button(label, Prefix.problem, problem.id, f"st.{status}.{to.value}")])
    last = []
    if problem.status in RETURNABLE:
        last.append(button(_("Return for correction"), Prefix.problem, problem.id, f"ret.{status}"))
    if problem.status in CLOSABLE:
        last.append(button(_("Close"), Prefix.problem, problem.id, f"cl.{status}"))
    rows.append(last)
    rows.append([button(_("🔄 Refresh"), Prefix.problem, problem.id, "ref")])
    return [row for row in rows if row]


def card_markup(problem: Problem, _: Translator) -> InlineKeyboardMarkup:
    return markup(card_buttons(problem, _))


@dataclass(frozen=True)
class CardScreen:
    card: ProblemCard
    text: str
    markup: InlineKeyboardMarkup
    started: dict[str, Any] | None  # the user's review conversation in progress, if any


async def card_screen(context: BotContext, problem_id: int) -> CardScreen | None:
    _ = context._
    async with context.db() as session:
        card = await problem_card(session, problem_id=problem_id)
        started = await review_in_progress(
            session,
            user_id=context.user.id,
            since=context.runtime.now() - timedelta(hours=context.settings.flow_ttl_hours),
        )
    if card is None:
        return None
    text = render_card(card, context.settings.tz, local_today(context), _)
    return CardScreen(card, text, card_markup(card.problem, _), started)


def parse_action(arg: str) -> tuple[str, ProblemStatus, ProblemStatus | None] | None:
    """(action, status the card showed, target status) of a card button, if the button could exist."""
    match = _ACTION.fullmatch(arg)
    if match is None:
        return None
    verb, seen, st_seen, st_to = match.groups()
    try:
        if verb is None:
            pair = (S(st_seen), S(st_to))
            return ("status", *pair) if pair in STATUS_CHANGES else None
        status = S(seen)
    except ValueError:
        return None
    allowed = {"as": ASSIGNABLE, "ret": RETURNABLE, "cl": CLOSABLE}[verb]
    if status not in allowed:
        return None
    return {"as": "assign", "ret": "return", "cl": "close"}[verb], status, None


def changed_text(status: ProblemStatus, _: Translator) -> str:
    return _("Already changed: this problem is now “{status}”. Nothing was done.").format(
        status=status_label(status, _)
    )


async def cb_problem(update: Update, context: BotContext, data: CallbackData) -> None:
    """`pb:<problem id>:<action>` — the problem card and the supervisor's actions on it."""
    query = update.callback_query
    assert query is not None
    _ = context._
    action = data.arg or "view"
    parsed = None if action in ("view", "ref") else parse_action(action)
    if (action not in ("view", "ref") and parsed is None) or not 0 < data.id <= MAX_ID:
        await expired(update, context, "malformed action")
        return
    screen = await card_screen(context, data.id)
    if screen is None:
        await expired(update, context, "no such problem")
        return
    card, text, reply_markup = screen.card, screen.text, screen.markup
    if parsed is None:
        await query.answer()
        if action == "ref":
            await redraw(update, text, reply_markup)
        else:
            assert update.effective_chat is not None
            await update.effective_chat.send_message(text, reply_markup=reply_markup)
        return
    verb, seen, to = parsed
    if card.problem.status is not seen:
        log.info(
            "update %s: %s on %s seen as %s, now %s; nothing done",
            update.update_id,
            verb,
            card.problem.ref,
            seen,
            card.problem.status,
        )
        await query.answer(changed_text(card.problem.status, _), show_alert=True)
        await redraw(update, text, reply_markup)
        return
    args = {"problem_id": card.problem.id, "action": verb, "expected": seen.value}
    if to is not None:
        args["to"] = to.value
    started = screen.started or {}
    if {key: started.get(key) for key in args} == args:  # a second tap while the first one's flow runs
        await query.answer(_("Already started: please answer the question above."))
        return
    flows: FlowEngine = context.bot_data["flows"]
    await flows.start(update, context, "review", args)
