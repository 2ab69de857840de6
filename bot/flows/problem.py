"""/problem: report an enterprise's problem (enterprise → category → description → due date → confirm).

Saved as `open` with a `created` event in its history; the reference (P-2026-0042) is shown at the end.
The helpers at the top (button ids, the enterprise step, returning to the summary after an edit) are
shared with /service.
"""

from __future__ import annotations

import calendar
import html
import logging
import re
import unicodedata
from datetime import date, timedelta
from enum import Enum
from typing import Any

from bot.flows.common import NOTES_LIMIT, enterprise_screen, pick_enterprise, read_text
from bot.flows.engine import Choice, Finish, Flow, Goto, Input, Invalid, Outcome, Screen, Step, Text
from bot.i18n import N_
from bot.keyboards import Prefix, button
from bot.labels import CATEGORY_LABELS
from bot.storage.audit import record
from bot.storage.enterprises import accessible_enterprise
from bot.storage.enums import ProblemCategory
from bot.storage.models import Enterprise
from bot.storage.problems import create_problem

log = logging.getLogger(__name__)

MAX_ID = 2**31 - 1  # ids are 32-bit integers: anything larger is forged (and PostgreSQL would reject it)
CONFIRM, EDIT = "confirm", "edit"
PREVIEW = 300  # characters of a long text shown when the user comes back to its step


# -- shared with /service ------------------------------------------------------------------------------
def choice_id(given: Input, prefix: str) -> int | None:
    """The id of a ``<prefix>.<id>`` button, or None if `given` is not one or the id is implausible."""
    if not isinstance(given, Choice) or not given.value.startswith(prefix + "."):
        return None
    arg = given.value[len(prefix) + 1 :]
    if not (arg.isascii() and arg.isdigit()) or len(arg) > 10 or not 0 < int(arg) <= MAX_ID:
        return None
    return int(arg)


def forged(step: Step, flow: str, name: str, given: Input) -> None:
    """Log a button value that this flow never offered at this step (forged or from a broken client)."""
    log.warning("user %s: unexpected input %r at %s.%s refused", step.user.id, given, flow, name)


async def enterprise_from_args(step: Step, args: dict[str, Any], flow: str) -> Enterprise | Finish | None:
    """The enterprise a follow-up button named (permission-checked), or None if none was named."""
    raw = args.get("enterprise_id")
    if raw is None:
        return None
    enterprise_id = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 10:
        enterprise_id = int(raw)
    enterprise = None
    if enterprise_id is not None and 0 < enterprise_id <= MAX_ID:
        enterprise = await accessible_enterprise(step.session, user=step.user, enterprise_id=enterprise_id)
    if enterprise is None:
        log.warning("user %s: %s for enterprise %r refused (not assigned)", step.user.id, flow, raw)
        return Finish(step._("You are not assigned to this enterprise, so you cannot act on it."))
    return enterprise


async def choose_enterprise(step: Step, given: Input, flow: str) -> Enterprise | Outcome:
    """Handle the enterprise step: the chosen enterprise, or what to do instead (page, search, refuse)."""
    if isinstance(given, Choice) and given.value.startswith("ent.") and choice_id(given, "ent") is None:
        forged(step, flow, "enterprise", given)
        return Invalid(step._("You are not assigned to this enterprise, so you cannot act on it."))
    picked = await pick_enterprise(step, given)
    if picked is None:
        return Goto("enterprise")  # paged or searched: show the step again
    if isinstance(picked, Invalid) and isinstance(given, Choice):
        forged(step, flow, "enterprise", given)
    return picked


def back_to_summary(step: Step) -> Goto | None:
    """After changing one answer from the summary's Edit menu, go straight back to the summary (with Back
    leading where it led before); None when the user is going through the steps in order."""
    trail: list[str] = step.data.get("_trail", [])
    if EDIT in trail and CONFIRM in trail:
        step.data["_trail"] = trail[: trail.index(CONFIRM)]
        return Goto(CONFIRM, remember=False)
    return None


def preview(text: str) -> str:
    short = text if len(text) <= PREVIEW else text[:PREVIEW] + "…"
    return html.escape(short)


def mark(label: str, selected: bool) -> str:
    return f"✓ {label}" if selected else label


def local_today(step: Step) -> date:
    return step.now.astimezone(step.settings.tz).date()


# -- due dates -----------------------------------------------------------------------------------------
class DateError(Enum):
    format = "format"  # not a date we can read
    invalid = "invalid"  # e.g. 2026-02-30
    past = "past"
    too_far = "too_far"


MAX_MONTHS_AHEAD = 24
_YMD = re.compile(
    r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})|(\d{4})(\d{2})(\d{2})|(\d{4})年(\d{1,2})月(\d{1,2})[日号]?"
)
_MD = re.compile(r"(\d{1,2})月(\d{1,2})[日号]?")


def add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def parse_due_date(text: str, *, today: date) -> date | DateError:
    """A desired due date typed by the user: 2026-12-31 (also / . or 20261231), 2026年12月31日, or 12月31日
    (the next such day). Full-width digits are fine. Past days and days more than two years ahead are
    refused."""
    value = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))
    if match := _YMD.fullmatch(value):
        year, month, day = (int(g) for g in match.groups() if g is not None)
        try:
            parsed = date(year, month, day)
        except ValueError:
            return DateError.invalid
    elif match := _MD.fullmatch(value):
        month, day = int(match.group(1)), int(match.group(2))
        try:
            parsed = date(today.year, month, day)
            if parsed < today:
                parsed = date(today.year + 1, month, day)
        except ValueError:
            return DateError.invalid
    else:
        return DateError.format
    if parsed < today:
        return DateError.past
    if parsed > add_months(today, MAX_MONTHS_AHEAD):
        return DateError.too_far
    return parsed


def date_error_text(step: Step, error: DateError) -> str:
    _ = step._
    if error is DateError.invalid:
        return _("There is no such day in the calendar. Please check the month and day.")
    if error is DateError.past:
        return _("That day has already passed. Please give today or a later day.")
    if error is DateError.too_far:
        return _("That is more than two years ahead. Please give a nearer day.")
    example = add_months(local_today(step), 1)
    return _(
        "I could not read that as a date. Please type it as YYYY-MM-DD, e.g. {example}, or as {md}."
    ).format(example=example.isoformat(), md=f"{example.month}月{example.day}日")


# -- the flow ------------------------------------------------------------------------------------------
class ProblemFlow(Flow):
    name = "problem"
    title = N_("problem report")

    async def begin(self, step: Step, args: dict[str, Any]) -> str | Finish:
        enterprise = await enterprise_from_args(step, args, self.name)
        if isinstance(enterprise, Finish):
            return enterprise
        if enterprise is None:
            return "enterprise"
        step.data.update(enterprise_id=enterprise.id, enterprise_name=enterprise.name)
        return "category"

    async def screen(self, step: Step, name: str) -> Screen:
        _, data = step._, step.data
        if name == "enterprise":
            return await enterprise_screen(step, _("<b>Report a problem</b> — for which enterprise?"))
        head = _("<b>Problem of {enterprise}</b>").format(enterprise=html.escape(data["enterprise_name"]))
        if name == "category":
            chosen = data.get("category")
            labels = [
                (mark(_(label), category.value == chosen), f"cat.{category.value}")
                for category, label in CATEGORY_LABELS.items()
            ]
            rows = [labels[i : i + 3] for i in range(0, len(labels), 3)]
            return Screen(f"{head}\n" + _("What kind of problem is it?"), rows)
        if name == "description":
            text = f"{head}\n" + _(
                "Describe the problem: what the enterprise needs, since when, what was tried "
                "(at most {limit} characters)."
            ).format(limit=NOTES_LIMIT)
            if "description" in data:
                current = _("Current description:")
                return Screen(
                    f"{text}\n\n{current}\n{preview(data['description'])}",
                    [[(_("Keep the current description"), "keep")]],
                )
            return Screen(text)
        if name == "due":
            example = add_months(local_today(step), 1)
            text = f"{head}\n" + _(
                "By when does the enterprise need it solved? Tap a button, or type a date such as "
                "{example} or {md}."
            ).format(example=example.isoformat(), md=f"{example.month}月{example.day}日")
            if data.get("due"):
                text += "\n" + _("Current: {date}").format(date=data["due"])
            return Screen(
                text,
                [
                    [(_("In 1 week"), "due.week"), (_("In 1 month"), "due.month")],
                    [(_("No particular date"), "due.none")],
                ],
            )
        if name == EDIT:
            return Screen(
                _("What do you want to change?"),
                [
                    [(_("Category"), "edit.category"), (_("Description"), "edit.description")],
                    [(_("Desired due date"), "edit.due")],
                ],
            )
        category = ProblemCategory(data["category"])
        lines = [
            _("<b>Please check the problem report</b>"),
            _("Enterprise: {enterprise}").format(enterprise=html.escape(data["enterprise_name"])),
            _("Category: {category}").format(category=_(CATEGORY_LABELS[category])),
            _("Desired due date: {date}").format(date=data.get("due") or _("none")),
            _("Description:"),
            html.escape(data["description"]),
        ]
        return Screen(
            "\n".join(lines),
            [[(_("✔ Confirm"), CONFIRM), (_("✏ Edit"), EDIT)]],
        )

    async def handle(self, step: Step, name: str, given: Input) -> Outcome:
        _, data = step._, step.data
        if name == "enterprise":
            picked = await choose_enterprise(step, given, self.name)
            if not isinstance(picked, Enterprise):
                return picked
            data.update(enterprise_id=picked.id, enterprise_name=picked.name)
            return Goto("category")
        if name == "category":
            value = given.value.removeprefix("cat.") if isinstance(given, Choice) else ""
            if value not in ProblemCategory.__members__:
                if isinstance(given, Choice):
                    forged(step, self.name, name, given)
                return Invalid(_("Please choose one of the buttons."))
            data["category"] = value
            return back_to_summary(step) or Goto("description")
        if name == "description":
            if given == Choice("keep") and "description" in data:
                return back_to_summary(step) or Goto("due")
            text = read_text(given, _, limit=NOTES_LIMIT)
            if isinstance(text, Invalid):
                return text
            data["description"] = text
            return back_to_summary(step) or Goto("due")
        if name == "due":
            return self._due(step, given)
        if name == EDIT:
            target = given.value.removeprefix("edit.") if isinstance(given, Choice) else ""
            if target not in ("category", "description", "due"):
                if isinstance(given, Choice):
                    forged(step, self.name, name, given)
                return Invalid(_("Please choose one of the buttons."))
            return Goto(target)
        if given == Choice(EDIT):
            return Goto(EDIT)
        if given != Choice(CONFIRM):
            if isinstance(given, Choice):
                forged(step, self.name, name, given)
            return Invalid(_("Please choose one of the buttons."))
        return await self._save(step)

    def _due(self, step: Step, given: Input) -> Outcome:
        today = local_today(step)
        due: date | None
        if isinstance(given, Choice):
            choices = {
                "due.none": None,
                "due.week": today + timedelta(days=7),
                "due.month": add_months(today, 1),
            }
            if given.value not in choices:
                forged(step, self.name, "due", given)
                return Invalid(step._("Please choose one of the buttons."))
            due = choices[given.value]
        elif isinstance(given, Text):
            parsed = parse_due_date(given.value, today=today)
            if isinstance(parsed, DateError):
                return Invalid(date_error_text(step, parsed))
            due = parsed
        else:
            return Invalid(date_error_text(step, DateError.format))
        step.data["due"] = due.isoformat() if due else None
        return back_to_summary(step) or Goto(CONFIRM)

    async def _save(self, step: Step) -> Finish:
        _, data = step._, step.data
        enterprise = await accessible_enterprise(
            step.session, user=step.user, enterprise_id=data["enterprise_id"]
        )
        if enterprise is None:
            log.warning(
                "user %s: problem for enterprise %s refused at confirm", step.user.id, data["enterprise_id"]
            )
            return Finish(
                _("You are no longer assigned to {enterprise}, so nothing was saved.").format(
                    enterprise=html.escape(data["enterprise_name"])
                )
            )
        category = ProblemCategory(data["category"])
        problem = await create_problem(
            step.session,
            enterprise_id=enterprise.id,
            reporter_id=step.user.id,
            category=category,
            description=data["description"],
            requested_due_date=date.fromisoformat(data["due"]) if data.get("due") else None,
            now=step.now,
            source=(step.chat_id, step.message_id),
        )
        await record(
            step.session,
            actor_id=step.user.id,
            action="create",
            entity="problem",
            entity_id=problem.id,
            now=step.now,
            details={"enterprise_id": enterprise.id, "category": category.value},
        )
        log.info("user %s reported problem %s for enterprise %s", step.user.id, problem.id, enterprise.id)
        return Finish(
            _("Problem {ref} is recorded for {enterprise}. Status: open. Follow it up with /my.").format(
                ref=problem.ref, enterprise=html.escape(enterprise.name)
            ),
            [
                [button(_("Report another problem for it"), Prefix.enterprise, enterprise.id, "problem")],
                [button(_("Request a menu service for it"), Prefix.enterprise, enterprise.id, "service")],
            ],
        )
