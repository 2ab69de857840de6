"""The supervisor's actions on a service request that take typed input (started from the card, `sv:`):

* ``deliver`` — an optional note for the requester (what was done), or Skip → the request is delivered;
* ``decline`` — the reason (required) → confirm → the request is declined.

The status the supervisor saw is checked again, under a row lock, when the change is written
(`change_service_status(expected=...)`), so a request moved meanwhile by someone else (or withdrawn by its
requester) changes nothing. The change is kept in the audit log with the note; the requester's message is
written to the outbox in the same transaction (`Step.notify`) and sent right after it commits.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from bot.commands import SUPERVISION
from bot.flows.common import NOTES_LIMIT, read_text
from bot.flows.engine import Choice, Finish, Flow, Goto, Input, Invalid, Outcome, Screen, Step
from bot.handlers.services import (
    card_buttons,
    changed_text,
    done_text,
    render_card,
    requester_push,
    status_label,
)
from bot.i18n import N_
from bot.keyboards import MAX_ID
from bot.storage.enums import ServiceStatus
from bot.storage.mywork import get_service_request_for_update
from bot.storage.services import (
    REVIEW_FLOW,
    SERVICE_TRANSITIONS,
    ServiceTransitionError,
    change_service_status,
    service_review_card,
)

log = logging.getLogger(__name__)

SS = ServiceStatus
TARGET = {"deliver": SS.delivered, "decline": SS.declined}
FIRST_STEP = {"deliver": "note", "decline": "reason"}


class ServiceReviewFlow(Flow):
    name = REVIEW_FLOW
    title = N_("service request handling")

    async def begin(self, step: Step, args: dict[str, Any]) -> str | Finish:
        _ = step._
        request_id, action = args.get("request_id"), args.get("action")
        try:
            expected: ServiceStatus | None = SS(str(args.get("expected")))
        except ValueError:
            expected = None
        if (
            not isinstance(request_id, int)
            or not 0 < request_id <= MAX_ID
            or action not in TARGET
            or expected is None
            or TARGET[str(action)] not in SERVICE_TRANSITIONS.get(expected, ())
            or step.user.role not in SUPERVISION
        ):
            log.warning("user %s: service review with bad arguments %r refused", step.user.id, args)
            return Finish(_("This action has expired."))
        card = await service_review_card(step.session, request_id=request_id)
        if card is None:
            return Finish(_("This action has expired."))
        request = card.row.request
        if request.status is not expected:
            return Finish(changed_text(request.status, _))
        step.data.update(
            request_id=request.id,
            action=action,
            expected=expected.value,
            ref=request.ref,
            item=card.row.item(step.locale),
            enterprise=card.row.enterprise_name,
        )
        return FIRST_STEP[str(action)]

    def _head(self, step: Step) -> str:
        return "<b>{ref}</b> · {item} · {enterprise}".format(
            ref=step.data["ref"],
            item=html.escape(step.data["item"]),
            enterprise=html.escape(step.data["enterprise"]),
        )

    async def screen(self, step: Step, name: str) -> Screen:
        _, head = step._, self._head(step)
        if name == "note":
            prompt = _(
                "Mark it “{status}”. Send a note for the requester — what was done (at most {limit} "
                "characters) — or tap Skip."
            ).format(status=status_label(SS.delivered, _), limit=NOTES_LIMIT)
            return Screen(f"{head}\n{prompt}", [[(_("Skip, no note"), "skip")]])
        if name == "reason":
            prompt = _(
                "Why is it declined? Send the reason; the requester is told (at most {limit} characters)."
            ).format(limit=NOTES_LIMIT)
            return Screen(f"{head}\n{prompt}")
        text = _("Decline it?\n<b>Reason:</b> {reason}").format(reason=html.escape(step.data["reason"]))
        return Screen(f"{head}\n{text}", [[(_("✔ Decline"), "confirm")]])

    async def handle(self, step: Step, name: str, given: Input) -> Outcome:
        _ = step._
        if name == "note":
            if given == Choice("skip"):
                return await self._apply(step, None)
            value = read_text(given, _, limit=NOTES_LIMIT)
            return value if isinstance(value, Invalid) else await self._apply(step, value)
        if name == "reason":
            value = read_text(given, _, limit=NOTES_LIMIT)
            if isinstance(value, Invalid):
                return value
            step.data["reason"] = value
            return Goto("confirm")
        if given != Choice("confirm"):
            return Invalid(_("Please choose one of the buttons."))
        return await self._apply(step, step.data.get("reason"))

    async def _apply(self, step: Step, note: str | None) -> Finish:
        _, data, session, actor = step._, step.data, step.session, step.user
        if actor.role not in SUPERVISION:  # the role was changed while the conversation was open
            return Finish(_("Sorry, this is not available to you."))
        request = await get_service_request_for_update(session, request_id=int(data["request_id"]))
        if request is None:  # withdrawn by its requester meanwhile
            return Finish(_("This action has expired."))
        to = TARGET[data["action"]]
        try:
            await change_service_status(
                session,
                request,
                to=to,
                expected=SS(data["expected"]),
                actor_id=actor.id,
                now=step.now,
                note=note,
            )
        except ServiceTransitionError as exc:
            log.info(
                "service review of %s: status changed to %s meanwhile; nothing done", request.ref, exc.status
            )
            done = changed_text(exc.status, _)
            card = await service_review_card(session, request_id=request.id)
        else:
            await session.flush()
            card = await service_review_card(session, request_id=request.id)
            assert card is not None
            push = requester_push(
                request=request, card=card, actor=actor, note=note, now=step.now, settings=step.settings
            )
            if push is not None:
                step.notify.append(push)
            done = done_text(to, told=push is not None, _=_)
        assert card is not None
        text = render_card(card, _=_, locale=step.locale, now=step.now, settings=step.settings)
        return Finish(f"✔ {done}\n\n{text}", card_buttons(request, _))
