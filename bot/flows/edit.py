"""The author's conversations from /my: edit a visit, add progress to a problem, resolve it, and answer a
return for correction. Every step re-checks on the server that the record is the user's own and still in
a state that allows the change; the final step checks again inside the transaction that writes."""

from __future__ import annotations

import html
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.config import Settings
from bot.flows.common import NOTES_LIMIT, read_text
from bot.flows.engine import Choice, Finish, Flow, Goto, Input, Invalid, Outcome, Screen, Step, Text
from bot.i18n import N_, Translator
from bot.keyboards import Prefix, button
from bot.labels import PROBLEM_STATUS_LABELS, TOPIC_LABELS
from bot.services.money import AmountError, parse_wan
from bot.storage.enums import ProblemStatus, VisitTopic
from bot.storage.models import Problem, User, Visit
from bot.storage.mywork import (
    correct_problem,
    edit_visit,
    editable_until,
    get_visit_for_update,
    last_event,
)
from bot.storage.problems import PENDING, TransitionError, add_progress, get_problem_for_update, resolve

log = logging.getLogger(__name__)

# -- labels shared with the /my handlers ----------------------------------------------------------
CAN_RESOLVE = (ProblemStatus.open, ProblemStatus.in_progress)


def local_date(moment: datetime, settings: Settings) -> str:
    return moment.astimezone(settings.tz).strftime("%Y-%m-%d")


def topics_text(topics: list[str], _: Translator) -> str:
    labels = [_(TOPIC_LABELS[VisitTopic(t)]) if t in VisitTopic.__members__ else t for t in topics]
    return html.escape("、".join(labels)) if labels else "—"


def funds_text(funds: Decimal | None, _: Translator) -> str:
    return _("{amount} (10k CNY)").format(amount=funds) if funds is not None else _("none")


# -- who may do what (used by the handlers before starting a flow, and by the flows again) ---------
def problem_refusal(problem: Problem | None, user: User, action: str, _: Translator) -> str | None:
    """Why `user` may not do `action` (view, progress, resolve, correct) on `problem`; None if they may."""
    if problem is None:
        return _("This action has expired.")
    if problem.reporter_id != user.id:
        log.warning("user %s: %s on problem %s refused: not the reporter", user.id, action, problem.id)
        return _("Only the person who reported this problem can do that.")
    status = _(PROBLEM_STATUS_LABELS[problem.status])
    if action == "progress" and problem.status not in PENDING:
        return _("This action has expired: the problem is already “{status}”.").format(status=status)
    if action == "resolve" and problem.status not in CAN_RESOLVE:
        return _("This action has expired: the problem is already “{status}”.").format(status=status)
    if action == "correct" and problem.status is not ProblemStatus.returned:
        return _("This action has expired: the problem is “{status}”, not returned for correction.").format(
            status=status
        )
    return None


def visit_refusal(
    visit: Visit | None, user: User, action: str, now: datetime, settings: Settings, _: Translator
) -> str | None:
    """Why `user` may not do `action` (view, edit, withdraw) on `visit`; None if they may."""
    if visit is None:
        return _("This action has expired.")
    if visit.user_id != user.id:
        log.warning("user %s: %s on visit %s refused: not the author", user.id, action, visit.id)
        return _("Only the person who logged this visit can do that.")
    if action == "view":
        return None
    if visit.withdrawn_at is not None:
        return _("This visit has already been withdrawn.")
    if now >= editable_until(visit, window_days=settings.edit_window_days):
        return _(
            "A visit can be changed only within {days} days of logging it; this one no longer can."
        ).format(days=settings.edit_window_days)
    return None


def _open_button(_: Translator, problem_id: int, ref: str) -> list[list[Any]]:
    return [[button(_("Open {ref}").format(ref=ref), Prefix.my_problem, problem_id, "view")]]


async def _problem(step: Step, action: str) -> Problem | Finish:
    """The flow's problem, locked, if the user may still do `action` on it."""
    problem_id = step.data.get("problem_id")
    problem = (
        await get_problem_for_update(step.session, problem_id=problem_id)
        if isinstance(problem_id, int)
        else None
    )
    refusal = problem_refusal(problem, step.user, action, step._)
    if refusal is not None or problem is None:
        return Finish(refusal or step._("This action has expired."))
    return problem


async def _begin_on_problem(step: Step, args: dict[str, Any], action: str) -> Problem | Finish:
    """The start of every flow on one's own problem: remember which, and check `action` is allowed."""
    step.data["problem_id"] = args.get("problem_id")
    problem = await _problem(step, action)
    if not isinstance(problem, Finish):
        step.data["ref"] = problem.ref
    return problem


class ProblemProgressFlow(Flow):
    """Add a progress note to one's own pending problem (an open one moves to in progress)."""

    name = "problem_progress"
    title = N_("progress note")

    async def begin(self, step: Step, args: dict[str, Any]) -> str | Finish:
        problem = await _begin_on_problem(step, args, "progress")
        return problem if isinstance(problem, Finish) else "note"

    async def screen(self, step: Step, name: str) -> Screen:
        _ = step._
        return Screen(
            _("Progress on {ref}: send what has been done (at most {limit} characters).").format(
                ref=step.data["ref"], limit=NOTES_LIMIT
            )
        )

    async def handle(self, step: Step, name: str, given: Input) -> Outcome:
        _ = step._
        note = read_text(given, _, limit=NOTES_LIMIT)
        if isinstance(note, Invalid):
            return note
        problem = await _problem(step, "progress")
        if isinstance(problem, Finish):
            return problem
        add_progress(step.session, problem, note=note, actor_id=step.user.id, now=step.now)
        return Finish(
            _("Progress recorded on {ref}. Status: {status}.").format(
                ref=problem.ref, status=_(PROBLEM_STATUS_LABELS[problem.status])
            ),
            _open_button(_, problem.id, problem.ref),
        )


class ProblemResolveFlow(Flow):
    """Mark one's own problem resolved: resolution → funds provided (万元) → confirm."""

    name = "problem_resolve"
    title = N_("resolution")

    async def begin(self, step: Step, args: dict[str, Any]) -> str | Finish:
        problem = await _begin_on_problem(step, args, "resolve")
        return problem if isinstance(problem, Finish) else "resolution"

    async def screen(self, step: Step, name: str) -> Screen:
        _ = step._
        ref = step.data["ref"]
        if name == "resolution":
            return Screen(
                _(
                    "Resolve {ref}: how was it solved? Send the resolution (at most {limit} characters)."
                ).format(ref=ref, limit=NOTES_LIMIT)
            )
        if name == "funds":
            return Screen(
                _(
                    "Funds provided for {ref}, in 10k CNY (万元): send an amount such as 12.5 or 0, "
                    "or tap “No funds”."
                ).format(ref=ref),
                [[(_("No funds"), "nofunds")]],
            )
        funds = step.data.get("funds")
        return Screen(
            _(
                "Mark {ref} as resolved?\n<b>Resolution:</b> {resolution}\n<b>Funds provided:</b> {funds}"
            ).format(
                ref=ref,
                resolution=html.escape(step.data["resolution"]),
                funds=funds_text(Decimal(funds) if funds is not None else None, _),
            ),
            [[(_("✔ Confirm: resolved"), "confirm")]],
        )

    async def handle(self, step: Step, name: str, given: Input) -> Outcome:
        _ = step._
        if name == "resolution":
            resolution = read_text(given, _, limit=NOTES_LIMIT)
            if isinstance(resolution, Invalid):
                return resolution
            step.data["resolution"] = resolution
            return Goto("funds")
        if name == "funds":
            if given == Choice("nofunds"):
                step.data["funds"] = None
                return Goto("confirm")
            if not isinstance(given, Text):
                return Invalid(_("Please send the amount as a text message, or tap “No funds”."))
            try:
                amount = parse_wan(given.value)
            except AmountError as exc:
                return Invalid(_amount_refusal(exc.reason, given.value, _))
            step.data["funds"] = str(amount)
            return Goto("confirm")
        if given != Choice("confirm"):
            return Invalid(_("Please choose one of the buttons."))
        problem = await _problem(step, "resolve")
        if isinstance(problem, Finish):
            return problem
        funds = Decimal(step.data["funds"]) if step.data.get("funds") is not None else None
        try:
            resolve(
                step.session,
                problem,
                actor_id=step.user.id,
                now=step.now,
                resolution=step.data["resolution"],
                funds_wan=funds,
                expected=problem.status,
            )
        except TransitionError:
            return Finish(_("This action has expired."))
        return Finish(
            _("{ref} is marked resolved. Funds provided: {funds}.").format(
                ref=problem.ref, funds=funds_text(funds, _)
            ),
            _open_button(_, problem.id, problem.ref),
        )


def _amount_refusal(reason: str, text: str, _: Translator) -> str:
    shown = html.escape(text.strip()[:40])
    if reason == "places":
        return _(
            "“{text}” has more than two decimals. Send the amount in 10k CNY with at most two, e.g. 12.35."
        ).format(text=shown)
    if reason == "too_large":
        return _("“{text}” is too large for an amount in 10k CNY. Please check it.").format(text=shown)
    return _(
        "“{text}” is not an amount. Send a number of 10k CNY (万元) that is 0 or more, with at most two "
        "decimals, e.g. 12.5 or 0 — no minus sign, exponent or letters."
    ).format(text=shown)


class ProblemCorrectFlow(Flow):
    """Answer a return for correction: see the supervisor's reason, send the corrected description."""

    name = "problem_correct"
    title = N_("correction")

    async def begin(self, step: Step, args: dict[str, Any]) -> str | Finish:
        problem = await _begin_on_problem(step, args, "correct")
        if isinstance(problem, Finish):
            return problem
        returned = await last_event(step.session, problem_id=problem.id, kind="returned")
        step.data["reason"] = (returned.note if returned else None) or ""
        step.data["before"] = problem.description
        return "description"

    async def screen(self, step: Step, name: str) -> Screen:
        _ = step._
        ref = step.data["ref"]
        if name == "description":
            return Screen(
                _(
                    "{ref} was returned for correction.\n<b>Reason:</b> {reason}\n"
                    "<b>Current description:</b> {description}\n\n"
                    "Send the corrected description (at most {limit} characters)."
                ).format(
                    ref=ref,
                    reason=html.escape(step.data["reason"]) or "—",
                    description=html.escape(step.data["before"]),
                    limit=NOTES_LIMIT,
                )
            )
        return Screen(
            _("Submit the correction of {ref}?\n<b>New description:</b> {description}").format(
                ref=ref, description=html.escape(step.data["description"])
            ),
            [[(_("✔ Submit the correction"), "confirm")]],
        )

    async def handle(self, step: Step, name: str, given: Input) -> Outcome:
        _ = step._
        if name == "description":
            description = read_text(given, _, limit=NOTES_LIMIT)
            if isinstance(description, Invalid):
                return description
            step.data["description"] = description
            return Goto("confirm")
        if given != Choice("confirm"):
            return Invalid(_("Please choose one of the buttons."))
        problem = await _problem(step, "correct")
        if isinstance(problem, Finish):
            return problem
        try:
            await correct_problem(
                step.session,
                problem,
                description=step.data["description"],
                actor_id=step.user.id,
                now=step.now,
            )
        except TransitionError:
            return Finish(_("This action has expired."))
        return Finish(
            _("Correction of {ref} submitted. It is open again and back with the supervisors.").format(
                ref=problem.ref
            ),
            _open_button(_, problem.id, problem.ref),
        )


class VisitEditFlow(Flow):
    """Edit one's own visit's topics and notes within the edit window; the change goes to the audit log."""

    name = "visit_edit"
    title = N_("visit edit")

    async def _visit(self, step: Step) -> Visit | Finish:
        visit_id = step.data.get("visit_id")
        visit = (
            await get_visit_for_update(step.session, visit_id=visit_id) if isinstance(visit_id, int) else None
        )
        refusal = visit_refusal(visit, step.user, "edit", step.now, step.settings, step._)
        if refusal is not None or visit is None:
            return Finish(refusal or step._("This action has expired."))
        return visit

    async def begin(self, step: Step, args: dict[str, Any]) -> str | Finish:
        step.data["visit_id"] = args.get("visit_id")
        visit = await self._visit(step)
        if isinstance(visit, Finish):
            return visit
        step.data.update(
            ref=visit.ref,
            topics=list(visit.topics),
            notes=visit.notes,
            stamp=visit.updated_at.isoformat(),
        )
        return "menu"

    async def screen(self, step: Step, name: str) -> Screen:
        _ = step._
        if name == "topics":
            chosen = set(step.data["topics"])
            return Screen(
                _("What was covered? Tap to select or deselect, then “Done”."),
                [
                    [(("☑ " if topic.value in chosen else "☐ ") + _(label), f"t.{topic.value}")]
                    for topic, label in TOPIC_LABELS.items()
                ]
                + [[(_("Done"), "done")]],
            )
        if name == "notes":
            return Screen(
                _("Send the new notes of this visit (at most {limit} characters).").format(limit=NOTES_LIMIT)
            )
        return Screen(
            _("Edit visit {ref}\n<b>Covered:</b> {topics}\n<b>Notes:</b> {notes}").format(
                ref=step.data["ref"],
                topics=topics_text(step.data["topics"], _),
                notes=html.escape(step.data["notes"]) or "—",
            ),
            [
                [(_("Change what was covered"), "topics"), (_("Change the notes"), "notes")],
                [(_("✔ Save the changes"), "save")],
            ],
            back=False,
        )

    async def handle(self, step: Step, name: str, given: Input) -> Outcome:
        _ = step._
        if name == "topics":
            if given == Choice("done"):
                if not step.data["topics"]:
                    return Invalid(_("Please select at least one topic."))
                return Goto("menu", remember=False)
            value = given.value.removeprefix("t.") if isinstance(given, Choice) else ""
            if value not in VisitTopic.__members__:
                return Invalid(_("Please choose one of the buttons."))
            topics: list[str] = step.data["topics"]
            if value in topics:
                topics.remove(value)
            else:
                topics.append(value)
            step.data["topics"] = [t.value for t in VisitTopic if t.value in topics]  # stable order
            return Goto("topics")
        if name == "notes":
            notes = read_text(given, _, limit=NOTES_LIMIT)
            if isinstance(notes, Invalid):
                return notes
            step.data["notes"] = notes
            return Goto("menu", remember=False)
        if isinstance(given, Choice) and given.value in ("topics", "notes"):
            return Goto(given.value)
        if given != Choice("save"):
            return Invalid(_("Please choose one of the buttons."))
        visit = await self._visit(step)
        if isinstance(visit, Finish):
            return visit
        if visit.updated_at.isoformat() != step.data["stamp"]:
            return Finish(_("This visit was changed meanwhile; nothing was saved. Please open it again."))
        changed = await edit_visit(
            step.session,
            visit,
            topics=step.data["topics"],
            notes=step.data["notes"],
            actor_id=step.user.id,
            now=step.now,
        )
        text = (
            _("Visit {ref} updated.").format(ref=visit.ref)
            if changed
            else _("Nothing changed in visit {ref}.").format(ref=visit.ref)
        )
        return Finish(text, [[button(_("Open {ref}").format(ref=visit.ref), Prefix.visit, visit.id, "view")]])


FLOWS: list[Flow] = [ProblemProgressFlow(), ProblemResolveFlow(), ProblemCorrectFlow(), VisitEditFlow()]
