"""/service — 菜单式服务: request a service from the menu of the enterprise's stage.

Enterprise → (its stage, when unknown; stored at confirm) → menu item → note → confirm. Saved as
`requested`; the reference (S-2026-0007) is shown at the end.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from bot.flows.common import NOTES_LIMIT, enterprise_screen, read_text
from bot.flows.engine import Choice, Finish, Flow, Goto, Input, Invalid, Outcome, Screen, Step
from bot.flows.problem import (
    CONFIRM,
    EDIT,
    back_to_summary,
    choice_id,
    choose_enterprise,
    enterprise_from_args,
    forged,
    mark,
    preview,
)
from bot.i18n import N_
from bot.keyboards import Prefix, button
from bot.labels import STAGE_LABELS
from bot.storage.audit import record
from bot.storage.enterprises import accessible_enterprise
from bot.storage.enums import Stage
from bot.storage.models import Enterprise
from bot.storage.services import create_service_request, menu_for, menu_item, set_stage

log = logging.getLogger(__name__)


def _remember(step: Step, enterprise: Enterprise) -> str:
    """Keep the chosen enterprise; the first step after it (its stage when unknown, else the menu)."""
    data = step.data
    if data.get("enterprise_id") != enterprise.id:
        for key in ("stage", "stage_new", "item_id"):
            data.pop(key, None)
    data.update(enterprise_id=enterprise.id, enterprise_name=enterprise.name)
    if enterprise.stage is None:
        data["stage_new"] = True
        return "stage"
    data["stage"] = enterprise.stage.value
    data.pop("stage_new", None)
    return "menu"


class ServiceFlow(Flow):
    name = "service"
    title = N_("service request")

    async def begin(self, step: Step, args: dict[str, Any]) -> str | Finish:
        enterprise = await enterprise_from_args(step, args, self.name)
        if isinstance(enterprise, Finish):
            return enterprise
        if enterprise is None:
            return "enterprise"
        return _remember(step, enterprise)

    async def screen(self, step: Step, name: str) -> Screen:
        _, data = step._, step.data
        if name == "enterprise":
            return await enterprise_screen(step, _("<b>Request a menu service</b> — for which enterprise?"))
        enterprise = html.escape(data["enterprise_name"])
        if name == "stage":
            chosen = data.get("stage")
            return Screen(
                _(
                    "The stage of {enterprise} is not recorded yet. Which is it? It decides the service "
                    "menu and will be saved for the enterprise."
                ).format(enterprise=enterprise),
                [
                    [
                        (mark(_(label), stage.value == chosen), f"stage.{stage.value}")
                        for stage, label in STAGE_LABELS.items()
                    ]
                ],
            )
        stage = Stage(data["stage"])
        if name == "menu":
            items = await menu_for(step.session, stage=stage)
            text = _("<b>Menu services for {stage} enterprises</b>\nWhich does {enterprise} need?").format(
                stage=_(STAGE_LABELS[stage]), enterprise=enterprise
            )
            if not items:
                text += "\n" + _("No service is offered for this stage at the moment.")
            chosen = data.get("item_id")
            return Screen(
                text,
                [[(mark(item.label(step.locale), item.id == chosen), f"menu.{item.id}")] for item in items],
            )
        if name == "note":
            text = _(
                "Add a note for the service: what exactly is needed, a contact person (at most {limit} "
                "characters). Or tap “No note”."
            ).format(limit=NOTES_LIMIT)
            buttons = [[(_("No note"), "nonote")]]
            if data.get("note"):
                text += "\n\n" + _("Current note:") + "\n" + preview(data["note"])
                buttons.insert(0, [(_("Keep the current note"), "keep")])
            return Screen(text, buttons)
        if name == EDIT:
            return Screen(
                _("What do you want to change?"),
                [[(_("Service"), "edit.menu"), (_("Note"), "edit.note")]],
            )
        item = await menu_item(step.session, item_id=data["item_id"], stage=stage)
        stage_text = _(STAGE_LABELS[stage])
        if data.get("stage_new"):
            stage_text = _("{stage} (will be saved for the enterprise)").format(stage=stage_text)
        lines = [
            _("<b>Please check the service request</b>"),
            _("Enterprise: {enterprise}").format(enterprise=enterprise),
            _("Stage: {stage}").format(stage=stage_text),
            _("Service: {service}").format(
                service=html.escape(item.label(step.locale)) if item else _("(no longer offered)")
            ),
            _("Note: {note}").format(note=html.escape(data["note"]) if data.get("note") else _("none")),
        ]
        return Screen("\n".join(lines), [[(_("✔ Confirm"), CONFIRM), (_("✏ Edit"), EDIT)]])

    async def handle(self, step: Step, name: str, given: Input) -> Outcome:
        _, data = step._, step.data
        if name == "enterprise":
            picked = await choose_enterprise(step, given, self.name)
            if not isinstance(picked, Enterprise):
                return picked
            return Goto(_remember(step, picked))
        if name == "stage":
            value = given.value.removeprefix("stage.") if isinstance(given, Choice) else ""
            if value not in Stage.__members__:
                if isinstance(given, Choice):
                    forged(step, self.name, name, given)
                return Invalid(_("Please choose one of the buttons."))
            if data.get("stage") != value:
                data.pop("item_id", None)
            data["stage"] = value
            return Goto("menu")
        if name == "menu":
            item_id = choice_id(given, "menu")
            item = (
                await menu_item(step.session, item_id=item_id, stage=Stage(data["stage"]))
                if item_id
                else None
            )
            if item is None:
                if isinstance(given, Choice):
                    forged(step, self.name, name, given)
                    return Invalid(_("That service is not on the menu for this enterprise's stage."))
                return Invalid(_("Please choose one of the buttons."))
            data["item_id"] = item.id
            return back_to_summary(step) or Goto("note")
        if name == "note":
            if given == Choice("nonote"):
                data["note"] = ""
            elif not (given == Choice("keep") and data.get("note")):
                note = read_text(given, _, limit=NOTES_LIMIT)
                if isinstance(note, Invalid):
                    return note
                data["note"] = note
            return back_to_summary(step) or Goto(CONFIRM)
        if name == EDIT:
            target = given.value.removeprefix("edit.") if isinstance(given, Choice) else ""
            if target not in ("menu", "note"):
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

    async def _save(self, step: Step) -> Finish:
        _, data = step._, step.data
        name = html.escape(data["enterprise_name"])
        enterprise = await accessible_enterprise(
            step.session, user=step.user, enterprise_id=data["enterprise_id"]
        )
        if enterprise is None:
            log.warning(
                "user %s: service for enterprise %s refused at confirm", step.user.id, data["enterprise_id"]
            )
            return Finish(
                _("You are no longer assigned to {enterprise}, so nothing was saved.").format(enterprise=name)
            )
        stage = Stage(data["stage"])
        item = await menu_item(step.session, item_id=data["item_id"], stage=stage)
        if (enterprise.stage is not None and enterprise.stage is not stage) or item is None:
            log.info("user %s: service request for enterprise %s is stale", step.user.id, enterprise.id)
            return Finish(
                _(
                    "The stage of {enterprise} or its service menu changed meanwhile, so nothing was saved. "
                    "Please start again with /service."
                ).format(enterprise=name)
            )
        if enterprise.stage is None:
            await set_stage(
                step.session, enterprise=enterprise, stage=stage, actor_id=step.user.id, now=step.now
            )
        request = await create_service_request(
            step.session,
            enterprise_id=enterprise.id,
            requester_id=step.user.id,
            menu_item_id=item.id,
            note=data.get("note") or "",
            now=step.now,
            source=(step.chat_id, step.message_id),
        )
        await record(
            step.session,
            actor_id=step.user.id,
            action="create",
            entity="service_request",
            entity_id=request.id,
            now=step.now,
            details={"enterprise_id": enterprise.id, "menu_item": item.code},
        )
        log.info("user %s requested service %s for enterprise %s", step.user.id, request.id, enterprise.id)
        return Finish(
            _("Service request {ref} ({service}) is recorded for {enterprise}. Status: requested.").format(
                ref=request.ref, service=html.escape(item.label(step.locale)), enterprise=name
            ),
            [
                [button(_("Request another service for it"), Prefix.enterprise, enterprise.id, "service")],
                [button(_("Report a problem for it"), Prefix.enterprise, enterprise.id, "problem")],
            ],
        )
