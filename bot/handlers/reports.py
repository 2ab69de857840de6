"""Supervision reports: /stats, /enterprise, /liaison, /coverage, /trends.

Each handler reads everything in one unit of work (figures come from `bot.services.stats`), closes it,
then renders the chart and talks to Telegram. Report navigation and choices use the `st:` prefix, which
every role may press, so each callback checks on the server what this user may see:

- ``st:0:w2026-47`` / ``st:0:m2026-11`` — /stats for that period (staff: their own enterprises only);
- ``st:<enterprise id>:ent`` — an enterprise card (staff: only their current assignments);
- ``st:<user id>:lia`` / ``st:<user id>:lia.w2026-47`` — a liaison's activity (supervisors and admins).
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from telegram import InlineKeyboardMarkup, Update
from telegram.constants import ChatAction, MessageLimit

from bot.auth import refuse
from bot.commands import SUPERVISION
from bot.context import BotContext
from bot.i18n import Translator
from bot.keyboards import CallbackData, Prefix, button, markup
from bot.labels import (
    CATEGORY_LABELS,
    PARTY_ORG_LABELS,
    PROBLEM_STATUS_LABELS,
    ROLE_LABELS,
    SERVICE_STATUS_LABELS,
    STAGE_LABELS,
    TOPIC_LABELS,
)
from bot.services.charts import Bar, StatsChart, TrendPoint, render_stats_chart_async
from bot.services.periods import (
    MAX_YEAR,
    MIN_YEAR,
    Period,
    PeriodError,
    PeriodKind,
    local_today,
    parse_period,
    period_containing,
)
from bot.services.stats import (
    CoverageReport,
    Figures,
    LiaisonReport,
    StatsReport,
    TrendsReport,
    coverage_report,
    enterprise_card,
    liaison_report,
    scope_of,
    stats_report,
    trends_report,
)
from bot.storage.enterprises import enterprises_for
from bot.storage.enums import STAFF, PartyOrg, VisitTopic
from bot.storage.models import User
from bot.storage.reports import (
    PENDING_PROBLEMS,
    EnterpriseDetails,
    StaleEnterprise,
    staff_member,
    staff_named,
)

log = logging.getLogger(__name__)

MAX_TEXT = MessageLimit.MAX_TEXT_LENGTH  # 4096
GROUP_LINES = 12  # departments / communities listed in the /stats text
CHART_BARS = 12  # bars per chart panel (the rest summed as one bar)
CHOICES = 8  # buttons offered when a name matches several enterprises or people
QUERY_LIMIT = 50
STALE_LIST = 10  # /liaison: enterprises listed as not visited for 30+ days
UNVISITED_LIST = 30  # /coverage: enterprises listed as never / long not visited
COMMUNITY_LINES = 40  # /coverage: communities listed
TOP_COMBINATIONS = 10  # /trends
PERIOD_CODE = re.compile(r"[wm]\d{4}-\d{2}", re.ASCII)

KNOWN_TOPICS = frozenset(t.value for t in VisitTopic)


# -- small formatting helpers --------------------------------------------------------------------------
def _day(moment: datetime | date, context: BotContext) -> str:
    if isinstance(moment, datetime):
        moment = moment.astimezone(context.settings.tz).date()
    return moment.isoformat()


def _pct(part: int, whole: int) -> str:
    return f"{part / whole * 100:.1f}%" if whole else "—"


def _delta(now: int | Decimal, before: int | Decimal) -> str:
    diff = now - before
    if isinstance(diff, Decimal):
        return f"{diff:+.2f}" if diff else "±0"
    return f"{diff:+d}" if diff else "±0"


def _esc(text: str | None, fallback: str) -> str:
    return html.escape(text) if text else fallback


def _more(_: Translator, count: int) -> str:
    return _("…and {count} more").format(count=count)


def chunks(lines: Sequence[str], limit: int = MAX_TEXT) -> list[str]:
    """Join lines into messages of at most ``limit`` characters, splitting only between lines (every
    line is complete HTML). A single overlong line is cut — our lines are built short."""
    messages: list[str] = []
    current = ""
    for line in lines:
        line = line if len(line) <= limit else line[: limit - 1] + "…"
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            messages.append(current)
            candidate = line
        current = candidate
    if current.strip():
        messages.append(current)
    return messages or [""]


async def _send_lines(
    update: Update, lines: Sequence[str], reply_markup: InlineKeyboardMarkup | None = None
) -> None:
    """Send a long text as one or more messages; the buttons go under the last one."""
    assert update.effective_chat is not None
    parts = chunks(lines)
    for i, part in enumerate(parts):
        await update.effective_chat.send_message(
            part, reply_markup=reply_markup if i == len(parts) - 1 else None
        )


def _period_error(context: BotContext, text: str, error: PeriodError) -> str:
    _ = context._
    if error.reason == "week":
        return _("There is no week {text}: a year has 52 or 53 ISO weeks.").format(text=html.escape(text))
    if error.reason == "range":
        return _("Please choose a period between {first} and {last}.").format(first=MIN_YEAR, last=MAX_YEAR)
    return _(
        "I did not understand “{text}”. Use this or last (week), a week such as 2026-W47 or a month "
        "such as 2026-11."
    ).format(text=html.escape(text[:QUERY_LIMIT]))


def period_label(period: Period, _: Translator) -> str:
    if period.kind is PeriodKind.week:
        return _("Week {week} of {year} ({first} – {last})").format(
            week=period.number,
            year=period.year,
            first=period.start.isoformat(),
            last=period.last_day.isoformat(),
        )
    return _("{year}-{month:02d} ({first} – {last})").format(
        year=period.year,
        month=period.number,
        first=period.start.isoformat(),
        last=period.last_day.isoformat(),
    )


def _period_name(period: Period, _: Translator) -> str:
    """The period without its dates: "week 47 of 2026" / "2026-11"."""
    if period.kind is PeriodKind.week:
        return _("week {week} of {year}").format(week=period.number, year=period.year)
    return _("{year}-{month:02d}").format(year=period.year, month=period.number)


def _short_period(period: Period, today: date, _: Translator) -> str:
    """The running period as "this week" / "this month", any other by its name."""
    if period.contains(today):
        return _("this week") if period.kind is PeriodKind.week else _("this month")
    return _period_name(period, _)


# -- /stats -------------------------------------------------------------------------------------------
def _group_line(name: str, f: Figures, _: Translator) -> str:
    line = _(
        "{name}: visits {visits} · visited {visited}/{assigned} · problems {reported}/{resolved} · "
        "overdue {overdue} · services {requested}/{delivered}"
    ).format(
        name=name,
        visits=f.visits,
        visited=f.assigned_visited,
        assigned=f.assigned,
        reported=f.reported,
        resolved=f.resolved,
        overdue=f.overdue,
        requested=f.requested,
        delivered=f.delivered,
    )
    if f.funds:
        line += _(" · funds {funds}").format(funds=f.funds)
    return line


def _groups(title: str, groups: list[tuple[str | None, Figures]], unknown: str, _: Translator) -> list[str]:
    lines = ["", f"<b>{title}</b>"]
    for name, figures in groups[:GROUP_LINES]:
        lines.append("• " + _group_line(_esc(name, unknown), figures, _))
    if len(groups) > GROUP_LINES:
        lines.append(_more(_, len(groups) - GROUP_LINES))
    return lines


def stats_lines(report: StatsReport, _: Translator) -> list[str]:
    own = report.scope_user_id is not None
    title = (_("Statistics of my enterprises, {period}") if own else _("Statistics, {period}")).format(
        period=period_label(report.period, _)
    )
    lines = [f"<b>{title}</b>"]
    if report.in_progress:
        lines.append(_("(in progress, as of {today})").format(today=report.today.isoformat()))
    t, p = report.total, report.previous
    if report.empty:
        lines.append(
            _("No visits, problems or services were recorded {period}.").format(
                period=_short_period(report.period, report.today, _)
            )
        )
        if t.overdue:
            lines.append(_("Overdue problems as of today: {overdue}.").format(overdue=t.overdue))
        return lines
    week = report.period.kind is PeriodKind.week
    if report.previous_partial:
        versus = _("same point last week") if week else _("same point last month")
    else:
        versus = _("last week") if week else _("last month")
    lines += [
        _("In brackets: change against {versus}.").format(versus=versus),
        "",
        _("Visits: {n} ({d})").format(n=t.visits, d=_delta(t.visits, p.visits)),
        _("Enterprises visited: {n} ({d})").format(
            n=t.enterprises_visited, d=_delta(t.enterprises_visited, p.enterprises_visited)
        ),
        _("Assigned enterprises visited: {visited}/{assigned} ({share})").format(
            visited=t.assigned_visited, assigned=t.assigned, share=_pct(t.assigned_visited, t.assigned)
        ),
        _("Problems reported: {n} ({d}) · resolved: {r} ({dr})").format(
            n=t.reported, d=_delta(t.reported, p.reported), r=t.resolved, dr=_delta(t.resolved, p.resolved)
        ),
        _("Overdue problems as of today: {overdue}").format(overdue=t.overdue),
        _("Funds provided: {funds} (10k CNY) ({d})").format(funds=t.funds, d=_delta(t.funds, p.funds)),
        _("Services requested: {n} ({d}) · delivered: {r} ({dr})").format(
            n=t.requested,
            d=_delta(t.requested, p.requested),
            r=t.delivered,
            dr=_delta(t.delivered, p.delivered),
        ),
    ]
    lines += _groups(_("By department"), report.by_department, _("(no department)"), _)
    lines += _groups(_("By community"), report.by_community, _("(no community)"), _)
    lines += [
        "",
        _(
            "visited: assigned enterprises visited / assigned; problems: reported/resolved; "
            "services: requested/delivered"
        ),
    ]
    return lines


def _bars(groups: list[tuple[str | None, Figures]], unknown: str, others: str) -> list[Bar]:
    shown = [(name, f.visits) for name, f in groups if f.visits]
    bars = [Bar(name or unknown, value) for name, value in shown[: CHART_BARS - 1]]
    rest = shown[CHART_BARS - 1 :]
    if len(rest) == 1:
        bars.append(Bar(rest[0][0] or unknown, rest[0][1]))
    elif rest:
        bars.append(Bar(others.format(count=len(rest)), sum(v for _, v in rest)))
    return bars


def stats_chart(report: StatsReport, _: Translator) -> StatsChart:
    others = _("{count} others")
    return StatsChart(
        title=_("Visits, {period}").format(period=_period_name(report.period, _)),
        groups=[
            (_("Visits by department"), _bars(report.by_department, _("(no department)"), others)),
            (_("Visits by community"), _bars(report.by_community, _("(no community)"), others)),
        ],
        trend_title=_("Visits in the last {weeks} weeks").format(weeks=len(report.trend)),
        trend=[TrendPoint(f"W{week.number:02d}", count) for week, count in report.trend],
        empty_text=_("No visits in this period"),
    )


def has_chart(report: StatsReport) -> bool:
    return any(count for _week, count in report.trend) or not report.empty


def _stats_buttons(report: StatsReport, _: Translator) -> InlineKeyboardMarkup:
    period, week = report.period, report.period.kind is PeriodKind.week
    row = []
    if period.previous().year >= MIN_YEAR:
        row.append(
            button(
                _("‹ Previous week") if week else _("‹ Previous month"),
                Prefix.stats,
                0,
                period.previous().code,
            )
        )
    if period.next().start <= report.today:
        row.append(
            button(_("Next week ›") if week else _("Next month ›"), Prefix.stats, 0, period.next().code)
        )
    if week:
        switch = button(
            _("Whole month"), Prefix.stats, 0, period_containing(period.start, PeriodKind.month).code
        )
    else:
        switch = button(
            _("By week"), Prefix.stats, 0, period_containing(min(period.last_day, report.today)).code
        )
    return markup([row, [switch]])


async def _send_stats(update: Update, context: BotContext, period: Period) -> None:
    assert update.effective_chat is not None
    user, _ = context.user, context._
    scope = scope_of(user)
    async with context.db.begin() as session:
        report = await stats_report(
            session, period=period, now=context.runtime.now(), tz=context.settings.tz, scope_user_id=scope
        )
    if scope is not None and report.total.assigned == 0:
        await update.effective_chat.send_message(
            _("No enterprise is assigned to you yet, so there are no figures to show.")
        )
        return
    lines = stats_lines(report, _)
    if has_chart(report):
        await update.effective_chat.send_chat_action(ChatAction.UPLOAD_PHOTO)
        png = await render_stats_chart_async(stats_chart(report, _))
        await update.effective_chat.send_photo(png, caption=html.escape(period_label(period, _)))
    await _send_lines(update, lines, _stats_buttons(report, _))


async def cmd_stats(update: Update, context: BotContext) -> None:
    assert update.effective_chat is not None
    text = " ".join(context.args or [])
    today = local_today(context.runtime.now(), context.settings.tz)
    try:
        period = parse_period(text, today=today)
    except PeriodError as error:
        await update.effective_chat.send_message(_period_error(context, text, error))
        return
    if period.start > today:
        await update.effective_chat.send_message(
            context._("{period} has not begun yet.").format(period=period_label(period, context._))
        )
        return
    await _send_stats(update, context, period)


async def cb_stats(update: Update, context: BotContext, data: CallbackData) -> None:
    """`st:0:<period code>`, `st:<enterprise id>:ent`, `st:<user id>:lia[.<period code>]`."""
    query = update.callback_query
    assert query is not None
    if data.arg == "ent":
        await _cb_enterprise(update, context, data.id)
        return
    if data.arg == "lia" or data.arg.startswith("lia."):
        await _cb_liaison(update, context, data.id, data.arg.removeprefix("lia").removeprefix("."))
        return
    today = local_today(context.runtime.now(), context.settings.tz)
    period = _period_code(data.arg, today)
    if data.id != 0 or period is None or period.start > today:
        log.warning(
            "update %s: bad stats callback %r from user %s", update.update_id, query.data, context.user.id
        )
        await query.answer(context._("This action has expired."), show_alert=True)
        return
    await query.answer()
    await _send_stats(update, context, period)


def _period_code(code: str, today: date) -> Period | None:
    """The period of a button's ``w2026-47`` / ``m2026-11``; None for anything else."""
    if not PERIOD_CODE.fullmatch(code):
        return None
    try:
        return parse_period(code, today=today)
    except PeriodError:
        return None


# -- /enterprise --------------------------------------------------------------------------------------
def _person(user: User | None, context: BotContext) -> str:
    if user is None:
        return context._("(none)")
    unit = user.department or user.community
    return html.escape(user.name) + (f"（{html.escape(unit)}）" if unit else "")


def enterprise_lines(card: EnterpriseDetails, context: BotContext) -> list[str]:
    _, e = context._, card.enterprise
    lines = [
        f"<b>{html.escape(e.name)}</b>",
        _("Credit code: {code}").format(code=html.escape(e.credit_code)),
        _("Stage: {stage} · community: {community}").format(
            stage=_(STAGE_LABELS[e.stage]) if e.stage else "—", community=_esc(e.community, "—")
        ),
        _("Party organisation: {status} · party members: {members}").format(
            status=_(PARTY_ORG_LABELS[e.party_org]), members=e.party_members
        ),
        _("Liaison: {liaison} · instructor: {instructor}").format(
            liaison=_person(card.liaison, context), instructor=_person(card.instructor, context)
        ),
    ]
    if e.industry or e.employees is not None:
        lines.append(
            _("Industry: {industry} · employees: {employees}").format(
                industry=_esc(e.industry, "—"), employees=e.employees if e.employees is not None else "—"
            )
        )
    if e.address:
        lines.append(_("Address: {address}").format(address=html.escape(e.address)))
    lines += ["", "<b>" + _("Visits ({count} in all)").format(count=card.visit_count) + "</b>"]
    if not card.last_visits:
        lines.append(_("Not visited yet."))
    for visit in card.last_visits:
        topics = "、".join(_(TOPIC_LABELS[VisitTopic(t)]) for t in visit.topics if t in KNOWN_TOPICS)
        lines.append(
            f"• {_day(visit.visited_at, context)} {html.escape(visit.visitor)}"
            + (f" — {topics}" if topics else "")
        )
    pending = sum(n for s, n in card.problem_counts.items() if s in PENDING_PROBLEMS)
    lines += [
        "",
        "<b>"
        + _("Problems ({pending} pending, {total} in all)").format(
            pending=pending, total=sum(card.problem_counts.values())
        )
        + "</b>",
    ]
    if not card.problems:
        lines.append(_("No problems reported."))
    for problem in card.problems:
        description = (
            problem.description if len(problem.description) <= 40 else problem.description[:39] + "…"
        )
        due = _(" · due {day}").format(day=problem.due_date.isoformat()) if problem.due_date else ""
        lines.append(
            f"• {problem.ref} {_(CATEGORY_LABELS[problem.category])} — "
            f"{_(PROBLEM_STATUS_LABELS[problem.status])}{due} — {html.escape(description)}"
        )
    if len(card.problems) < sum(card.problem_counts.values()):
        lines.append(_more(_, sum(card.problem_counts.values()) - len(card.problems)))
    lines += ["", "<b>" + _("Services ({count} in all)").format(count=card.service_count) + "</b>"]
    if not card.services:
        lines.append(_("No services requested."))
    for service in card.services:
        item = service.item_en if context.locale == "en" else service.item_zh
        lines.append(
            f"• {service.ref} {html.escape(item)} — {_(SERVICE_STATUS_LABELS[service.status])} · "
            f"{_day(service.created_at, context)}"
        )
    if len(card.services) < card.service_count:
        lines.append(_more(_, card.service_count - len(card.services)))
    return lines


def _card_buttons(card: EnterpriseDetails, context: BotContext) -> InlineKeyboardMarkup | None:
    if context.user.role not in STAFF:
        return None
    _, eid = context._, card.enterprise.id
    return markup(
        [
            [
                button(_("Log a visit"), Prefix.enterprise, eid, "visit"),
                button(_("Report a problem"), Prefix.enterprise, eid, "problem"),
                button(_("Request a service"), Prefix.enterprise, eid, "service"),
            ]
        ]
    )


async def _show_card(update: Update, context: BotContext, enterprise_id: int) -> bool:
    async with context.db.begin() as session:
        card = await enterprise_card(session, user=context.user, enterprise_id=enterprise_id)
    if card is None:
        return False
    await _send_lines(update, enterprise_lines(card, context), _card_buttons(card, context))
    return True


async def cmd_enterprise(update: Update, context: BotContext) -> None:
    assert update.effective_chat is not None
    _, chat = context._, update.effective_chat
    text = unicodedata.normalize("NFKC", " ".join(context.args or [])).strip()  # full-width codes too
    if not text:
        await chat.send_message(
            _("Send /enterprise followed by part of the name or the credit code, e.g. /enterprise 华兴.")
        )
        return
    if len(text) > QUERY_LIMIT:
        await chat.send_message(_("Please send at most {limit} characters.").format(limit=QUERY_LIMIT))
        return
    async with context.db.begin() as session:
        found, total = await enterprises_for(session, user=context.user, query=text, limit=CHOICES)
    if total == 0:
        staff = context.user.role in STAFF
        message = (
            _("None of your enterprises matches “{query}”.")
            if staff
            else _("No enterprise matches “{query}”.")
        )
        await chat.send_message(message.format(query=html.escape(text)))
        return
    if total == 1:
        await _show_card(update, context, found[0].id)
        return
    lines = [
        _("{count} enterprises match “{query}”. Choose one:").format(count=total, query=html.escape(text))
    ]
    if total > len(found):
        lines.append(
            _("(showing the first {shown}; type more of the name to narrow it down)").format(shown=len(found))
        )
    rows = [[button(e.name, Prefix.stats, e.id, "ent")] for e in found]
    await chat.send_message("\n".join(lines), reply_markup=markup(rows))


async def _cb_enterprise(update: Update, context: BotContext, enterprise_id: int) -> None:
    query = update.callback_query
    assert query is not None
    async with context.db.begin() as session:
        card = await enterprise_card(session, user=context.user, enterprise_id=enterprise_id)
    if card is None:
        log.warning(
            "update %s: enterprise %s refused to user %s", update.update_id, enterprise_id, context.user.id
        )
        await query.answer(context._("Sorry, this is not available to you."), show_alert=True)
        return
    await query.answer()
    await _send_lines(update, enterprise_lines(card, context), _card_buttons(card, context))


# -- /liaison -----------------------------------------------------------------------------------------
def _stale_line(item: StaleEnterprise, context: BotContext) -> str:
    _ = context._
    when = (
        _("last visited {day}").format(day=_day(item.last_visit, context))
        if item.last_visit
        else _("never visited")
    )
    community = f"（{html.escape(item.community)}）" if item.community else ""
    return f"• {html.escape(item.name)}{community} — {when}"


def liaison_lines(report: LiaisonReport, context: BotContext) -> list[str]:
    _, user, a = context._, report.user, report.activity
    unit = user.department or user.community
    head = f"<b>{html.escape(user.name)}</b>（{_(ROLE_LABELS[user.role])}" + (
        f"，{html.escape(unit)}）" if unit else "）"
    )
    if not user.active:
        head += " " + _("[deactivated]")
    lines = [
        head,
        _("{period}: {visits} visits to {enterprises} enterprises; {reported} problems reported.").format(
            period=period_label(report.period, _),
            visits=a.visits,
            enterprises=a.enterprises_visited,
            reported=a.problems_reported,
        ),
        _("Assigned enterprises: {count}").format(count=a.assigned),
    ]
    if a.assigned:
        lines.append(
            _("Not visited for {days}+ days: {count}").format(days=report.stale_days, count=a.stale_count)
        )
        lines += [_stale_line(item, context) for item in a.stale]
        if a.stale_count > len(a.stale):
            lines.append(_more(_, a.stale_count - len(a.stale)))
    open_total = sum(a.open_problems.values())
    detail = " · ".join(
        f"{_(PROBLEM_STATUS_LABELS[s])} {a.open_problems[s]}"
        for s in PENDING_PROBLEMS
        if a.open_problems.get(s)
    )
    lines.append(
        _("Open items: {problems} problems{detail}, {services} service requests").format(
            problems=open_total, detail=f"（{detail}）" if detail else "", services=a.open_services
        )
    )
    lines.append(
        _("Last activity: {day}").format(day=_day(a.last_activity, context))
        if a.last_activity
        else _("No activity recorded yet.")
    )
    if a.last_visit:
        lines.append(_("Last visit: {day}").format(day=_day(a.last_visit, context)))
    return lines


def _liaison_buttons(report: LiaisonReport, today: date, _: Translator) -> InlineKeyboardMarkup:
    period, uid = report.period, report.user.id
    week = period.kind is PeriodKind.week
    row = [
        button(
            _("‹ Previous week") if week else _("‹ Previous month"),
            Prefix.stats,
            uid,
            f"lia.{period.previous().code}",
        )
    ]
    if period.next().start <= today:
        row.append(
            button(
                _("Next week ›") if week else _("Next month ›"),
                Prefix.stats,
                uid,
                f"lia.{period.next().code}",
            )
        )
    return markup([row])


async def _liaison_report(context: BotContext, user_id: int, period: Period) -> LiaisonReport | None:
    now, tz = context.runtime.now(), context.settings.tz
    async with context.db.begin() as session:
        user = await staff_member(session, user_id=user_id)
        if user is None:
            return None
        return await liaison_report(session, user=user, period=period, now=now, tz=tz, stale_limit=STALE_LIST)


async def _send_liaison(update: Update, context: BotContext, report: LiaisonReport) -> None:
    today = local_today(context.runtime.now(), context.settings.tz)
    await _send_lines(update, liaison_lines(report, context), _liaison_buttons(report, today, context._))


async def cmd_liaison(update: Update, context: BotContext) -> None:
    assert update.effective_chat is not None
    _, chat = context._, update.effective_chat
    args = list(context.args or [])
    today = local_today(context.runtime.now(), context.settings.tz)
    period = period_containing(today)
    if len(args) > 1:
        try:
            period = parse_period(args[-1], today=today)
            args = args[:-1]
        except PeriodError:
            pass
    name = " ".join(args).strip()
    if not name:
        await chat.send_message(
            _("Send /liaison followed by a name, optionally with a period, e.g. /liaison 张三 last.")
        )
        return
    if len(name) > QUERY_LIMIT:
        await chat.send_message(_("Please send at most {limit} characters.").format(limit=QUERY_LIMIT))
        return
    if period.start > today:
        await chat.send_message(_("{period} has not begun yet.").format(period=period_label(period, _)))
        return
    async with context.db.begin() as session:
        people, total = await staff_named(session, name=name, limit=CHOICES)
    if not people:
        await chat.send_message(
            _("No liaison or instructor is called “{name}”.").format(name=html.escape(name))
        )
        return
    if total == 1:
        report = await _liaison_report(context, people[0].id, period)
        assert report is not None
        await _send_liaison(update, context, report)
        return
    lines = [_("{count} people match “{name}”. Choose one:").format(count=total, name=html.escape(name))]
    if total > len(people):
        lines.append(
            _("(showing the first {shown}; type more of the name to narrow it down)").format(
                shown=len(people)
            )
        )
    rows = [[button(_person_label(p, _), Prefix.stats, p.id, f"lia.{period.code}")] for p in people]
    await chat.send_message("\n".join(lines), reply_markup=markup(rows))


def _person_label(user: User, _: Translator) -> str:
    unit = user.department or user.community
    return f"{user.name}（{_(ROLE_LABELS[user.role])}" + (f"，{unit}）" if unit else "）")


async def _cb_liaison(update: Update, context: BotContext, user_id: int, code: str) -> None:
    query = update.callback_query
    assert query is not None
    if context.user.role not in SUPERVISION:
        log.warning(
            "update %s: liaison report %s denied to user %s", update.update_id, user_id, context.user.id
        )
        await refuse(update, context._("Sorry, this is not available to you."))
        return
    today = local_today(context.runtime.now(), context.settings.tz)
    period = _period_code(code, today) if code else period_containing(today)
    report = await _liaison_report(context, user_id, period) if period and period.start <= today else None
    if report is None:
        log.warning("update %s: bad liaison callback %r", update.update_id, query.data)
        await query.answer(context._("This action has expired."), show_alert=True)
        return
    await query.answer()
    await _send_liaison(update, context, report)


# -- /coverage ----------------------------------------------------------------------------------------
def _org_counts(party_org: dict[PartyOrg, int], _: Translator) -> str:
    order = (PartyOrg.standalone, PartyOrg.joint, PartyOrg.affiliated, PartyOrg.none)
    return " · ".join(f"{_(PARTY_ORG_LABELS[s])} {party_org.get(s, 0)}" for s in order)


def coverage_lines(report: CoverageReport, context: BotContext, today: date) -> list[str]:
    _, t = context._, report.total
    lines = [
        "<b>" + _("Coverage as of {day}").format(day=today.isoformat()) + "</b>",
        _("Party-organisation coverage: {rate} ({organised}/{total})").format(
            rate=_pct(t.organised, t.enterprises), organised=t.organised, total=t.enterprises
        ),
        _org_counts(t.party_org, _),
        _(
            "Visit coverage of assigned enterprises: {v30} within 30 days, {v90} within 90 days "
            "({assigned} assigned)"
        ).format(v30=_pct(t.visited_30, t.assigned), v90=_pct(t.visited_90, t.assigned), assigned=t.assigned),
    ]
    if not t.enterprises:
        return [lines[0], _("No enterprises registered yet.")]
    lines += ["", "<b>" + _("By community (lowest party-organisation coverage first)") + "</b>"]
    for c in report.communities[:COMMUNITY_LINES]:
        lines.append(
            _(
                "• {community}: party organisations {rate} ({organised}/{total}); visited {v30} / {v90} "
                "of {assigned} assigned (30 / 90 days)"
            ).format(
                community=_esc(c.community, _("(no community)")),
                rate=_pct(c.organised, c.enterprises),
                organised=c.organised,
                total=c.enterprises,
                v30=_pct(c.visited_30, c.assigned),
                v90=_pct(c.visited_90, c.assigned),
                assigned=c.assigned,
            )
        )
    if len(report.communities) > COMMUNITY_LINES:
        lines.append(_more(_, len(report.communities) - COMMUNITY_LINES))
    lines += [
        "",
        "<b>"
        + _("Assigned enterprises never visited or not visited for {days}+ days: {count}").format(
            days=report.unvisited_days, count=report.unvisited_count
        )
        + "</b>",
    ]
    lines += [_stale_line(item, context) for item in report.unvisited]
    if report.unvisited_count > len(report.unvisited):
        lines.append(_more(_, report.unvisited_count - len(report.unvisited)))
    return lines


async def cmd_coverage(update: Update, context: BotContext) -> None:
    now = context.runtime.now()
    async with context.db.begin() as session:
        report = await coverage_report(session, now=now, limit=UNVISITED_LIST)
    await _send_lines(update, coverage_lines(report, context, local_today(now, context.settings.tz)))


# -- /trends ------------------------------------------------------------------------------------------
def trends_lines(report: TrendsReport, context: BotContext) -> list[str]:
    _ = context._
    head = (
        "<b>"
        + _("Problems of the last {days} days: {count}").format(days=report.days, count=report.total)
        + "</b>"
    )
    if not report.total:
        return [head, _("No problems were reported in the last {days} days.").format(days=report.days)]
    lines = [
        head,
        _("By category: {list}").format(
            list=" · ".join(f"{_(CATEGORY_LABELS[c])} {n}" for c, n in report.categories)
        ),
        _("By community: {list}").format(
            list=" · ".join(f"{_esc(c, _('(no community)'))} {n}" for c, n in report.communities[:15])
            + (" " + _more(_, len(report.communities) - 15) if len(report.communities) > 15 else "")
        ),
        "",
        "<b>" + _("Recurring problems (category × community)") + "</b>",
    ]
    recurring = report.recurring
    if not recurring:
        lines.append(_("No kind of problem came up more than once in the same community."))
    for i, combo in enumerate(recurring[:TOP_COMBINATIONS], 1):
        lines.append(
            _("{rank}. {category} × {community}: {problems} problems at {enterprises} enterprises").format(
                rank=i,
                category=_(CATEGORY_LABELS[combo.category]),
                community=_esc(combo.community, _("(no community)")),
                problems=combo.problems,
                enterprises=combo.enterprises,
            )
        )
    if len(recurring) > TOP_COMBINATIONS:
        lines.append(_more(_, len(recurring) - TOP_COMBINATIONS))
    return lines


async def cmd_trends(update: Update, context: BotContext) -> None:
    async with context.db.begin() as session:
        report = await trends_report(session, now=context.runtime.now())
    await _send_lines(update, trends_lines(report, context))
