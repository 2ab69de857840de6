"""The supervisor's actions on a problem that need typed input (started from the card, `pb:` buttons):

* ``assign`` — responsible department (a known one or typed) → due date → confirm; an `open` problem
  thereby moves to `in_progress`. The reporter is told.
* ``status`` — mark in progress / reopen, with an optional note for the history.
* ``return`` — return for correction with a reason → confirm. The reporter is told at once, with a button
  that opens the correction in their /my (``mp:<id>:correct``).
* ``close`` — close without resolution with a reason → confirm. The reporter is told.

The status the supervisor saw is checked again when the action applies (`change_status(expected=...)`),
so a card acted on meanwhile by someone else changes nothing. Each action is one `ProblemEvent` with the
actor and the time. The reporter's notification is written to the outbox in the same transaction
(`Step.notify`) and sent right after it commits, so nobody is told about a change that was rolled back and
a failed send is retried instead of lost.
"""

from __future__ import annotations

import html
import logging
from datetime import date, timedelta
from typing import Any

from bot.flows.common import NOTES_LIMIT, SHORT_LIMIT, read_text
from bot.flows.engine import Choice, Finish, Flow, Goto, Input, Invalid, Outcome, Screen, Step, Text
from bot.flows.problem import DateError, add_months, date_error_text, parse_due_date
from bot.handlers.problems import (
    MAX_ID,
    card_buttons,
    changed_text,
    render_card,
    status_label,
)
from bot.i18n import N_, gettext_for
from bot.keyboards import Prefix, encode
from bot.storage.enums import ProblemStatus
from bot.storage.models import Enterprise, Problem, User
from bot.storage.outbox import Push
from bot.storage.problem_queries import known_departments, problem_card
from bot.storage.problems import TransitionError, add_event, change_status, get_problem_for_update

log = logging.getLogger(__name__)

S = ProblemStatus
ACTIONS = ("assign", "status", "return", "close")
FIRST_STEP = {"assign": "department", "status": "note", "return": "reason", "close": "reason"}
DEPARTMENT_BUTTONS = 8
DEPARTMENT_LIMIT = SHORT_LIMIT  # Problem.department is 100 characters


class ReviewFlow(Flow):
    name = "review"
    title = N_("problem handling")

    # -- begin -------------------------------------------------------------------------------------
    async def begin(self, step: Step, args: dict[str, Any]) -> str | Finish:
        _ = step._
        problem_id, action = args.get("problem_id"), args.get("action")
        try:
            expected = S(str(args.get("expected")))
            to = S(str(args["to"])) if args.get("to") else None
        except ValueError:
            expected, to = None, None
        if (
            not isinstance(problem_id, int)
            or not 0 < problem_id <= MAX_ID
            or action not in ACTIONS
            or expected is None
            or (action == "status") != (to is not None)
        ):
            log.warning("user %s: review flow with bad arguments %r refused", step.user.id, args)
            return Finish(_("This action has expired."))
        problem = await step.session.get(Problem, problem_id)
        if problem is None:
            return Finish(_("This action has expired."))
        if problem.status is not expected:
            return Finish(changed_text(problem.status, _))
        enterprise = await step.session.get(Enterprise, problem.enterprise_id)
        step.data.update(
            problem_id=problem.id,
            action=action,
            expected=expected.value,
            to=to.value if to else None,
            ref=problem.ref,
            enterprise=enterprise.name if enterprise else "",
            department=problem.department,
        )
        if action == "assign":
            step.data["departments"] = await known_departments(step.session, limit=DEPARTMENT_BUTTONS)
            requested = problem.requested_due_date
            step.data["requested"] = requested.isoformat() if requested else None
        return FIRST_STEP[str(action)]

    # -- screens -----------------------------------------------------------------------------------
    def _head(self, step: Step) -> str:
        return "<b>{ref}</b> · {enterprise}".format(
            ref=step.data["ref"], enterprise=html.escape(step.data["enterprise"])
        )

    def _today(self, step: Step) -> date:
        return step.now.astimezone(step.settings.tz).date()

    async def screen(self, step: Step, name: str) -> Screen:
        _, head, action = step._, self._head(step), step.data["action"]
        if name == "department":
            current = step.data.get("department")
            lines = [head]
            if current:
                lines.append(_("Now: {department}.").format(department=html.escape(current)))
            lines.append(
                _(
                    "Which department is responsible? Tap one or send its name (at most {limit} characters)."
                ).format(limit=DEPARTMENT_LIMIT)
            )
            names: list[str] = step.data.get("departments", [])
            options = [(name, f"dep.{i}") for i, name in enumerate(names)]
            return Screen("\n".join(lines), [options[i : i + 2] for i in range(0, len(options), 2)])
        if name == "due":
            today = self._today(step)
            options = [
                (_("In 1 week ({date})").format(date=(today + timedelta(days=7)).isoformat()), "in.7"),
                (_("In 2 weeks ({date})").format(date=(today + timedelta(days=14)).isoformat()), "in.14"),
                (_("In 1 month ({date})").format(date=add_months(today, 1).isoformat()), "in.m1"),
            ]
            requested = step.data.get("requested")
            if requested and date.fromisoformat(requested) >= today:
                options.insert(0, (_("As the reporter asked ({date})").format(date=requested), "in.req"))
            return Screen(
                "\n".join(
                    [
                        head,
                        _("Responsible department: {department}").format(
                            department=html.escape(step.data["new_department"])
                        ),
                        _("By when must it be done? Tap one or send a date like {example}.").format(
                            example=add_months(today, 1).isoformat()
                        ),
                    ]
                ),
                [[option] for option in options],
            )
        if name == "note":
            to = S(step.data["to"])
            what = (
                _("Reopen this problem (it becomes “{status}”).")
                if S(step.data["expected"]) in (S.resolved, S.closed)
                else _("Mark this problem “{status}”.")
            ).format(status=status_label(to, step._))
            return Screen(
                "\n".join([head, what, _("Send a note for its history, or tap Skip.")]),
                [[(_("Skip, no note"), "skip")]],
            )
        if name == "reason":
            prompt = (
                _(
                    "Why is it returned for correction? Send the reason; the reporter sees it and corrects "
                    "the problem (at most {limit} characters)."
                )
                if action == "return"
                else _(
                    "Why is it closed without resolution? Send the reason; it is kept in the history and "
                    "the reporter is told (at most {limit} characters)."
                )
            )
            return Screen(f"{head}\n{prompt.format(limit=NOTES_LIMIT)}")
        # confirm
        if action == "assign":
            text = _("Assign it to {department}, due {due}? The reporter will be told.").format(
                department=html.escape(step.data["new_department"]), due=step.data["due"]
            )
            label = _("✔ Assign")
        elif action == "return":
            text = _("Return it for correction?\n<b>Reason:</b> {reason}").format(
                reason=html.escape(step.data["reason"])
            )
            label = _("✔ Return for correction")
        else:
            text = _("Close it without resolution?\n<b>Reason:</b> {reason}").format(
                reason=html.escape(step.data["reason"])
            )
            label = _("✔ Close")
        return Screen(f"{head}\n{text}", [[(label, "confirm")]])

    # -- input -------------------------------------------------------------------------------------
    async def handle(self, step: Step, name: str, given: Input) -> Outcome:
        _ = step._
        if name == "department":
            names: list[str] = step.data.get("departments", [])
            if isinstance(given, Choice):
                index = given.value.removeprefix("dep.")
                if not given.value.startswith("dep.") or not index.isdigit() or int(index) >= len(names):
                    return Invalid(_("Please choose one of the buttons."))
                step.data["new_department"] = names[int(index)]
                return Goto("due")
            value = read_text(given, _, limit=DEPARTMENT_LIMIT)
            if isinstance(value, Invalid):
                return value
            step.data["new_department"] = value
            return Goto("due")
        if name == "due":
            due = self._due(step, given)
            if isinstance(due, Invalid):
                return due
            step.data["due"] = due.isoformat()
            return Goto("confirm")
        if name == "note":
            if given == Choice("skip"):
                return await self._apply(step, None)
            value = read_text(given, _, limit=NOTES_LIMIT)
            if isinstance(value, Invalid):
                return value
            return await self._apply(step, value)
        if name == "reason":
            value = read_text(given, _, limit=NOTES_LIMIT)
            if isinstance(value, Invalid):
                return value
            step.data["reason"] = value
            return Goto("confirm")
        if given != Choice("confirm"):
            return Invalid(_("Please choose one of the buttons."))
        return await self._apply(step, step.data.get("reason"))

    def _due(self, step: Step, given: Input) -> date | Invalid:
        _, today = step._, self._today(step)
        if isinstance(given, Choice):
            choices = {
                "in.7": today + timedelta(days=7),
                "in.14": today + timedelta(days=14),
                "in.m1": add_months(today, 1),
            }
            requested = step.data.get("requested")
            if requested and date.fromisoformat(requested) >= today:
                choices["in.req"] = date.fromisoformat(requested)
            if given.value not in choices:
                return Invalid(_("Please choose one of the buttons."))
            return choices[given.value]
        if not isinstance(given, Text):
            return Invalid(_("Please send this as a text message."))
        parsed = parse_due_date(given.value, today=today)
        if isinstance(parsed, DateError):
            return Invalid(date_error_text(step, parsed))
        return parsed

    # -- the change --------------------------------------------------------------------------------
    async def _apply(self, step: Step, note: str | None) -> Finish:
        _, data, session = step._, step.data, step.session
        problem = await get_problem_for_update(session, problem_id=int(data["problem_id"]))
        if problem is None:
            return Finish(_("This action has expired."))
        expected, action, actor = S(data["expected"]), data["action"], step.user
        changed_meanwhile = False
        try:
            if action == "assign":
                done = self._assign(step, problem, expected)
            elif action == "status":
                to = S(data["to"])
                kind = "reopened" if expected in (S.resolved, S.closed) else None
                change_status(
                    session,
                    problem,
                    to=to,
                    actor_id=actor.id,
                    now=step.now,
                    note=note,
                    kind=kind,
                    expected=expected,
                )
                done = _("Done: it is now “{status}”.").format(status=status_label(to, _))
            elif action == "return":
                change_status(
                    session,
                    problem,
                    to=S.returned,
                    actor_id=actor.id,
                    now=step.now,
                    note=note,
                    expected=expected,
                )
                done = _("Returned for correction; the reporter is told now.")
            else:
                change_status(
                    session,
                    problem,
                    to=S.closed,
                    actor_id=actor.id,
                    now=step.now,
                    note=note,
                    expected=expected,
                )
                done = _("Closed without resolution; the reporter is told now.")
        except TransitionError:
            log.info(
                "review of %s: status changed to %s meanwhile; nothing done", problem.ref, problem.status
            )
            done, changed_meanwhile = changed_text(problem.status, _), True
        await session.flush()
        card = await problem_card(session, problem_id=problem.id)
        assert card is not None
        reporter = card.reporter
        if not changed_meanwhile and reporter is not None and reporter.id != actor.id:
            self._notify(step, problem, card.enterprise.name, reporter, note)
        text = f"✔ {done}\n\n" + render_card(card, step.settings.tz, self._today(step), _)
        return Finish(text, card_buttons(problem, _))

    def _assign(self, step: Step, problem: Problem, expected: ProblemStatus) -> str:
        _, data = step._, step.data
        if problem.status is not expected or problem.status not in (S.open, S.in_progress):
            raise TransitionError(problem.status)
        department, due = str(data["new_department"]), date.fromisoformat(data["due"])
        note = f"{department} · {due.isoformat()}"
        if problem.status is S.open:
            change_status(
                step.session,
                problem,
                to=S.in_progress,
                actor_id=step.user.id,
                now=step.now,
                note=note,
                kind="assigned",
                expected=expected,
            )
        else:
            add_event(step.session, problem, actor_id=step.user.id, kind="assigned", now=step.now, note=note)
        problem.department, problem.due_date, problem.updated_at = department, due, step.now
        return _("Assigned to {department}, due {due}; the reporter is told now.").format(
            department=html.escape(department), due=due.isoformat()
        )

    def _notify(
        self, step: Step, problem: Problem, enterprise: str, reporter: User, note: str | None
    ) -> None:
        """Tell the reporter, in their language, through the outbox (unless they muted this kind)."""
        action = step.data["action"]
        _ = gettext_for(reporter.locale or step.settings.default_locale)
        names = {
            "ref": problem.ref,
            "enterprise": html.escape(enterprise),
            "name": html.escape(step.user.name),
            "reason": html.escape(note or ""),
        }
        buttons: list[list[tuple[str, str]]] = []
        if action == "return":
            kind = "returned"
            text = _(
                "↩ Your problem {ref} ({enterprise}) was returned for correction by {name}.\n"
                "<b>Reason:</b> {reason}\nPlease correct it."
            ).format(**names)
            buttons = [[(_("✏ Correct it"), encode(Prefix.my_problem, problem.id, "correct"))]]
        elif action == "assign":
            kind = "assigned"
            text = _(
                "📌 Your problem {ref} ({enterprise}) is now handled by {department}; due {due}."
            ).format(
                **names,
                department=html.escape(problem.department or ""),
                due=problem.due_date.isoformat() if problem.due_date else "",
            )
        elif action == "close":
            kind = "closed"
            text = _(
                "Your problem {ref} ({enterprise}) was closed without resolution by {name}.\n"
                "<b>Reason:</b> {reason}"
            ).format(**names)
        else:
            return  # marking in progress or reopening is visible in /my; no push for it
        if kind in (reporter.muted or []):
            return
        step.notify.append(
            Push(
                kind,
                reporter.id,
                f"problem:{problem.id}",
                f"{kind}.{step.now:%Y%m%d%H%M%S%f}",  # fits Notification.period (30)
                {"text": text, "buttons": buttons},
                step.now,
            )
        )
