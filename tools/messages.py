"""Refresh the translation catalogues from the source (``make messages``).

``python tools/messages.py --set-zh FILE.json`` also merges Chinese texts from {message id: text}.

Extracts every `_()` / `N_()` message id from `bot/`, merges them into `bot/locales/*/bot.po`
(keeping existing translations, dropping obsolete ones), fills the English catalogue (its message
ids are the English texts) and lists the Chinese texts still to translate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.i18n import po_path  # noqa: E402

KEYWORDS = {"_": None, "N_": None}


def extract() -> Catalog:
    template = Catalog(project="liaison-bot", fuzzy=False)
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT / "bot"), method_map=[("**.py", "python")], keywords=KEYWORDS
    ):
        if isinstance(message, str) and message:
            template.add(message)
    return template


def update(locale: str) -> list[str]:
    template = extract()  # fresh per catalogue: Catalog.update shares message objects with the template
    path = po_path(locale)
    if path.exists():
        with path.open("rb") as fh:
            catalog = read_po(fh, locale=locale)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(locale=locale, project="liaison-bot")
    catalog.update(template, no_fuzzy_matching=True)
    catalog.obsolete.clear()
    catalog.fuzzy = False
    missing = []
    for message in catalog:
        if not message.id:
            continue
        if locale == "en" and not message.string:
            message.string = message.id
        if not message.string:
            missing.append(str(message.id))
    with path.open("wb") as fh:
        write_po(fh, catalog, sort_output=True, omit_header=False, no_location=True, width=0)
    return missing


def set_translations(locale: str, mapping_file: Path) -> None:
    """Merge translations from a JSON object {message id: translation} into a catalogue."""
    mapping = json.loads(mapping_file.read_text(encoding="utf-8"))
    path = po_path(locale)
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    for message_id, text in mapping.items():
        if message_id not in catalog:
            print(f"{locale}: not in the catalogue (run make messages first?): {message_id!r}")
            continue
        catalog[message_id].string = text
    with path.open("wb") as fh:
        write_po(fh, catalog, sort_output=True, no_location=True, width=0)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--set-zh":
        update("zh_CN")
        set_translations("zh_CN", Path(sys.argv[2]))
    status = 0
    for locale in ("en", "zh_CN"):
        missing = update(locale)
        for text in missing:
            print(f"{locale}: untranslated: {text!r}")
        status |= bool(missing)
    print(f"{len(extract())} messages")
    return status


if __name__ == "__main__":
    sys.exit(main())
