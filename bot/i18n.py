"""Translations: gettext catalogues (Babel) for zh_CN (default) and en.

Message ids are English; `bot/locales/<locale>/LC_MESSAGES/bot.po` hold the texts. The catalogues
are compiled in memory on first use, so a stale `.mo` file can never be served.
Refresh them with `make messages` after changing user-facing text.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.config import LOCALES

LOCALE_DIR = Path(__file__).parent / "locales"
DOMAIN = "bot"

Translator = Callable[[str], str]


def N_(message: str) -> str:
    """Mark a module-level constant for extraction; translate it later with `_()`."""
    return message


def po_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(locale: str) -> gettext.GNUTranslations:
    with po_path(locale).open("rb") as po:
        catalog = read_po(po, locale=locale)
    buffer = BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def gettext_for(locale: str) -> Translator:
    return translations(locale if locale in LOCALES else "zh_CN").gettext


def locale_from_telegram(language_code: str | None, default: str) -> str:
    """Telegram's client language for someone we do not know yet: English clients get English."""
    if language_code and language_code.lower().startswith("en"):
        return "en"
    if language_code and language_code.lower().startswith("zh"):
        return "zh_CN"
    return default
