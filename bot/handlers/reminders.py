"""Push reminders: the scanner job decides from the data what is due, writes it to the outbox, and the
sender delivers the outbox within Telegram's limits (about 30 messages a second, 1 a second per chat).

Scheduled pushes (pending problems, overdue escalation, weekly digest, coverage gaps) are generated and
sent only on working days outside quiet hours; a hold simply leaves them in the outbox. Pushes a
supervisor triggers by hand (a problem returned for correction or assigned) go out at once.
"""

from __future__ import annotations

import html
import logging
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter
from telegram.ext import ContextTypes

from bot.config import Settings
from bot.context import BotContext, Runtime
from bot.handlers.reports import has_chart, period_label, stats_chart, stats_lines
from bot.i18n import N_, Translator, gettext_for
from bot.keyboards import CallbackData, Prefix, encode
from bot.labels import CATEGORY_LABELS
from bot.services.charts import render_stats_chart_async
from bot.services.periods import parse_period, period_containing
from bot.services.stats import stats_report
from bot.storage import outbox
from bot.storage.enums import STAFF, Role
from bot.storage.outbox import Push
from bot.storage.reminders import (
    ProblemItem,
    Recipient,
    coverage_gaps,
    overdue_problems,
    pending_problems,
    recipients,
    set_muted,
    snooze,
)
from bot.storage.users import get_user

log = logging.getLogger(__name__)

# Kinds a user can mute with /settings (the admins' "user unreachable" alert cannot be muted).
KINDS: dict[str, str] = {
    "pending": N_("Daily list of pending problems"),
    "overdue": N_("Overdue escalations"),
    "digest": N_("Weekly digest"),
    "coverage": N_("Enterprises not visited for 30 days"),
    "returned": N_("Problems returned to me for correction"),
    "assigned": N_("Problems assigned to a department"),
    "closed": N_("Problems closed without resolution"),
    "service": N_("Service requests moved on"),
}
SCHEDULED = {"pending", "overdue", "digest", "coverage"}
# A person's action (a supervisor's on a problem or a service request): sent at once.
IMMEDIATE = frozenset({"returned", "assigned", "closed", "service", "unreachable"})
LIST_LIMIT = 15  # problems listed in one reminder; the rest are counted
BUTTONS_LIMIT = 5  # problems with action buttons in one reminder
LEASE = timedelta(minutes=2)
GLOBAL_INTERVAL = 1.02 / 30  # Telegram: about 30 messages per second overall (2 % margin: no 429s)
CHAT_INTERVAL = 1.02  # ... and one per second in a private chat
MAX_BACKOFF = timedelta(hours=1)


def holding(local: datetime, settings: Settings) -> bool:
    """Weekends and quiet hours hold scheduled pushes until they end."""
    if local.weekday() >= 5:
        return True
    now, start, end = local.time(), settings.quiet_start, settings.quiet_end
    return (now >= start or now < end) if start > end else start <= now < end


def _age_days(item: ProblemItem, today: date, tz: Any) -> int:
    return (today - item.created_at.astimezone(tz).date()).days


def _problem_line(item: ProblemItem, _: Translator, today: date, tz: Any) -> str:
    return _("{ref} {enterprise} · {category} · {days} days").format(
        ref=item.ref,
        enterprise=html.escape(item.enterprise),
        category=_(CATEGORY_LABELS[item.category]),
        days=_age_days(item, today, tz),
    )


def _payload(text: str, rows: list[list[tuple[str, str]]]) -> dict[str, Any]:
    return {"text": text, "buttons": rows}


def _problem_buttons(item: ProblemItem, _: Translator) -> list[tuple[str, str]]:
    return [
        (_("Progress {ref}").format(ref=item.ref), encode(Prefix.my_problem, item.id, "progress")),
        (_("Resolved"), encode(Prefix.my_problem, item.id, "resolve")),
        (_("Snooze 1 day"), encode(Prefix.notify, item.id, "snooze")),
    ]


def _pending_push(
    user: Recipient, items: list[ProblemItem], today: date, settings: Settings, now: datetime
) -> Push:
    _ = gettext_for(user.locale or settings.default_locale)
    lines = [_("Good morning. Your pending problems ({count}), oldest first:").format(count=len(items))]
    lines += [_problem_line(item, _, today, settings.tz) for item in items[:LIST_LIMIT]]
    if len(items) > LIST_LIMIT:
        lines.append(_("…and {count} more: see /my.").format(count=len(items) - LIST_LIMIT))
    rows = [_problem_buttons(item, _) for item in items[:BUTTONS_LIMIT]] if user.role in STAFF else []
    return Push("pending", user.id, "daily", today.isoformat(), _payload("\n".join(lines), rows), now)


def _overdue_push(user: Recipient, item: ProblemItem, today: date, settings: Settings, now: datetime) -> Push:
    assert item.due_date is not None
    days = (today - item.due_date).days
    _ = gettext_for(user.locale or settings.default_locale)
    text = _("Overdue by {days} days (due {due}): {line}").format(
        days=days, due=item.due_date.isoformat(), line=_problem_line(item, _, today, settings.tz)
    )
    if user.id == item.reporter_id and user.role in STAFF:
        rows = [_problem_buttons(item, _)]
    else:
        rows = [[(_("Open {ref}").format(ref=item.ref), encode(Prefix.problem, item.id, "view"))]]
    # One per day by key; `due_pushes` also skips anyone escalated within the last few days.
    return Push("overdue", user.id, f"problem:{item.id}", today.isoformat(), _payload(text, rows), now)


@dataclass
class Due:
    pushes: list[Push] = field(default_factory=list)

    def add(self, push: Push, user: Recipient) -> None:
        if push.kind not in user.muted:
            self.pushes.append(push)


async def due_pushes(runtime: Runtime, session: Any, *, manual: bool = False) -> list[Push]:
    """Everything the schedule says is due now, from the data. `manual` ignores holds (a person asked)."""
    settings, now = runtime.settings, runtime.now()
    local = now.astimezone(settings.tz)
    if holding(local, settings) and not manual:
        return []
    today, due = local.date(), Due()
    monday = today - timedelta(days=today.weekday())
    if manual or local.time() >= settings.reminder_time:
        pending = await pending_problems(session, today=today)
        by_user: dict[int, list[ProblemItem]] = defaultdict(list)
        for item in pending:
            by_user[item.reporter_id].append(item)
            if item.assignee_id and item.assignee_id != item.reporter_id:
                by_user[item.assignee_id].append(item)
        users = await recipients(session, ids=set(by_user))
        for user_id, items in by_user.items():
            if user_id in users:
                due.add(_pending_push(users[user_id], items, today, settings, now), users[user_id])
        overdue = await overdue_problems(session, today=today)
        supervisors = await recipients(session, roles=(Role.supervisor,))
        reporters = await recipients(session, ids={item.reporter_id for item in overdue})
        # At most one escalation per problem and person every 3 days (local days, counted from the last).
        window_start = datetime.combine(
            today - timedelta(days=settings.escalation_every_days - 1), time(0), settings.tz
        )
        recent = await outbox.recently_pushed(session, kind="overdue", since=window_start)
        for item in overdue:
            for user in [reporters.get(item.reporter_id), *supervisors.values()]:
                if user is not None and (user.id, f"problem:{item.id}") not in recent:
                    due.add(_overdue_push(user, item, today, settings, now), user)
    digest_at = datetime.combine(monday, settings.digest_time, settings.tz)
    if manual or local >= digest_at:
        await _digests(session, due, settings, now, monday)
    coverage_at = datetime.combine(monday, settings.coverage_time, settings.tz)
    if manual or local >= coverage_at:
        gaps = await coverage_gaps(session, before=now - timedelta(days=settings.coverage_gap_days))
        staff = await recipients(session, ids={gap.user_id for gap in gaps})
        per_user: dict[int, list[Any]] = defaultdict(list)
        for gap in gaps:
            per_user[gap.user_id].append(gap)
        week = f"{monday.isocalendar().year}-W{monday.isocalendar().week:02d}"
        for user_id, user_gaps in per_user.items():
            user = staff.get(user_id)
            if user is None:
                continue
            _ = gettext_for(user.locale or settings.default_locale)
            lines = [
                _("Assigned enterprises not visited for {days} days or more:").format(
                    days=settings.coverage_gap_days
                )
            ]
            for gap in user_gaps[:LIST_LIMIT]:
                last = (
                    gap.last_visit.astimezone(settings.tz).date().isoformat()
                    if gap.last_visit
                    else _("never visited")
                )
                lines.append(f"• {html.escape(gap.enterprise)} — {last}")
            if len(user_gaps) > LIST_LIMIT:
                lines.append(_("…and {count} more.").format(count=len(user_gaps) - LIST_LIMIT))
            rows = [
                [
                    (
                        _("Visit {name}").format(name=gap.enterprise[:40]),
                        encode(Prefix.enterprise, gap.enterprise_id, "visit"),
                    )
                ]
                for gap in user_gaps[:BUTTONS_LIMIT]
            ]
            due.add(Push("coverage", user.id, "weekly", week, _payload("\n".join(lines), rows), now), user)
    return due.pushes


async def _digests(session: Any, due: Due, settings: Settings, now: datetime, monday: date) -> None:
    """Monday: last week's /stats summary for each supervisor; the chart is drawn when it is sent."""
    supervisors = await recipients(session, roles=(Role.supervisor,))
    if not supervisors:
        return
    week = period_containing(monday - timedelta(days=1))
    report = await stats_report(session, period=week, now=now, tz=settings.tz, scope_user_id=None)
    for user in supervisors.values():
        locale = user.locale or settings.default_locale
        _ = gettext_for(locale)
        text = _("Weekly digest") + "\n" + "\n".join(stats_lines(report, _))
        payload: dict[str, Any] = {
            "text": text[:4000],
            "buttons": [],
            "chart": week.code if has_chart(report) else None,
            "locale": locale,
        }
        due.add(Push("digest", user.id, "weekly", week.code, payload, now), user)


async def _digest_chart(runtime: Runtime, code: str, locale: str) -> tuple[bytes, str]:
    """The chart of the week `code` in `locale`, and its caption."""
    _ = gettext_for(locale)
    week = parse_period(code, today=runtime.now().astimezone(runtime.settings.tz).date())
    async with runtime.db() as session:
        report = await stats_report(
            session, period=week, now=runtime.now(), tz=runtime.settings.tz, scope_user_id=None
        )
    return await render_stats_chart_async(stats_chart(report, _)), html.escape(period_label(week, _))


@dataclass
class Delivery:
    sent: int = 0
    retried: int = 0
    rate_limited: int = 0
    failed: int = 0
    held: int = 0


class Pacer:
    """Spaces messages to stay within Telegram's limits, on the runtime's clock (virtual in benchmarks)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.next_any = 0.0
        self.next_chat: dict[int, float] = {}

    async def wait(self, chat_id: int) -> None:
        now = self.runtime.monotonic()
        at = max(now, self.next_any, self.next_chat.get(chat_id, 0.0))
        if at > now:
            await self.runtime.sleep(at - now)
        self.next_any = at + GLOBAL_INTERVAL
        self.next_chat[chat_id] = at + CHAT_INTERVAL

    def chat_ready(self, chat_id: int) -> bool:
        return self.next_chat.get(chat_id, 0.0) <= self.runtime.monotonic()

    async def pause(self, seconds: float) -> None:
        """Telegram said 429: nobody sends until `retry_after` has passed."""
        self.next_any = max(self.next_any, self.runtime.monotonic() + seconds)
        await self.runtime.sleep(seconds)


async def deliver(
    bot: Bot, runtime: Runtime, *, manual: bool = False, batch: int = 200, kinds: frozenset[str] | None = None
) -> Delivery:
    """Send what the outbox holds (optionally only these kinds), until it is empty or held. Each row is
    marked right after its send."""
    settings, report, pacer = runtime.settings, Delivery(), Pacer(runtime)
    while True:
        now = runtime.now()
        async with runtime.db.begin() as session:
            claimed = await outbox.claim(session, now=now, lease=LEASE, limit=batch, kinds=kinds)
        if not claimed:
            return report
        held_local = holding(now.astimezone(settings.tz), settings) and not manual
        queue = deque(claimed)
        while queue:
            item = queue.popleft()
            if not pacer.chat_ready(item.chat_id) and any(pacer.chat_ready(other.chat_id) for other in queue):
                queue.append(item)  # this chat had a message a moment ago: send others meanwhile
                continue
            if held_local and item.kind in SCHEDULED:
                report.held += 1
                async with runtime.db.begin() as session:
                    await outbox.mark_retry(
                        session,
                        notification_id=item.id,
                        attempts=item.attempts,
                        send_after=_hold_end(runtime.now(), settings),
                        error="held",
                    )
                continue
            await _send_one(bot, runtime, pacer, item, report)


def _hold_end(now: datetime, settings: Settings) -> datetime:
    """The next moment scheduled pushes may go out (working day, after quiet hours)."""
    local = now.astimezone(settings.tz)
    candidate = datetime.combine(local.date(), settings.quiet_end, settings.tz)
    if candidate <= local:
        candidate += timedelta(days=1)
    while holding(candidate, settings):
        candidate += timedelta(days=1)
    return candidate


async def _send_one(bot: Bot, runtime: Runtime, pacer: Pacer, item: outbox.Claimed, report: Delivery) -> None:
    text = item.payload.get("text", "")
    rows = item.payload.get("buttons", [])
    markup = (
        InlineKeyboardMarkup(
            [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in rows]
        )
        if rows
        else None
    )
    chart = item.payload.get("chart")
    while True:
        await pacer.wait(item.chat_id)
        try:
            if chart:  # the digest: its chart first, then the figures
                png, caption = await _digest_chart(runtime, chart, item.payload.get("locale", "zh_CN"))
                await bot.send_photo(item.chat_id, png, caption=caption)
                chart = None
                await pacer.wait(item.chat_id)
            await bot.send_message(item.chat_id, text, reply_markup=markup)
        except RetryAfter as exc:
            report.rate_limited += 1
            delay = exc.retry_after
            await pacer.pause(delay.total_seconds() if isinstance(delay, timedelta) else float(delay))
            continue
        except Forbidden as exc:
            report.failed += 1
            await _unreachable(runtime, item, str(exc))
            return
        except BadRequest as exc:
            report.failed += 1
            log.warning("notification %s to user %s refused by Telegram: %s", item.id, item.recipient_id, exc)
            async with runtime.db.begin() as session:
                await outbox.mark_failed(session, notification_id=item.id, error=str(exc))
            return
        except NetworkError as exc:  # 5xx, timeouts, connection errors: try again later
            report.retried += 1
            attempts = item.attempts + 1
            backoff = min(timedelta(seconds=30 * 2 ** min(attempts, 10)), MAX_BACKOFF)
            log.info("notification %s: %s; retrying in %s", item.id, exc, backoff)
            async with runtime.db.begin() as session:
                await outbox.mark_retry(
                    session,
                    notification_id=item.id,
                    attempts=attempts,
                    send_after=runtime.now() + backoff,
                    error=str(exc),
                )
            return
        async with runtime.db.begin() as session:
            await outbox.mark_sent(session, notification_id=item.id, now=runtime.now())
        report.sent += 1
        return


async def _unreachable(runtime: Runtime, item: outbox.Claimed, error: str) -> None:
    """The user blocked the bot: stop trying, flag them, and tell the admins once."""
    now = runtime.now()
    async with runtime.db.begin() as session:
        await outbox.mark_failed(session, notification_id=item.id, error=error)
        first = await outbox.mark_unreachable(session, user_id=item.recipient_id)
        if not first:
            return
        admins = await recipients(session, roles=(Role.admin,))
        name = await _user_name(session, item.recipient_id)
        pushes = []
        for admin in admins.values():
            _ = gettext_for(admin.locale or runtime.settings.default_locale)
            text = _(
                "{name} has blocked the bot or deleted their Telegram account, so reminders cannot reach "
                "them. Please contact them."
            ).format(name=html.escape(name))
            pushes.append(
                Push("unreachable", admin.id, f"user:{item.recipient_id}", "once", _payload(text, []), now)
            )
        await outbox.enqueue(session, pushes)
    log.warning("user %s is unreachable (blocked the bot); admins told", item.recipient_id)


async def _user_name(session: Any, user_id: int) -> str:
    user = await get_user(session, user_id=user_id)
    return user.name if user else str(user_id)


@dataclass(frozen=True)
class ScanReport:
    queued: int
    delivery: Delivery


async def scan(bot: Bot, runtime: Runtime, *, manual: bool = False) -> ScanReport:
    """One scanner run: write what is due to the outbox (duplicates ignored), then deliver the outbox."""
    async with runtime.db.begin() as session:
        queued = await outbox.enqueue(session, await due_pushes(runtime, session, manual=manual))
    return ScanReport(queued, await deliver(bot, runtime, manual=manual))


async def deliver_immediate(context: BotContext) -> Delivery:
    """Send at once what a person's action just put in the outbox (returned, assigned, closed...)."""
    return await deliver(context.bot, context.runtime, kinds=IMMEDIATE)


async def scan_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    runtime: Runtime = context.bot_data["runtime"]
    report = await scan(context.bot, runtime)
    if report.queued or report.delivery.sent or report.delivery.failed:
        log.info("reminders: queued %s, %s", report.queued, report.delivery)


# -- chat side: /settings, /remind, reminder buttons ----------------------------------------------
def _settings_screen(context: BotContext, muted: list[str]) -> tuple[str, InlineKeyboardMarkup]:
    _ = context._
    rows = [
        [
            InlineKeyboardButton(
                ("🔕 " if kind in muted else "🔔 ") + _(label),
                callback_data=encode(Prefix.notify, 0, f"mute.{kind}"),
            )
        ]
        for kind, label in KINDS.items()
    ]
    return _("Reminders — tap one to mute or unmute it:"), InlineKeyboardMarkup(rows)


async def cmd_settings(update: Update, context: BotContext) -> None:
    assert update.effective_chat is not None
    text, markup = _settings_screen(context, list(context.user.muted or []))
    await update.effective_chat.send_message(text, reply_markup=markup)


async def cmd_remind(update: Update, context: BotContext) -> None:
    """Admins: what the schedule would send now (a dry run), with a button to send it anyway."""
    assert update.effective_chat is not None
    _ = context._
    async with context.db() as session:
        scheduled = await due_pushes(context.runtime, session)
        anyway = await due_pushes(context.runtime, session, manual=True)
        waiting = await outbox.pending_count(session)
    counts: dict[str, int] = defaultdict(int)
    for push in anyway:
        counts[push.kind] += 1
    lines = [_("Reminders due now by the schedule: {count}.").format(count=len(scheduled))]
    if not scheduled:
        lines.append(_("(Outside working hours or already sent, nothing is due by the schedule.)"))
    lines.append(_("Would be sent if triggered by hand now (not yet sent this period):"))
    lines += [f"• {_(KINDS[kind])}: {n}" for kind, n in sorted(counts.items())] or [_("nothing")]
    lines.append(_("Waiting in the outbox: {count}.").format(count=waiting))
    markup = InlineKeyboardMarkup(
        [[InlineKeyboardButton(_("Send now"), callback_data=encode(Prefix.notify, 0, "send"))]]
    )
    await update.effective_chat.send_message(
        "\n".join(lines), reply_markup=markup if anyway or waiting else None
    )


async def cb_notify(update: Update, context: BotContext, data: CallbackData) -> None:
    query = update.callback_query
    assert query is not None
    _ = context._
    if data.arg.startswith("mute.") and data.arg[5:] in KINDS and data.id == 0:
        kind = data.arg[5:]
        muted = set(context.user.muted or [])
        muted ^= {kind}
        async with context.db.begin() as session:
            await set_muted(session, user_id=context.user.id, muted=sorted(muted))
        await query.answer(_("Muted.") if kind in muted else _("Unmuted."))
        text, markup = _settings_screen(context, sorted(muted))
        await query.edit_message_text(text, reply_markup=markup)
        return
    if data.arg == "snooze" and data.id > 0:
        until = context.runtime.now().astimezone(context.settings.tz).date() + timedelta(days=1)
        async with context.db.begin() as session:
            item = await snooze(session, problem_id=data.id, user_id=context.user.id, until=until)
        if item is None:
            await query.answer(_("This problem is no longer pending, or not yours."), show_alert=True)
            return
        await query.answer(
            _("Snoozed: {ref} will be in the reminder again from {date}.").format(
                ref=item.ref, date=(until + timedelta(days=1)).isoformat()
            ),
            show_alert=True,
        )
        return
    if data.arg == "send" and data.id == 0 and context.user.role is Role.admin:
        await query.answer(_("Sending…"))
        report = await scan(context.bot, context.runtime, manual=True)
        assert update.effective_chat is not None
        await update.effective_chat.send_message(
            _("Sent {sent}; failed {failed}; retrying later {retried}.").format(
                sent=report.delivery.sent, failed=report.delivery.failed, retried=report.delivery.retried
            )
        )
        return
    log.warning(
        "update %s: unexpected reminder callback %r from user %s", update.update_id, data, context.user.id
    )
    await query.answer(_("This action has expired."), show_alert=True)
