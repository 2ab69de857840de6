"""The bot's commands: who may use each, and how the menu describes it (one table for all)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.i18n import N_
from bot.storage.enums import Role

EVERYONE = tuple(Role)
STAFF = (Role.liaison, Role.instructor)
SUPERVISION = (Role.supervisor, Role.admin)


@dataclass(frozen=True)
class Command:
    name: str
    description: str  # message id, translated when shown
    roles: tuple[Role, ...]


COMMANDS: tuple[Command, ...] = (
    Command("help", N_("What I can do for you"), EVERYONE),
    Command("lang", N_("Language: 中文 / English"), EVERYONE),
    Command("cancel", N_("Cancel what you are doing"), EVERYONE),
    Command("invite", N_("Invite a new user"), (Role.admin,)),
    Command("users", N_("List or deactivate users"), (Role.admin,)),
)


def commands_for(role: Role) -> list[Command]:
    return [command for command in COMMANDS if role in command.roles]


def command(name: str) -> Command:
    return next(c for c in COMMANDS if c.name == name)
