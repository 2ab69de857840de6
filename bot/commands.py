"""The bot's commands: who may use each, and how the menu describes it (one table for all)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.i18n import N_
from bot.storage.enums import STAFF, Role

EVERYONE = tuple(Role)
SUPERVISION = (Role.supervisor, Role.admin)


@dataclass(frozen=True)
class Command:
    name: str
    description: str  # message id, translated when shown
    roles: tuple[Role, ...]


COMMANDS: tuple[Command, ...] = (
    Command("visit", N_("Log a visit (on-site service)"), STAFF),
    Command("problem", N_("Report an enterprise's problem"), STAFF),
    Command("service", N_("Request a menu service"), STAFF),
    Command("my", N_("My enterprises, problems and visits"), STAFF),
    Command("stats", N_("Weekly statistics"), EVERYONE),
    Command("pending", N_("Pending problems"), SUPERVISION),
    Command("overdue", N_("Overdue problems"), SUPERVISION),
    Command("services", N_("Pending service requests"), SUPERVISION),
    Command("enterprise", N_("An enterprise's card and history"), EVERYONE),
    Command("liaison", N_("A liaison's or instructor's activity"), SUPERVISION),
    Command("coverage", N_("Party-organisation and visit coverage"), SUPERVISION),
    Command("trends", N_("Recurring problems by category and community"), SUPERVISION),
    Command("export", N_("Export the ledger (XLSX)"), SUPERVISION),
    Command("settings", N_("Reminder settings: mute or unmute"), EVERYONE),
    Command("remind", N_("Reminders due now (dry run, send)"), (Role.admin,)),
    Command("invite", N_("Invite a new user"), (Role.admin,)),
    Command("users", N_("List or deactivate users"), (Role.admin,)),
    Command("help", N_("What I can do for you"), EVERYONE),
    Command("lang", N_("Language: 中文 / English"), EVERYONE),
    Command("cancel", N_("Cancel what you are doing"), EVERYONE),
)


def commands_for(role: Role) -> list[Command]:
    return [command for command in COMMANDS if role in command.roles]


def command(name: str) -> Command:
    return next(c for c in COMMANDS if c.name == name)
