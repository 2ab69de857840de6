"""/invite: an administrator invites a new user from the chat (role → name → unit → link)."""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

from bot.flows.common import NAME_LIMIT, SHORT_LIMIT, read_text
from bot.flows.engine import Choice, Finish, Flow, Goto, Input, Invalid, Outcome, Screen, Step
from bot.i18n import N_
from bot.storage.enums import STAFF, Role
from bot.storage.users import create_invite

ROLE_CHOICES = {
    Role.liaison: N_("Liaison (department)"),
    Role.instructor: N_("Instructor (community)"),
    Role.supervisor: N_("Supervisor"),
    Role.admin: N_("Administrator"),
}


def invite_link(bot_username: str, token: str) -> str:
    return f"https://t.me/{bot_username}?start={token}"


class InviteFlow(Flow):
    name = "invite"
    title = N_("invitation")

    async def begin(self, step: Step, args: dict[str, Any]) -> str:
        return "role"

    async def screen(self, step: Step, name: str) -> Screen:
        _ = step._
        if name == "role":
            return Screen(
                _("Whom do you want to invite? Choose the role:"),
                [[(_(label), f"role.{role.value}")] for role, label in ROLE_CHOICES.items()],
            )
        if name == "name":
            return Screen(
                _("Send the person's full name (at most {limit} characters).").format(limit=NAME_LIMIT)
            )
        if name == "unit":
            if step.data["role"] == Role.liaison:
                return Screen(_("Send the name of the department that sends this liaison."))
            return Screen(_("Send the name of the community that sends this instructor."))
        role = Role(step.data["role"])
        unit = step.data.get("unit")
        text = _("Invite {name} as {role}{unit}?").format(
            name=html.escape(step.data["name"]),
            role=_(ROLE_CHOICES[role]),
            unit=f" — {html.escape(unit)}" if unit else "",
        )
        return Screen(text, [[(_("✔ Create the invite link"), "confirm")]])

    async def handle(self, step: Step, name: str, given: Input) -> Outcome:
        _ = step._
        if name == "role":
            role_value = given.value.removeprefix("role.") if isinstance(given, Choice) else ""
            if role_value not in Role.__members__:
                return Invalid(_("Please choose one of the buttons."))
            step.data["role"] = role_value
            return Goto("name")
        if name in ("name", "unit"):
            value = read_text(given, _, limit=NAME_LIMIT if name == "name" else SHORT_LIMIT)
            if isinstance(value, Invalid):
                return value
            step.data[name] = value
            needs_unit = step.data["role"] in STAFF
            return Goto("unit" if name == "name" and needs_unit else "confirm")
        if given != Choice("confirm"):
            return Invalid(_("Please choose one of the buttons."))
        role = Role(step.data["role"])
        unit = step.data.get("unit")
        invite = await create_invite(
            step.session,
            role=role,
            name=step.data["name"],
            department=unit if role is Role.liaison else None,
            community=unit if role is Role.instructor else None,
            now=step.now,
            ttl=timedelta(days=step.settings.invite_ttl_days),
            created_by_id=step.user.id,
        )
        expires = invite.expires_at.astimezone(step.settings.tz).strftime("%Y-%m-%d %H:%M")
        return Finish(
            _(
                "Invite link for {name} (single use, valid until {expires}):\n{link}\n\nForward it to them; "
                "opening it in Telegram registers their account."
            ).format(
                name=html.escape(step.data["name"]),
                expires=expires,
                link=invite_link(step.bot_username, invite.token),
            )
        )
