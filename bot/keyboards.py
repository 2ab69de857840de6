"""Callback data: one codec, ``<prefix>:<id>[:<arg>]``, at most 64 bytes, validated in one place.

Everything in callback data comes from the user's device and may be forged: `parse` accepts only
known prefixes, a numeric id and a short safe argument; handlers still check permission and state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

MAX_BYTES = 64
MAX_ID = 2**31 - 1  # database ids are 32-bit; a larger one is forged (and PostgreSQL would reject it)
_ARG = re.compile(r"[A-Za-z0-9_.\-]{1,40}")


class Prefix(StrEnum):
    flow = "f"  # a step of the user's current conversation: id = draft id, arg = "<version>.<choice>"
    lang = "lang"  # /lang: id unused, arg = locale
    invite_role = "inv"  # /invite: arg = role
    user = "usr"  # /users: id = user id, arg = action
    problem = "pb"  # supervisors' problem card actions: id = problem id, arg = action
    problem_list = "pl"  # /pending and /overdue paging and filters: id = page, arg = filter
    my_problem = "mp"  # the reporter's actions on their problem (/my): id = problem id, arg = action
    service = "sv"  # service request actions: id = request id, arg = action
    visit = "vs"  # visit actions from /my: id = visit id, arg = action
    my = "my"  # /my sections and paging: id = page, arg = section
    enterprise = "ent"  # enterprise shortcuts (visit / problem / service for it): id = enterprise id
    stats = "st"  # report navigation (period, view): id unused, arg = period or view
    notify = "nt"  # reminder buttons: id = notification subject id, arg = action


@dataclass(frozen=True)
class CallbackData:
    prefix: Prefix
    id: int
    arg: str = ""


def encode(prefix: Prefix, id: int = 0, arg: str = "") -> str:
    if arg and not _ARG.fullmatch(arg):
        raise ValueError(f"callback argument {arg!r} is not allowed")
    data = f"{prefix.value}:{id}" + (f":{arg}" if arg else "")
    if len(data.encode()) > MAX_BYTES:
        raise ValueError(f"callback data {data!r} exceeds {MAX_BYTES} bytes")
    return data


def parse(data: str | None) -> CallbackData | None:
    """The decoded callback data, or None if it is not something this bot could have sent."""
    if not data or len(data.encode()) > MAX_BYTES:
        return None
    parts = data.split(":")
    if len(parts) not in (2, 3):
        return None
    try:
        prefix = Prefix(parts[0])
    except ValueError:
        return None
    if not parts[1].isascii() or not parts[1].isdigit() or len(parts[1]) > 10 or int(parts[1]) > MAX_ID:
        return None
    arg = parts[2] if len(parts) == 3 else ""
    if len(parts) == 3 and not _ARG.fullmatch(arg):
        return None
    return CallbackData(prefix, int(parts[1]), arg)


def button(text: str, prefix: Prefix, id: int = 0, arg: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=encode(prefix, id, arg))


def markup(rows: list[list[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([row for row in rows if row])
