"""Every user-facing message has a translation in both catalogues, and placeholders survive translation."""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po

from bot.i18n import po_path, translations
from tools.messages import extract

PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_every_message_is_translated(locale: str) -> None:
    with po_path(locale).open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    source = extract()
    missing = [m.id for m in source if m.id and (m.id not in catalog or not catalog[m.id].string)]
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert not missing, f"{locale}: untranslated (run make messages and translate): {missing}"
    assert not fuzzy, f"{locale}: fuzzy entries: {fuzzy}"
    for message in source:
        if message.id:
            expected = sorted(PLACEHOLDER.findall(str(message.id)))
            assert sorted(PLACEHOLDER.findall(str(catalog[message.id].string))) == expected, message.id


def test_chinese_is_really_chinese() -> None:
    """A message copied untranslated into the Chinese catalogue would pass the test above; catch it."""
    with po_path("zh_CN").open("rb") as fh:
        catalog = read_po(fh, locale="zh_CN")
    untranslated = [m.id for m in catalog if m.id and m.string == m.id and re.search("[a-z]{3}", str(m.id))]
    assert not untranslated, untranslated


def test_catalogues_compile_and_serve() -> None:
    assert translations("zh_CN").gettext("This action has expired.") == "此操作已失效。"
    assert translations("en").gettext("This action has expired.") == "This action has expired."
